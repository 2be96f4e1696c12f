package ledger

import (
	"context"
	"sort"
	"sync"
	"time"
)

// markerTTL is how long a settled request id is remembered. A settlement
// replayed later than this after the first one would be charged again, so
// it is well above any replay delay the spool allows for.
const markerTTL = 72 * time.Hour

// memMarkerTTL is how long the memory store remembers a settled id. Its
// settlements are never spooled and replayed, so duplicates can only come
// from the request path within a request's lifetime; a short memory keeps
// the map small (one entry per request).
const memMarkerTTL = time.Hour

// defaultUsageTTL is how long daily usage totals are kept.
const defaultUsageTTL = 90 * 24 * time.Hour

// sweepEvery is how often, in store time, the memory store drops expired
// entries.
const sweepEvery = time.Minute

// MemoryOptions configure a [Memory] store.
type MemoryOptions struct {
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// UsageTTL is how long daily usage totals are kept; 90 days when 0.
	UsageTTL time.Duration
}

// Memory is a [Store] held in the process: the embedded default when no
// Redis is configured, and each replica's fallback when Redis fails open.
// It implements the same algorithms as the Redis store (see the package's
// window and slot documentation), under one mutex.
type Memory struct {
	clock    func() time.Time
	usageTTL int64

	mu        sync.Mutex
	windows   map[string]*memWindow
	balances  map[string]*memBalance
	slots     map[string]*memSlot
	usage     map[usageKey]*memDay
	settled   map[string]int64
	lastSweep int64
}

var _ Store = (*Memory)(nil)

type memWindow struct {
	buckets map[int64]int64
	total   int64
	oldest  int64
	expires int64
}

type memBalance struct {
	v       int64
	expires int64 // 0: never
}

type usageKey struct{ consumer, day string }

type memDay struct {
	models  map[string]*DayTotals
	expires int64
}

// NewMemory returns an empty in-memory store.
func NewMemory(o MemoryOptions) *Memory {
	m := &Memory{
		clock:    o.Clock,
		usageTTL: o.UsageTTL.Microseconds(),
		windows:  map[string]*memWindow{},
		balances: map[string]*memBalance{},
		slots:    map[string]*memSlot{},
		usage:    map[usageKey]*memDay{},
		settled:  map[string]int64{},
	}
	if m.clock == nil {
		m.clock = time.Now
	}
	if m.usageTTL <= 0 {
		m.usageTTL = defaultUsageTTL.Microseconds()
	}
	return m
}

func (m *Memory) now() int64 { return m.clock().UnixMicro() }

// Reserve implements [Store].
func (m *Memory) Reserve(_ context.Context, r *Reservation) (*Decision, error) {
	if err := validateReservation(r); err != nil {
		return nil, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)

	d := newDecision(len(r.Windows), len(r.Slots))
	d.Hold = Hold{At: now}
	out := make([]windowOutcome, len(r.Windows))
	wins := make([]*memWindow, len(r.Windows))
	for i := range r.Windows {
		w := &r.Windows[i]
		n, width := bucketing(w.Size)
		idx := now / width
		mw := m.window(w.Key, n, idx, now)
		wins[i] = mw
		amt := w.Amount(r.Input, r.Output)
		switch {
		case amt > w.Limit:
			out[i] = windowOutcome{refused: true, tooLarge: true}
		case mw.total+amt > w.Limit:
			out[i] = windowOutcome{refused: true, retry: mw.retryAfter(n, width, idx, now, mw.total+amt-w.Limit)}
		}
	}
	balanceRefused := false
	var mb *memBalance
	if b := r.Balance; b != nil {
		mb = m.balance(b, now, true)
		full, input := balanceCosts(r)
		d.Hold.Balance = min(full, mb.v)
		balanceRefused = mb.v <= 0 || mb.v < input
	}
	slots := make([]*memSlot, len(r.Slots))
	slotRefused := make([]bool, len(r.Slots))
	for i := range r.Slots {
		ms := m.slot(r.Slots[i].Key, now)
		slots[i] = ms
		_, held := ms.leases[r.ID]
		slotRefused[i] = !held && int64(len(ms.leases)) >= r.Slots[i].Max
	}
	d.decide(balanceRefused, out, slotRefused)
	if d.Allowed {
		for i := range r.Slots {
			slots[i].take(r.ID, now+r.Slots[i].Lease.Microseconds())
		}
		for i := range r.Windows {
			w := &r.Windows[i]
			n, width := bucketing(w.Size)
			wins[i].add(now/width, w.Amount(r.Input, r.Output))
			wins[i].expires = now + windowTTL(n, width).Microseconds()
		}
		if mb != nil {
			mb.v -= d.Hold.Balance
		}
	} else {
		d.Hold = Hold{}
	}
	for i := range r.Windows {
		w := &r.Windows[i]
		n, width := bucketing(w.Size)
		d.Windows[i] = wins[i].state(w.Limit, n, width, now)
	}
	if mb != nil {
		d.Balance = mb.v
	}
	for i := range r.Slots {
		d.Slots[i] = SlotState{Max: r.Slots[i].Max, InFlight: int64(len(slots[i].leases))}
	}
	return d, nil
}

