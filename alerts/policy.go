package alerts

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// policy is the compiled, immutable form of a Config; [Alerts.Update]
// swaps it whole.
type policy struct {
	// gen numbers policies so consumer states notice a swap.
	gen       uint64
	hook      hook
	def       level
	tiers     map[string]level
	consumers map[string]Override
	idleAfter time.Duration
}

// level is the settings resolved at one level of consumer → tier → default.
type level struct {
	thresholds []float64
	anomaly    Anomaly
}

// rule is what a consumer's observations are judged by.
type rule struct {
	// thresholds ascend.
	thresholds []float64
	anomaly    anomalyRule
}

type anomalyRule struct {
	on       bool
	multiple float64
	// bucket is the resolution of the short window: short / shortBuckets.
	bucket    int64 // nanoseconds
	short     time.Duration
	cooldown  time.Duration
	minTokens int64
	// warm is how many buckets must have left the short window before the
	// baseline is trusted: a consumer is judged once seen for
	// short + baseline.
	warm int64
	// alpha weighs a new bucket in the baseline once warm.
	alpha float64
}

// hook is a Webhook with its environment read.
type hook struct {
	url string
	// host is what logs show of the URL: its path may be a secret.
	host       string
	headers    http.Header
	timeout    time.Duration
	attempts   int
	backoff    time.Duration
	maxBackoff time.Duration
}

func compile(c Config, getenv func(string) string, gen uint64) (*policy, error) {
	if err := c.Validate("alerts"); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, fmt.Errorf("alerts.webhook.url: must be set")
	}
	h, err := compileHook(c.Webhook, getenv)
	if err != nil {
		return nil, err
	}
	p := &policy{
		gen:       gen,
		hook:      h,
		def:       level{thresholds: sortedThresholds(c.QuotaThresholds), anomaly: c.Anomaly.withDefaults()},
		tiers:     make(map[string]level, len(c.Tiers)),
		consumers: make(map[string]Override, len(c.Consumers)),
		idleAfter: c.IdleAfter,
	}
	if p.def.anomaly.Multiple == 0 {
		p.def.anomaly.Disabled = true
	}
	for name, o := range c.Tiers {
		p.tiers[name] = o.over(p.def)
	}
	for name, o := range c.Consumers {
		o.QuotaThresholds = sortedThresholds(o.QuotaThresholds)
		p.consumers[name] = o
	}
	if p.idleAfter == 0 {
		p.idleAfter = max(2*(p.def.anomaly.Short+p.def.anomaly.Baseline), minIdleAfter)
	}
	return p, nil
}

func (o Override) over(base level) level {
	l := base
	if o.QuotaThresholds != nil {
		l.thresholds = sortedThresholds(o.QuotaThresholds)
	}
	l.anomaly = o.Anomaly.over(base.anomaly)
	return l
}

// resolve returns the rule of consumer in tier: consumer → tier → default.
func (p *policy) resolve(consumer, tier string) rule {
	l, ok := p.tiers[tier]
	if !ok {
		l = p.def
	}
	if o, ok := p.consumers[consumer]; ok {
		l = o.over(l)
	}
	return rule{thresholds: l.thresholds, anomaly: compileAnomaly(l.anomaly)}
}

func compileAnomaly(a Anomaly) anomalyRule {
	if a.Disabled || a.Multiple <= 1 {
		return anomalyRule{}
	}
	bucket := int64(a.Short) / shortBuckets
	warm := max(int64(a.Baseline)/bucket, 1)
	return anomalyRule{
		on:        true,
		multiple:  a.Multiple,
		bucket:    bucket,
		short:     a.Short,
		cooldown:  a.Cooldown,
		minTokens: a.MinTokens,
		warm:      warm,
		alpha:     1 / float64(warm),
	}
}

func compileHook(w Webhook, getenv func(string) string) (hook, error) {
	h := hook{
		url:        w.URL,
		headers:    make(http.Header, len(w.Headers)+2),
		timeout:    w.Timeout,
		attempts:   w.Retry.Attempts,
		backoff:    w.Retry.Backoff,
		maxBackoff: w.Retry.MaxBackoff,
	}
	if v, ok := strings.CutPrefix(w.URL, "env:"); ok {
		h.url = getenv(v)
		if h.url == "" {
			return hook{}, fmt.Errorf("alerts.webhook.url: environment variable %s is empty", v)
		}
		if err := checkURL(h.url); err != nil {
			return hook{}, fmt.Errorf("alerts.webhook.url: environment variable %s: %w", v, err)
		}
	}
	u, err := url.Parse(h.url)
	if err != nil {
		return hook{}, fmt.Errorf("alerts.webhook.url: not a valid URL")
	}
	h.host = u.Scheme + "://" + u.Host
	for _, name := range sortedKeys(w.Headers) {
		v := w.Headers[name]
		if e, ok := strings.CutPrefix(v, "env:"); ok {
			v = getenv(e)
			if v == "" {
				return hook{}, fmt.Errorf("alerts.webhook.headers.%s: environment variable %s is empty", name, e)
			}
			if strings.ContainsAny(v, "\r\n\x00") {
				return hook{}, fmt.Errorf("alerts.webhook.headers.%s: environment variable %s holds CR, LF or NUL", name, e)
			}
		}
		h.headers.Set(name, v)
	}
	h.headers.Set("Content-Type", "application/json")
	if h.headers.Get("User-Agent") == "" {
		h.headers.Set("User-Agent", "tollgate-alerts")
	}
	if h.timeout == 0 {
		h.timeout = defaultTimeout
	}
	if h.attempts == 0 {
		h.attempts = defaultAttempts
	}
	if h.backoff == 0 {
		h.backoff = defaultBackoff
	}
	if h.maxBackoff == 0 {
		h.maxBackoff = max(defaultMaxBackoff, h.backoff)
	}
	return h, nil
}
