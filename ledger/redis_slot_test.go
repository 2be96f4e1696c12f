package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/internal/redistest"
	"github.com/tollgate-ai/tollgate/processor/usage"
)

// TestSlotsTwoReplicas: two stores (two replicas, two connection pools) on
// one Redis share one max_in_flight; when one replica dies holding leases,
// they come back to the other after the lease.
func TestSlotsTwoReplicas(t *testing.T) {
	for _, target := range redisTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			clock := newFakeClock()
			var stores [2]*Redis
			for i := range stores {
				stores[i] = newRedisStore(t, target.client(t))
				stores[i].clock = clock.Now
			}
			const limit, lease = 10, 30 * time.Second
			consumer := uniqueName("pair")
			slot := consumerSlot(consumer, limit, lease)
			type held struct {
				r *Reservation
				d *Decision
			}
			var (
				mu   sync.Mutex
				mine [2][]held
				wg   sync.WaitGroup
			)
			for i, st := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 50 {
						r := &Reservation{ID: uniqueName("r"), Slots: []Slot{slot}}
						d, err := st.Reserve(context.Background(), r)
						if err != nil {
							t.Errorf("Reserve: %v", err)
							return
						}
						if d.Allowed {
							mu.Lock()
							mine[i] = append(mine[i], held{r, d})
							mu.Unlock()
						}
					}
				}()
			}
			wg.Wait()
			a, b := len(mine[0]), len(mine[1])
			if a+b != limit {
				t.Fatalf("two replicas admitted %d + %d = %d requests in flight under a limit of %d", a, b, a+b, limit)
			}
			key := stores[0].key(slot.Key)
			if ttl, err := stores[0].client.PTTL(ctxT(t), key).Result(); err != nil || ttl <= lease || ttl > lease+slotKeyMargin {
				t.Fatalf("slot key ttl %v, %v; want in (%v, %v]", ttl, err, lease, lease+slotKeyMargin)
			}

			// Replica 0 dies with its leases. Replica 1 goes on: its own
			// requests end and new ones start, halfway through the lease.
			clock.Advance(lease / 2)
			for _, h := range mine[1] {
				settleOK(t, stores[1], consumer, h.r, h.d)
			}
			took := 0
			for range limit + 5 {
				d := reserve(t, stores[1], &Reservation{ID: uniqueName("r"), Slots: []Slot{slot}})
				if d.Allowed {
					took++
				}
			}
			if took != limit-a {
				t.Fatalf("the live replica took %d slots beside %d held by the dead one, want %d", took, a, limit-a)
			}
			// The dead replica's leases run out; the live ones, taken later,
			// do not.
			clock.Advance(lease / 2)
			took = 0
			for range limit + 5 {
				d := reserve(t, stores[1], &Reservation{ID: uniqueName("r"), Slots: []Slot{slot}})
				if d.Allowed {
					took++
				}
			}
			if took != a {
				t.Fatalf("%d slots came back after the dead replica's lease, want its %d", took, a)
			}
		})
	}
}