// window returns the window at key with the buckets before idx−n dropped,
// creating it when it does not exist or has expired.
func (m *Memory) window(key string, n, idx, now int64) *memWindow {
	mw := m.windows[key]
	if mw == nil || mw.expires <= now {
		mw = &memWindow{buckets: map[int64]int64{}, oldest: idx - n}
		m.windows[key] = mw
		return mw
	}
	mw.advance(n, idx-n)
	return mw
}

// advance drops the buckets older than lo. Every bucket lies in
// [oldest, oldest+n], so past that gap everything goes at once.
func (mw *memWindow) advance(n, lo int64) {
	if lo <= mw.oldest {
		return
	}
	if lo-mw.oldest > n {
		clear(mw.buckets)
		mw.total = 0
	} else {
		for i := mw.oldest; i < lo; i++ {
			if v, ok := mw.buckets[i]; ok {
				mw.total -= v
				delete(mw.buckets, i)
			}
		}
	}
	mw.oldest = lo
}

func (mw *memWindow) add(bucket, v int64) {
	mw.buckets[bucket] += v
	mw.total += v
}

// retryAfter returns how long until enough of the oldest buckets have left
// the window to free need.
func (mw *memWindow) retryAfter(n, width, idx, now, need int64) time.Duration {
	freed := int64(0)
	for j := idx - n; j <= idx; j++ {
		freed += mw.buckets[j]
		if freed >= need {
			return time.Duration((j+n+1)*width-now) * time.Microsecond
		}
	}
	return time.Duration((idx+n+1)*width-now) * time.Microsecond
}

func (mw *memWindow) state(limit, n, width, now int64) WindowState {
	s := WindowState{Limit: limit, Remaining: max(0, limit-mw.total)}
	if mw.total <= 0 {
		return s
	}
	idx := now / width
	for j := idx; j >= idx-n; j-- {
		if mw.buckets[j] > 0 {
			s.Reset = time.Duration((j+n+1)*width-now) * time.Microsecond
			break
		}
	}
	return s
}

// balance returns the live balance of b, created with its allotment when
// create is set and it does not exist; nil when it does not exist and
// create is not set.
func (m *Memory) balance(b *Balance, now int64, create bool) *memBalance {
	mb := m.balances[b.Key]
	if mb != nil && mb.expires != 0 && mb.expires <= now {
		delete(m.balances, b.Key)
		mb = nil
	}
	if mb == nil && create {
		mb = &memBalance{v: b.Allotment}
		if b.TTL > 0 {
			mb.expires = now + b.TTL.Microseconds()
		}
		m.balances[b.Key] = mb
	}
	return mb
}

