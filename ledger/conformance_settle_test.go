package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

func testSettleCorrects(t *testing.T, e *env) {
	c := e.name("erin")
	w := tokensWindow("rl:{c:"+c+"}:minute", 1000, time.Minute)
	bal := &Balance{Key: "quota:{c:" + c + "}:month", Allotment: 10000, TTL: time.Hour}
	for _, tc := range []struct {
		name          string
		reserveOut    int64
		actualOut     int64
		wantRemaining int64
		wantBalance   int64
	}{
		{"less than reserved", 500, 50, 850, 9850},
		{"more than reserved", 100, 300, 450, 9450},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Reservation{ID: e.name("r"), Windows: []Window{w}, Balance: bal, Input: 100, Output: tc.reserveOut}
			d := reserve(t, e.s, r)
			if !d.Allowed {
				t.Fatalf("refused: %+v", d)
			}
			e.clock.Advance(3 * time.Second)
			settle(t, e.s, &Settlement{ID: r.ID, Consumer: c, Model: "m", Day: "2026-05-01", Reservation: r, Hold: d.Hold,
				Usage: usage.Usage{Input: 100, Output: tc.actualOut}})
			if got := remaining(t, e.s, w); got != tc.wantRemaining {
				t.Fatalf("window remaining %d, want %d", got, tc.wantRemaining)
			}
			if got, err := e.s.GetBalance(ctxT(t), bal); err != nil || got != tc.wantBalance {
				t.Fatalf("balance %d, %v; want %d", got, err, tc.wantBalance)
			}
		})
	}
}

func testLateSettle(t *testing.T, e *env) {
	c := e.name("fay")
	w := tokensWindow("rl:{c:"+c+"}:minute", 1000, time.Minute)
	r1 := &Reservation{ID: e.name("r"), Windows: []Window{w}, Input: 100, Output: 100}
	d1 := reserve(t, e.s, r1)
	r2 := &Reservation{ID: e.name("r"), Windows: []Window{w}, Input: 100, Output: 100}
	d2 := reserve(t, e.s, r2)
	if !d1.Allowed || !d2.Allowed {
		t.Fatalf("refused: %+v %+v", d1, d2)
	}
	// Both reservations have left the window when they settle.
	e.clock.Advance(2 * time.Minute)
	settle(t, e.s, &Settlement{ID: r1.ID, Consumer: c, Day: "2026-05-01", Reservation: r1, Hold: d1.Hold, Usage: usage.Usage{Input: 100, Output: 400}})
	if got := remaining(t, e.s, w); got != 700 {
		t.Fatalf("late excess: remaining %d, want 700 (the excess of 300 counts now)", got)
	}
	settle(t, e.s, &Settlement{ID: r2.ID, Consumer: c, Day: "2026-05-01", Reservation: r2, Hold: d2.Hold, Usage: usage.Usage{Input: 10, Output: 10}})
	if got := remaining(t, e.s, w); got != 700 {
		t.Fatalf("late refund: remaining %d, want 700 (a refund of a bucket that has left changes nothing)", got)
	}
}

func testIdempotentSettle(t *testing.T, e *env) {
	c := e.name("gus")
	w := tokensWindow("rl:{c:"+c+"}:minute", 1000, time.Minute)
	shared := tokensWindow("rl:{g:"+c+"}:minute", 1000, time.Minute)
	bal := &Balance{Key: "quota:{c:" + c + "}:none", Allotment: 500}
	r := &Reservation{ID: e.name("r"), Windows: []Window{w, shared}, Balance: bal, Input: 10, Output: 90}
	d := reserve(t, e.s, r)
	if !d.Allowed {
		t.Fatalf("refused: %+v", d)
	}
	s := &Settlement{ID: r.ID, Consumer: c, Model: "m", Day: "2026-05-01", Reservation: r, Hold: d.Hold, Usage: usage.Usage{Input: 10, Output: 190}}
	for range 3 {
		settle(t, e.s, s)
	}
	noRes := &Settlement{ID: e.name("unreserved"), Consumer: c, Model: "m", Day: "2026-05-01", Usage: usage.Usage{Input: 1, Output: 2}}
	for range 2 {
		settle(t, e.s, noRes)
	}
	if got := remaining(t, e.s, w); got != 800 {
		t.Fatalf("own window remaining %d, want 800", got)
	}
	if got := remaining(t, e.s, shared); got != 800 {
		t.Fatalf("shared window remaining %d, want 800", got)
	}
	if got, _ := e.s.GetBalance(ctxT(t), bal); got != 300 {
		t.Fatalf("balance %d, want 300", got)
	}
	tot, err := e.s.Totals(ctxT(t), TotalsQuery{Consumer: c, From: "2026-05-01", To: "2026-05-01"})
	if err != nil {
		t.Fatalf("Totals: %v", err)
	}
	want := []DayTotals{{Day: "2026-05-01", Model: "m", Requests: 2, Input: 11, Output: 192, Total: 203}}
	if fmt.Sprint(tot) != fmt.Sprint(want) {
		t.Fatalf("totals %+v, want %+v", tot, want)
	}
}

