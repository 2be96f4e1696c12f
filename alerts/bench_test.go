package alerts

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Run: go test -run XXX -bench Observe -benchmem ./alerts

func benchAlerts(b *testing.B, h *hookServer) *Alerts {
	b.Helper()
	a, err := New(Options{Config: Config{
		Webhook:         Webhook{URL: h.URL, Timeout: time.Hour},
		QuotaThresholds: []float64{0.8, 1.0},
		Anomaly:         anomalyConfig,
		QueueSize:       64,
		Workers:         1,
	}})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "consumer-" + strconv.Itoa(i)
	}
	return out
}

// BenchmarkObserve is the per-request cost when nothing crosses: quota and
// anomaly judged for 1000 consumers.
func BenchmarkObserve(b *testing.B) {
	h := newHookServer(b)
	a := benchAlerts(b, h)
	defer a.Close(b.Context())
	cs := names(1000)
	start := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		a.Observe(Observation{
			Consumer: cs[i%len(cs)], Tier: "standard", Model: "gpt-4o", Tokens: 500,
			HasQuota: true, QuotaAllotment: 1 << 40, QuotaRemaining: 1<<40 - int64(i), QuotaPeriod: "2026-11",
			At: start.Add(time.Duration(i) * time.Millisecond),
		})
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	h := newHookServer(b)
	a := benchAlerts(b, h)
	defer a.Close(b.Context())
	cs := names(1000)
	start := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			a.Observe(Observation{
				Consumer: cs[i%int64(len(cs))], Tokens: 500,
				HasQuota: true, QuotaAllotment: 1 << 40, QuotaRemaining: 1 << 39, QuotaPeriod: "2026-11",
				At: start.Add(time.Duration(i) * time.Millisecond),
			})
		}
	})
}

// BenchmarkObserveHungWebhook crosses a threshold on every call (a new
// period each time) while the webhook never answers: the queue is full
// and every call ends in a drop. Observe's cost must stay that of the
// quiet path.
func BenchmarkObserveHungWebhook(b *testing.B) {
	h := newHookServer(b)
	h.hold = make(chan struct{})
	defer close(h.hold)
	a := benchAlerts(b, h)
	cs := names(1000)
	periods := names(4096)
	start := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		a.Observe(Observation{
			Consumer: cs[i%len(cs)], Tokens: 500,
			HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: 0, QuotaPeriod: periods[i%len(periods)],
			At: start.Add(time.Duration(i) * time.Millisecond),
		})
	}
	b.StopTimer()
	if s := a.Stats(); s.Dropped == 0 && b.N > 100 {
		b.Errorf("nothing dropped with a hung webhook: %+v", s)
	}
	ctx, cancel := context.WithCancel(b.Context())
	cancel() // the webhook never answers: abandon what is in flight
	_ = a.Close(ctx)
}
