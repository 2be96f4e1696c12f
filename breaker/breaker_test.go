package breaker

import (
	"testing"
	"time"
)

func TestTripsAtErrorRateOnceMinRequestsReached(t *testing.T) {
	s, clk := testSet(t, nil) // error_rate 0.5, min_requests 20, cool_down 30s
	for i := range 19 {
		status := 200
		if i%2 == 0 {
			status = 500
		}
		call(t, s, "openai", status, 50*time.Millisecond)
	}
	// 10 of 19 failed: over the rate, but too few calls to judge.
	wantState(t, s, "openai", Closed)
	call(t, s, "openai", 200, 50*time.Millisecond) // 10 of 20
	wantState(t, s, "openai", Open)

	// Calls now fail fast, with retry-after the rest of the cool-down.
	wantReject(t, s, "openai", 30*time.Second)
	clk.Advance(12 * time.Second)
	wantReject(t, s, "openai", 18*time.Second)
	// Another provider is not affected.
	call(t, s, "anthropic", 200, time.Second)
}

func TestBelowErrorRateStaysClosed(t *testing.T) {
	s, _ := testSet(t, nil)
	for i := range 200 {
		status := 200
		if i%5 == 0 || i%5 == 1 { // 40% failed
			status = 502
		}
		call(t, s, "openai", status, 50*time.Millisecond)
	}
	wantState(t, s, "openai", Closed)
}

func TestWhatCountsAsFailure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		err     bool
		latency time.Duration
		failed  bool
	}{
		{"200", 200, false, time.Second, false},
		{"201", 201, false, time.Second, false},
		{"400 is the client's fault", 400, false, time.Second, false},
		{"401", 401, false, time.Second, false},
		{"404", 404, false, time.Second, false},
		{"413", 413, false, time.Second, false},
		{"429 from the provider", 429, false, time.Second, true},
		{"500", 500, false, time.Second, true},
		{"502", 502, false, time.Second, true},
		{"503", 503, false, time.Second, true},
		{"504", 504, false, time.Second, true},
		{"529 overloaded", 529, false, time.Second, true},
		{"no response", 0, false, time.Second, true},
		{"connection error", 0, true, time.Millisecond, true},
		{"error after a 200", 200, true, time.Second, true},
		{"slow 200", 200, false, 3 * time.Second, true},
		{"200 exactly at slow_call", 200, false, 2 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := testSet(t, func(c *Config) {
				c.MinRequests = 1
				c.ErrorRate = 1
				c.SlowCall = Duration(2 * time.Second)
			})
			p, _ := s.Allow("p")
			p.Done(tc.status, tc.latency, tc.err)
			if got := s.State("p") == Open; got != tc.failed {
				t.Fatalf("one call (status %d, err %v, %v): opened = %v, want %v", tc.status, tc.err, tc.latency, got, tc.failed)
			}
			h := s.Health()[0]
			if want := map[bool]float64{true: 1, false: 0}[tc.failed]; h.ErrorRate != want {
				t.Fatalf("health error_rate = %v, want %v", h.ErrorRate, want)
			}
		})
	}
}

func TestHalfOpenProbeClosesOnSuccess(t *testing.T) {
	s, clk := testSet(t, nil)
	trip(t, s, "openai", 20)
	clk.Advance(30*time.Second - time.Millisecond)
	wantReject(t, s, "openai", time.Millisecond)
	clk.Advance(time.Millisecond)
	wantState(t, s, "openai", HalfOpen)

	p := probe(t, s, "openai")
	// Exactly one probe is out; the others fail fast meanwhile.
	for range 5 {
		wantReject(t, s, "openai", time.Second)
	}
	p.Done(200, 800*time.Millisecond, false)
	wantState(t, s, "openai", Closed)
	call(t, s, "openai", 200, time.Second)
}

func TestFailedProbeReopensWithDoubledCoolDown(t *testing.T) {
	s, clk := testSet(t, func(c *Config) { c.CoolDown = Duration(30 * time.Second); c.MaxCoolDown = Duration(5 * time.Minute) })
	trip(t, s, "openai", 20)
	cool := 30 * time.Second
	for _, want := range []time.Duration{60, 120, 240, 300, 300} {
		clk.Advance(cool)
		p := probe(t, s, "openai")
		p.Done(503, time.Second, false)
		wantState(t, s, "openai", Open)
		cool = want * time.Second
		wantReject(t, s, "openai", cool)
	}
	// A success closes it, and the next trip starts from cool_down again.
	clk.Advance(cool)
	p := probe(t, s, "openai")
	p.Done(200, time.Second, false)
	wantState(t, s, "openai", Closed)
	trip(t, s, "openai", 20)
	wantReject(t, s, "openai", 30*time.Second)
}

