package ledger

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

func consumerSlot(consumer string, max int64, lease time.Duration) Slot {
	return Slot{Key: "inflight:" + ConsumerTag(consumer), Max: max, Lease: lease, Rule: "max_in_flight"}
}

// inFlight reads the live leases of s with an admission that cannot take
// one (Max 0), so reading changes nothing.
func inFlight(t *testing.T, s Store, slot Slot) int64 {
	t.Helper()
	slot.Max = 0
	d := reserve(t, s, &Reservation{ID: uniqueName("probe"), Slots: []Slot{slot}})
	if d.Allowed || d.RefusedSlot != 0 || len(d.Slots) != 1 {
		t.Fatalf("probe of %s: %+v", slot.Key, d)
	}
	return d.Slots[0].InFlight
}

func settleOK(t *testing.T, s Store, consumer string, r *Reservation, d *Decision) {
	t.Helper()
	settle(t, s, &Settlement{ID: r.ID, Consumer: consumer, Model: "m", Day: "2026-05-01", Reservation: r, Hold: d.Hold,
		Usage: usage.Usage{Input: r.Input, Output: r.Output}})
}

func testSlotMaxInFlight(t *testing.T, e *env) {
	c := e.name("mia")
	slot := consumerSlot(c, 3, time.Minute)
	var held []*Reservation
	var holds []*Decision
	for i := range 3 {
		r := &Reservation{ID: e.name("r"), Slots: []Slot{slot}}
		d := reserve(t, e.s, r)
		if !d.Allowed || d.Refused != -1 || d.RefusedSlot != -1 || len(d.Slots) != 1 {
			t.Fatalf("request %d under the limit: %+v", i, d)
		}
		if d.Slots[0] != (SlotState{Max: 3, InFlight: int64(i + 1)}) {
			t.Fatalf("request %d: slot state %+v, want %d in flight of 3", i, d.Slots[0], i+1)
		}
		held, holds = append(held, r), append(holds, d)
	}
	d := reserve(t, e.s, &Reservation{ID: e.name("r"), Slots: []Slot{slot}})
	if d.Allowed || d.RefusedSlot != 0 || d.Refused != -1 || d.RetryAfter != 0 || d.TooLarge {
		t.Fatalf("fourth request in flight: %+v, want refused by slot 0", d)
	}
	if d.Slots[0].InFlight != 3 {
		t.Fatalf("refusal reports %d in flight, want 3", d.Slots[0].InFlight)
	}
	settleOK(t, e.s, c, held[0], holds[0])
	if got := inFlight(t, e.s, slot); got != 2 {
		t.Fatalf("%d in flight after a settlement, want 2", got)
	}
	r := &Reservation{ID: e.name("r"), Slots: []Slot{slot}}
	if d := reserve(t, e.s, r); !d.Allowed || d.Slots[0].InFlight != 3 {
		t.Fatalf("request after a settlement freed a slot: %+v", d)
	}
	// Settling the same id again (a retry, a spool replay) frees nothing.
	settleOK(t, e.s, c, held[0], holds[0])
	if got := inFlight(t, e.s, slot); got != 3 {
		t.Fatalf("%d in flight after settling an id twice, want 3", got)
	}
	if d := reserve(t, e.s, &Reservation{ID: e.name("r"), Slots: []Slot{slot}}); d.Allowed {
		t.Fatalf("admitted a fourth request after a double settlement: %+v", d)
	}
}