func testPartialBalance(t *testing.T, e *env) {
	c := e.name("hal")
	bal := &Balance{Key: "quota:{c:" + c + "}:month", Allotment: 100, TTL: time.Hour, Weights: Weights{Input: 1, Output: 2}}
	r := &Reservation{ID: e.name("r"), Balance: bal, Input: 40, Output: 50}
	d := reserve(t, e.s, r)
	if !d.Allowed || d.Hold.Balance != 100 || d.Balance != 0 {
		t.Fatalf("partial reservation: %+v, want admitted holding the 100 left", d)
	}
	if d := reserve(t, e.s, &Reservation{ID: e.name("r"), Balance: bal, Input: 1}); d.Allowed || d.Refused != -1 {
		t.Fatalf("request on an exhausted balance: %+v", d)
	}
	settle(t, e.s, &Settlement{ID: r.ID, Consumer: c, Day: "2026-05-01", Reservation: r, Hold: d.Hold, Usage: usage.Usage{Input: 40, Output: 40}})
	// 40 + 2·40 = 120 charged against 100 reserved: the partially reserved
	// request overshoots by its own excess, and only it.
	if got, _ := e.s.GetBalance(ctxT(t), bal); got != -20 {
		t.Fatalf("balance after settling the partial reservation %d, want -20", got)
	}
	if got, err := e.s.AddBalance(ctxT(t), bal, 50); err != nil || got != 30 {
		t.Fatalf("AddBalance = %d, %v; want 30", got, err)
	}
	if d := reserve(t, e.s, &Reservation{ID: e.name("r"), Balance: bal, Input: 31}); d.Allowed {
		t.Fatalf("admitted a prompt costing more than the balance: %+v", d)
	}
	if d := reserve(t, e.s, &Reservation{ID: e.name("r"), Balance: bal, Input: 30, Output: 100}); !d.Allowed || d.Hold.Balance != 30 {
		t.Fatalf("prompt costing exactly the balance: %+v", d)
	}
}

func testBalanceAllotment(t *testing.T, e *env) {
	c := e.name("ida")
	bal := &Balance{Key: "quota:{c:" + c + "}:2026-05", Allotment: 5000, TTL: 40 * 24 * time.Hour}
	if got, err := e.s.GetBalance(ctxT(t), bal); err != nil || got != 5000 {
		t.Fatalf("untouched balance = %d, %v; want the allotment", got, err)
	}
	if ttl := e.ttl(t, bal.Key); ttl != 0 {
		t.Fatalf("reading a balance created it (ttl %v)", ttl)
	}
	d := reserve(t, e.s, &Reservation{ID: e.name("r"), Balance: bal, Input: 100, Output: 100})
	if !d.Allowed || d.Balance != 4800 {
		t.Fatalf("first reservation: %+v", d)
	}
	ttl := e.ttl(t, bal.Key)
	if ttl <= bal.TTL-time.Minute || ttl > bal.TTL {
		t.Fatalf("balance ttl %v, want about %v", ttl, bal.TTL)
	}
	e.clock.Advance(time.Hour)
	reserve(t, e.s, &Reservation{ID: e.name("r"), Balance: bal, Input: 100})
	if err := e.s.SetBalance(ctxT(t), bal, 7000); err != nil {
		t.Fatalf("SetBalance: %v", err)
	}
	if got := e.ttl(t, bal.Key); got > ttl {
		t.Fatalf("ttl grew from %v to %v: the period must not be extended", ttl, got)
	}
	if got, _ := e.s.GetBalance(ctxT(t), bal); got != 7000 {
		t.Fatalf("balance after SetBalance = %d", got)
	}
	fresh := &Balance{Key: "quota:{c:" + c + "}:2026-06", Allotment: 5000, TTL: time.Hour}
	if got, err := e.s.AddBalance(ctxT(t), fresh, 10); err != nil || got != 5010 {
		t.Fatalf("AddBalance on a new period = %d, %v; want allotment + 10", got, err)
	}
	if ttl := e.ttl(t, fresh.Key); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("new period's ttl %v", ttl)
	}
}

