package ledger

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/internal/redistest"
)

// fakeClock is a settable clock shared by a store and its test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	// A fixed instant on a day boundary, so bucket edges fall on round
	// offsets from it.
	return &fakeClock{t: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one store under test with what the conformance cases need around it.
type env struct {
	s     Store
	clock *fakeClock
	// ttl returns the remaining time to live of a balance key (0: none or
	// missing).
	ttl func(t *testing.T, key string) time.Duration
	// name returns a name unique within the store's backing data.
	name func(base string) string
}

// storeKind opens fresh envs of one store implementation.
type storeKind struct {
	name string
	open func(t *testing.T) *env
}

var nameSeq atomic.Int64

func uniqueName(base string) string {
	return fmt.Sprintf("%s-%d", base, nameSeq.Add(1))
}

func memoryKind() storeKind {
	return storeKind{name: "memory", open: func(t *testing.T) *env {
		c := newFakeClock()
		m := NewMemory(MemoryOptions{Clock: c.Now})
		return &env{s: m, clock: c, name: uniqueName, ttl: func(t *testing.T, key string) time.Duration {
			m.mu.Lock()
			defer m.mu.Unlock()
			b := m.balances[key]
			if b == nil || b.expires == 0 {
				return 0
			}
			return time.Duration(b.expires-c.Now().UnixMicro()) * time.Microsecond
		}}
	}}
}

// redisKind runs the store against client, driving its scripts with a
// fake clock.
func redisKind(name string, client func(t *testing.T) redis.UniversalClient) storeKind {
	return storeKind{name: name, open: func(t *testing.T) *env {
		cl := client(t)
		r, err := NewRedis(RedisOptions{Client: cl, KeyPrefix: "test:"})
		if err != nil {
			t.Fatalf("NewRedis: %v", err)
		}
		c := newFakeClock()
		r.clock = c.Now
		return &env{s: r, clock: c, name: uniqueName, ttl: func(t *testing.T, key string) time.Duration {
			d, err := cl.PTTL(context.Background(), r.key(key)).Result()
			if err != nil {
				t.Fatalf("PTTL: %v", err)
			}
			return max(d, 0)
		}}
	}}
}

// storeKinds returns the memory store, a single redis-server and a
// 3-master cluster, each started once for the calling test.
func storeKinds(t *testing.T) []storeKind {
	single := redistest.Start(t)
	cluster := redistest.StartCluster(t, 3)
	return []storeKind{
		memoryKind(),
		redisKind("redis", func(t *testing.T) redis.UniversalClient {
			c := redis.NewClient(&redis.Options{Addr: single.Addr()})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}),
		redisKind("cluster", func(t *testing.T) redis.UniversalClient {
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs()})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}),
	}
}

func TestConformance(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"admits up to the limit", testAdmitsUpToLimit},
		{"refusal charges nothing", testRefusalChargesNothing},
		{"sliding window at a boundary", testSlidingBoundary},
		{"sliding window invariants", testSlidingInvariants},
		{"settle corrects", testSettleCorrects},
		{"late settle", testLateSettle},
		{"idempotent settle", testIdempotentSettle},
		{"settling a refusal", testSettleRefused},
		{"partial balance reservation", testPartialBalance},
		{"balance allotment and ttl", testBalanceAllotment},
		{"totals", testTotals},
		{"slot: max in flight", testSlotMaxInFlight},
		{"slot: refusal charges nothing", testSlotRefusalChargesNothing},
		{"slot: lease expiry", testSlotLeaseExpiry},
		{"slot: renew", testSlotRenew},
		{"slot: partial renew", testSlotRenewPartial},
		{"slot: concurrent requests", testSlotConcurrent},
	}
	for _, k := range storeKinds(t) {
		t.Run(k.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, k.open(t)) })
			}
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func tokensWindow(key string, limit int64, size time.Duration) Window {
	return Window{Key: key, Limit: limit, Size: size, Unit: Tokens, Rule: "tokens"}
}

func reserve(t *testing.T, s Store, r *Reservation) *Decision {
	t.Helper()
	d, err := s.Reserve(ctxT(t), r)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if len(d.Windows) != len(r.Windows) {
		t.Fatalf("Reserve returned %d window states for %d windows", len(d.Windows), len(r.Windows))
	}
	return d
}