// testSlotRefusalChargesNothing: a refusal by a slot takes nothing from the
// windows, the balance or the other slots, in the consumer's hash tag group
// and in another one; a refusal by a window or the balance takes no lease.
func testSlotRefusalChargesNothing(t *testing.T, e *env) {
	c := e.name("ned")
	own := tokensWindow("rl:{c:"+c+"}:minute", 1000, time.Minute)
	shared := tokensWindow("rl:{g:"+c+"}:minute", 1000, time.Minute)
	bal := &Balance{Key: "quota:{c:" + c + "}:none", Allotment: 1000}
	mine := consumerSlot(c, 5, time.Minute)
	global := Slot{Key: "inflight:{g:" + c + "}", Max: 1, Lease: time.Minute, Rule: "global"}
	first := &Reservation{ID: e.name("r"), Slots: []Slot{global}}
	if d := reserve(t, e.s, first); !d.Allowed {
		t.Fatalf("first request: %+v", d)
	}
	r := &Reservation{ID: e.name("r"), Windows: []Window{own, shared}, Balance: bal, Slots: []Slot{mine, global}, Input: 100}
	d := reserve(t, e.s, r)
	if d.Allowed || d.RefusedSlot != 1 || d.Refused != -1 || d.RetryAfter != 0 {
		t.Fatalf("request over the global slot: %+v, want refused by slot 1", d)
	}
	check := func(when string, wantOwn, wantShared, wantBalance, wantMine int64) {
		t.Helper()
		if got := remaining(t, e.s, own); got != wantOwn {
			t.Errorf("%s: own window remaining %d, want %d", when, got, wantOwn)
		}
		if got := remaining(t, e.s, shared); got != wantShared {
			t.Errorf("%s: shared window remaining %d, want %d", when, got, wantShared)
		}
		if got, err := e.s.GetBalance(ctxT(t), bal); err != nil || got != wantBalance {
			t.Errorf("%s: balance %d, %v; want %d", when, got, err, wantBalance)
		}
		if got := inFlight(t, e.s, mine); got != wantMine {
			t.Errorf("%s: %d in flight on the consumer's slot, want %d", when, got, wantMine)
		}
		if got := inFlight(t, e.s, global); got != 1 {
			t.Errorf("%s: %d in flight on the global slot, want 1", when, got)
		}
	}
	check("after a slot refusal", 1000, 1000, 1000, 0)

	// A window refusal wins over a full slot, and takes no lease on the
	// slots that had room.
	r = &Reservation{ID: e.name("r"), Windows: []Window{own, shared}, Slots: []Slot{mine, global}, Input: 2000}
	d = reserve(t, e.s, r)
	if d.Allowed || !d.TooLarge || d.Refused != 0 || d.RefusedSlot != -1 {
		t.Fatalf("request over a window and the global slot: %+v, want refused by window 0 only", d)
	}
	r.Slots = []Slot{mine}
	d = reserve(t, e.s, r)
	if d.Allowed || d.Refused != 0 || d.RefusedSlot != -1 {
		t.Fatalf("request over a window: %+v", d)
	}
	check("after a window refusal", 1000, 1000, 1000, 0)

	// A refusing balance wins over everything.
	if err := e.s.SetBalance(ctxT(t), bal, 0); err != nil {
		t.Fatalf("SetBalance: %v", err)
	}
	r = &Reservation{ID: e.name("r"), Windows: []Window{own, shared}, Balance: bal, Slots: []Slot{mine, global}, Input: 10}
	d = reserve(t, e.s, r)
	if d.Allowed || d.Refused != -1 || d.RefusedSlot != -1 {
		t.Fatalf("request on an empty balance over the global slot: %+v, want refused by the balance", d)
	}
	check("after a balance refusal", 1000, 1000, 0, 0)

	// Once the global slot is free, the same request goes through and
	// takes a lease on both slots.
	settleOK(t, e.s, c, first, &Decision{Hold: Hold{At: 1}})
	if err := e.s.SetBalance(ctxT(t), bal, 1000); err != nil {
		t.Fatalf("SetBalance: %v", err)
	}
	d = reserve(t, e.s, r)
	if !d.Allowed || d.Refused != -1 || d.RefusedSlot != -1 || d.Slots[0].InFlight != 1 || d.Slots[1].InFlight != 1 {
		t.Fatalf("request with room everywhere: %+v", d)
	}
}

// testSlotLeaseExpiry: a replica that admitted requests and died never
// settles them; their leases stop counting after Lease.
func testSlotLeaseExpiry(t *testing.T, e *env) {
	c := e.name("oz")
	slot := consumerSlot(c, 2, 10*time.Second)
	for range 2 {
		if d := reserve(t, e.s, &Reservation{ID: e.name("dead"), Slots: []Slot{slot}}); !d.Allowed {
			t.Fatalf("request under the limit: %+v", d)
		}
	}
	e.clock.Advance(10*time.Second - time.Microsecond)
	if d := reserve(t, e.s, &Reservation{ID: e.name("r"), Slots: []Slot{slot}}); d.Allowed || d.RefusedSlot != 0 {
		t.Fatalf("admitted 1µs before the dead leases expire: %+v", d)
	}
	e.clock.Advance(time.Microsecond)
	d := reserve(t, e.s, &Reservation{ID: e.name("r"), Slots: []Slot{slot}})
	if !d.Allowed || d.Slots[0].InFlight != 1 {
		t.Fatalf("request once the dead leases expired: %+v, want admitted alone", d)
	}
}

