package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/tollgate-ai/tollgate/ledger"
)

// work delivers queued notifications until Close, then what is left.
func (a *Alerts) work() {
	defer a.wg.Done()
	for {
		select {
		case j := <-a.queue:
			a.handle(&j)
		case <-a.stop:
			for {
				select {
				case j := <-a.queue:
					a.handle(&j)
				default:
					return
				}
			}
		}
	}
}

func (a *Alerts) housekeep() {
	defer a.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.sweep()
		}
	}
}

// sweep drops the states of consumers idle for longer than idle_after.
func (a *Alerts) sweep() int {
	p := a.policy.Load()
	return a.states.sweep(a.clock().Add(-p.idleAfter).UnixNano())
}

// key is the Store key of a notification: one per threshold per balance
// per period, or one per consumer for anomalies (held for the cooldown).
func (a *Alerts) key(j *job) string {
	k := a.prefix + ledger.ConsumerTag(j.consumer)
	if j.typ == TypeTokenAnomaly {
		return k + ":anomaly"
	}
	k += ":" + j.bal.period
	if j.bal.scope != "" {
		k += ":r:" + j.bal.scope
	}
	if j.bal.model != "" {
		k += ":m:" + j.bal.model
	}
	return k + ":" + strconv.FormatFloat(j.threshold, 'g', -1, 64)
}

func (a *Alerts) handle(j *job) {
	if a.ctx.Err() != nil {
		a.dropped.Add(1)
		return
	}
	p := a.policy.Load()
	key := a.key(j)
	if !a.claim(key, j.ttl) {
		a.suppressed.Add(1)
		return
	}
	n := j.notification(key)
	body, err := json.Marshal(n)
	if err != nil {
		// Only a NaN rate could fail; nothing to send.
		a.log.Error("alerts: cannot encode notification", "type", j.typ, "consumer", j.consumer, "err", err)
		a.failed.Add(1)
		return
	}
	retries, err := a.deliver(a.ctx, &p.hook, n.ID, body)
	a.retries.Add(uint64(retries))
	if err == nil {
		a.sent.Add(1)
		return
	}
	a.log.Error("alerts: cannot deliver notification", "type", j.typ, "consumer", j.consumer,
		"webhook", p.hook.host, "attempts", retries+1, "err", err)
	// The webhook refusing it as it is (4xx), sending it again cannot help;
	// otherwise it is given back so that a later request can send it.
	if !errors.Is(err, errRejected) {
		a.release(key)
		if j.typ == TypeQuotaThreshold {
			a.reopen(j)
		}
	}
	// Counted last, so that a caller seeing the count sees the outcome.
	a.failed.Add(1)
}

// claim takes key in the Store, or, when the Store fails, in this
// replica's memory: during an outage each replica then sends at most once.
func (a *Alerts) claim(key string, ttl time.Duration) bool {
	ctx, cancel := context.WithTimeout(a.ctx, storeTimeout)
	defer cancel()
	ok, err := a.store.Claim(ctx, key, ttl)
	if err == nil {
		return ok
	}
	a.log.Warn("alerts: store failed, deduplicating on this replica only", "err", err)
	ok, _ = a.local.Claim(ctx, key, ttl)
	return ok
}

func (a *Alerts) release(key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), storeTimeout)
	defer cancel()
	if err := a.store.Release(ctx, key); err != nil {
		a.log.Warn("alerts: cannot release a claim", "err", err)
	}
	_ = a.local.Release(ctx, key)
}

// reopen lets the next request that sees j's threshold crossed queue it
// again, a little later.
func (a *Alerts) reopen(j *job) {
	sh := a.states.shard(j.consumer)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st, ok := sh.states[j.consumer]
	if !ok {
		return // evicted: its next request starts afresh anyway
	}
	for i := range st.marks {
		m := &st.marks[i]
		if m.inUse && m.bal == j.bal && m.handled > j.index {
			m.handled = j.index
			m.retryAt = a.clock().Add(retryCrossingAfter).UnixNano()
		}
	}
}

func (j *job) notification(key string) *Notification {
	n := &Notification{
		ID:        key,
		Type:      j.typ,
		Consumer:  j.consumer,
		Tier:      j.tier,
		Threshold: j.threshold,
		At:        j.at.UTC(),
	}
	switch j.typ {
	case TypeQuotaThreshold:
		n.Period, n.Scope, n.Model = j.bal.period, j.bal.scope, j.bal.model
		n.Used, n.Allotment = &j.used, &j.allotment
	case TypeTokenAnomaly:
		n.ID = key + ":" + strconv.FormatInt(j.at.UnixMilli(), 10)
		n.RatePerMinute, n.BaselinePerMinute, n.WindowTokens = &j.rate, &j.base, &j.window
	}
	return n
}
