// Package alerts notifies operators about consumers' budgets: when quota
// use crosses a configured fraction of the period's allotment, and when a
// consumer's token rate jumps above a multiple of its own recent baseline
// (the "token anomaly" or "traffic spike" alert). A notification is a JSON
// POST to a webhook, sent once per threshold per consumer per period across
// every replica, retried with back-off.
//
// The request path calls [Alerts.Observe] once per settled request. It does
// O(1) bookkeeping under a per-shard lock and, when something crossed,
// hands a job to a bounded queue without waiting: a full queue drops the
// job (counted in [Stats]); a slow or hung webhook never slows a request.
// Workers claim each notification in the [Store] (Redis SET NX with an
// expiry, shared by the replicas) and deliver it.
//
// Quota thresholds are judged on the balance the ledger shares, so any
// replica may notice a crossing and the Store lets one of them send it.
// Token rates are judged by each replica on the traffic it serves: with N
// replicas behind a balancing proxy each sees about 1/N of a consumer's
// traffic, and a jump shows in every share alike. The Store then lets one
// notification through per consumer per cooldown.
//
// A nil *Alerts is valid and does nothing, so callers need no checks.
package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options are what [New] needs besides the config.
type Options struct {
	// Config is the `alerts:` section; it must have a webhook URL.
	Config Config
	// Store dedups notifications across replicas: [StoreFor] of the
	// ledger's Redis client. Default: a MemoryStore (one replica).
	Store Store
	// KeyPrefix prefixes the Store's keys; default "alert:".
	KeyPrefix string
	// Clock returns the current time; default time.Now. Observations
	// without At are taken to happen at Clock().
	Clock func() time.Time
	// Logger receives delivery failures (never header values or the
	// webhook's path); default discards.
	Logger *slog.Logger
	// HTTPClient posts notifications; default a client that does not
	// follow redirects. Each attempt is bounded by webhook.timeout.
	HTTPClient *http.Client
	// Getenv reads "env:" values; default os.Getenv.
	Getenv func(string) string
}

// Observation is one settled request, as [Alerts.Observe] needs it.
type Observation struct {
	// Consumer is the consumer's name; Tier its tier ("" for none).
	Consumer, Tier string
	// Model is the model requested.
	Model string
	// Tokens is the request's total tokens (input + output).
	Tokens int64
	// HasQuota is true when the request was charged to a balance; the
	// Quota fields describe that balance after the settlement.
	HasQuota bool
	// QuotaRemaining and QuotaAllotment are in balance units.
	QuotaRemaining, QuotaAllotment int64
	// QuotaPeriod identifies the period (see [PeriodID]); "" for a balance
	// without one, which is then judged as the period "none".
	QuotaPeriod string
	// QuotaResetsAt, when set, is the end of the period: the dedup keys
	// live until a while after it. Otherwise they live 40 days.
	QuotaResetsAt time.Time
	// QuotaScope and QuotaModel tell a consumer's balances apart when it
	// has several in a period: the route scope of a scoped quota, the model
	// of a per-model one. Thresholds count per consumer and balance.
	QuotaScope, QuotaModel string
	// At is when the request was settled; default Options.Clock().
	At time.Time
}

// Stats counts what happened to notifications since New.
type Stats struct {
	// Queued notifications were handed to the workers.
	Queued uint64
	// Dropped ones found the queue full (or Alerts closed).
	Dropped uint64
	// Sent ones were accepted by the webhook (2xx).
	Sent uint64
	// Suppressed ones were already claimed, by this or another replica.
	Suppressed uint64
	// Failed ones were not accepted after every attempt, or were rejected.
	Failed uint64
	// Retries counts attempts after the first.
	Retries uint64
	// Evicted counts consumer states dropped to stay under max_consumers.
	Evicted uint64
}

