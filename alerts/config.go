package alerts

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Config is the binary's `alerts:` section. The zero Config turns alerts
// off; anything else needs a webhook.
type Config struct {
	// Webhook is where notifications are posted.
	Webhook Webhook `yaml:"webhook"`
	// QuotaThresholds are fractions of a period's allotment (0 < t <= 1);
	// crossing one notifies once per consumer, balance and period.
	QuotaThresholds []float64 `yaml:"quota_thresholds"`
	// Anomaly notifies when a consumer's token rate jumps above a multiple
	// of its own baseline; off unless multiple is set.
	Anomaly Anomaly `yaml:"anomaly"`
	// Consumers and Tiers override the defaults above per consumer name or
	// tier name; a consumer's settings resolve consumer → tier → default,
	// field by field.
	Consumers map[string]Override `yaml:"consumers"`
	Tiers     map[string]Override `yaml:"tiers"`
	// QueueSize bounds the notifications waiting for delivery; when full,
	// new ones are dropped (and counted) rather than slowing a request.
	// Default 1024.
	QueueSize int `yaml:"queue_size"`
	// Workers is how many notifications are delivered at once; default 2.
	Workers int `yaml:"workers"`
	// MaxConsumers caps the consumers whose state is kept; past it the
	// least recently seen of a small sample is evicted. Default 10000.
	MaxConsumers int `yaml:"max_consumers"`
	// IdleAfter evicts the state of consumers not seen for this long;
	// default twice the default anomaly's short + baseline, at least 1h.
	IdleAfter time.Duration `yaml:"idle_after"`
}

// Webhook is the notification endpoint.
type Webhook struct {
	// URL is an http or https URL, or "env:VAR" to read it from the
	// environment (chat webhooks carry their secret in the path).
	URL string `yaml:"url"`
	// Headers are added to every POST; a value "env:VAR" is read from the
	// environment. Values are never logged.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one attempt; default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// Retry tunes the retries of network errors, 5xx and 429 answers.
	Retry Retry `yaml:"retry"`
}