func TestSeveralProbes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outcomes []int
		want     State
	}{
		{"all succeed", []int{200, 200, 200}, Closed},
		{"one fails", []int{200, 500, 200}, Open},
		{"first fails", []int{500}, Open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, clk := testSet(t, func(c *Config) { c.HalfOpenProbes = 3 })
			trip(t, s, "p", 20)
			clk.Advance(30 * time.Second)
			ps := []Permit{probe(t, s, "p"), probe(t, s, "p"), probe(t, s, "p")}
			wantReject(t, s, "p", time.Second)
			for i, status := range tc.outcomes {
				if i < len(tc.outcomes)-1 {
					wantState(t, s, "p", HalfOpen)
				}
				ps[i].Done(status, time.Second, false)
			}
			wantState(t, s, "p", tc.want)
			// Probes answered after the decision are not judged.
			for i := len(tc.outcomes); i < len(ps); i++ {
				ps[i].Done(200, time.Second, false)
			}
			wantState(t, s, "p", tc.want)
		})
	}
}

func TestAPermitCountsOnce(t *testing.T) {
	s, clk := testSet(t, func(c *Config) { c.HalfOpenProbes = 2 })
	trip(t, s, "p", 20)
	clk.Advance(30 * time.Second)
	p := probe(t, s, "p")
	dup := p // a copy must not count as a second probe
	p.Done(200, time.Second, false)
	p.Done(200, time.Second, false)
	dup.Done(200, time.Second, false)
	wantState(t, s, "p", HalfOpen)
	if p.Active() {
		t.Fatal("permit still active after Done")
	}
	probeDone(t, s, "p", 200)
	wantState(t, s, "p", Closed)
}

func TestSlowCalls(t *testing.T) {
	for _, tc := range []struct {
		slowCall time.Duration
		want     State
	}{
		{0, Closed},
		{5 * time.Second, Closed},
		{2 * time.Second, Open},
	} {
		t.Run(tc.slowCall.String(), func(t *testing.T) {
			s, _ := testSet(t, func(c *Config) { c.SlowCall = Duration(tc.slowCall) })
			for range 20 {
				call(t, s, "p", 200, 3*time.Second)
			}
			wantState(t, s, "p", tc.want)
		})
	}
}

func TestCancelRecordsNoOutcome(t *testing.T) {
	s, clk := testSet(t, func(c *Config) { c.MinRequests = 1; c.ErrorRate = 0.5 })
	for range 50 {
		p, _ := s.Allow("p")
		clk.Advance(time.Second)
		p.Cancel()
		p.Done(500, time.Second, false) // after Cancel: ignored
	}
	wantState(t, s, "p", Closed)
	if h := s.Health()[0]; h.Requests != 0 {
		t.Fatalf("cancelled calls counted: %+v", h)
	}
	// One success then one failure: 50%, so cancelled calls were not
	// counted as successes either.
	call(t, s, "p", 200, time.Second)
	wantState(t, s, "p", Closed)
	call(t, s, "p", 500, time.Second)
	wantState(t, s, "p", Open)
}

func TestCancelledProbeFreesItsPlace(t *testing.T) {
	s, clk := testSet(t, nil)
	trip(t, s, "p", 20)
	clk.Advance(30 * time.Second)
	p := probe(t, s, "p")
	wantReject(t, s, "p", time.Second)
	p.Cancel()
	wantState(t, s, "p", HalfOpen)
	probeDone(t, s, "p", 200)
	wantState(t, s, "p", Closed)
}

