// Package quota gives consumers token balances: an allotment per period
// (day, week or month in a time zone, or none: a balance topped up by hand,
// as Higress's ai-quota keeps it), priced by configurable token weights.
// Admission reserves from the balance through the ledger, so concurrent
// requests cannot spend past it; operators read, set and top up balances
// through the admin API and through Higress's in-band quota endpoints.
package quota

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/limiter"
)

// Period is how often a balance resets to its allotment.
type Period string

const (
	// None never resets: the balance is set and topped up by an operator.
	None Period = "none"
	// Day resets at midnight in the allotment's time zone.
	Day Period = "day"
	// Week resets on Monday at midnight (ISO weeks).
	Week Period = "week"
	// Month resets on the first day of the month at midnight.
	Month Period = "month"
)

// DefaultKeyPrefix is the key prefix Higress's ai-quota uses.
const DefaultKeyPrefix = "chat_quota:"

// DefaultAdminPath is the suffix of Higress's in-band admin paths.
const DefaultAdminPath = "/quota"

// DefaultRejectedMsg is the message Higress's ai-quota answers when a
// consumer has no quota left.
const DefaultRejectedMsg = "Request denied by ai quota check, No quota left"

// Allotment is one consumer's quota.
type Allotment struct {
	// Tokens is the balance a period starts with (for period none: the
	// balance a consumer starts with before any top-up).
	Tokens int64 `yaml:"tokens"`
	// Period is none, day, week or month; default none.
	Period Period `yaml:"period"`
	// Timezone is an IANA zone name for the period boundaries; default UTC.
	Timezone string `yaml:"timezone"`
	// PerModel keeps a separate balance per model.
	PerModel bool `yaml:"per_model"`
	// Weights, when set, override the quota-wide weights.
	Weights *Weights `yaml:"weights"`
}

// Config is the quota section of tollgate's config.
type Config struct {
	// RedisKeyPrefix prefixes balance keys (Higress ai-quota's name).
	RedisKeyPrefix string `yaml:"redis_key_prefix"`
	// AdminConsumer is the consumer allowed to call the in-band admin paths.
	AdminConsumer string `yaml:"admin_consumer"`
	// AdminPath is the suffix of the in-band admin paths, appended to an
	// API path: <api-path>/quota, /quota/refresh, /quota/delta.
	AdminPath string `yaml:"admin_path"`
	// Default applies to consumers without an entry in Consumers; absent
	// means such consumers have no quota.
	Default *Allotment `yaml:"default"`
	// Consumers maps consumer names to their allotments.
	Consumers map[string]Allotment `yaml:"consumers"`
	// Weights prices tokens in balance units (e.g. output: 4,
	// cached_input: 0.1); absent counts every token as one unit.
	Weights Weights `yaml:"weights"`
	// RejectedMsg is the message of the 403 answered when no quota is left.
	RejectedMsg string `yaml:"rejected_msg"`
	// Routes give requests in a scope (a route, a path prefix, a host, a
	// model) quotas of their own, separate from the unscoped one.
	Routes []RouteConfig `yaml:"routes"`
	// OnExceeded is "reject" (default) or "downgrade": a request that finds
	// its quota spent goes on with Downgrade.Model, charged to that model's
	// limits and balance; refused if those are spent too.
	OnExceeded string             `yaml:"on_exceeded"`
	Downgrade  *limiter.Downgrade `yaml:"downgrade"`
}

// RouteConfig is a quota scope: requests it matches are charged to
// balances of their own. The first scope that matches a request and has
// an allotment for its consumer applies; a request no scope takes is
// charged to the unscoped quota.
type RouteConfig struct {
	// Name keys the scope's balances and selects it in the admin API.
	Name string `yaml:"name"`
	// Match selects the requests (path_prefix, host, route, model).
	Match limiter.Match `yaml:"match"`
	// Default applies to consumers without an entry in Consumers.
	Default *Allotment `yaml:"default"`
	// Consumers maps consumer names to their allotments in this scope.
	Consumers map[string]Allotment `yaml:"consumers"`
	// Downgrade, when set, replaces the quota-wide one in this scope.
	Downgrade *limiter.Downgrade `yaml:"downgrade"`
}

