package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/internal/redistest"
	"github.com/tollgate-ai/tollgate/processor/usage"
)

// redisTargets starts a single node and a 3-master cluster and returns a
// client factory for each.
func redisTargets(t *testing.T) []struct {
	name   string
	client func(t *testing.T) redis.UniversalClient
} {
	single := redistest.Start(t)
	cluster := redistest.StartCluster(t, 3)
	return []struct {
		name   string
		client func(t *testing.T) redis.UniversalClient
	}{
		{"redis", func(t *testing.T) redis.UniversalClient {
			c := redis.NewClient(&redis.Options{Addr: single.Addr(), MaxRetries: -1})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}},
		{"cluster", func(t *testing.T) redis.UniversalClient {
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs(), MaxRetries: -1})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}},
	}
}

func newRedisStore(t *testing.T, c redis.UniversalClient) *Redis {
	t.Helper()
	r, err := NewRedis(RedisOptions{Client: c, KeyPrefix: "test:"})
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	if err := r.LoadScripts(ctxT(t)); err != nil {
		t.Fatalf("LoadScripts: %v", err)
	}
	return r
}

func TestRoundTrips(t *testing.T) {
	for _, target := range redisTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			c := target.client(t)
			r := newRedisStore(t, c)
			var n redistest.Counter
			c.AddHook(&n)
			consumer := uniqueName("rt")
			windows := func(count int, tag string, limit int64) []Window {
				var ws []Window
				for i := range count {
					ws = append(ws, tokensWindow(fmt.Sprintf("rl:{%s}:%d", tag, i), limit, time.Duration(i+1)*time.Minute))
				}
				return ws
			}
			bal := &Balance{Key: "quota:{c:" + consumer + "}:none", Allotment: 1 << 40}
			global := otherNodeTag(t, c, r.key(bal.Key))
			own := consumerSlot(consumer, 1<<20, time.Minute)
			shared := Slot{Key: "inflight:{" + global + "}", Max: 1 << 20, Lease: time.Minute, Rule: "global"}
			full := Slot{Key: "inflight:{" + global + "}:full", Max: 0, Lease: time.Minute, Rule: "closed"}
			tests := []struct {
				name                   string
				windows                []Window
				slots                  []Slot
				allowed                bool
				reserve, settle, renew int64
			}{
				{"one window", windows(1, "c:"+consumer, 1<<40), nil, true, 1, 1, 0},
				{"six windows", windows(6, "c:"+consumer, 1<<40), nil, true, 1, 1, 0},
				{"two tag groups", append(windows(3, "c:"+consumer, 1<<40), windows(3, global, 1<<40)...), nil, true, 1, 1, 0},
				// Only a refusal by one group while the other admitted costs
				// the second round trip, to release the admitted one.
				{"two tag groups, one refusing", append(windows(3, "c:"+consumer, 1<<40), windows(1, "g2:"+consumer, 5)...), nil, false, 2, 0, 0},
				{"windows, balance and a slot", windows(3, "c:"+consumer, 1<<40), []Slot{own}, true, 1, 1, 1},
				{"slots in two tag groups", append(windows(3, "c:"+consumer, 1<<40), windows(3, global, 1<<40)...), []Slot{own, shared}, true, 1, 1, 1},
				{"a slot refusing in another tag group", windows(3, "c:"+consumer, 1<<40), []Slot{own, full}, false, 2, 0, 0},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					// Warm the pool so connection handshakes fall outside.
					if err := r.Ping(ctxT(t)); err != nil {
						t.Fatal(err)
					}
					n.Reset()
					res := &Reservation{ID: uniqueName("r"), Windows: tc.windows, Balance: bal, Slots: tc.slots, Input: 10, Output: 10}
					d := reserve(t, r, res)
					if d.Allowed != tc.allowed {
						t.Fatalf("Allowed = %v, want %v", d.Allowed, tc.allowed)
					}
					if got := n.RoundTrips(); got != tc.reserve {
						t.Fatalf("Reserve took %d round trips, want %d", got, tc.reserve)
					}
					if !d.Allowed {
						return
					}
					n.Reset()
					if err := r.Renew(ctxT(t), res, d.Hold); err != nil {
						t.Fatalf("Renew: %v", err)
					}
					if got := n.RoundTrips(); got != tc.renew {
						t.Fatalf("Renew took %d round trips, want %d", got, tc.renew)
					}
					n.Reset()
					settle(t, r, &Settlement{ID: res.ID, Consumer: consumer, Model: "m", Day: "2026-05-01", Reservation: res, Hold: d.Hold, Usage: usage.Usage{Input: 10, Output: 5}})
					if got := n.RoundTrips(); got != tc.settle {
						t.Fatalf("Settle took %d round trips, want %d", got, tc.settle)
					}
				})
			}
		})
	}
}

// otherNodeTag returns a hash tag served by another cluster master than
// key, so that a test spans two nodes; any tag on a single node.
func otherNodeTag(t *testing.T, c redis.UniversalClient, key string) string {
	t.Helper()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return uniqueName("g")
	}
	own, err := cc.MasterForKey(ctxT(t), key)
	if err != nil {
		t.Fatalf("MasterForKey: %v", err)
	}
	for i := range 100 {
		tag := fmt.Sprintf("g:%d", i)
		m, err := cc.MasterForKey(ctxT(t), "{"+tag+"}")
		if err != nil {
			t.Fatalf("MasterForKey: %v", err)
		}
		if m.Options().Addr != own.Options().Addr {
			return tag
		}
	}
	t.Fatalf("no tag found on another master")
	return ""
}

