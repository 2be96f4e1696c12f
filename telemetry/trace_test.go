package telemetry

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

func spanAttrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestSpanPerRequest(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, _ := newTest(t, Config{}, Options{SpanExporter: exp})
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	const parentSpan = "00f067aa0ba902b7"

	tel.RequestDone(&Request{
		ID: "tg-1", RequestID: "req-1",
		TraceParent: "00-" + parentTrace + "-" + parentSpan + "-01", TraceState: "vendor=1",
		Consumer: "alice", Model: "gpt-4o", ResponseModel: "gpt-4o-2024-08-06", Provider: "openai", Route: "llm", Operation: "chat",
		Status: 200, Usage: usage.Usage{Input: 12, Output: 34, CachedInput: 4, Reasoning: 9},
		Start: start, FirstToken: start.Add(100 * time.Millisecond), End: start.Add(time.Second),
	})
	tel.RequestDone(&Request{ID: "tg-2", Consumer: "bob", Model: "gpt-4o", Operation: "chat", Decision: RateLimited, Rule: "per-minute",
		Start: start, End: start.Add(time.Millisecond)})
	tel.RequestDone(&Request{ID: "tg-3", Consumer: "bob", Model: "gpt-4o", Operation: "chat", Status: 502, Start: start, End: start.Add(time.Second)})
	tel.RequestDone(&Request{ID: "tg-4", Consumer: "bob", Model: "gpt-4o", Operation: "chat", Status: 200, Cancelled: true, Start: start, End: start.Add(time.Second)})

	spans := exp.GetSpans()
	if len(spans) != 4 {
		t.Fatalf("got %d spans, want one per request (4)", len(spans))
	}
	s := spans[0]
	t.Run("named and timed as the request", func(t *testing.T) {
		if s.Name != "chat gpt-4o" {
			t.Errorf("name %q, want %q", s.Name, "chat gpt-4o")
		}
		if !s.StartTime.Equal(start) || !s.EndTime.Equal(start.Add(time.Second)) {
			t.Errorf("span from %v to %v, want the request's start and end", s.StartTime, s.EndTime)
		}
		if s.SpanKind != trace.SpanKindClient {
			t.Errorf("kind %v, want client", s.SpanKind)
		}
	})
	t.Run("child of the request's trace context", func(t *testing.T) {
		if got := s.SpanContext.TraceID().String(); got != parentTrace {
			t.Errorf("trace id %s, want %s", got, parentTrace)
		}
		if got := s.Parent.SpanID().String(); got != parentSpan || !s.Parent.IsRemote() {
			t.Errorf("parent span %s (remote %v), want remote %s", got, s.Parent.IsRemote(), parentSpan)
		}
		if got := s.SpanContext.TraceState().Get("vendor"); got != "1" {
			t.Errorf("tracestate vendor=%q, want 1", got)
		}
	})
	t.Run("GenAI and tollgate attributes", func(t *testing.T) {
		a := spanAttrs(s)
		for k, want := range map[attribute.Key]any{
			"gen_ai.operation.name":                "chat",
			"gen_ai.provider.name":                 "openai",
			"gen_ai.request.model":                 "gpt-4o",
			"gen_ai.response.model":                "gpt-4o-2024-08-06",
			"gen_ai.usage.input_tokens":            int64(12),
			"gen_ai.usage.output_tokens":           int64(34),
			"gen_ai.usage.cache_read.input_tokens": int64(4),
			"gen_ai.usage.reasoning.output_tokens": int64(9),
			"http.response.status_code":            int64(200),
			"tollgate.decision":                    "allowed",
			"tollgate.consumer":                    "alice",
			"tollgate.request.id":                  "tg-1",
			"tollgate.route":                       "llm",
		} {
			if got := a[k].AsInterface(); got != want {
				t.Errorf("%s = %v (%T), want %v", k, got, got, want)
			}
		}
		if got := a["http.request.header.x-request-id"].AsStringSlice(); len(got) != 1 || got[0] != "req-1" {
			t.Errorf("x-request-id attribute = %v", got)
		}
		if s.Status.Code == codes.Error {
			t.Errorf("a successful request's span has status %v", s.Status)
		}
	})
	t.Run("refusal is an error with its decision", func(t *testing.T) {
		r := spans[1]
		a := spanAttrs(r)
		if r.Status.Code != codes.Error || a["error.type"].AsString() != "rate_limited" || a["tollgate.rule"].AsString() != "per-minute" {
			t.Errorf("refused span: status %v, attributes %v", r.Status, a)
		}
		if r.SpanContext.TraceID().String() == parentTrace || r.Parent.IsValid() {
			t.Errorf("a request without trace context got a parent")
		}
	})
	t.Run("upstream failure is an error with its status", func(t *testing.T) {
		r := spans[2]
		if r.Status.Code != codes.Error || spanAttrs(r)["error.type"].AsString() != "502" {
			t.Errorf("upstream 502 span: status %v, attributes %v", r.Status, spanAttrs(r))
		}
	})
	t.Run("client that went away is not an error", func(t *testing.T) {
		r := spans[3]
		if r.Status.Code == codes.Error || !spanAttrs(r)["tollgate.cancelled"].AsBool() {
			t.Errorf("cancelled span: status %v, attributes %v", r.Status, spanAttrs(r))
		}
	})
}

// TestNoSpansWithoutExporter checks spans cost nothing when they would go
// nowhere.
func TestNoSpansWithoutExporter(t *testing.T) {
	tel, _ := newTest(t, Config{}, Options{})
	if tel.tracers != nil {
		t.Fatal("a tracer provider was built with no exporter configured")
	}
	tel.RequestDone(&Request{Consumer: "alice", Model: "gpt-4o", Operation: "chat", Status: 200})
}
