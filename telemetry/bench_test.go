package telemetry

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

func benchRequest() *Request {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return &Request{
		ID: "0123456789abcdef0123456789abcdef", RequestID: "b5e8c2a1-3f4d-4e6a-9b7c-1d2e3f4a5b6c",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Consumer:    "alice", Model: "gpt-4o", ResponseModel: "gpt-4o-2024-08-06", Provider: "openai", Route: "llm", Operation: "chat",
		Status: 200, Usage: usage.Usage{Input: 1200, Output: 350, CachedInput: 1024, Reasoning: 64},
		Start: start, FirstToken: start.Add(300 * time.Millisecond), End: start.Add(4 * time.Second),
	}
}

// BenchmarkRequestDone measures the end-of-request cost, the part of
// telemetry that runs once per request, in the configurations an operator
// chooses between.
func BenchmarkRequestDone(b *testing.B) {
	cfg := Config{Models: []string{"gpt-4o*"}}
	jsonLog := slog.New(slog.NewJSONHandler(io.Discard, nil))
	for _, bc := range []struct {
		name string
		cfg  func(Config) Config
		o    Options
	}{
		{"metrics", func(c Config) Config { c.RequestLog = "off"; return c }, Options{}},
		{"metrics+log", func(c Config) Config { return c }, Options{Logger: jsonLog}},
		{"metrics+log+span", func(c Config) Config { return c }, Options{Logger: jsonLog, SpanExporter: tracetest.NewNoopExporter()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.o.Consumers = consumersFunc("alice", "bob")
			tel, _ := newTest(b, bc.cfg(cfg), bc.o)
			r := benchRequest()
			tel.RequestDone(r) // warm the caches of label sets
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				tel.RequestDone(r)
			}
		})
	}
	b.Run("metrics/parallel", func(b *testing.B) {
		tel, _ := newTest(b, Config{Models: []string{"gpt-4o*"}, RequestLog: "off"}, Options{Consumers: consumersFunc("alice", "bob")})
		tel.RequestDone(benchRequest())
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := benchRequest()
			for pb.Next() {
				tel.RequestDone(r)
			}
		})
	})
}

// BenchmarkPhase measures the per-message cost on the request path.
func BenchmarkPhase(b *testing.B) {
	tel, _ := newTest(b, Config{}, Options{})
	b.ReportAllocs()
	for b.Loop() {
		tel.Phase(ResponseBody, 12*time.Microsecond)
	}
}

func BenchmarkPhaseParallel(b *testing.B) {
	tel, _ := newTest(b, Config{}, Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tel.Phase(ResponseBody, 12*time.Microsecond)
		}
	})
}

func BenchmarkStoreCall(b *testing.B) {
	tel, _ := newTest(b, Config{}, Options{})
	b.ReportAllocs()
	for b.Loop() {
		tel.StoreCall("reserve", 300*time.Microsecond, nil)
	}
}

// TestPhaseDoesNotAllocate guards the promise that Phase, called for every
// ext_proc message, allocates nothing (nor do the other per-call methods
// once their labels are known).
func TestPhaseDoesNotAllocate(t *testing.T) {
	tel, _ := newTest(t, Config{}, Options{Consumers: consumersFunc("alice")})
	tel.QuotaRemaining("alice", 1)
	tel.StoreCall("reserve", time.Millisecond, nil)
	for name, f := range map[string]func(){
		"Phase":          func() { tel.Phase(RequestBody, 40*time.Microsecond) },
		"QuotaRemaining": func() { tel.QuotaRemaining("alice", 100) },
		"StoreCall":      func() { tel.StoreCall("reserve", time.Millisecond, nil) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s allocates %v times per call, want 0", name, n)
		}
	}
}
