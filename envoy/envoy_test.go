package envoy_test

import (
	"os"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/tollgate-ai/tollgate/e2e/envoyemu"
)

const envoyYAML = "envoy.yaml"

// TestEnvoyYAMLDecodesAndValidates decodes the shipped bootstrap with
// go-control-plane's types, refusing unknown fields and "@type"s, and runs
// the API's validation rules on it and on every typed_config inside it.
func TestEnvoyYAMLDecodesAndValidates(t *testing.T) {
	if _, err := envoyemu.LoadBootstrap(envoyYAML); err != nil {
		t.Fatal(err)
	}
}

// TestEnvoyYAMLRejectsMutatedCopies proves the validation above can fail: each
// copy of envoy.yaml with one typo must be refused.
func TestEnvoyYAMLRejectsMutatedCopies(t *testing.T) {
	raw, err := os.ReadFile(envoyYAML)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, old, new string
	}{
		{"misspelled field in the ext_proc typed_config", "message_timeout: 1s", "mesage_timeout: 1s"},
		{"misspelled top-level field", "static_resources:", "static_resource:"},
		{"misspelled enum value", "request_body_mode: BUFFERED", "request_body_mode: BUFFER"},
		{"unknown @type", "ext_proc.v3.ExternalProcessor\n", "ext_proc.v3.ExternalProcesor\n"},
		{"value breaking a validation rule", "port_value: 50051", "port_value: 650051"},
		{"negative duration breaking a validation rule", "connect_timeout: 0.25s", "connect_timeout: -1s"},
		// Bootstrap.ValidateAll stops at Any fields: this one is caught only
		// because every typed_config is unpacked and validated too.
		{"value breaking a rule inside a typed_config", "message_timeout: 1s", "message_timeout: 7200s"},
		{"misspelled field in a per-route config", "disabled: true", "disable: true"},
		{"misspelled field inside the cluster protocol options", "http2_protocol_options:", "http2_protocol_option:"},
		{"access log with unknown format field", "json_format:", "json_formats:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(raw), tt.old) {
				t.Fatalf("envoy.yaml no longer contains %q; update the mutation", tt.old)
			}
			mutated := strings.Replace(string(raw), tt.old, tt.new, 1)
			_, err := envoyemu.ParseBootstrap([]byte(mutated))
			t.Logf("error: %v", err)
			if err == nil {
				t.Fatalf("a copy with %q replaced by %q was accepted", tt.old, tt.new)
			}
		})
	}
}

// TestEnvoyYAMLExtProcFilter pins the ext_proc settings tollgate depends on.
func TestEnvoyYAMLExtProcFilter(t *testing.T) {
	cfg, err := envoyemu.LoadConfig(envoyYAML)
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Filter
	if got := f.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != "tollgate" {
		t.Errorf("grpc_service cluster = %q, want tollgate", got)
	}
	if f.GetGrpcService().GetTimeout() != nil {
		t.Error("grpc_service.timeout is set: it would cut ext_proc streams of long LLM responses")
	}
	pm := f.GetProcessingMode()
	wantMode := &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
		ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
		ResponseBodyMode:    extprocv3.ProcessingMode_STREAMED,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
	if pm.String() != wantMode.String() {
		t.Errorf("processing_mode = %v, want %v", pm, wantMode)
	}
	if !f.GetAllowModeOverride() {
		t.Error("allow_mode_override is false")
	}
	if f.GetFailureModeAllow() {
		t.Error("failure_mode_allow is true: an ext_proc outage would open the gate")
	}
	if d := f.GetMessageTimeout().AsDuration(); d < 500*time.Millisecond || d > 5*time.Second {
		t.Errorf("message_timeout = %v, want well above tollgate's p99 yet bounded (0.5s..5s)", d)
	}
	if d := f.GetMaxMessageTimeout().AsDuration(); d < f.GetMessageTimeout().AsDuration() {
		t.Errorf("max_message_timeout %v < message_timeout: override_message_timeout could only shorten it", d)
	}
	if got := f.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(); len(got) != 1 || got[0] != "tollgate" {
		t.Errorf("receiving_namespaces.untyped = %v, want [tollgate]", got)
	}
	if got := f.GetRequestAttributes(); len(got) != 1 || got[0] != "xds.route_name" {
		t.Errorf("request_attributes = %v, want [xds.route_name]", got)
	}
}

