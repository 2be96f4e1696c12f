package envoyemu

import (
	"io"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// TestDynamicMetadata checks which dynamic metadata is kept and how it shows
// in the access log of the shipped envoy.yaml.
//
// Envoy: Filter::setDynamicMetadata keeps only the namespaces listed in
// metadata_options.receiving_namespaces.untyped; StreamInfo merges each
// answer's keys into the namespace; the JSON access log formatter keeps a
// lone operator's type (numbers stay numbers) and renders missing values as
// null.
func TestDynamicMetadata(t *testing.T) {
	cfg, err := LoadConfig(shippedYAML)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, cfg.Filter, func(s *serverStream) error {
		return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			r := cont(req)
			switch {
			case req.GetRequestBody() != nil:
				r.DynamicMetadata = metadata(t, map[string]any{
					"tollgate": map[string]any{"consumer": "alice", "model": "gpt-4o", "input_tokens": 12},
					"other":    map[string]any{"secret": "dropped"},
				})
			case req.GetResponseBody().GetEndOfStream():
				r.DynamicMetadata = metadata(t, map[string]any{
					"tollgate": map[string]any{"output_tokens": 30, "total_tokens": 42},
				})
			}
			return r
		})
	}, &upstreamRecorder{}, func(o *Options) { o.AccessLogFormat = cfg.AccessLogFormat; o.Routes = cfg.Routes })
	if resp, _, err := e.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"gpt-4o"}`, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	rec := e.record(t)
	if _, ok := rec.DynamicMetadata["other"]; ok {
		t.Error("metadata outside the receiving namespaces was kept")
	}
	got := rec.DynamicMetadata["tollgate"].AsMap()
	want := map[string]any{"consumer": "alice", "model": "gpt-4o", "input_tokens": 12.0, "output_tokens": 30.0, "total_tokens": 42.0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("tollgate.%s = %v, want %v", k, got[k], v)
		}
	}
	log := rec.AccessLog
	if log["consumer"] != "alice" || log["input_tokens"] != 12.0 || log["total_tokens"] != 42.0 ||
		log["status"] != 200.0 || log["route"] != "llm" || log["request_id"] != rec.RequestID {
		t.Errorf("access log = %v", log)
	}
}

// TestMetadataForwarding checks metadata_context.
//
// Envoy: addDynamicMetadata sends, in every message, the dynamic metadata of
// the namespaces listed in forwarding_namespaces.
func TestMetadataForwarding(t *testing.T) {
	f := shippedFilter(t)
	f.MetadataOptions.ForwardingNamespaces = &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{"tollgate"}}
	e := newEnv(t, f, func(s *serverStream) error {
		return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			r := cont(req)
			if req.GetRequestHeaders() != nil {
				r.DynamicMetadata = metadata(t, map[string]any{"tollgate": map[string]any{"reservation": "r1"}})
			}
			return r
		})
	}, &upstreamRecorder{})
	if _, _, err := e.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil); err != nil {
		t.Fatal(err)
	}
	s := e.ext.nextStream(t)
	if got := s.got[1].GetMetadataContext().GetFilterMetadata()["tollgate"].GetFields()["reservation"].GetStringValue(); got != "r1" {
		t.Errorf("second message forwards %v", s.got[1].GetMetadataContext())
	}
}

// TestPerRouteOverrides checks ExtProcPerRoute.
//
// Envoy: mergePerRouteConfig applies the merged per-route config: disabled
// turns every message off; processing_mode replaces the filter's;
// grpc_service sends the stream to another cluster. The route's config is
// merged over the virtual host's (FilterConfigPerRoute merge: the more
// specific wins each field it sets).
func TestPerRouteOverrides(t *testing.T) {
	other := startExtServer(t, func(s *serverStream) error { return s.answerAll(nil) })
	noBody := &extprocv3.ProcessingMode{RequestHeaderMode: extprocv3.ProcessingMode_SEND, ResponseHeaderMode: extprocv3.ProcessingMode_SKIP}
	routes := []Route{
		{Name: "off", Prefix: "/off", ExtProc: &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Disabled{Disabled: true}}},
		{Name: "headers-only", Prefix: "/headers-only", ExtProc: &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{
			Overrides: &extprocv3.ExtProcOverrides{ProcessingMode: noBody}}}},
		{Name: "other", Prefix: "/other", ExtProc: &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{
			Overrides: &extprocv3.ExtProcOverrides{GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "other"}}}}}}},
		{Name: "llm", Prefix: "/"},
	}
	vhost := &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
		ProcessingMode: &extprocv3.ProcessingMode{RequestHeaderMode: extprocv3.ProcessingMode_SEND, ResponseHeaderMode: extprocv3.ProcessingMode_SEND}}}}
	up := &upstreamRecorder{}
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error { return s.answerAll(nil) }, up, func(o *Options) {
		o.Routes = routes
		o.VirtualHostExtProc = vhost
		o.Clusters = map[string]string{"other": other.addr}
	})
	tests := []struct {
		path      string
		server    *extServer
		wantKinds string
	}{
		// The virtual host's mode (headers only, both ways) applies where
		// the route sets none.
		{"/v1/chat", e.ext, "request_headers,response_headers"},
		{"/headers-only", e.ext, "request_headers"},
		{"/other", other, "request_headers,response_headers"},
		{"/off", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, _, err := e.do(t, http.MethodPost, tt.path, `{"model":"m"}`, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%v %v", resp, err)
			}
			rec := e.record(t)
			if tt.server == nil {
				if rec.MessagesSent != 0 {
					t.Errorf("%d messages sent on a disabled route", rec.MessagesSent)
				}
				return
			}
			if got := strings.Join(kinds(tt.server.nextStream(t).got), ","); got != tt.wantKinds {
				t.Errorf("messages = %s, want %s", got, tt.wantKinds)
			}
			if rec.RouteName == "" {
				t.Error("no route name")
			}
		})
	}
}

// TestShippedProbeRouteSkipsExtProc serves envoy.yaml's /ready route: a
// direct response with ext_proc disabled.
func TestShippedProbeRouteSkipsExtProc(t *testing.T) {
	cfg, err := LoadConfig(shippedYAML)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, cfg.Filter, func(s *serverStream) error { return s.answerAll(nil) }, &upstreamRecorder{},
		func(o *Options) { o.Routes = cfg.Routes })
	resp, body, err := e.do(t, http.MethodGet, "/ready", "", nil)
	if err != nil || resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("%v %q %v", resp, body, err)
	}
	if rec := e.record(t); rec.MessagesSent != 0 || rec.RouteName != "envoy_ready" {
		t.Errorf("record = %+v", rec)
	}
}

// TestStreamedRequestBody checks STREAMED on the request path: chunks go to
// ext_proc as they arrive and each answer replaces its own chunk upstream.
//
// Envoy: the same STREAMED machinery serves both directions (Filter::onData);
// content-length is removed from the request (shouldRemoveContentLength).
func TestStreamedRequestBody(t *testing.T) {
	f := shippedFilter(t)
	f.ProcessingMode.RequestBodyMode = extprocv3.ProcessingMode_STREAMED
	up := &upstreamRecorder{}
	e := newEnv(t, f, func(s *serverStream) error {
		return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if b := req.GetRequestBody(); b != nil {
				return answer(req, &extprocsvc.CommonResponse{BodyMutation: &extprocsvc.BodyMutation{
					Mutation: &extprocsvc.BodyMutation_Body{Body: []byte(strings.ToUpper(string(b.GetBody())))}}})
			}
			return nil
		})
	}, up)
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "hello ")
		_, _ = io.WriteString(pw, "world")
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, e.url+"/v1/completions", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	r, body := up.last(t)
	if body != "HELLO WORLD" || r.ContentLength != -1 {
		t.Errorf("upstream got %q (content length %d)", body, r.ContentLength)
	}
	got := kinds(e.ext.nextStream(t).got)
	if !strings.Contains(strings.Join(got, ","), "request_body(eos)") {
		t.Errorf("messages = %v", got)
	}
}

// TestBufferedResponseBody checks BUFFERED on the response path: the headers
// wait for the body's answer, whose header mutations still apply.
//
// Envoy: in BUFFERED mode the response headers are held until the body is
// processed; "header mutations will only take effect if the current
// processing mode for the body is BUFFERED" (CommonResponse docs).
func TestBufferedResponseBody(t *testing.T) {
	f := shippedFilter(t)
	f.ProcessingMode.ResponseBodyMode = extprocv3.ProcessingMode_BUFFERED
	e := newEnv(t, f, func(s *serverStream) error {
		return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if req.GetResponseBody() != nil {
				return answer(req, &extprocsvc.CommonResponse{
					HeaderMutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("x-total-tokens", "42")},
						RemoveHeaders: []string{"content-length"}},
					BodyMutation: &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: []byte(`{"redacted":true}`)}}})
			}
			return nil
		})
	}, &upstreamRecorder{})
	resp, body, err := e.do(t, http.MethodGet, "/v1/models", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Total-Tokens") != "42" || body != `{"redacted":true}` {
		t.Errorf("client got %v %q", resp.Header, body)
	}
}
