// Package breaker keeps tollgate from queueing calls into a provider that
// is failing: per provider, it watches the outcomes of recent calls (status,
// time to response headers) and, when too many failed, opens a circuit
// breaker so that calls fail fast with 503 and retry-after for a cool-down;
// then a few probe calls test the provider, and their success closes the
// breaker again. It also keeps each provider's recent health — status
// classes, error rate, latency percentiles — for the admin API.
//
// State is per replica and in memory: each replica judges the calls it
// sees. The hot path (Allow, Done) does not allocate.
package breaker

import (
	"iter"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// State is a provider's breaker state.
type State uint8

// States.
const (
	// Closed lets calls through and judges their outcomes.
	Closed State = iota
	// Open fails calls fast until the cool-down ends.
	Open
	// HalfOpen lets a few probe calls through; the others fail fast.
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	default:
		return "unknown"
	}
}

// MarshalText writes the state as its name, for JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Decision is what Allow decided about one call.
type Decision uint8

// Decisions.
const (
	// Pass: the breaker is closed (or disabled); the call goes on.
	Pass Decision = iota
	// Probe: the breaker is half-open and this call tests the provider.
	Probe
	// Reject: the breaker is open; answer 503 with Verdict.RetryAfter.
	Reject
)

// Verdict is Allow's answer.
type Verdict struct {
	// Decision says whether the call goes on, and whether as a probe.
	Decision Decision
	// RetryAfter, for Reject, is how long until the breaker lets a probe
	// through (for an open breaker: the rest of its cool-down, never more);
	// while the probes of a half-open breaker are out, one second.
	RetryAfter time.Duration
}

// Allowed reports whether the call goes on.
func (v Verdict) Allowed() bool { return v.Decision != Reject }

// busyRetry is the retry-after for a call refused because a half-open
// breaker's probes are out: their answer is usually seconds away.
const busyRetry = time.Second

// DefaultMaxProviders bounds the providers a Set tracks.
const DefaultMaxProviders = 1024

// Options configure a Set.
type Options struct {
	// Clock returns the current time; default time.Now. Intervals are
	// taken from its monotonic reading when it has one.
	Clock func() time.Time
	// OnChange, when set, is called after a provider's breaker changed
	// state (outside any lock), e.g. to log it.
	OnChange func(provider string, from, to State)
	// MaxProviders bounds how many provider names are tracked; calls for
	// names beyond it pass untracked. Default DefaultMaxProviders.
	MaxProviders int
}

// Set holds the breakers of every provider. It is safe for concurrent
// use; a nil *Set lets every call through.
type Set struct {
	o    Options
	base time.Time // the zero of every internal time

	cfg      atomic.Pointer[compiled]
	circuits atomic.Pointer[map[string]*circuit] // copied on write
	mu       sync.Mutex                          // serializes writers of circuits
}

// New returns a Set judging calls by cfg, which should have passed
// Validate (values out of range are replaced by defaults).
func New(cfg Config, o Options) *Set {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.MaxProviders <= 0 {
		o.MaxProviders = DefaultMaxProviders
	}
	s := &Set{o: o, base: o.Clock()}
	s.cfg.Store(compile(cfg))
	m := map[string]*circuit{}
	s.circuits.Store(&m)
	return s
}

// now is the time since the Set was made.
func (s *Set) now() time.Duration { return s.o.Clock().Sub(s.base) }

// Reconfigure swaps in new settings, keeping every provider's state. A
// provider whose window length changed starts a fresh window; one whose
// breaker is now disabled is closed.
func (s *Set) Reconfigure(cfg Config) {
	cc := compile(cfg)
	s.cfg.Store(cc)
	s.mu.Lock()
	type change struct {
		c        *circuit
		from, to State
	}
	var changes []change
	for name, c := range *s.circuits.Load() {
		c.mu.Lock()
		from, to := c.reconfigure(cc.forProvider(name), s.now())
		c.mu.Unlock()
		changes = append(changes, change{c, from, to})
	}
	s.mu.Unlock()
	for _, ch := range changes {
		ch.c.notify(ch.from, ch.to)
	}
}

// Track makes the Set report these providers' health before their first
// call.
func (s *Set) Track(names ...string) {
	for _, n := range names {
		s.circuit(n)
	}
}

