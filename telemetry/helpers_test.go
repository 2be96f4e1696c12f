package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTest builds a Telemetry with no OTLP (whatever the environment says)
// and returns it with its JSON log.
func newTest(t testing.TB, cfg Config, o Options) (*Telemetry, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	tel, err := New(context.Background(), cfg, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, logs
}

// scrapeText returns the /metrics page as Prometheus scrapes it.
func scrapeText(t testing.TB, tel *Telemetry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d: %s", rec.Code, rec.Body)
	}
	b, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// scrape parses the /metrics page into metric families by name.
func scrape(t testing.TB, tel *Telemetry) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(scrapeText(t, tel)))
	if err != nil {
		t.Fatalf("cannot parse /metrics: %v", err)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}

// sumBy adds the values of a counter family's series, grouped by the
// values of the given labels joined with "|", keeping only series whose
// labels match where.
func sumBy(fams map[string]*dto.MetricFamily, name string, where map[string]string, by ...string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
series:
	for _, m := range f.GetMetric() {
		l := labelsOf(m)
		for k, v := range where {
			if l[k] != v {
				continue series
			}
		}
		parts := make([]string, len(by))
		for i, k := range by {
			parts[i] = l[k]
		}
		var v float64
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Histogram != nil:
			v = m.GetHistogram().GetSampleSum()
		}
		out[strings.Join(parts, "|")] += v
	}
	return out
}

// histCount returns the sample count and sum of a histogram family's series
// whose labels match where.
func histCount(fams map[string]*dto.MetricFamily, name string, where map[string]string) (count uint64, sum float64) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
series:
	for _, m := range f.GetMetric() {
		l := labelsOf(m)
		for k, v := range where {
			if l[k] != v {
				continue series
			}
		}
		count += m.GetHistogram().GetSampleCount()
		sum += m.GetHistogram().GetSampleSum()
	}
	return count, sum
}

// labelValues returns the sorted distinct values of a label in a family.
func labelValues(fams map[string]*dto.MetricFamily, name, label string) []string {
	seen := map[string]bool{}
	if f := fams[name]; f != nil {
		for _, m := range f.GetMetric() {
			seen[labelsOf(m)[label]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