func testTotals(t *testing.T, e *env) {
	c, other := e.name("jo"), e.name("kim")
	add := func(consumer, day, model string, u usage.Usage) {
		settle(t, e.s, &Settlement{ID: e.name("s"), Consumer: consumer, Model: model, Day: day, Usage: u})
	}
	add(c, "2026-05-01", "gpt-4o", usage.Usage{Input: 100, Output: 10, CachedInput: 40})
	add(c, "2026-05-01", "gpt-4o", usage.Usage{Input: 50, Output: 20, Reasoning: 5, Estimated: true})
	add(c, "2026-05-01", "claude:sonnet", usage.Usage{Input: 7, Output: 3, CacheCreation: 2})
	add(c, "2026-05-03", "gpt-4o", usage.Usage{Input: 1, Output: 1})
	add(other, "2026-05-01", "gpt-4o", usage.Usage{Input: 999, Output: 999})
	tot, err := e.s.Totals(ctxT(t), TotalsQuery{Consumer: c, From: "2026-04-30", To: "2026-05-03"})
	if err != nil {
		t.Fatalf("Totals: %v", err)
	}
	want := []DayTotals{
		{Day: "2026-05-01", Model: "claude:sonnet", Requests: 1, Input: 7, Output: 3, CacheCreation: 2, Total: 10},
		{Day: "2026-05-01", Model: "gpt-4o", Requests: 2, Input: 150, Output: 30, CachedInput: 40, Reasoning: 5, Total: 180, Estimated: 1},
		{Day: "2026-05-03", Model: "gpt-4o", Requests: 1, Input: 1, Output: 1, Total: 2},
	}
	if fmt.Sprint(tot) != fmt.Sprint(want) {
		t.Fatalf("totals\n%+v\nwant\n%+v", tot, want)
	}
	tot, err = e.s.Totals(ctxT(t), TotalsQuery{Consumer: c, Model: "gpt-4o", From: "2026-05-02", To: "2026-05-03"})
	if err != nil || fmt.Sprint(tot) != fmt.Sprint(want[2:]) {
		t.Fatalf("totals of one model and range = %+v, %v; want %+v", tot, err, want[2:])
	}
	if _, err := e.s.Totals(ctxT(t), TotalsQuery{Consumer: c, From: "2026-05-03", To: "2026-05-01"}); err == nil {
		t.Fatalf("Totals accepted a reversed range")
	}
}

func testSettleRefused(t *testing.T, e *env) {
	c := e.name("lou")
	w := tokensWindow("rl:{c:"+c+"}:minute", 100, time.Minute)
	shared := tokensWindow("rl:{g:"+c+"}:minute", 100, time.Minute)
	bal := &Balance{Key: "quota:{c:" + c + "}:none", Allotment: 1000}
	reserve(t, e.s, &Reservation{ID: e.name("r"), Windows: []Window{w, shared}, Input: 90})
	r := &Reservation{ID: e.name("r"), Windows: []Window{w, shared}, Balance: bal, Input: 20}
	d := reserve(t, e.s, r)
	if d.Allowed {
		t.Fatalf("admitted past the limit: %+v", d)
	}
	settle(t, e.s, &Settlement{ID: r.ID, Consumer: c, Model: "m", Day: "2026-05-01", Reservation: r, Hold: d.Hold, Usage: usage.Usage{Input: 20}})
	if got := remaining(t, e.s, w); got != 10 {
		t.Fatalf("settling a refused request changed the window: remaining %d, want 10", got)
	}
	if got, _ := e.s.GetBalance(ctxT(t), bal); got != 1000 {
		t.Fatalf("settling a refused request changed the balance: %d", got)
	}
	tot, err := e.s.Totals(ctxT(t), TotalsQuery{Consumer: c, From: "2026-05-01", To: "2026-05-01"})
	if err != nil || len(tot) != 1 || tot[0].Requests != 1 || tot[0].Input != 20 {
		t.Fatalf("totals %+v, %v; want the request counted", tot, err)
	}
}