// TestSlotsFailOpen: while Redis is down a fail_open ledger enforces
// max_in_flight per replica in its fallback; renewing a lease held in Redis
// fails without being spooled; a settlement spooled during the outage
// releases its lease in Redis once it is delivered.
func TestSlotsFailOpen(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	clock := newFakeClock()
	l, err := Open(ctxT(t), redisConfig(srv.Addr(), FailOpen, ""), Options{Logger: quiet, Clock: clock.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	consumer := uniqueName("outage")
	slot := consumerSlot(consumer, 3, time.Minute)
	take := func() (*Reservation, *Decision) {
		t.Helper()
		r := &Reservation{ID: uniqueName("r"), Slots: []Slot{slot}}
		d, err := l.Reserve(ctxT(t), r)
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		return r, d
	}
	settled, dSettled := take()
	_, dAbandoned := take()
	if !dSettled.Allowed || !dAbandoned.Allowed || dSettled.Hold.Local {
		t.Fatalf("admissions in Redis: %+v %+v", dSettled, dAbandoned)
	}
	srv.Kill()

	// Each replica enforces the limit alone in its fallback.
	var local []*Reservation
	var localD []*Decision
	for i := range 4 {
		r, d := take()
		if !d.Hold.Local {
			t.Fatalf("admission %d during the outage not local: %+v", i, d)
		}
		if d.Allowed != (i < 3) || (!d.Allowed && d.RefusedSlot != 0) {
			t.Fatalf("local admission %d: %+v, want the first 3 admitted", i, d)
		}
		if d.Allowed {
			local, localD = append(local, r), append(localD, d)
		}
	}
	// Local leases are renewed in the fallback, on its clock.
	clock.Advance(40 * time.Second)
	if err := l.Renew(ctxT(t), local[1], localD[1].Hold); err != nil {
		t.Fatalf("Renew of a local lease: %v", err)
	}
	clock.Advance(30 * time.Second)
	if err := l.Renew(ctxT(t), local[2], localD[2].Hold); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Renew of an expired local lease: %v, want ErrLeaseLost", err)
	}
	if err := l.Renew(ctxT(t), local[1], localD[1].Hold); err != nil {
		t.Fatalf("Renew of a renewed local lease: %v", err)
	}
	if err := l.Renew(ctxT(t), settled, dSettled.Hold); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Renew with Redis down: %v, want ErrUnavailable", err)
	}
	if n := l.SpoolDepth(); n != 0 {
		t.Fatalf("a failed renewal was spooled (%d)", n)
	}
	// local[1] alone holds a lease; settling local[0] (expired) frees
	// nothing more, and two can start.
	settleOK(t, l, consumer, local[0], localD[0])
	for i, want := range []bool{true, true, false} {
		if _, d := take(); d.Allowed != want || !d.Hold.Local {
			t.Fatalf("local admission %d after the leases moved on: %+v, want allowed %v", i, d, want)
		}
	}
	// Redis takes no settlement now (the local one's totals already wait
	// in the spool): this one waits there too.
	before := l.SpoolDepth()
	settleOK(t, l, consumer, settled, dSettled)
	if n := l.SpoolDepth(); n != before+1 {
		t.Fatalf("spool depth %d after settling a Redis lease, want %d", n, before+1)
	}

	srv.Restart()
	waitPing(t, l)
	waitSpoolEmpty(t, l)
	// The abandoned lease survived the restart; the spooled settlement
	// released the other one.
	if got := inFlight(t, l.redis, slot); got != 1 {
		t.Fatalf("%d leases in Redis after the replay, want 1 (the unsettled one)", got)
	}
	if err := l.Renew(ctxT(t), settled, dSettled.Hold); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Renew of a lease settled by the replay: %v, want ErrLeaseLost", err)
	}
	if err := l.Renew(ctxT(t), &Reservation{ID: "x", Slots: []Slot{slot}}, dAbandoned.Hold); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Renew of a lease never taken: %v, want ErrLeaseLost", err)
	}
}

func TestSlotValidation(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	stores := map[string]Store{"memory": NewMemory(MemoryOptions{}), "redis": newRedisStore(t, c)}
	ok := Slot{Key: "inflight:{c:v}", Max: 1, Lease: time.Second}
	tests := []struct {
		name string
		r    Reservation
	}{
		{"no id", Reservation{Slots: []Slot{ok}}},
		{"no key", Reservation{ID: "r", Slots: []Slot{{Max: 1, Lease: time.Second}}}},
		{"negative max", Reservation{ID: "r", Slots: []Slot{{Key: "k", Max: -1, Lease: time.Second}}}},
		{"no lease", Reservation{ID: "r", Slots: []Slot{{Key: "k", Max: 1}}}},
		{"sub-millisecond lease", Reservation{ID: "r", Slots: []Slot{{Key: "k", Max: 1, Lease: time.Microsecond}}}},
	}
	for name, s := range stores {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				if _, err := s.Reserve(ctxT(t), &tc.r); !errors.Is(err, ErrInvalid) {
					t.Errorf("Reserve: %v, want ErrInvalid", err)
				}
				if err := s.Renew(ctxT(t), &tc.r, Hold{At: 1}); !errors.Is(err, ErrInvalid) {
					t.Errorf("Renew: %v, want ErrInvalid", err)
				}
				st := &Settlement{ID: "r", Consumer: "v", Day: "2026-05-01", Reservation: &tc.r, Hold: Hold{At: 1}, Usage: usage.Usage{Input: 1}}
				if err := s.Settle(ctxT(t), st); !errors.Is(err, ErrInvalid) {
					t.Errorf("Settle: %v, want ErrInvalid", err)
				}
			})
		}
	}
}

// TestSlotsSurviveSpoolEncoding: a spooled settlement is read back from the
// spool file with its slots, so its replay still releases the leases.
func TestSlotsSurviveSpoolEncoding(t *testing.T) {
	s := Settlement{ID: "r", Consumer: "c", Day: "2026-05-01", Hold: Hold{At: 7},
		Reservation: &Reservation{ID: "r", Slots: []Slot{{Key: "inflight:{c:c}", Max: 4, Lease: 90 * time.Second, Rule: "max_in_flight"}}}}
	b, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	var back Settlement
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Reservation.Slots, s.Reservation.Slots) {
		t.Fatalf("slots after a spool round trip %+v, want %+v", back.Reservation.Slots, s.Reservation.Slots)
	}
}