// Timing of housekeeping.
const (
	// sweepEvery is how often idle consumer states are dropped.
	sweepEvery = time.Minute
	// retryCrossingAfter holds back a threshold whose delivery failed
	// before the next request that sees it queues it again.
	retryCrossingAfter = time.Minute
	// claimRetention keeps a quota claim this long past its period, and
	// noPeriodTTL is its lifetime when the period's end is not known.
	claimRetention = 7 * 24 * time.Hour
	noPeriodTTL    = 40 * 24 * time.Hour
	// storeTimeout bounds one Store call.
	storeTimeout = 2 * time.Second
)

const defaultKeyPrefix = "alert:"

// Alerts judges observations and delivers notifications. Its methods are
// safe for concurrent use.
type Alerts struct {
	policy  atomic.Pointer[policy]
	gens    atomic.Uint64
	store   Store
	local   *MemoryStore
	prefix  string
	clock   func() time.Time
	log     *slog.Logger
	http    *http.Client
	getenv  func(string) string
	states  *table
	queue   chan job
	workers int

	closed    atomic.Bool
	stop      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	queued, dropped, sent, suppressed, failed, retries, evicted atomic.Uint64
}

// job is one notification waiting for a worker; passed by value so that
// queueing it allocates nothing.
type job struct {
	typ      string
	consumer string
	tier     string
	// bal is the balance of a quota_threshold.
	bal        balance
	threshold  float64
	index      int // of the threshold, to reopen it after a failure
	used       int64
	allotment  int64
	window     int64
	rate, base float64 // tokens per minute
	at         time.Time
	ttl        time.Duration
}

