package breaker

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

const (
	stateBits = 2
	stateMask = 1<<stateBits - 1
)

// circuit is one provider's breaker and recent outcomes.
type circuit struct {
	set  *Set
	name string

	// word is gen<<stateBits | state, written under mu, read without it.
	word atomic.Uint64
	// timed is set while slow_call is on: permits then need their start.
	timed atomic.Bool

	mu        sync.Mutex
	cfg       *settings
	state     State
	gen       uint64        // bumped on every state change
	since     time.Duration // when the state began
	openUntil time.Duration // when an open breaker turns half-open
	coolDown  time.Duration // the last cool-down; 0 after closing
	probes    uint64        // half-open: bit i set while ticket i is out
	probeAt   [MaxHalfOpenProbes]time.Duration
	probeOK   int // half-open: probes that succeeded
	win       window
}

func (c *circuit) notify(from, to State) {
	if from != to && c.set.o.OnChange != nil {
		c.set.o.OnChange(c.name, from, to)
	}
}

func (c *circuit) setState(st State, now time.Duration) {
	c.state, c.since = st, now
	c.gen++
	c.word.Store(c.gen<<stateBits | uint64(st))
}

func (c *circuit) open(now time.Duration) {
	if c.coolDown == 0 {
		c.coolDown = c.cfg.coolDown
	} else {
		c.coolDown = min(2*c.coolDown, c.cfg.maxCoolDown)
	}
	c.openUntil = now + c.coolDown
	c.setState(Open, now)
}

func (c *circuit) close(now time.Duration) {
	c.coolDown = 0
	c.win.forget()
	c.setState(Closed, now)
}

// effective is the state at now, counting an ended cool-down as
// half-open.
func (c *circuit) effective(now time.Duration) State {
	if c.state == Open && now >= c.openUntil {
		return HalfOpen
	}
	return c.state
}

// probeDeadline is how long a probe may stay unanswered before it counts
// as failed, so that a lost answer cannot hold the breaker half-open.
func (c *circuit) probeDeadline() time.Duration {
	if c.cfg.slowCall > 0 {
		return c.cfg.slowCall
	}
	return c.cfg.maxCoolDown
}

// allow decides a call when the breaker is not (or no longer) closed.
func (c *circuit) allow(now time.Duration) (Permit, Verdict) {
	if c.state == Open && now >= c.openUntil {
		c.probes, c.probeOK = 0, 0
		c.setState(HalfOpen, c.openUntil)
	}
	switch c.state {
	case Closed:
		return Permit{c: c, gen: c.gen, start: now, timed: true}, Verdict{}
	case HalfOpen:
		for out := c.probes; out != 0; out &= out - 1 {
			t := bits.TrailingZeros64(out)
			if now-c.probeAt[t] > c.probeDeadline() {
				c.open(now)
				return c.reject(now)
			}
		}
		if c.probeOK+bits.OnesCount64(c.probes) < c.cfg.probes {
			t := bits.TrailingZeros64(^c.probes)
			c.probes |= 1 << t
			c.probeAt[t] = now
			return Permit{c: c, gen: c.gen, start: now, timed: true, probe: uint8(t + 1)}, Verdict{Decision: Probe}
		}
	}
	return c.reject(now)
}

func (c *circuit) reject(now time.Duration) (Permit, Verdict) {
	c.win.at(now).rejected++
	retry := min(busyRetry, c.cfg.coolDown)
	if c.state == Open {
		retry = c.openUntil - now
	}
	return Permit{}, Verdict{Decision: Reject, RetryAfter: retry}
}

func (c *circuit) done(p *Permit, now time.Duration, status int, latency time.Duration, err bool) {
	slow := c.cfg.slowCall > 0 && latency > c.cfg.slowCall
	failed := err || slow || status == 0 || status == 429 || status >= 500
	c.record(now, classOf(status), failed, slow, latency)
	c.judge(p, now, failed)
}

func (c *circuit) cancel(p *Permit, now time.Duration) {
	waited := now - p.start
	if p.timed && c.cfg.slowCall > 0 && waited > c.cfg.slowCall {
		c.record(now, classNone, true, true, waited)
		c.judge(p, now, true)
		return
	}
	if bit := p.probeBit(); bit != 0 && c.state == HalfOpen && p.gen == c.gen {
		c.probes &^= bit
	}
}

func (p *Permit) probeBit() uint64 {
	if p.probe == 0 {
		return 0
	}
	return 1 << (p.probe - 1)
}

// record adds an outcome to the health figures.
func (c *circuit) record(now time.Duration, class int, failed, slow bool, latency time.Duration) {
	sl := c.win.at(now)
	sl.classes[class]++
	if failed {
		sl.failed++
	}
	if slow {
		sl.slow++
	}
	sl.hist[binOf(latency.Microseconds())]++
}

// judge moves the breaker on an outcome: a probe's closes or reopens a
// half-open breaker; a call's outcome counts toward opening a closed one.
// Outcomes of calls let through in an earlier state are not judged.
func (c *circuit) judge(p *Permit, now time.Duration, failed bool) {
	if c.cfg.disabled || p.gen != c.gen {
		return
	}
	if bit := p.probeBit(); bit != 0 {
		if c.state != HalfOpen || c.probes&bit == 0 {
			return
		}
		c.probes &^= bit
		if failed {
			c.open(now)
			return
		}
		if c.probeOK++; c.probeOK >= c.cfg.probes {
			c.close(now)
		}
		return
	}
	if c.state != Closed {
		return
	}
	sl := c.win.at(now)
	sl.calls++
	if failed {
		sl.fails++
	}
	calls, fails := c.win.judged(now)
	if calls >= c.cfg.minRequests && float64(fails)/float64(calls) >= c.cfg.errorRate {
		c.open(now)
	}
}

// reconfigure applies new settings, returning the state change it made.
func (c *circuit) reconfigure(s *settings, now time.Duration) (from, to State) {
	from = c.state
	if s.window != c.cfg.window {
		c.win = newWindow(s.window)
	}
	c.cfg = s
	c.timed.Store(s.slowCall > 0)
	if s.disabled && c.state != Closed {
		c.close(now)
	}
	return from, c.state
}