func TestCancelAfterSlowCallCountsAsSlow(t *testing.T) {
	s, clk := testSet(t, func(c *Config) { c.SlowCall = Duration(10 * time.Second); c.MinRequests = 4 })
	ps := make([]Permit, 4)
	for i := range ps {
		ps[i], _ = s.Allow("p")
	}
	clk.Advance(11 * time.Second) // the clients gave up after 11s
	for i := range ps {
		ps[i].Cancel()
	}
	wantState(t, s, "p", Open)
	h := s.Health()[0]
	if h.StatusClasses.NoResponse != 4 || h.Slow != 4 {
		t.Fatalf("health = %+v, want 4 slow calls without response", h)
	}
	// A slow probe given up on reopens the breaker too.
	clk.Advance(30 * time.Second)
	p := probe(t, s, "p")
	clk.Advance(11 * time.Second)
	p.Cancel()
	wantReject(t, s, "p", 60*time.Second)
}

func TestUnansweredProbeExpires(t *testing.T) {
	s, clk := testSet(t, func(c *Config) { c.MaxCoolDown = Duration(2 * time.Minute) })
	trip(t, s, "p", 20)
	clk.Advance(30 * time.Second)
	lost := probe(t, s, "p") // never ended
	clk.Advance(2 * time.Minute)
	wantReject(t, s, "p", time.Second) // at the deadline: still waiting
	clk.Advance(time.Millisecond)
	wantReject(t, s, "p", 60*time.Second) // past it: a failed probe
	lost.Done(200, 0, false)              // too late to count
	wantState(t, s, "p", Open)
}

func TestRecoveredProviderStaysClosed(t *testing.T) {
	s, clk := testSet(t, nil)
	trip(t, s, "p", 20)
	clk.Advance(30 * time.Second)
	probeDone(t, s, "p", 200)
	// The failures that opened it are still inside the window but must
	// not count again: a few failures after recovery do not reopen it.
	for i := range 19 {
		status := 200
		if i < 9 {
			status = 500
		}
		call(t, s, "p", status, time.Second)
	}
	wantState(t, s, "p", Closed)
	// A window and more of successes, with some failures, keeps it closed.
	for i := range 600 {
		clk.Advance(100 * time.Millisecond)
		status := 200
		if i%4 == 3 {
			status = 503
		}
		call(t, s, "p", status, time.Second)
	}
	wantState(t, s, "p", Closed)
}

func TestOldFailuresLeaveTheWindow(t *testing.T) {
	s, clk := testSet(t, nil)
	for range 15 {
		call(t, s, "p", 500, time.Second)
	}
	clk.Advance(31 * time.Second)
	for range 20 {
		call(t, s, "p", 200, time.Second)
	}
	for range 15 {
		call(t, s, "p", 500, time.Second)
	}
	// 15 of 35 in the window failed; with the first 15 it would be 30 of 50.
	wantState(t, s, "p", Closed)
	call(t, s, "p", 500, time.Second)
	call(t, s, "p", 500, time.Second)
	call(t, s, "p", 500, time.Second)
	call(t, s, "p", 500, time.Second)
	call(t, s, "p", 500, time.Second)
	wantState(t, s, "p", Open) // 20 of 40
}

func TestOutcomesFromAnEarlierStateAreNotJudged(t *testing.T) {
	s, clk := testSet(t, func(c *Config) { c.MinRequests = 2; c.CoolDown = Duration(10 * time.Second) })
	early := make([]Permit, 10)
	for i := range early {
		early[i], _ = s.Allow("p")
	}
	call(t, s, "p", 500, time.Second)
	call(t, s, "p", 500, time.Second)
	wantState(t, s, "p", Open)
	clk.Advance(10 * time.Second)
	pr := probe(t, s, "p")
	// Calls let through before the breaker opened answer now: successes
	// must not close it, failures must not reopen it.
	early[0].Done(200, time.Second, false)
	early[1].Done(500, time.Second, false)
	wantState(t, s, "p", HalfOpen)
	pr.Done(200, time.Second, false)
	wantState(t, s, "p", Closed)
	for _, p := range early[2:] {
		p.Done(500, time.Second, false)
	}
	wantState(t, s, "p", Closed)
	if h := s.Health()[0]; h.Requests != 13 {
		t.Fatalf("health requests = %d, want every outcome (13)", h.Requests)
	}
}

