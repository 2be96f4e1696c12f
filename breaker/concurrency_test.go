package breaker

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every outcome and every fast failure is counted once whatever the
// interleaving: health's figures equal the callers' own tallies.
func TestConcurrentAllowDoneCountsEveryOutcome(t *testing.T) {
	s, _ := testSet(t, nil) // the clock stands still: one window
	const workers, calls = 8, 2000
	var done, rejected, cancelled atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for range calls {
				p, v := s.Allow("p")
				if !v.Allowed() {
					rejected.Add(1)
					continue
				}
				switch n := r.IntN(10); {
				case n == 0:
					p.Cancel()
					cancelled.Add(1)
				case n < 4:
					p.Done(500, time.Second, false)
					done.Add(1)
				default:
					p.Done(200, time.Second, false)
					done.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			_ = s.Health()
			_ = s.State("p")
			for range s.States() {
			}
		}
	})
	wg.Wait()
	h := s.Health()[0]
	if h.Requests != done.Load() || h.Rejected != rejected.Load() {
		t.Fatalf("health requests %d rejected %d, callers ended %d and were refused %d (cancelled %d)",
			h.Requests, h.Rejected, done.Load(), rejected.Load(), cancelled.Load())
	}
	if h.StatusClasses.S2xx+h.StatusClasses.S5xx != h.Requests {
		t.Fatalf("classes %+v do not add up to %d", h.StatusClasses, h.Requests)
	}
}

// However calls interleave with the breaker's changes, no more than
// half_open_probes probes of one half-open period are out at once.
func TestConcurrentProbesNeverExceedTheLimit(t *testing.T) {
	const probes = 3
	s, clk := testSet(t, func(c *Config) {
		c.HalfOpenProbes = probes
		c.MinRequests = 5
		c.CoolDown = Duration(50 * time.Millisecond)
		c.MaxCoolDown = Duration(200 * time.Millisecond)
	})
	var mu sync.Mutex
	out := map[uint64]int{} // probes out per half-open period (generation)
	var violations, sawProbe, ops atomic.Int64
	// The clock runs through 800ms, several cool-downs, while the
	// workers call as fast as they can.
	var workers sync.WaitGroup
	for w := range 8 {
		workers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				// Two milliseconds pass every ten calls.
				n := ops.Add(1)
				if n > 4000 {
					return
				}
				if n%10 == 0 {
					clk.Advance(2 * time.Millisecond)
				}
				p, v := s.Allow("p")
				if !v.Allowed() {
					continue
				}
				gen := p.gen
				if p.Probe() {
					sawProbe.Add(1)
					mu.Lock()
					out[gen]++
					if out[gen] > probes {
						violations.Add(1)
					}
					mu.Unlock()
					runtime.Gosched() // the probe is out while others call
					// Untallied before it ends: a cancelled probe's place
					// may be taken at once.
					mu.Lock()
					out[gen]--
					mu.Unlock()
				}
				status := 200
				if r.IntN(2) == 0 {
					status = 503
				}
				if r.IntN(8) == 0 {
					p.Cancel()
				} else {
					p.Done(status, time.Millisecond, false)
				}
			}
		})
	}
	workers.Wait()
	if violations.Load() > 0 {
		t.Fatalf("%d times more than %d probes were out in one half-open period", violations.Load(), probes)
	}
	if sawProbe.Load() == 0 {
		t.Fatal("the breaker never went half-open: the test exercised nothing")
	}
}

// When a cool-down ends under a burst, exactly half_open_probes calls of
// the burst go through.
func TestBurstAtHalfOpenLetsExactlyTheProbesThrough(t *testing.T) {
	for _, probes := range []int{1, 3} {
		s, clk := testSet(t, func(c *Config) { c.HalfOpenProbes = probes })
		trip(t, s, "p", 20)
		clk.Advance(30 * time.Second)
		var passed, refused atomic.Int64
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				<-start
				if _, v := s.Allow("p"); v.Decision == Probe {
					passed.Add(1)
				} else if v.Decision == Reject {
					refused.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if passed.Load() != int64(probes) || refused.Load() != 64-int64(probes) {
			t.Fatalf("half_open_probes %d: %d probes passed, %d refused", probes, passed.Load(), refused.Load())
		}
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	s, clk := testSet(t, nil)
	s.Track("openai")
	if n := testing.AllocsPerRun(1000, func() {
		p, _ := s.Allow("openai")
		p.Done(200, 300*time.Millisecond, false)
	}); n != 0 {
		t.Errorf("Allow+Done: %v allocations, want 0", n)
	}
	trip(t, s, "down", 20)
	if n := testing.AllocsPerRun(1000, func() {
		p, _ := s.Allow("down")
		p.Cancel()
	}); n != 0 {
		t.Errorf("Allow refused: %v allocations, want 0", n)
	}
	clk.Advance(30 * time.Second)
	if n := testing.AllocsPerRun(1000, func() {
		p, _ := s.Allow("down")
		p.Cancel()
	}); n != 0 {
		t.Errorf("probe Allow+Cancel: %v allocations, want 0", n)
	}
}
