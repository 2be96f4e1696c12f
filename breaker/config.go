package breaker

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Defaults for the fields a config leaves zero.
const (
	DefaultErrorRate      = 0.5
	DefaultMinRequests    = 20
	DefaultWindow         = 30 * time.Second
	DefaultCoolDown       = 30 * time.Second
	DefaultHalfOpenProbes = 1
	DefaultMaxCoolDown    = 5 * time.Minute

	// MaxHalfOpenProbes bounds half_open_probes: each probe in flight is a
	// bit of a word, so a probe is counted once however its permit is used.
	MaxHalfOpenProbes = 64
	// MinWindow keeps each of the window's buckets at least 100ms wide.
	MinWindow = time.Second
)

// Config is the `breaker:` section of tollgate's configuration: when a
// provider's recent calls fail too often, calls to it fail fast with 503
// and retry-after for a cool-down instead of queueing into it, then a few
// probe calls test whether it recovered. Zero fields take the defaults
// above; Providers overrides any of them for one provider.
type Config struct {
	// Disabled lets every call through; outcomes are still recorded, so
	// provider health is reported either way.
	Disabled bool `yaml:"disabled"`
	// ErrorRate opens the breaker when at least this share of the calls in
	// the window failed: a 5xx or a 429 from the provider, a connection
	// error or timeout, no response, or a slow call. In (0, 1]; default 0.5.
	ErrorRate float64 `yaml:"error_rate"`
	// MinRequests is how many calls the window must hold before the error
	// rate is judged, so that two failures out of three do not open it;
	// default 20.
	MinRequests int `yaml:"min_requests"`
	// Window is how far back outcomes count, in ten buckets (so the
	// calls judged are those of the last 90–100% of Window); default 30s,
	// at least 1s.
	Window Duration `yaml:"window"`
	// SlowCall, when > 0, makes a call that waited longer than this for the
	// response headers count as failed; 0 (default) judges status only.
	SlowCall Duration `yaml:"slow_call"`
	// CoolDown is how long an open breaker fails calls fast before letting
	// probes through; default 30s. Each failed probe doubles it, up to
	// MaxCoolDown; closing resets it.
	CoolDown Duration `yaml:"cool_down"`
	// HalfOpenProbes is how many calls go through at once after a
	// cool-down; all must succeed to close the breaker, one failure opens
	// it again. 1 to 64; default 1.
	HalfOpenProbes int `yaml:"half_open_probes"`
	// MaxCoolDown caps the doubled cool-down; default 5m, at least
	// CoolDown. A probe still unanswered after it (or after SlowCall when
	// set) counts as failed.
	MaxCoolDown Duration `yaml:"max_cool_down"`
	// Providers overrides settings per provider name; fields left out keep
	// the values above.
	Providers map[string]Override `yaml:"providers"`
}

// Override is one provider's settings where they differ from the
// section's. A nil field keeps the section's value; slow_call: 0 turns
// slow-call counting off for this provider.
type Override struct {
	Disabled       *bool     `yaml:"disabled"`
	ErrorRate      *float64  `yaml:"error_rate"`
	MinRequests    *int      `yaml:"min_requests"`
	Window         *Duration `yaml:"window"`
	SlowCall       *Duration `yaml:"slow_call"`
	CoolDown       *Duration `yaml:"cool_down"`
	HalfOpenProbes *int      `yaml:"half_open_probes"`
	MaxCoolDown    *Duration `yaml:"max_cool_down"`
}

// DefaultConfig returns the settings used when the file has no breaker
// section.
func DefaultConfig() Config {
	return Config{
		ErrorRate:      DefaultErrorRate,
		MinRequests:    DefaultMinRequests,
		Window:         Duration(DefaultWindow),
		CoolDown:       Duration(DefaultCoolDown),
		HalfOpenProbes: DefaultHalfOpenProbes,
		MaxCoolDown:    Duration(DefaultMaxCoolDown),
	}
}

// settings is one provider's compiled configuration; immutable.
type settings struct {
	disabled    bool
	errorRate   float64
	minRequests int64
	window      time.Duration
	slowCall    time.Duration
	coolDown    time.Duration
	maxCoolDown time.Duration
	probes      int
}