// Validate checks the config, naming the field path of each problem.
func (c *Config) Validate(path string) error {
	var errs []error
	if c.AdminPath != "" && !strings.HasPrefix(c.AdminPath, "/") {
		errs = append(errs, fmt.Errorf("%s.admin_path: must start with /", path))
	}
	if strings.ContainsAny(c.RedisKeyPrefix, "{}") {
		errs = append(errs, fmt.Errorf("%s.redis_key_prefix: must not contain braces (they are Redis hash tags)", path))
	}
	errs = append(errs, validateWeights(path+".weights", c.Weights)...)
	if c.Default != nil {
		errs = append(errs, c.Default.validate(path+".default")...)
	}
	for _, name := range sortedNames(c.Consumers) {
		a := c.Consumers[name]
		errs = append(errs, a.validate(fmt.Sprintf("%s.consumers.%s", path, name))...)
	}
	switch c.OnExceeded {
	case "", "reject":
	case "downgrade":
		if c.Downgrade == nil {
			errs = append(errs, fmt.Errorf("%s.on_exceeded: downgrade needs downgrade: {model: <cheaper model>}", path))
		}
	default:
		errs = append(errs, fmt.Errorf("%s.on_exceeded: %q is not reject or downgrade", path, c.OnExceeded))
	}
	if c.Downgrade != nil && c.Downgrade.Model == "" {
		errs = append(errs, fmt.Errorf("%s.downgrade.model: must name the model to use instead", path))
	}
	names := map[string]bool{}
	for i, r := range c.Routes {
		at := fmt.Sprintf("%s.routes[%d]", path, i)
		switch {
		case r.Name == "" || strings.ContainsAny(r.Name, "{}: \t\r\n"):
			errs = append(errs, fmt.Errorf("%s.name: must be set, without braces, colons or spaces", at))
		case names[r.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", at, r.Name))
		}
		names[r.Name] = true
		if _, err := limiter.CompileMatch(at+".match", r.Match); err != nil {
			errs = append(errs, err)
		}
		if r.Default == nil && len(r.Consumers) == 0 {
			errs = append(errs, fmt.Errorf("%s: set a default or consumers", at))
		}
		if r.Default != nil {
			errs = append(errs, r.Default.validate(at+".default")...)
		}
		for _, name := range sortedNames(r.Consumers) {
			a := r.Consumers[name]
			errs = append(errs, a.validate(fmt.Sprintf("%s.consumers.%s", at, name))...)
		}
	}
	return errors.Join(errs...)
}

func (a *Allotment) validate(path string) []error {
	var errs []error
	if a.Tokens < 0 {
		errs = append(errs, fmt.Errorf("%s.tokens: must be >= 0", path))
	}
	switch a.Period {
	case "", None, Day, Week, Month:
	default:
		errs = append(errs, fmt.Errorf("%s.period: %q is not one of none, day, week, month", path, a.Period))
	}
	if a.Timezone != "" {
		if _, err := time.LoadLocation(a.Timezone); err != nil {
			errs = append(errs, fmt.Errorf("%s.timezone: %w", path, err))
		}
	}
	if a.Weights != nil {
		errs = append(errs, validateWeights(path+".weights", *a.Weights)...)
	}
	return errs
}

// Weights prices each kind of token in balance units. Input and Output
// default to 1; CachedInput, CacheCreation and Reasoning, when absent, are
// priced as the Input or Output tokens they are part of.
type Weights struct {
	Input         *float64 `yaml:"input"`
	Output        *float64 `yaml:"output"`
	CachedInput   *float64 `yaml:"cached_input"`
	CacheCreation *float64 `yaml:"cache_creation"`
	Reasoning     *float64 `yaml:"reasoning"`
}

func (w Weights) ledger() ledger.Weights {
	get := func(p *float64, def float64) float64 {
		if p == nil {
			return def
		}
		return *p
	}
	in, out := get(w.Input, 1), get(w.Output, 1)
	return ledger.Weights{
		Input:         in,
		Output:        out,
		CachedInput:   get(w.CachedInput, in),
		CacheCreation: get(w.CacheCreation, in),
		Reasoning:     get(w.Reasoning, out),
	}
}

func validateWeights(path string, w Weights) []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    *float64
	}{{"input", w.Input}, {"output", w.Output}, {"cached_input", w.CachedInput}, {"cache_creation", w.CacheCreation}, {"reasoning", w.Reasoning}} {
		if f.v != nil && *f.v < 0 {
			errs = append(errs, fmt.Errorf("%s.%s: must be >= 0", path, f.name))
		}
	}
	return errs
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validate checks a, naming the field path of each problem.
func (a *Allotment) Validate(path string) error { return errors.Join(a.validate(path)...) }
