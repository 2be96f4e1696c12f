package breaker

import (
	"cmp"
	"slices"
	"time"
)

// Status classes of outcomes: classNone for calls that got no status.
const (
	classNone  = 0
	numClasses = 6
)

func classOf(status int) int {
	if status >= 100 && status < 600 {
		return status / 100
	}
	return classNone
}

// StatusClasses counts outcomes by the class of their status.
type StatusClasses struct {
	S1xx int64 `json:"1xx,omitempty"`
	S2xx int64 `json:"2xx"`
	S3xx int64 `json:"3xx"`
	S4xx int64 `json:"4xx"`
	S5xx int64 `json:"5xx"`
	// NoResponse counts calls that ended without a status: connection
	// errors, resets, and abandoned calls that were already slow.
	NoResponse int64 `json:"no_response"`
}

// ProviderHealth is one provider's recent health on this replica, as
// GET /v1/providers/health reports it. The figures cover the outcomes of
// the last Window (to a tenth of it).
type ProviderHealth struct {
	// Name is the provider's name.
	Name string `json:"name"`
	// Requests is how many calls ended with an outcome in the window.
	Requests int64 `json:"requests"`
	// StatusClasses splits Requests by response status.
	StatusClasses StatusClasses `json:"status_classes"`
	// ErrorRate is the share of Requests that failed as the breaker
	// judges failure (5xx, 429, no response, slow); 0 without requests.
	ErrorRate float64 `json:"error_rate"`
	// Slow is how many of the failed calls failed by slowness alone or
	// with it.
	Slow int64 `json:"slow"`
	// LatencyMsP50 and LatencyMsP99 are percentiles of the time to the
	// response headers, in milliseconds, within 3.2%; 0 without requests.
	LatencyMsP50 float64 `json:"latency_ms_p50"`
	LatencyMsP99 float64 `json:"latency_ms_p99"`
	// Rejected is how many calls the breaker failed fast in the window.
	Rejected int64 `json:"rejected"`
	// State is the breaker's state, and Since when it began (for a
	// replica that has seen no state change, when tracking began).
	State State     `json:"state"`
	Since time.Time `json:"since"`
	// RetryAfterSeconds, while open, is the rest of the cool-down.
	RetryAfterSeconds float64 `json:"retry_after_seconds,omitempty"`
	// WindowSeconds is the length of the window the figures cover.
	WindowSeconds float64 `json:"window_seconds"`
}

// Health returns every tracked provider's health, sorted by name.
func (s *Set) Health() []ProviderHealth {
	if s == nil {
		return []ProviderHealth{}
	}
	m := *s.circuits.Load()
	out := make([]ProviderHealth, 0, len(m))
	var hist [numBins]uint64
	for _, c := range m {
		clear(hist[:])
		out = append(out, c.health(s.now(), &hist))
	}
	slices.SortFunc(out, func(a, b ProviderHealth) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// health sums the live slots; hist is scratch space, cleared.
func (c *circuit) health(now time.Duration, hist *[numBins]uint64) ProviderHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	var classes [numClasses]int64
	var failed int64
	h := ProviderHealth{Name: c.name, WindowSeconds: c.cfg.window.Seconds()}
	c.win.live(now, func(sl *slot) {
		for i, n := range sl.classes {
			classes[i] += int64(n)
		}
		failed += int64(sl.failed)
		h.Slow += int64(sl.slow)
		h.Rejected += int64(sl.rejected)
		for b, n := range sl.hist {
			hist[b] += uint64(n)
		}
	})
	for _, n := range classes {
		h.Requests += n
	}
	h.StatusClasses = StatusClasses{S1xx: classes[1], S2xx: classes[2], S3xx: classes[3], S4xx: classes[4], S5xx: classes[5],
		NoResponse: classes[classNone]}
	if h.Requests > 0 {
		h.ErrorRate = float64(failed) / float64(h.Requests)
		h.LatencyMsP50 = quantile(hist, uint64(h.Requests), 0.50)
		h.LatencyMsP99 = quantile(hist, uint64(h.Requests), 0.99)
	}
	h.State = c.effective(now)
	since := c.since
	if h.State == HalfOpen && c.state == Open {
		since = c.openUntil
	}
	if h.State == Open {
		h.RetryAfterSeconds = (c.openUntil - now).Seconds()
	}
	h.Since = c.set.base.Add(since)
	return h
}