// TestEnvoyYAMLRoutes checks the route table: the probe skips ext_proc, and
// the LLM route has a long timeout, host rewrite and no retries.
func TestEnvoyYAMLRoutes(t *testing.T) {
	b, err := envoyemu.LoadBootstrap(envoyYAML)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := envoyemu.LoadConfig(envoyYAML)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 2 {
		t.Fatalf("got %d routes, want the probe and the LLM route", len(cfg.Routes))
	}
	probe, llm := cfg.Routes[0], cfg.Routes[1]
	if probe.DirectResponse == nil || probe.DirectResponse.Status != 200 || !probe.ExtProc.GetDisabled() {
		t.Errorf("probe route = %+v, want a 200 direct response with ext_proc disabled", probe)
	}
	if llm.Name != "llm" || llm.Prefix != "/" || llm.ExtProc != nil {
		t.Errorf("llm route = %+v", llm)
	}
	if llm.Timeout < 10*time.Minute {
		t.Errorf("llm route timeout = %v: long generations would be cut", llm.Timeout)
	}
	if llm.RequestBodyLimit < 16<<20 {
		t.Errorf("llm route request body limit = %d: image prompts would get 413", llm.RequestBodyLimit)
	}
	// Retries and host rewrite are not part of the emulator's Config, so they
	// are read from the decoded bootstrap itself.
	var hcm hcmv3.HttpConnectionManager
	listeners := b.GetStaticResources().GetListeners()
	if len(listeners) != 1 {
		t.Fatalf("got %d listeners, want 1", len(listeners))
	}
	if err := listeners[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	vh := hcm.GetRouteConfig().GetVirtualHosts()[0]
	if vh.GetRetryPolicy() != nil {
		t.Error("virtual host has a retry policy: streamed completions must not be retried")
	}
	for _, r := range vh.GetRoutes() {
		if r.GetRoute().GetRetryPolicy() != nil {
			t.Errorf("route %q has a retry policy: streamed completions must not be retried", r.GetName())
		}
	}
	if !vh.GetRoutes()[1].GetRoute().GetAutoHostRewrite().GetValue() {
		t.Error("llm route does not rewrite Host to the provider's")
	}
}

// TestEnvoyYAMLClusters checks that the tollgate cluster speaks HTTP/2 and is
// health-checked over gRPC, and that the LLM cluster uses TLS.
func TestEnvoyYAMLClusters(t *testing.T) {
	b, err := envoyemu.LoadBootstrap(envoyYAML)
	if err != nil {
		t.Fatal(err)
	}
	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}
	tg, ok := clusters["tollgate"]
	if !ok {
		t.Fatal("no tollgate cluster")
	}
	if port := tg.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue(); port != 50051 {
		t.Errorf("tollgate port = %d, want 50051", port)
	}
	if tg.GetConnectTimeout().AsDuration() <= 0 {
		t.Error("tollgate cluster has no connect_timeout")
	}
	var opts httpv3.HttpProtocolOptions
	a, ok := tg.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if !ok {
		t.Fatal("tollgate cluster has no HttpProtocolOptions")
	}
	if err := a.UnmarshalTo(&opts); err != nil {
		t.Fatal(err)
	}
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("tollgate cluster does not use HTTP/2: gRPC would fail")
	}
	hcs := tg.GetHealthChecks()
	if len(hcs) != 1 || hcs[0].GetGrpcHealthCheck() == nil || hcs[0].GetGrpcHealthCheck().GetServiceName() != "" {
		t.Errorf("tollgate health checks = %v, want one gRPC check of service \"\"", hcs)
	}
	if th := tg.GetCircuitBreakers().GetThresholds(); len(th) == 0 || th[0].GetMaxRequests().GetValue() < 10000 {
		t.Error("tollgate cluster keeps the default 1024 concurrent streams")
	}
	llm, ok := clusters["llm"]
	if !ok {
		t.Fatal("no llm cluster")
	}
	if llm.GetTransportSocket().GetName() != "envoy.transport_sockets.tls" {
		t.Error("llm cluster does not use TLS")
	}
	if port := llm.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue(); port != 443 {
		t.Errorf("llm port = %d, want 443", port)
	}
}

// TestEnvoyYAMLAccessLog checks that the access log prints what tollgate puts
// in its dynamic metadata, with the request's status, duration and route.
func TestEnvoyYAMLAccessLog(t *testing.T) {
	cfg, err := envoyemu.LoadConfig(envoyYAML)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AccessLogFormat == nil {
		t.Fatal("no JSON stdout access log")
	}
	fields := cfg.AccessLogFormat.AsMap()
	want := map[string]string{
		"consumer":      "%DYNAMIC_METADATA(tollgate:consumer)%",
		"model":         "%DYNAMIC_METADATA(tollgate:model)%",
		"input_tokens":  "%DYNAMIC_METADATA(tollgate:input_tokens)%",
		"output_tokens": "%DYNAMIC_METADATA(tollgate:output_tokens)%",
		"total_tokens":  "%DYNAMIC_METADATA(tollgate:total_tokens)%",
		"status":        "%RESPONSE_CODE%",
		"duration_ms":   "%DURATION%",
		"route":         "%ROUTE_NAME%",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("access log field %q = %v, want %q", k, fields[k], v)
		}
	}
}
