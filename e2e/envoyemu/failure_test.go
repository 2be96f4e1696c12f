package envoyemu

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// silent never answers request headers.
func silent(s *serverStream) error {
	_, _ = s.recv()
	<-s.srv.Context().Done()
	return nil
}

// TestMessageTimeout checks an unanswered message.
//
// Envoy: Filter::onMessageTimeout answers 504 with details
// "ext_proc_error_per-message_timeout_exceeded" (the ext_proc_timeout_error
// behaviour); with failure_mode_allow it ignores the processor for the rest
// of the request and carries on.
func TestMessageTimeout(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "fail closed", true: "failure_mode_allow"}[allow], func(t *testing.T) {
			f := shippedFilter(t)
			f.MessageTimeout = durationpb.New(30 * time.Millisecond)
			f.FailureModeAllow = allow
			up := &upstreamRecorder{}
			e := newEnv(t, f, silent, up)
			resp, _, err := e.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := e.record(t)
			if allow {
				if resp.StatusCode != 200 || up.count() != 1 {
					t.Errorf("status %d, upstream requests %d: want the request through unprocessed", resp.StatusCode, up.count())
				}
				return
			}
			if resp.StatusCode != http.StatusGatewayTimeout || rec.ResponseCodeDetails != "ext_proc_error_per-message_timeout_exceeded" || up.count() != 0 {
				t.Errorf("status %d details %q upstream %d", resp.StatusCode, rec.ResponseCodeDetails, up.count())
			}
		})
	}
}

// TestDefaultMessageTimeout checks message_timeout's default.
//
// Envoy: "If not configured, default is 200 milliseconds" (ExternalProcessor
// message_timeout docs).
func TestDefaultMessageTimeout(t *testing.T) {
	f := shippedFilter(t)
	f.MessageTimeout = nil
	e := newEnv(t, f, silent, &upstreamRecorder{})
	x := e.proxy.newExchange(nil, httptestRequest(t))
	if x.timeout != 200*time.Millisecond {
		t.Errorf("timeout = %v", x.timeout)
	}
	if y := newEnv(t, shippedFilter(t), silent, &upstreamRecorder{}).proxy.newExchange(nil, httptestRequest(t)); y.timeout != time.Second {
		t.Errorf("shipped message_timeout = %v, want envoy.yaml's 1s", y.timeout)
	}
}

func httptestRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, "http://front/v1/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOverrideMessageTimeout checks a server asking for more time.
//
// Envoy: override_message_timeout restarts the timer once per message when
// it lies within [1ms, max_message_timeout]; with max_message_timeout unset
// the API is off; the rest of such a message is ignored (Filter::onNewTimeout).
func TestOverrideMessageTimeout(t *testing.T) {
	for _, tt := range []struct {
		name       string
		max        time.Duration
		wantStatus int
	}{
		{"within max_message_timeout", time.Second, 200},
		{"max_message_timeout unset", 0, 504},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := shippedFilter(t)
			f.MessageTimeout = durationpb.New(40 * time.Millisecond)
			f.MaxMessageTimeout = nil
			if tt.max > 0 {
				f.MaxMessageTimeout = durationpb.New(tt.max)
			}
			e := newEnv(t, f, func(s *serverStream) error {
				first := true
				return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					if first {
						first = false
						if err := s.send(&extprocsvc.ProcessingResponse{OverrideMessageTimeout: durationpb.New(500 * time.Millisecond)}); err != nil {
							return nil
						}
						// Well past message_timeout, well within the override.
						time.Sleep(150 * time.Millisecond)
					}
					return nil
				})
			}, &upstreamRecorder{})
			resp, _, err := e.do(t, http.MethodGet, "/v1/models", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
}

