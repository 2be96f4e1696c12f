package telemetry

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

// collector records what OTLP exporters send it: span names and metric
// names.
type collector struct {
	mu      sync.Mutex
	spans   []string
	metrics []string
	service []string
}

func (c *collector) addTraces(req *colltrace.ExportTraceServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				c.service = append(c.service, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, s.GetName())
			}
		}
	}
}

func (c *collector) addMetrics(req *collmetrics.ExportMetricsServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				c.metrics = append(c.metrics, m.GetName())
			}
		}
	}
}

func (c *collector) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.spans, "chat gpt-4o") {
		t.Errorf("collector got spans %v, want the request's span", c.spans)
	}
	for _, m := range []string{nameGenAITokens, nameGenAIDuration, nameTokens, nameRequests} {
		if !slices.Contains(c.metrics, m) {
			t.Errorf("collector got metrics %v, want %s", c.metrics, m)
		}
	}
	if !slices.Contains(c.service, "tollgate-test") {
		t.Errorf("service.name = %v, want tollgate-test", c.service)
	}
}

func sendOne(t *testing.T) {
	t.Helper()
	tel, err := New(context.Background(), Config{Models: []string{"gpt-4o"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tel.RequestDone(&Request{Consumer: "alice", Model: "gpt-4o", Provider: "openai", Operation: "chat", Status: 200,
		Usage: usage.Usage{Input: 5, Output: 6}, Start: start, End: start.Add(time.Second)})
	// Shutdown flushes both signals.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestOTLPHTTP checks that setting the standard OTLP variables exports
// spans and metrics over OTLP/HTTP, besides the Prometheus page.
func TestOTLPHTTP(t *testing.T) {
	var c collector
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/v1/traces":
			var req colltrace.ExportTraceServiceRequest
			if err := proto.Unmarshal(b, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			c.addTraces(&req)
		case "/v1/metrics":
			var req collmetrics.ExportMetricsServiceRequest
			if err := proto.Unmarshal(b, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			c.addMetrics(&req)
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "tollgate-test")
	sendOne(t)
	c.check(t)
}

type grpcCollector struct {
	colltrace.UnimplementedTraceServiceServer
	c *collector
}

func (g grpcCollector) Export(_ context.Context, r *colltrace.ExportTraceServiceRequest) (*colltrace.ExportTraceServiceResponse, error) {
	g.c.addTraces(r)
	return &colltrace.ExportTraceServiceResponse{}, nil
}

type grpcMetricsCollector struct {
	collmetrics.UnimplementedMetricsServiceServer
	c *collector
}

func (g grpcMetricsCollector) Export(_ context.Context, r *collmetrics.ExportMetricsServiceRequest) (*collmetrics.ExportMetricsServiceResponse, error) {
	g.c.addMetrics(r)
	return &collmetrics.ExportMetricsServiceResponse{}, nil
}

// TestOTLPGRPC checks OTEL_EXPORTER_OTLP_PROTOCOL=grpc.
func TestOTLPGRPC(t *testing.T) {
	var c collector
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	colltrace.RegisterTraceServiceServer(gs, grpcCollector{c: &c})
	collmetrics.RegisterMetricsServiceServer(gs, grpcMetricsCollector{c: &c})
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_SERVICE_NAME", "tollgate-test")
	sendOne(t)
	c.check(t)
}

func TestOTLPSettings(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name                  string
		getenv                func(string) string
		traces, metrics       bool
		traceProto, metricPro string
	}{
		{"nothing set", env(), false, false, "http/protobuf", "http/protobuf"},
		{"one endpoint for both", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), true, true, "http/protobuf", "http/protobuf"},
		{"traces only", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces"), true, false, "http/protobuf", "http/protobuf"},
		{"metrics exporter none", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317", "OTEL_METRICS_EXPORTER", "none", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), true, false, "grpc", "grpc"},
		{"per-signal protocol wins", env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"), false, false, "grpc", "http/protobuf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := otlpOn(tc.getenv, "TRACES"); got != tc.traces {
				t.Errorf("traces on = %v, want %v", got, tc.traces)
			}
			if got := otlpOn(tc.getenv, "METRICS"); got != tc.metrics {
				t.Errorf("metrics on = %v, want %v", got, tc.metrics)
			}
			if got := otlpProtocol(tc.getenv, "TRACES"); got != tc.traceProto {
				t.Errorf("traces protocol = %q, want %q", got, tc.traceProto)
			}
			if got := otlpProtocol(tc.getenv, "METRICS"); got != tc.metricPro {
				t.Errorf("metrics protocol = %q, want %q", got, tc.metricPro)
			}
		})
	}
	t.Run("unknown protocol is an error", func(t *testing.T) {
		_, err := New(context.Background(), Config{}, Options{Getenv: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")})
		if err == nil || !strings.Contains(err.Error(), "http/json") {
			t.Fatalf("New with protocol http/json: %v", err)
		}
	})
}

func TestResourceAttributes(t *testing.T) {
	getenv := func(k string) string {
		return map[string]string{
			"OTEL_RESOURCE_ATTRIBUTES": "k8s.pod.name=tollgate-7d9f, k8s.namespace.name=gateway,service.name=ignored,team=a%20b",
			"OTEL_SERVICE_NAME":        "tollgate-eu",
		}[k]
	}
	tel, _ := newTest(t, Config{}, Options{Getenv: getenv})
	got := sumBy(scrape(t, tel), "target_info", nil, "service_name", "k8s_pod_name", "k8s_namespace_name", "team")
	if want := "tollgate-eu|tollgate-7d9f|gateway|a b"; got[want] != 1 {
		t.Errorf("target_info = %v, want %s", got, want)
	}
	for _, bad := range []string{"novalue", "=x", "k=%zz"} {
		if _, err := resourceAttributes(bad); err == nil {
			t.Errorf("OTEL_RESOURCE_ATTRIBUTES=%q accepted", bad)
		}
	}
}
