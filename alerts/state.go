package alerts

import (
	"hash/maphash"
	"math"
	"sync"
)

// shortBuckets is how many buckets the short window is cut into: the short
// rate is judged at a resolution of short/5.
const shortBuckets = 5

// numShards spreads consumer states over locks so that concurrent requests
// of different consumers rarely wait for each other.
const numShards = 32

// evictSample is how many states are looked at to choose one to evict when
// a shard is full: an approximation of least recently seen that costs O(1).
const evictSample = 8

// markSlots is how many quota balances of one consumer are remembered at
// once; a consumer with per-model balances that uses more models in a
// period only costs extra claims in the Store.
const markSlots = 4

// state is what one replica knows of one consumer.
type state struct {
	lastSeen int64 // unix nanoseconds
	gen      uint64
	tier     string
	rule     rule

	marks    [markSlots]mark
	nextMark int

	win window
	// lastAnomaly is when this replica last queued an anomaly notification
	// for the consumer (unix nanoseconds), 0 for never.
	lastAnomaly int64
}

// mark remembers the thresholds of one balance already handed to the
// queue, so that each is queued once per replica, not once per request.
type mark struct {
	inUse bool
	bal   balance
	// handled is the number of thresholds (in ascending order) queued.
	handled int
	// retryAt, after a failed delivery, holds the next attempt back until
	// this time (unix nanoseconds).
	retryAt int64
}

// window is a consumer's token rate: a ring of buckets covering the short
// window, and a baseline average of the buckets that left it.
type window struct {
	bucket int64 // bucket size in nanoseconds; 0 before first use
	// first is the index (time / bucket) of the first bucket the consumer
	// was seen in; older buckets are unknown, not empty.
	first, cur int64
	counts     [shortBuckets]int64
	shortSum   int64
	// baseline is tokens per bucket; fed counts the buckets averaged in.
	baseline float64
	fed      int64
}

func (w *window) reset(bucket, now int64) {
	*w = window{bucket: bucket, first: now / bucket, cur: now / bucket}
}

// add records tokens at now (unix nanoseconds). Observations arriving a
// little out of order go to the current bucket.
func (w *window) add(r *anomalyRule, now, tokens int64) {
	if w.bucket != r.bucket {
		w.reset(r.bucket, now)
	}
	w.advance(r, now/w.bucket)
	w.counts[w.cur%shortBuckets] += tokens
	w.shortSum += tokens
}

// advance moves the current bucket to idx, feeding the buckets that leave
// the short window into the baseline. It costs at most shortBuckets steps
// however long the consumer was idle.
func (w *window) advance(r *anomalyRule, idx int64) {
	steps := idx - w.cur
	if steps <= 0 {
		return
	}
	ring := min(steps, shortBuckets)
	for range ring {
		w.cur++
		slot := w.cur % shortBuckets
		leaving := w.cur - shortBuckets
		if leaving >= w.first {
			w.feed(r, float64(w.counts[slot]))
		}
		w.shortSum -= w.counts[slot]
		w.counts[slot] = 0
	}
	// Buckets that passed through the window while the consumer was idle
	// were empty.
	if idle := steps - ring; idle > 0 {
		w.feedZeros(r, idle)
	}
	w.cur = idx
}

// feed averages one bucket into the baseline: a plain mean until warm (so
// the first hour weighs evenly), then an exponentially weighted one whose
// memory is about the baseline span.
func (w *window) feed(r *anomalyRule, x float64) {
	w.fed++
	if w.fed <= r.warm {
		w.baseline += (x - w.baseline) / float64(w.fed)
		return
	}
	w.baseline += r.alpha * (x - w.baseline)
}

func (w *window) feedZeros(r *anomalyRule, n int64) {
	if w.fed < r.warm {
		m := min(n, r.warm-w.fed)
		w.baseline *= float64(w.fed) / float64(w.fed+m)
		w.fed += m
		n -= m
	}
	if n > 0 {
		w.baseline *= math.Pow(1-r.alpha, float64(n))
		w.fed += n
	}
}

// rates returns the short-window rate and the baseline rate, in tokens
// per nanosecond, at now; ok is false until the baseline is warm.
func (w *window) rates(r *anomalyRule, now int64) (short, base float64, ok bool) {
	if w.fed < r.warm {
		return 0, 0, false
	}
	// The window is the full buckets before the current one plus the part
	// of the current one elapsed.
	span := (shortBuckets-1)*w.bucket + now - w.cur*w.bucket
	if span <= 0 {
		return 0, 0, false
	}
	return float64(w.shortSum) / float64(span), w.baseline / float64(w.bucket), true
}

// shard holds the states of the consumers whose names hash to it.
type shard struct {
	mu     sync.Mutex
	states map[string]*state
}

// table is every consumer state, bounded by max.
type table struct {
	seed     maphash.Seed
	shards   [numShards]shard
	perShard int
}

func newTable(maxConsumers int) *table {
	t := &table{seed: maphash.MakeSeed(), perShard: max((maxConsumers+numShards-1)/numShards, 1)}
	for i := range t.shards {
		t.shards[i].states = make(map[string]*state)
	}
	return t
}

func (t *table) shard(consumer string) *shard {
	return &t.shards[maphash.String(t.seed, consumer)%numShards]
}

// get returns consumer's state in sh (whose lock is held), creating it —
// and evicting another when the shard is full. evicted reports an eviction.
func (sh *shard) get(consumer string, perShard int) (st *state, evicted bool) {
	if st, ok := sh.states[consumer]; ok {
		return st, false
	}
	if len(sh.states) >= perShard {
		var victim string
		oldest := int64(math.MaxInt64)
		n := 0
		for name, s := range sh.states {
			if s.lastSeen < oldest {
				victim, oldest = name, s.lastSeen
			}
			if n++; n == evictSample {
				break
			}
		}
		delete(sh.states, victim)
		evicted = true
	}
	st = &state{}
	sh.states[consumer] = st
	return st, evicted
}

// sweep removes the states not seen since before cutoff (unix nanoseconds)
// and returns how many it removed.
func (t *table) sweep(cutoff int64) int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for name, s := range sh.states {
			if s.lastSeen < cutoff {
				delete(sh.states, name)
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// size returns the number of consumer states kept.
func (t *table) size() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.states)
		sh.mu.Unlock()
	}
	return n
}

// markFor returns the mark of a balance, replacing the oldest slot when
// the balance is new to this state.
func (st *state) markFor(b balance) *mark {
	for i := range st.marks {
		m := &st.marks[i]
		if m.inUse && m.bal == b {
			return m
		}
	}
	m := &st.marks[st.nextMark]
	st.nextMark = (st.nextMark + 1) % markSlots
	*m = mark{inUse: true, bal: b}
	return m
}

// balance identifies one quota balance of a consumer.
type balance struct {
	period, scope, model string
}