// lookup returns the provider's circuit, or nil if it has none yet.
func (s *Set) lookup(name string) *circuit {
	return (*s.circuits.Load())[name]
}

// circuit returns the provider's circuit, making it on first use; nil when
// MaxProviders are tracked already.
func (s *Set) circuit(name string) *circuit {
	if c := s.lookup(name); c != nil {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.circuits.Load()
	if c := old[name]; c != nil {
		return c
	}
	if len(old) >= s.o.MaxProviders {
		return nil
	}
	st := s.cfg.Load().forProvider(name)
	c := &circuit{set: s, name: name, cfg: st, since: s.now(), win: newWindow(st.window)}
	c.timed.Store(st.slowCall > 0)
	m := maps.Clone(old)
	m[name] = c
	s.circuits.Store(&m)
	return c
}

// Allow decides whether a call to provider goes on. Every permit of a call
// that went on must end with exactly one Done or Cancel; a Reject's permit
// is empty and needs neither (calling them is harmless).
func (s *Set) Allow(provider string) (Permit, Verdict) {
	if s == nil {
		return Permit{}, Verdict{}
	}
	c := s.circuit(provider)
	if c == nil {
		return Permit{}, Verdict{}
	}
	// A closed breaker is the common case and needs no lock: the word
	// holds the state and its generation, which the permit carries so that
	// an outcome from before a state change is not judged after it. The
	// clock is read only when a cancelled call may count as slow, since
	// reading it costs more than the rest.
	if w := c.word.Load(); State(w&stateMask) == Closed {
		p := Permit{c: c, gen: w >> stateBits}
		if c.timed.Load() {
			p.start, p.timed = s.now(), true
		}
		return p, Verdict{}
	}
	now := s.now()
	c.mu.Lock()
	from := c.state
	p, v := c.allow(now)
	to := c.state
	c.mu.Unlock()
	c.notify(from, to)
	return p, v
}

// State returns provider's state now: an open breaker whose cool-down has
// ended is half-open, since its next call is a probe.
func (s *Set) State(provider string) State {
	if s == nil {
		return Closed
	}
	c := s.lookup(provider)
	if c == nil {
		return Closed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.effective(s.now())
}

// States yields every tracked provider with its State, for a metrics
// gauge.
func (s *Set) States() iter.Seq2[string, State] {
	return func(yield func(string, State) bool) {
		if s == nil {
			return
		}
		now := s.now()
		for name, c := range *s.circuits.Load() {
			c.mu.Lock()
			st := c.effective(now)
			c.mu.Unlock()
			if !yield(name, st) {
				return
			}
		}
	}
}

// Permit is one call's ticket from Allow. Keep it in one place (a field of
// the request's state) and end it there: Done records the outcome, Cancel
// records none; both empty the permit, so a second call does nothing.
type Permit struct {
	c     *circuit
	gen   uint64
	start time.Duration // when Allow let the call through, if timed
	timed bool
	probe uint8 // the probe's ticket + 1; 0 for a call that is no probe
}

// Active reports whether the permit still waits for Done or Cancel.
func (p *Permit) Active() bool { return p.c != nil }

// Probe reports whether the call is a half-open breaker's probe.
func (p *Permit) Probe() bool { return p.probe != 0 }

// Done records the call's outcome: the response status (0 if none came),
// the time it took to the response headers, and err when the call failed
// without a usable response (connection error, reset, timeout). A 5xx, a
// 429, no status, err, or a latency over slow_call is a failure; any other
// status is a success, whatever the client did wrong.
func (p *Permit) Done(status int, latency time.Duration, err bool) {
	c := p.c
	if c == nil {
		return
	}
	p.c = nil
	c.mu.Lock()
	from := c.state
	c.done(p, c.set.now(), status, latency, err)
	to := c.state
	c.mu.Unlock()
	c.notify(from, to)
}

// Cancel ends a call that produced no outcome to judge: refused before it
// was sent, or abandoned by the client before the response headers came.
// It counts as neither success nor failure — except when slow_call is set
// and the call had already waited longer than that, which is a slow call
// whatever happens next. A cancelled probe frees its place for another.
func (p *Permit) Cancel() {
	c := p.c
	if c == nil {
		return
	}
	p.c = nil
	c.mu.Lock()
	from := c.state
	c.cancel(p, c.set.now())
	to := c.state
	c.mu.Unlock()
	c.notify(from, to)
}