// New compiles o.Config and starts the delivery workers; Close stops them.
func New(o Options) (*Alerts, error) {
	a := &Alerts{
		store:  o.Store,
		prefix: o.KeyPrefix,
		clock:  o.Clock,
		log:    o.Logger,
		http:   o.HTTPClient,
		getenv: o.Getenv,
		stop:   make(chan struct{}),
	}
	if a.clock == nil {
		a.clock = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.http == nil {
		a.http = defaultHTTPClient()
	}
	if a.getenv == nil {
		a.getenv = os.Getenv
	}
	if a.prefix == "" {
		a.prefix = defaultKeyPrefix
	}
	a.local = NewMemoryStore(a.clock)
	if a.store == nil {
		a.store = a.local
	}
	if err := a.Update(o.Config); err != nil {
		return nil, err
	}
	c := o.Config
	a.states = newTable(orDefault(c.MaxConsumers, defaultMaxConsumers))
	a.queue = make(chan job, orDefault(c.QueueSize, defaultQueueSize))
	a.workers = orDefault(c.Workers, defaultWorkers)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.wg.Add(a.workers + 1)
	for range a.workers {
		go a.work()
	}
	go a.housekeep()
	return a, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Update swaps in a new config: thresholds, anomaly settings, overrides
// and the webhook. Queue size, workers and max_consumers keep the values
// New was given. Consumers' thresholds already queued stay queued.
func (a *Alerts) Update(c Config) error {
	p, err := compile(c, a.getenv, a.gens.Add(1))
	if err != nil {
		return err
	}
	a.policy.Store(p)
	return nil
}

// Observe judges one settled request. It never blocks: it updates the
// consumer's state and at most queues a notification without waiting.
func (a *Alerts) Observe(o Observation) {
	if a == nil || o.Consumer == "" || a.closed.Load() {
		return
	}
	p := a.policy.Load()
	at := o.At
	if at.IsZero() {
		at = a.clock()
	}
	now := at.UnixNano()
	sh := a.states.shard(o.Consumer)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st, evicted := sh.get(o.Consumer, a.states.perShard)
	if evicted {
		a.evicted.Add(1)
	}
	st.lastSeen = now
	if st.gen != p.gen || st.tier != o.Tier {
		st.gen, st.tier = p.gen, o.Tier
		st.rule = p.resolve(o.Consumer, o.Tier)
		// Marks count into the old threshold list; the Store still knows
		// what was sent, so forgetting them costs a few claims at most.
		st.marks = [markSlots]mark{}
	}
	if o.HasQuota && o.QuotaAllotment > 0 && len(st.rule.thresholds) > 0 {
		a.judgeQuota(st, &o, at)
	}
	if r := &st.rule.anomaly; r.on && o.Tokens > 0 {
		a.judgeRate(st, r, &o, at)
	}
}

// judgeQuota queues each threshold the balance crossed that this replica
// has not queued yet in this period.
func (a *Alerts) judgeQuota(st *state, o *Observation, at time.Time) {
	bal := balance{period: o.QuotaPeriod, scope: o.QuotaScope, model: o.QuotaModel}
	if bal.period == "" {
		bal.period = "none"
	}
	m := st.markFor(bal)
	ts := st.rule.thresholds
	if m.handled >= len(ts) || at.UnixNano() < m.retryAt {
		return
	}
	used := o.QuotaAllotment - o.QuotaRemaining
	ttl := noPeriodTTL
	if !o.QuotaResetsAt.IsZero() {
		ttl = o.QuotaResetsAt.Sub(at) + claimRetention
	}
	for m.handled < len(ts) && float64(used) >= ts[m.handled]*float64(o.QuotaAllotment) {
		ok := a.enqueue(job{
			typ:       TypeQuotaThreshold,
			consumer:  o.Consumer,
			tier:      o.Tier,
			bal:       bal,
			threshold: ts[m.handled],
			index:     m.handled,
			used:      used,
			allotment: o.QuotaAllotment,
			at:        at,
			ttl:       ttl,
		})
		if !ok {
			return // the next request that sees the crossing tries again
		}
		m.handled++
	}
}

// judgeRate adds the request's tokens to the consumer's window and queues
// an anomaly when the short rate is past the multiple of the baseline.
func (a *Alerts) judgeRate(st *state, r *anomalyRule, o *Observation, at time.Time) {
	now := at.UnixNano()
	st.win.add(r, now, o.Tokens)
	if st.win.shortSum < r.minTokens {
		return
	}
	if st.lastAnomaly != 0 && now-st.lastAnomaly < int64(r.cooldown) {
		return
	}
	short, base, ok := st.win.rates(r, now)
	if !ok || short <= r.multiple*base {
		return
	}
	perMinute := float64(time.Minute)
	if a.enqueue(job{
		typ:       TypeTokenAnomaly,
		consumer:  o.Consumer,
		tier:      o.Tier,
		threshold: r.multiple,
		window:    st.win.shortSum,
		rate:      short * perMinute,
		base:      base * perMinute,
		at:        at,
		ttl:       r.cooldown,
	}) {
		st.lastAnomaly = now
	}
}

func (a *Alerts) enqueue(j job) bool {
	select {
	case a.queue <- j:
		a.queued.Add(1)
		return true
	default:
		a.dropped.Add(1)
		return false
	}
}

// Stats returns the counters so far.
func (a *Alerts) Stats() Stats {
	if a == nil {
		return Stats{}
	}
	return Stats{
		Queued:     a.queued.Load(),
		Dropped:    a.dropped.Load(),
		Sent:       a.sent.Load(),
		Suppressed: a.suppressed.Load(),
		Failed:     a.failed.Load(),
		Retries:    a.retries.Load(),
		Evicted:    a.evicted.Load(),
	}
}

// QueueDepth returns the number of notifications waiting for a worker.
func (a *Alerts) QueueDepth() int {
	if a == nil {
		return 0
	}
	return len(a.queue)
}

// Close stops taking observations and delivers what is queued. When ctx
// ends first, deliveries in progress are abandoned and ctx's error is
// returned.
func (a *Alerts) Close(ctx context.Context) error {
	if a == nil {
		return nil
	}
	a.closeOnce.Do(func() {
		a.closed.Store(true)
		close(a.stop)
	})
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	defer a.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		a.cancel()
		<-done
		return fmt.Errorf("cannot deliver every queued alert before the deadline: %w", ctx.Err())
	}
}