// base returns c's own settings with defaults for the zero fields.
func (c Config) base() settings {
	s := settings{
		disabled:    c.Disabled,
		errorRate:   c.ErrorRate,
		minRequests: int64(c.MinRequests),
		window:      time.Duration(c.Window),
		slowCall:    time.Duration(c.SlowCall),
		coolDown:    time.Duration(c.CoolDown),
		maxCoolDown: time.Duration(c.MaxCoolDown),
		probes:      c.HalfOpenProbes,
	}
	if s.errorRate == 0 {
		s.errorRate = DefaultErrorRate
	}
	if s.minRequests == 0 {
		s.minRequests = DefaultMinRequests
	}
	if s.window == 0 {
		s.window = DefaultWindow
	}
	if s.coolDown == 0 {
		s.coolDown = DefaultCoolDown
	}
	if s.maxCoolDown == 0 {
		s.maxCoolDown = max(DefaultMaxCoolDown, s.coolDown)
	}
	if s.probes == 0 {
		s.probes = DefaultHalfOpenProbes
	}
	return s
}

// apply returns s with o's fields set over it.
func (o *Override) apply(s settings) settings {
	if o.Disabled != nil {
		s.disabled = *o.Disabled
	}
	if o.ErrorRate != nil {
		s.errorRate = *o.ErrorRate
	}
	if o.MinRequests != nil {
		s.minRequests = int64(*o.MinRequests)
	}
	if o.Window != nil {
		s.window = time.Duration(*o.Window)
	}
	if o.SlowCall != nil {
		s.slowCall = time.Duration(*o.SlowCall)
	}
	if o.CoolDown != nil {
		s.coolDown = time.Duration(*o.CoolDown)
		if o.MaxCoolDown == nil && s.maxCoolDown < s.coolDown {
			s.maxCoolDown = s.coolDown
		}
	}
	if o.HalfOpenProbes != nil {
		s.probes = *o.HalfOpenProbes
	}
	if o.MaxCoolDown != nil {
		s.maxCoolDown = time.Duration(*o.MaxCoolDown)
	}
	return s
}

// check reports s's problems, each naming its field under path.
func (s *settings) check(path string) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	if !(s.errorRate > 0 && s.errorRate <= 1) {
		bad("error_rate", "must be > 0 and <= 1, got %v", s.errorRate)
	}
	if s.minRequests < 1 {
		bad("min_requests", "must be >= 1, got %d", s.minRequests)
	}
	if s.window < MinWindow {
		bad("window", "must be at least %v, got %v", MinWindow, s.window)
	}
	if s.slowCall < 0 {
		bad("slow_call", "must be >= 0, got %v", s.slowCall)
	}
	if s.coolDown <= 0 {
		bad("cool_down", "must be > 0, got %v", s.coolDown)
	}
	if s.probes < 1 || s.probes > MaxHalfOpenProbes {
		bad("half_open_probes", "must be between 1 and %d, got %d", MaxHalfOpenProbes, s.probes)
	}
	if s.maxCoolDown < s.coolDown {
		bad("max_cool_down", "must be >= cool_down (%v), got %v", s.coolDown, s.maxCoolDown)
	}
	return errs
}

// clamp makes s usable whatever it holds, for a config that skipped
// Validate: New never fails and never panics.
func (s settings) clamp() settings {
	if !(s.errorRate > 0 && s.errorRate <= 1) {
		s.errorRate = DefaultErrorRate
	}
	s.minRequests = max(s.minRequests, 1)
	s.window = max(s.window, MinWindow)
	s.slowCall = max(s.slowCall, 0)
	if s.coolDown <= 0 {
		s.coolDown = DefaultCoolDown
	}
	s.maxCoolDown = max(s.maxCoolDown, s.coolDown)
	s.probes = min(max(s.probes, 1), MaxHalfOpenProbes)
	return s
}

// Validate returns every problem of c at once, each naming its field under
// path (e.g. "breaker.providers.openai.error_rate").
func (c *Config) Validate(path string) error {
	base := c.base()
	errs := base.check(path)
	// With a broken base, an override is judged over the defaults, so
	// that each problem is reported once, where it is.
	over := base
	if len(errs) > 0 {
		over = DefaultConfig().base()
	}
	for _, name := range slices.Sorted(maps.Keys(c.Providers)) {
		at := fmt.Sprintf("%s.providers.%s", path, name)
		if name == "" {
			errs = append(errs, fmt.Errorf("%s.providers: a provider name must not be empty", path))
			continue
		}
		o := c.Providers[name]
		s := o.apply(over)
		errs = append(errs, s.check(at)...)
	}
	return errors.Join(errs...)
}

// compiled is a Config ready for the hot path.
type compiled struct {
	base      settings
	providers map[string]*settings
}

func compile(c Config) *compiled {
	base := c.base().clamp()
	out := &compiled{base: base, providers: make(map[string]*settings, len(c.Providers))}
	for name, o := range c.Providers {
		s := o.apply(base).clamp()
		out.providers[name] = &s
	}
	return out
}

func (c *compiled) forProvider(name string) *settings {
	if s, ok := c.providers[name]; ok {
		return s
	}
	return &c.base
}