// Settle implements [Store].
func (m *Memory) Settle(_ context.Context, s *Settlement) error {
	if err := validateSettlement(s); err != nil {
		return err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if exp, ok := m.settled[s.ID]; ok && exp > now {
		return nil
	}
	m.settled[s.ID] = now + memMarkerTTL.Microseconds()
	if r := s.Reservation; r != nil && s.Hold.taken() {
		for i := range r.Windows {
			w := &r.Windows[i]
			delta := w.Amount(s.Usage.Input, s.Usage.Output) - w.Amount(r.Input, r.Output)
			m.correct(w, s.Hold.windowAt(i), delta, now)
		}
		if b := r.Balance; b != nil {
			if mb := m.balance(b, now, false); mb != nil {
				mb.v += s.Hold.Balance - b.Weights.Cost(s.Usage)
			}
		}
		for i := range r.Slots {
			if ms := m.slots[r.Slots[i].Key]; ms != nil {
				delete(ms.leases, r.ID)
			}
		}
	}
	m.addUsage(s, now)
	return nil
}

// correct adds delta to the bucket of window w charged at time at while it
// is in the window; a positive delta goes to the current bucket otherwise.
func (m *Memory) correct(w *Window, at, delta, now int64) {
	if delta == 0 {
		return
	}
	n, width := bucketing(w.Size)
	idx := now / width
	mw := m.windows[w.Key]
	if mw != nil && mw.expires <= now {
		delete(m.windows, w.Key)
		mw = nil
	}
	if mw != nil {
		mw.advance(n, idx-n)
		if b := at / width; b >= idx-n {
			mw.add(b, delta)
			mw.expires = max(mw.expires, now+windowTTL(n, width).Microseconds())
			return
		}
	}
	if delta < 0 {
		return
	}
	if mw == nil {
		mw = m.window(w.Key, n, idx, now)
	}
	mw.add(idx, delta)
	mw.expires = now + windowTTL(n, width).Microseconds()
}

func (m *Memory) addUsage(s *Settlement, now int64) {
	k := usageKey{s.Consumer, s.Day}
	day := m.usage[k]
	if day == nil {
		day = &memDay{models: map[string]*DayTotals{}}
		m.usage[k] = day
	}
	day.expires = now + m.usageTTL
	t := day.models[s.Model]
	if t == nil {
		t = &DayTotals{Day: s.Day, Model: s.Model}
		day.models[s.Model] = t
	}
	for i, v := range usageFields(s.Usage) {
		t.add(i, v)
	}
}

// GetBalance implements [Store].
func (m *Memory) GetBalance(_ context.Context, b *Balance) (int64, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if mb := m.balance(b, now, false); mb != nil {
		return mb.v, nil
	}
	return b.Allotment, nil
}

// SetBalance implements [Store].
func (m *Memory) SetBalance(_ context.Context, b *Balance, v int64) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.balance(b, now, true).v = v
	return nil
}

// AddBalance implements [Store].
func (m *Memory) AddBalance(_ context.Context, b *Balance, delta int64) (int64, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mb := m.balance(b, now, true)
	mb.v += delta
	return mb.v, nil
}

// Totals implements [Store].
func (m *Memory) Totals(_ context.Context, q TotalsQuery) ([]DayTotals, error) {
	days, err := queryDays(q)
	if err != nil {
		return nil, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var res []DayTotals
	for _, d := range days {
		day := m.usage[usageKey{q.Consumer, d}]
		if day == nil || day.expires <= now {
			continue
		}
		start := len(res)
		for model, t := range day.models {
			if q.Model == "" || q.Model == model {
				res = append(res, *t)
			}
		}
		sort.Slice(res[start:], func(i, j int) bool { return res[start+i].Model < res[start+j].Model })
	}
	return res, nil
}

// Ping implements [Store].
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements [Store].
func (m *Memory) Close() error { return nil }

// sweep drops expired entries once per sweepEvery of store time, so that
// keys nobody touches again do not stay forever.
func (m *Memory) sweep(now int64) {
	if now-m.lastSweep < sweepEvery.Microseconds() {
		return
	}
	m.lastSweep = now
	for k, w := range m.windows {
		if w.expires <= now {
			delete(m.windows, k)
		}
	}
	for k, b := range m.balances {
		if b.expires != 0 && b.expires <= now {
			delete(m.balances, k)
		}
	}
	for k, sl := range m.slots {
		if sl.expires <= now {
			delete(m.slots, k)
		}
	}
	for k, d := range m.usage {
		if d.expires <= now {
			delete(m.usage, k)
		}
	}
	for k, exp := range m.settled {
		if exp <= now {
			delete(m.settled, k)
		}
	}
}
