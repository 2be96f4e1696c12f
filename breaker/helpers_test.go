package breaker

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// testSet returns a Set on a fake clock; mutate adjusts the default
// config.
func testSet(t *testing.T, mutate func(*Config)) (*Set, *fakeClock) {
	t.Helper()
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate("breaker"); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	clk := newFakeClock()
	return New(cfg, Options{Clock: clk.Now}), clk
}

// call makes one call to provider that must be let through (as a plain
// call, not a probe) and ends it with status.
func call(t *testing.T, s *Set, provider string, status int, latency time.Duration) {
	t.Helper()
	p, v := s.Allow(provider)
	if v.Decision != Pass {
		t.Fatalf("Allow(%s) = %+v, want Pass (state %v)", provider, v, s.State(provider))
	}
	p.Done(status, latency, false)
}

// trip makes the provider's breaker open with alternate failures and
// successes, as many as min_requests.
func trip(t *testing.T, s *Set, provider string, minRequests int) {
	t.Helper()
	for i := range minRequests {
		status := 200
		if i%2 == 0 {
			status = 503
		}
		call(t, s, provider, status, 100*time.Millisecond)
	}
	if got := s.State(provider); got != Open {
		t.Fatalf("after %d calls half failed, state = %v, want open", minRequests, got)
	}
}

func wantState(t *testing.T, s *Set, provider string, want State) {
	t.Helper()
	if got := s.State(provider); got != want {
		t.Fatalf("State(%s) = %v, want %v", provider, got, want)
	}
}

func wantReject(t *testing.T, s *Set, provider string, retry time.Duration) {
	t.Helper()
	p, v := s.Allow(provider)
	if v.Decision != Reject || v.Allowed() {
		t.Fatalf("Allow(%s) = %+v, want Reject", provider, v)
	}
	if v.RetryAfter != retry {
		t.Fatalf("RetryAfter = %v, want %v", v.RetryAfter, retry)
	}
	if p.Active() {
		t.Fatal("a rejected call got an active permit")
	}
}

func probe(t *testing.T, s *Set, provider string) Permit {
	t.Helper()
	p, v := s.Allow(provider)
	if v.Decision != Probe || !p.Probe() || !p.Active() {
		t.Fatalf("Allow(%s) = %+v (probe permit %v), want Probe", provider, v, p.Probe())
	}
	return p
}

// probeDone makes one probe call and ends it with status.
func probeDone(t *testing.T, s *Set, provider string, status int) {
	t.Helper()
	p := probe(t, s, provider)
	p.Done(status, time.Second, false)
}