func testSlotRenew(t *testing.T, e *env) {
	c := e.name("pia")
	slot := consumerSlot(c, 1, 10*time.Second)
	a := &Reservation{ID: e.name("long"), Slots: []Slot{slot}}
	da := reserve(t, e.s, a)
	if !da.Allowed {
		t.Fatalf("first request: %+v", da)
	}
	e.clock.Advance(6 * time.Second)
	for range 2 { // renewing twice is harmless
		if err := e.s.Renew(ctxT(t), a, da.Hold); err != nil {
			t.Fatalf("Renew of a live lease: %v", err)
		}
	}
	// Past the original expiry (10 s) the renewed lease still holds.
	e.clock.Advance(6 * time.Second)
	b := &Reservation{ID: e.name("r"), Slots: []Slot{slot}}
	if d := reserve(t, e.s, b); d.Allowed || d.RefusedSlot != 0 {
		t.Fatalf("admitted past a renewed lease's first expiry: %+v", d)
	}
	// Not renewed again, it ends 10 s after the renewal.
	e.clock.Advance(4 * time.Second)
	db := reserve(t, e.s, b)
	if !db.Allowed {
		t.Fatalf("refused after the renewed lease expired: %+v", db)
	}
	// A lost lease is reported and not taken again: the slot is b's now.
	if err := e.s.Renew(ctxT(t), a, da.Hold); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Renew of an expired lease: %v, want ErrLeaseLost", err)
	}
	if got := inFlight(t, e.s, slot); got != 1 {
		t.Fatalf("%d in flight after renewing a lost lease, want 1 (b's)", got)
	}
	settleOK(t, e.s, c, b, db)
	if err := e.s.Renew(ctxT(t), b, db.Hold); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Renew after Settle: %v, want ErrLeaseLost", err)
	}
	if got := inFlight(t, e.s, slot); got != 0 {
		t.Fatalf("%d in flight after renewing a settled lease, want 0", got)
	}
	// A refused admission or one without slots has nothing to renew.
	refused := &Reservation{ID: e.name("r"), Slots: []Slot{{Key: slot.Key, Max: 0, Lease: slot.Lease}}}
	if d := reserve(t, e.s, refused); d.Allowed {
		t.Fatalf("admitted by a slot of max 0: %+v", d)
	} else if err := e.s.Renew(ctxT(t), refused, d.Hold); err != nil {
		t.Fatalf("Renew of a refused admission: %v", err)
	}
	if err := e.s.Renew(ctxT(t), &Reservation{ID: e.name("r")}, Hold{At: 1}); err != nil {
		t.Fatalf("Renew without slots: %v", err)
	}
	if got := inFlight(t, e.s, slot); got != 0 {
		t.Fatalf("%d in flight after renewing nothing, want 0", got)
	}
}

// testSlotRenewPartial renews two slots of which one lease is already lost:
// the other is still renewed.
func testSlotRenewPartial(t *testing.T, e *env) {
	c := e.name("quin")
	short := consumerSlot(c, 1, 10*time.Second)
	long := Slot{Key: "inflight:{g:" + c + "}", Max: 1, Lease: 30 * time.Second, Rule: "global"}
	r := &Reservation{ID: e.name("r"), Slots: []Slot{short, long}}
	d := reserve(t, e.s, r)
	if !d.Allowed {
		t.Fatalf("refused: %+v", d)
	}
	e.clock.Advance(20 * time.Second)
	if err := e.s.Renew(ctxT(t), r, d.Hold); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Renew with one lease expired: %v, want ErrLeaseLost", err)
	}
	e.clock.Advance(25 * time.Second) // 45 s: past the long lease's first expiry
	if got := inFlight(t, e.s, long); got != 1 {
		t.Fatalf("the live lease was not renewed: %d in flight", got)
	}
	if got := inFlight(t, e.s, short); got != 0 {
		t.Fatalf("the lost lease was taken again: %d in flight", got)
	}
}

// testSlotConcurrent runs many concurrent requests through a slot of 5 and
// checks that never more than 5 are between admission and settlement.
func testSlotConcurrent(t *testing.T, e *env) {
	c := e.name("rex")
	const limit = 5
	slot := consumerSlot(c, limit, time.Minute)
	w := tokensWindow("rl:{g:"+c+"}:minute", 1<<40, time.Minute)
	var (
		cur, peak, admitted, refused atomic.Int64
		wg                           sync.WaitGroup
	)
	for g := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			for range 10 {
				r := &Reservation{ID: e.name("r"), Windows: []Window{w}, Slots: []Slot{slot}, Input: 1}
				d, err := e.s.Reserve(context.Background(), r)
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				if !d.Allowed {
					refused.Add(1)
					if d.RefusedSlot != 0 {
						t.Errorf("refused by something else than the slot: %+v", d)
					}
					continue
				}
				admitted.Add(1)
				n := cur.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(time.Duration(rng.Intn(300)) * time.Microsecond)
				cur.Add(-1)
				err = e.s.Settle(context.Background(), &Settlement{ID: r.ID, Consumer: c, Day: "2026-05-01", Reservation: r, Hold: d.Hold, Usage: usage.Usage{Input: 1}})
				if err != nil {
					t.Errorf("Settle: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Fatalf("%d requests in flight at once under a limit of %d", p, limit)
	}
	if refused.Load() == 0 || admitted.Load() <= limit {
		t.Fatalf("%d admitted, %d refused: the limit did not bind", admitted.Load(), refused.Load())
	}
	if got := inFlight(t, e.s, slot); got != 0 {
		t.Fatalf("%d leases left after every request settled", got)
	}
	if got := remaining(t, e.s, w); got != 1<<40-admitted.Load() {
		t.Fatalf("window remaining %d, want %d: a slot refusal charged the window", got, 1<<40-admitted.Load())
	}
	t.Logf("%d admitted, %d refused, peak %d in flight", admitted.Load(), refused.Load(), peak.Load())
}