// TestConcurrentReservations runs 200 concurrent requests against a
// 50,000-token minute window (and one shared by every consumer, in another
// hash tag) and a 100,000-unit balance, on real Redis time.
func TestConcurrentReservations(t *testing.T) {
	for _, target := range redisTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			r := newRedisStore(t, target.client(t))
			consumer := uniqueName("burst")
			own := tokensWindow("rl:{c:"+consumer+"}:minute", 50000, time.Minute)
			shared := tokensWindow("rl:{g:"+consumer+"}:minute", 50000, time.Minute)
			bal := &Balance{Key: "quota:{c:" + consumer + "}:none", Allotment: 100000, Weights: Weights{Input: 1, Output: 4}}
			type result struct {
				res    *Reservation
				d      *Decision
				actual usage.Usage
			}
			var (
				mu      sync.Mutex
				results []result
				wg      sync.WaitGroup
			)
			for g := range 200 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewSource(int64(g)))
					for range 3 {
						res := &Reservation{ID: uniqueName("r"), Windows: []Window{own, shared}, Balance: bal,
							Input: 100 + rng.Int63n(400), Output: 100 + rng.Int63n(400)}
						d, err := r.Reserve(context.Background(), res)
						if err != nil {
							t.Errorf("Reserve: %v", err)
							return
						}
						if !d.Allowed {
							continue
						}
						// Completions stop anywhere up to max tokens.
						actual := usage.Usage{Input: res.Input, Output: rng.Int63n(res.Output + 1)}
						mu.Lock()
						results = append(results, result{res, d, actual})
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			var reservedTokens, partialExcess int64
			for _, x := range results {
				reservedTokens += x.res.Input + x.res.Output
				full, _ := balanceCosts(x.res)
				if x.d.Hold.Balance < full {
					partialExcess += max(0, bal.Weights.Cost(x.actual)-x.d.Hold.Balance)
				}
			}
			if reservedTokens > 50000 {
				t.Fatalf("admitted %d tokens into a 50000-token window", reservedTokens)
			}
			if len(results) == 0 || len(results) == 600 {
				t.Fatalf("%d of 600 requests admitted: the limits did not bind", len(results))
			}
			var wg2 sync.WaitGroup
			var actualTokens, actualCost int64
			for _, x := range results {
				actualTokens += x.actual.Total()
				actualCost += bal.Weights.Cost(x.actual)
				wg2.Add(1)
				go func() {
					defer wg2.Done()
					err := r.Settle(context.Background(), &Settlement{ID: x.res.ID, Consumer: consumer, Model: "m", Day: "2026-05-01", Reservation: x.res, Hold: x.d.Hold, Usage: x.actual})
					if err != nil {
						t.Errorf("Settle: %v", err)
					}
				}()
			}
			wg2.Wait()
			got, err := r.GetBalance(ctxT(t), bal)
			if err != nil {
				t.Fatalf("GetBalance: %v", err)
			}
			if got != 100000-actualCost {
				t.Fatalf("balance %d, want 100000 - %d charged", got, actualCost)
			}
			if actualCost > 100000+partialExcess {
				t.Fatalf("charged %d, more than the balance plus the partial reservations' excess %d", actualCost, partialExcess)
			}
			for _, w := range []Window{own, shared} {
				if rem := remaining(t, r, w); rem != 50000-actualTokens {
					t.Fatalf("window %s remaining %d, want %d", w.Key, rem, 50000-actualTokens)
				}
			}
			t.Logf("%d admitted, %d reserved tokens, %d used, %d charged, partial excess %d",
				len(results), reservedTokens, actualTokens, actualCost, partialExcess)
		})
	}
}

// TestTwoReplicas checks that two stores (two replicas, two connection
// pools) on one Redis enforce one limit together.
func TestTwoReplicas(t *testing.T) {
	s := redistest.Start(t)
	var stores []*Redis
	for range 2 {
		c := redis.NewClient(&redis.Options{Addr: s.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		stores = append(stores, newRedisStore(t, c))
	}
	w := tokensWindow("rl:{c:"+uniqueName("pair")+"}:minute", 100, time.Minute)
	admitted := [2]int{}
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				d, err := st.Reserve(context.Background(), &Reservation{ID: uniqueName("r"), Windows: []Window{w}, Input: 1})
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				if d.Allowed {
					admitted[i]++
				}
			}
		}()
	}
	wg.Wait()
	if total := admitted[0] + admitted[1]; total != 100 {
		t.Fatalf("two replicas admitted %d + %d = %d one-token requests under a limit of 100", admitted[0], admitted[1], total)
	}
}

func TestRedisErrorsAreUnavailable(t *testing.T) {
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	r := newRedisStore(t, c)
	s.Kill()
	bal := &Balance{Key: "quota:{c:x}:none", Allotment: 10}
	res := &Reservation{ID: "r", Windows: []Window{tokensWindow("rl:{c:x}:m", 10, time.Minute)}, Balance: bal, Input: 1}
	checks := map[string]error{}
	_, checks["Reserve"] = r.Reserve(ctxT(t), res)
	checks["Settle"] = r.Settle(ctxT(t), &Settlement{ID: "r", Consumer: "x", Day: "2026-05-01", Reservation: res})
	_, checks["GetBalance"] = r.GetBalance(ctxT(t), bal)
	_, checks["AddBalance"] = r.AddBalance(ctxT(t), bal, 1)
	_, checks["Totals"] = r.Totals(ctxT(t), TotalsQuery{Consumer: "x", From: "2026-05-01", To: "2026-05-01"})
	checks["Ping"] = r.Ping(ctxT(t))
	for op, err := range checks {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", op, err)
		}
	}
}