func settle(t *testing.T, s Store, st *Settlement) {
	t.Helper()
	if err := s.Settle(ctxT(t), st); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

// remaining reads a window's remaining room with an admission of nothing.
func remaining(t *testing.T, s Store, w Window) int64 {
	t.Helper()
	return reserve(t, s, &Reservation{ID: uniqueName("probe"), Windows: []Window{w}}).Windows[0].Remaining
}

func testAdmitsUpToLimit(t *testing.T, e *env) {
	c := e.name("alice")
	tokens := tokensWindow("rl:{c:"+c+"}:tokens:minute", 100, time.Minute)
	reqs := Window{Key: "rl:{c:" + c + "}:requests:minute", Limit: 5, Size: time.Minute, Unit: Requests, Rule: "requests"}
	r := &Reservation{Windows: []Window{tokens, reqs}, Input: 20, Output: 10}
	for i, want := range []int64{70, 40, 10} {
		r.ID = e.name("req")
		d := reserve(t, e.s, r)
		if !d.Allowed {
			t.Fatalf("request %d refused: %+v", i, d)
		}
		if d.Windows[0].Remaining != want || d.Windows[1].Remaining != int64(4-i) {
			t.Fatalf("request %d: remaining %d tokens, %d requests; want %d, %d", i, d.Windows[0].Remaining, d.Windows[1].Remaining, want, 4-i)
		}
		if d.Windows[0].Limit != 100 || d.Windows[0].Reset <= 0 || d.Windows[0].Reset > 61*time.Second {
			t.Fatalf("request %d: window state %+v", i, d.Windows[0])
		}
		e.clock.Advance(time.Second)
	}
	r.ID = e.name("req")
	d := reserve(t, e.s, r)
	if d.Allowed || d.Refused != 0 || d.TooLarge {
		t.Fatalf("request past the limit: %+v", d)
	}
	if d.RetryAfter <= 0 || d.RetryAfter > 61*time.Second {
		t.Fatalf("RetryAfter %v not in (0, 61s]", d.RetryAfter)
	}
	if d.Windows[0].Remaining != 10 || d.Windows[1].Remaining != 2 {
		t.Fatalf("refusal changed the windows: %+v", d.Windows)
	}
	big := reserve(t, e.s, &Reservation{ID: e.name("big"), Windows: []Window{tokens}, Input: 101})
	if big.Allowed || !big.TooLarge || big.RetryAfter != 0 || big.Refused != 0 {
		t.Fatalf("request larger than the limit: %+v", big)
	}
	fit := reserve(t, e.s, &Reservation{ID: e.name("fit"), Windows: []Window{tokens, reqs}, Input: 10})
	if !fit.Allowed || fit.Windows[0].Remaining != 0 {
		t.Fatalf("request filling the window exactly: %+v", fit)
	}
}

func testRefusalChargesNothing(t *testing.T, e *env) {
	c := e.name("bob")
	own := tokensWindow("rl:{c:"+c+"}:minute", 100, time.Minute)
	// A window shared by every consumer lives under another tag, so in a
	// cluster it is charged by another script, often on another node.
	shared := tokensWindow("rl:{g:"+c+"}:minute", 40, time.Minute)
	bal := &Balance{Key: "quota:{c:" + c + "}:none", Allotment: 1000}
	r := &Reservation{ID: e.name("r"), Windows: []Window{own, shared}, Balance: bal, Input: 30}
	if d := reserve(t, e.s, r); !d.Allowed {
		t.Fatalf("first request refused: %+v", d)
	}
	r.ID = e.name("r")
	d := reserve(t, e.s, r)
	if d.Allowed || d.Refused != 1 {
		t.Fatalf("second request: %+v, want refused by window 1", d)
	}
	if got := remaining(t, e.s, own); got != 70 {
		t.Fatalf("own window remaining %d after a refusal by the shared one, want 70", got)
	}
	if got, err := e.s.GetBalance(ctxT(t), bal); err != nil || got != 970 {
		t.Fatalf("balance %d, %v after a refusal; want 970", got, err)
	}
	// A refusing balance gives back what the windows took.
	if err := e.s.SetBalance(ctxT(t), bal, 0); err != nil {
		t.Fatalf("SetBalance: %v", err)
	}
	r.ID, r.Input = e.name("r"), 5
	d = reserve(t, e.s, r)
	if d.Allowed || d.Refused != -1 || d.RetryAfter != 0 {
		t.Fatalf("request on an empty balance: %+v", d)
	}
	if got := remaining(t, e.s, own); got != 70 {
		t.Fatalf("own window remaining %d after a balance refusal, want 70", got)
	}
	if got := remaining(t, e.s, shared); got != 10 {
		t.Fatalf("shared window remaining %d after a balance refusal, want 10", got)
	}
}

func testSlidingBoundary(t *testing.T, e *env) {
	w := tokensWindow("rl:{c:"+e.name("carol")+"}:minute", 100, time.Minute)
	e.clock.Advance(59*time.Second + 900*time.Millisecond)
	if d := reserve(t, e.s, &Reservation{ID: e.name("r"), Windows: []Window{w}, Input: 100}); !d.Allowed {
		t.Fatalf("first burst refused: %+v", d)
	}
	// A fixed window would start afresh here and let another 100 through
	// within 100 ms.
	e.clock.Advance(100 * time.Millisecond)
	d := reserve(t, e.s, &Reservation{ID: e.name("r"), Windows: []Window{w}, Input: 1})
	if d.Allowed {
		t.Fatalf("admitted across the minute edge: %+v", d)
	}
	// The burst sits in the bucket [59 s, 60 s), which leaves the window
	// at 120 s.
	if d.RetryAfter != 60*time.Second {
		t.Fatalf("RetryAfter %v, want 60s", d.RetryAfter)
	}
	e.clock.Advance(d.RetryAfter - time.Microsecond)
	if d := reserve(t, e.s, &Reservation{ID: e.name("r"), Windows: []Window{w}, Input: 1}); d.Allowed {
		t.Fatalf("admitted 1µs before RetryAfter: %+v", d)
	}
	e.clock.Advance(time.Microsecond)
	if d := reserve(t, e.s, &Reservation{ID: e.name("r"), Windows: []Window{w}, Input: 100}); !d.Allowed || d.Windows[0].Remaining != 0 {
		t.Fatalf("refused at RetryAfter: %+v", d)
	}
}

// testSlidingInvariants admits random requests at random times and checks
// that no interval of a window's size ever holds more than its limit, and
// that every refusal was needed (give or take the one bucket counted whole).
func testSlidingInvariants(t *testing.T, e *env) {
	for _, tc := range []struct {
		size    time.Duration
		maxGap  time.Duration
		limit   int64
		maxSize int64
	}{
		{time.Second, 150 * time.Millisecond, 50, 12},
		{time.Minute, 9 * time.Second, 200, 40},
	} {
		t.Run(tc.size.String(), func(t *testing.T) {
			w := tokensWindow("rl:{c:"+e.name("dan")+"}:"+tc.size.String(), tc.limit, tc.size)
			_, width := bucketing(tc.size)
			rng := rand.New(rand.NewSource(int64(tc.size)))
			type event struct {
				at     time.Time
				amount int64
			}
			var admitted []event
			refusals := 0
			for range 600 {
				e.clock.Advance(time.Duration(rng.Int63n(int64(tc.maxGap))))
				amt := 1 + rng.Int63n(tc.maxSize)
				now := e.clock.Now()
				d := reserve(t, e.s, &Reservation{ID: e.name("r"), Windows: []Window{w}, Input: amt})
				if d.Allowed {
					admitted = append(admitted, event{now, amt})
					continue
				}
				refusals++
				// Everything admitted in (now − size − width, now] plus this
				// request must exceed the limit.
				sum := amt
				for _, ev := range admitted {
					if ev.at.After(now.Add(-tc.size - time.Duration(width)*time.Microsecond)) {
						sum += ev.amount
					}
				}
				if sum <= tc.limit {
					t.Fatalf("refused %d at %v with only %d in the last window+bucket (limit %d)", amt, now, sum-amt, tc.limit)
				}
			}
			for i, a := range admitted {
				sum := int64(0)
				for _, b := range admitted[i:] {
					if b.at.Sub(a.at) <= tc.size {
						sum += b.amount
					}
				}
				if sum > tc.limit {
					t.Fatalf("%d admitted in [%v, %v + %v], limit %d", sum, a.at, a.at, tc.size, tc.limit)
				}
			}
			if refusals == 0 || len(admitted) < 100 {
				t.Fatalf("load did not exercise the window: %d admitted, %d refused", len(admitted), refusals)
			}
		})
	}
}