func TestPerProviderOverrides(t *testing.T) {
	s, clk := testSet(t, func(c *Config) {
		rate, off := 0.3, true
		cool := Duration(10 * time.Second)
		c.Providers = map[string]Override{
			"openai": {ErrorRate: &rate, CoolDown: &cool},
			"local":  {Disabled: &off},
		}
	})
	for i := range 20 {
		status := 200
		if i%10 < 3 { // 30%
			status = 500
		}
		call(t, s, "openai", status, time.Second)
		call(t, s, "anthropic", status, time.Second)
		call(t, s, "local", 500, time.Second)
	}
	wantState(t, s, "openai", Open)
	wantState(t, s, "anthropic", Closed)
	wantState(t, s, "local", Closed)
	wantReject(t, s, "openai", 10*time.Second)
	clk.Advance(10 * time.Second)
	probe(t, s, "openai")
	if h := s.Health(); h[1].Name != "local" || h[1].ErrorRate != 1 {
		t.Fatalf("a disabled breaker still reports health: %+v", h[1])
	}
}

func TestOnChange(t *testing.T) {
	type change struct{ from, to State }
	var got []change
	clk := newFakeClock()
	s := New(Config{MinRequests: 2}, Options{Clock: clk.Now, OnChange: func(name string, from, to State) {
		if name != "p" {
			t.Errorf("change for %q", name)
		}
		got = append(got, change{from, to})
	}})
	call(t, s, "p", 500, time.Second)
	call(t, s, "p", 500, time.Second)
	clk.Advance(30 * time.Second)
	probeDone(t, s, "p", 500)
	clk.Advance(60 * time.Second)
	probeDone(t, s, "p", 200)
	want := []change{{Closed, Open}, {Open, HalfOpen}, {HalfOpen, Open}, {Open, HalfOpen}, {HalfOpen, Closed}}
	if len(got) != len(want) {
		t.Fatalf("changes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("changes = %v, want %v", got, want)
		}
	}
}

func TestReconfigure(t *testing.T) {
	s, clk := testSet(t, nil)
	trip(t, s, "p", 20)
	cfg := DefaultConfig()
	cfg.CoolDown = Duration(time.Minute)
	s.Reconfigure(cfg)
	wantState(t, s, "p", Open) // state survives a reload
	clk.Advance(30 * time.Second)
	probeDone(t, s, "p", 500)
	wantReject(t, s, "p", 60*time.Second) // the cool-down it had, doubled

	cfg.Disabled = true
	s.Reconfigure(cfg)
	wantState(t, s, "p", Closed)
	for range 40 {
		call(t, s, "p", 500, time.Second)
	}
	wantState(t, s, "p", Closed)
}

func TestNilSetAndUnknownProviders(t *testing.T) {
	var s *Set
	p, v := s.Allow("x")
	if !v.Allowed() || p.Active() {
		t.Fatalf("nil Set: %+v", v)
	}
	p.Done(500, 0, true)
	p.Cancel()
	if s.State("x") != Closed || len(s.Health()) != 0 {
		t.Fatal("nil Set reports state")
	}

	clk := newFakeClock()
	s = New(DefaultConfig(), Options{Clock: clk.Now, MaxProviders: 2})
	s.Track("a", "b")
	p, v = s.Allow("c") // over MaxProviders: passes untracked
	if v.Decision != Pass || p.Active() {
		t.Fatalf("untracked provider: %+v active=%v", v, p.Active())
	}
	if h := s.Health(); len(h) != 2 || h[0].Name != "a" || h[1].Name != "b" || h[0].State != Closed {
		t.Fatalf("Health = %+v", h)
	}
	n := 0
	for name, st := range s.States() {
		if st != Closed || (name != "a" && name != "b") {
			t.Fatalf("States yielded %s=%v", name, st)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("States yielded %d providers, want 2", n)
	}
}

// A call let through before slow_call was turned on has no start time, so
// its cancellation cannot be judged slow.
func TestSlowCallTurnedOnMidCall(t *testing.T) {
	s, clk := testSet(t, func(c *Config) { c.MinRequests = 1 })
	p, _ := s.Allow("p")
	cfg := DefaultConfig()
	cfg.MinRequests = 1
	cfg.SlowCall = Duration(time.Second)
	s.Reconfigure(cfg)
	clk.Advance(time.Minute)
	p.Cancel()
	wantState(t, s, "p", Closed)
	p, _ = s.Allow("p")
	clk.Advance(time.Minute)
	p.Cancel()
	wantState(t, s, "p", Open)
}