// Retry is the back-off of failed deliveries: attempt n waits a random
// time up to min(MaxBackoff, Backoff × 2^n) — or the webhook's
// Retry-After, if longer, up to MaxBackoff.
type Retry struct {
	// Attempts is the number of tries in all, including the first;
	// default 5, at most 20.
	Attempts int `yaml:"attempts"`
	// Backoff is the first back-off; default 500ms.
	Backoff time.Duration `yaml:"backoff"`
	// MaxBackoff caps a back-off; default 30s.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// Anomaly is the token-rate alert. A consumer's short-window rate is the
// tokens it used in the last Short divided by Short; its baseline is an
// average of its per-bucket rate over Baseline, fed only with time that
// has left the short window, so a spike does not raise its own baseline
// while it is being judged. In an override, zero fields inherit.
type Anomaly struct {
	// Multiple is how many times the baseline the short rate must exceed;
	// must be > 1. Zero turns the alert off (in an override: inherits).
	Multiple float64 `yaml:"multiple"`
	// Short is the window judged; default 5m.
	Short time.Duration `yaml:"short"`
	// Baseline is the span of history the rate is compared with; must be
	// longer than Short; default 1h.
	Baseline time.Duration `yaml:"baseline"`
	// MinTokens ignores consumers that used fewer tokens in the short
	// window, however sharp their jump.
	MinTokens int64 `yaml:"min_tokens"`
	// Cooldown is the least time between two anomaly notifications of one
	// consumer, across replicas; default 1h.
	Cooldown time.Duration `yaml:"cooldown"`
	// Disabled turns the alert off for a consumer or tier; a nearer
	// override that sets Multiple turns it on again.
	Disabled bool `yaml:"disabled"`
}

// Override is a consumer's or tier's own settings.
type Override struct {
	// QuotaThresholds replaces the inherited list; an empty list (`[]`)
	// turns quota alerts off, an absent one inherits.
	QuotaThresholds []float64 `yaml:"quota_thresholds"`
	// Anomaly fields that are set replace the inherited ones.
	Anomaly *Anomaly `yaml:"anomaly"`
}

// Defaults.
const (
	defaultTimeout      = 5 * time.Second
	defaultAttempts     = 5
	maxAttempts         = 20
	defaultBackoff      = 500 * time.Millisecond
	defaultMaxBackoff   = 30 * time.Second
	defaultShort        = 5 * time.Minute
	defaultBaseline     = time.Hour
	defaultCooldown     = time.Hour
	defaultQueueSize    = 1024
	defaultWorkers      = 2
	defaultMaxConsumers = 10000
	minIdleAfter        = time.Hour
)

// Enabled reports whether c turns alerts on.
func (c *Config) Enabled() bool { return c != nil && c.Webhook.URL != "" }

func (c *Config) configured() bool {
	return len(c.QuotaThresholds) > 0 || c.Anomaly.Multiple != 0 || len(c.Consumers) > 0 || len(c.Tiers) > 0
}

// Validate checks c, naming the field path of each problem, and returns
// every problem at once. Environment variables are read by [New].
func (c *Config) Validate(path string) error {
	var errs []error
	if c.Webhook.URL == "" && c.configured() {
		errs = append(errs, fmt.Errorf("%s.webhook.url: must be set when alerts are configured", path))
	}
	errs = append(errs, c.Webhook.validate(path+".webhook")...)
	errs = append(errs, validateThresholds(path+".quota_thresholds", c.QuotaThresholds)...)
	errs = append(errs, c.Anomaly.validate(path+".anomaly", false)...)
	for _, f := range []struct {
		name string
		v    int
	}{{"queue_size", c.QueueSize}, {"workers", c.Workers}, {"max_consumers", c.MaxConsumers}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s.%s: must be >= 0", path, f.name))
		}
	}
	if c.IdleAfter < 0 {
		errs = append(errs, fmt.Errorf("%s.idle_after: must be >= 0", path))
	}
	base := c.Anomaly.withDefaults()
	for _, name := range sortedKeys(c.Tiers) {
		at := fmt.Sprintf("%s.tiers.%s", path, name)
		errs = append(errs, validName(at, name)...)
		o := c.Tiers[name]
		errs = append(errs, o.validate(at, base)...)
	}
	for _, name := range sortedKeys(c.Consumers) {
		at := fmt.Sprintf("%s.consumers.%s", path, name)
		errs = append(errs, validName(at, name)...)
		o := c.Consumers[name]
		errs = append(errs, o.validate(at, base)...)
		// The consumer's tier is known only per request: the override must
		// make sense over every tier it may belong to. Problems of the
		// tier's or the consumer's own are reported above, once.
		if o.Anomaly == nil || o.Anomaly.over(base).windowsError() != nil {
			continue
		}
		for _, tn := range sortedKeys(c.Tiers) {
			t := c.Tiers[tn].Anomaly
			if t == nil || t.over(base).windowsError() != nil {
				continue
			}
			if err := o.Anomaly.over(t.over(base)).windowsError(); err != nil {
				errs = append(errs, fmt.Errorf("%s.anomaly: over tier %s: %w", at, tn, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (w *Webhook) validate(path string) []error {
	var errs []error
	if w.URL != "" {
		if v, ok := strings.CutPrefix(w.URL, "env:"); ok {
			if v == "" {
				errs = append(errs, fmt.Errorf("%s.url: env: needs a variable name", path))
			}
		} else if err := checkURL(w.URL); err != nil {
			errs = append(errs, fmt.Errorf("%s.url: %w", path, err))
		}
	}
	for _, name := range sortedKeys(w.Headers) {
		at := fmt.Sprintf("%s.headers.%s", path, name)
		if !validHeaderName(name) {
			errs = append(errs, fmt.Errorf("%s: not a valid header name", at))
		}
		v := w.Headers[name]
		if e, ok := strings.CutPrefix(v, "env:"); ok && e == "" {
			errs = append(errs, fmt.Errorf("%s: env: needs a variable name", at))
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			// The value itself is a secret: name the field only.
			errs = append(errs, fmt.Errorf("%s: must not contain CR, LF or NUL", at))
		}
	}
	if w.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: must be >= 0", path))
	}
	r := w.Retry
	if r.Attempts < 0 || r.Attempts > maxAttempts {
		errs = append(errs, fmt.Errorf("%s.retry.attempts: must be between 0 and %d", path, maxAttempts))
	}
	if r.Backoff < 0 {
		errs = append(errs, fmt.Errorf("%s.retry.backoff: must be >= 0", path))
	}
	if r.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("%s.retry.max_backoff: must be >= 0", path))
	} else if r.MaxBackoff > 0 && r.MaxBackoff < r.Backoff {
		errs = append(errs, fmt.Errorf("%s.retry.max_backoff: must be >= retry.backoff", path))
	}
	return errs
}

// checkURL reports what is wrong with a webhook URL without repeating it:
// its path or query may hold a secret.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Host == "" {
		return errors.New("must name a host")
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validateThresholds(path string, ts []float64) []error {
	var errs []error
	seen := make(map[float64]bool, len(ts))
	for i, t := range ts {
		switch {
		case !(t > 0 && t <= 1):
			errs = append(errs, fmt.Errorf("%s[%d]: %v must be > 0 and <= 1 (a fraction of the allotment)", path, i, t))
		case seen[t]:
			errs = append(errs, fmt.Errorf("%s[%d]: %v is listed twice", path, i, t))
		}
		seen[t] = true
	}
	return errs
}

// validate checks a's own fields; in an override zero values inherit.
func (a *Anomaly) validate(path string, override bool) []error {
	var errs []error
	if a.Multiple < 0 || (a.Multiple > 0 && a.Multiple <= 1) {
		errs = append(errs, fmt.Errorf("%s.multiple: must be > 1 (0 turns the alert off)", path))
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"short", a.Short}, {"baseline", a.Baseline}, {"cooldown", a.Cooldown}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s.%s: must be >= 0", path, f.name))
		}
	}
	if a.MinTokens < 0 {
		errs = append(errs, fmt.Errorf("%s.min_tokens: must be >= 0", path))
	}
	if !override && a.Short >= 0 && a.Baseline >= 0 {
		if err := a.withDefaults().windowsError(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
	}
	return errs
}

func (o *Override) validate(path string, base Anomaly) []error {
	errs := validateThresholds(path+".quota_thresholds", o.QuotaThresholds)
	if o.Anomaly != nil {
		errs = append(errs, o.Anomaly.validate(path+".anomaly", true)...)
		if err := o.Anomaly.over(base).windowsError(); err != nil {
			errs = append(errs, fmt.Errorf("%s.anomaly: %w", path, err))
		}
	}
	return errs
}

// windowsError checks the windows of a resolved Anomaly.
func (a Anomaly) windowsError() error {
	if a.Short > 0 && a.Short < shortBuckets*time.Millisecond {
		return fmt.Errorf("short: %v is too short (at least %v)", a.Short, shortBuckets*time.Millisecond)
	}
	if a.Baseline > 0 && a.Baseline <= a.Short {
		return fmt.Errorf("baseline: %v must be longer than short (%v)", a.Baseline, a.Short)
	}
	return nil
}

func (a Anomaly) withDefaults() Anomaly {
	if a.Short == 0 {
		a.Short = defaultShort
	}
	if a.Baseline == 0 {
		a.Baseline = defaultBaseline
	}
	if a.Cooldown == 0 {
		a.Cooldown = defaultCooldown
	}
	return a
}

// over returns a's set fields over base's.
func (a *Anomaly) over(base Anomaly) Anomaly {
	r := base
	if a == nil {
		return r
	}
	if a.Multiple != 0 {
		r.Multiple = a.Multiple
	}
	if a.Short != 0 {
		r.Short = a.Short
	}
	if a.Baseline != 0 {
		r.Baseline = a.Baseline
	}
	if a.MinTokens != 0 {
		r.MinTokens = a.MinTokens
	}
	if a.Cooldown != 0 {
		r.Cooldown = a.Cooldown
	}
	// The nearest level that turns the alert on or off decides.
	if a.Disabled {
		r.Disabled = true
	} else if a.Multiple != 0 {
		r.Disabled = false
	}
	return r
}

func validName(path, name string) []error {
	if name == "" || strings.ContainsAny(name, "{}\r\n\x00") {
		return []error{fmt.Errorf("%s: name %q must be non-empty, without braces or control characters", path, name)}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedThresholds(ts []float64) []float64 {
	if ts == nil {
		return nil
	}
	s := slices.Clone(ts)
	slices.Sort(s)
	return s
}