// TestStreamFailures checks a failing, unreachable or closing ext_proc server.
//
// Envoy: a gRPC error fails the request with status_on_error (500) and
// details "ext_proc_error_gRPC_error_<code>{<message>}", or carries on with
// failure_mode_allow (Filter::onGrpcError); an unreachable cluster is a gRPC
// error too; a stream the server closes with OK ends processing and the
// request carries on unprocessed whatever failure_mode_allow says
// (Filter::onGrpcClose).
func TestStreamFailures(t *testing.T) {
	fail := func(s *serverStream) error { _, _ = s.recv(); return status.Error(codes.Internal, "boom") }
	closeOK := func(s *serverStream) error { _, _ = s.recv(); s.closeNow = true; return nil }
	tests := []struct {
		name        string
		script      script
		unreachable bool
		allow       bool
		wantStatus  int
		wantDetails string
	}{
		{"gRPC error fails closed", fail, false, false, 500, "ext_proc_error_gRPC_error_13{rpc error: code = Internal desc = boom}"},
		{"gRPC error with failure_mode_allow", fail, false, true, 200, "via_upstream"},
		{"unreachable server fails closed", nil, true, false, 500, "ext_proc_error_gRPC_error_14"},
		{"unreachable server with failure_mode_allow", nil, true, true, 200, "via_upstream"},
		{"server closes the stream with OK", closeOK, false, false, 200, "via_upstream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := shippedFilter(t)
			f.FailureModeAllow = tt.allow
			sc := tt.script
			if sc == nil {
				sc = func(s *serverStream) error { return s.answerAll(nil) }
			}
			up := &upstreamRecorder{}
			e := newEnv(t, f, sc, up, func(o *Options) {
				if tt.unreachable {
					lis, err := net.Listen("tcp", "127.0.0.1:0")
					if err != nil {
						t.Fatal(err)
					}
					o.ExtProcAddr = lis.Addr().String()
					lis.Close()
				}
			})
			resp, _, err := e.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := e.record(t)
			if resp.StatusCode != tt.wantStatus || !strings.HasPrefix(rec.ResponseCodeDetails, tt.wantDetails) {
				t.Errorf("status %d details %q, want %d %q", resp.StatusCode, rec.ResponseCodeDetails, tt.wantStatus, tt.wantDetails)
			}
			if (tt.wantStatus == 200) != (up.count() == 1) {
				t.Errorf("upstream requests = %d", up.count())
			}
		})
	}
}

// TestSpuriousMessage checks an answer of the wrong kind.
//
// Envoy: a message that does not match the state is spurious: the request
// fails with status_on_error unless failure_mode_allow, which ignores the
// processor for the rest of the request (ext_proc_fail_close_spurious_resp).
func TestSpuriousMessage(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "fail closed", true: "failure_mode_allow"}[allow], func(t *testing.T) {
			f := shippedFilter(t)
			f.FailureModeAllow = allow
			up := &upstreamRecorder{}
			e := newEnv(t, f, func(s *serverStream) error {
				return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					if req.GetRequestHeaders() != nil {
						return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ResponseBody{ResponseBody: &extprocsvc.BodyResponse{}}}
					}
					return nil
				})
			}, up)
			resp, _, err := e.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := map[bool]int{false: 500, true: 200}[allow]
			if resp.StatusCode != want {
				t.Errorf("status = %d, want %d", resp.StatusCode, want)
			}
		})
	}
}

// TestModeOverride checks mode_override.
//
// Envoy: honoured only with allow_mode_override and only in answers to
// headers (onReceiveMessage, inHeaderProcessState); body modes are taken as
// given, so an override naming only the response body mode also sets the
// request body mode to NONE (effectiveModeOverride); a body answer's
// override is ignored. The upstream's small body ends at its content-length
// in one read, so its one chunk carries end_of_stream, as Envoy's codec
// delivers it.
func TestModeOverride(t *testing.T) {
	none := &extprocv3.ProcessingMode{ResponseBodyMode: extprocv3.ProcessingMode_NONE}
	tests := []struct {
		name      string
		allow     bool
		on        string
		wantKinds string
	}{
		{"response headers answer turns off the response body", true, "response_headers",
			"request_headers,request_body(eos),response_headers"},
		{"ignored without allow_mode_override", false, "response_headers",
			"request_headers,request_body(eos),response_headers,response_body(eos)"},
		{"request headers answer: request body mode becomes NONE too", true, "request_headers",
			"request_headers,response_headers"},
		{"ignored in a body answer", true, "request_body",
			"request_headers,request_body(eos),response_headers,response_body(eos)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := shippedFilter(t)
			f.AllowModeOverride = tt.allow
			e := newEnv(t, f, func(s *serverStream) error {
				return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					r := cont(req)
					if k := kinds([]*extprocsvc.ProcessingRequest{req})[0]; strings.TrimSuffix(k, "(eos)") == tt.on {
						r.ModeOverride = none
					}
					return r
				})
			}, &upstreamRecorder{})
			if resp, _, err := e.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%v %v", resp, err)
			}
			if got := strings.Join(kinds(e.ext.nextStream(t).got), ","); got != tt.wantKinds {
				t.Errorf("messages = %s\nwant       %s", got, tt.wantKinds)
			}
		})
	}
}
