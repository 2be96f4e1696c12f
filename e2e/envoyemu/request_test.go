package envoyemu

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// TestRequestHeadersMessage checks the first message of a stream.
//
// Envoy: MutationUtils::headersToProto puts every header, pseudo-headers
// included, in raw_value (send_header_raw_value); HttpHeaders.end_of_stream
// is set when there is no body (Filter::onHeaders); encodeProtocolConfig adds
// protocol_config to the first message only; addAttributes sends the
// request_attributes once, keyed "envoy.filters.http.ext_proc"; the
// connection manager, as an edge proxy (use_remote_address), strips the
// client's x-envoy-* headers and gives the request a fresh x-request-id.
func TestRequestHeadersMessage(t *testing.T) {
	for _, tt := range []struct {
		name, method, body string
		wantEOS            bool
	}{
		{"GET without body", http.MethodGet, "", true},
		{"POST with body", http.MethodPost, `{"model":"m"}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, shippedFilter(t), func(s *serverStream) error { return s.answerAll(nil) }, &upstreamRecorder{})
			resp, _, err := e.do(t, tt.method, "/v1/chat/completions?x=1", tt.body, http.Header{
				"X-Request-Id": {"client-chosen"}, "X-Envoy-Retry-On": {"5xx"}, "Authorization": {"Bearer tg-key"}})
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %v err %v", resp, err)
			}
			s := e.ext.nextStream(t)
			first := s.got[0].GetRequestHeaders()
			if first == nil {
				t.Fatalf("first message is %v", kinds(s.got))
			}
			if first.GetEndOfStream() != tt.wantEOS {
				t.Errorf("end_of_stream = %v, want %v", first.GetEndOfStream(), tt.wantEOS)
			}
			for k, want := range map[string]string{":method": tt.method, ":path": "/v1/chat/completions?x=1", ":scheme": "http", "authorization": "Bearer tg-key"} {
				if got, _ := headerValue(first.GetHeaders(), k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for _, hv := range first.GetHeaders().GetHeaders() {
				if hv.GetValue() != "" {
					t.Errorf("header %s sent in value, not raw_value", hv.GetKey())
				}
				if strings.HasPrefix(hv.GetKey(), "x-envoy-") {
					t.Errorf("client's %s reached ext_proc", hv.GetKey())
				}
			}
			if _, ok := headerValue(first.GetHeaders(), ":authority"); !ok {
				t.Error("no :authority")
			}
			if id, _ := headerValue(first.GetHeaders(), "x-request-id"); id == "" || id == "client-chosen" {
				t.Errorf("x-request-id = %q, want one Envoy generated", id)
			}
			if s.got[0].GetProtocolConfig() == nil {
				t.Error("first message has no protocol_config")
			}
			attrs := s.got[0].GetAttributes()["envoy.filters.http.ext_proc"]
			if attrs.GetFields()["xds.route_name"].GetStringValue() != "llm" {
				t.Errorf("attributes = %v, want xds.route_name llm", attrs)
			}
			for _, later := range s.got[1:] {
				if later.GetProtocolConfig() != nil {
					t.Error("protocol_config sent again")
				}
				if _, ok := later.GetAttributes()["envoy.filters.http.ext_proc"]; ok && later.GetRequestHeaders() == nil && later.GetRequestBody() != nil {
					t.Error("request attributes sent again")
				}
			}
			if s.got[0].GetMetadataContext() == nil {
				t.Error("no metadata_context")
			}
		})
	}
}

// TestBufferedRequestBody checks BUFFERED request bodies.
//
// Envoy: in BUFFERED mode the whole body goes in one HttpBody with
// end_of_stream true (Filter::onData); the content-length is kept with
// request_header_mode SEND (shouldRemoveContentLength), and a body mutation
// whose length differs from it is refused with a local reply
// ("mismatch between content length and the length of the mutated body",
// ProcessorState::handleBodyResponse) unless the server fixes or removes the
// header in the same answer.
func TestBufferedRequestBody(t *testing.T) {
	const body = `{"model":"gpt-4o","stream":true}`
	const mutated = `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`
	tests := []struct {
		name       string
		answer     *extprocsvc.CommonResponse
		wantStatus int
		wantBody   string
		wantCL     int64
	}{
		{"no mutation keeps body and content-length", &extprocsvc.CommonResponse{}, 200, body, int64(len(body))},
		{"mutation without fixing content-length is refused", &extprocsvc.CommonResponse{
			BodyMutation: &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: []byte(mutated)}}}, 500, "", 0},
		{"mutation with content-length set", &extprocsvc.CommonResponse{
			HeaderMutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-length", strconv.Itoa(len(mutated)))}},
			BodyMutation:   &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: []byte(mutated)}}}, 200, mutated, int64(len(mutated))},
		{"mutation with content-length removed", &extprocsvc.CommonResponse{
			HeaderMutation: &extprocsvc.HeaderMutation{RemoveHeaders: []string{"content-length"}},
			BodyMutation:   &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: []byte(mutated)}}}, 200, mutated, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &upstreamRecorder{}
			e := newEnv(t, shippedFilter(t), func(s *serverStream) error {
				return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					if req.GetRequestBody() != nil {
						return answer(req, tt.answer)
					}
					return nil
				})
			}, up)
			resp, _, err := e.do(t, http.MethodPost, "/v1/chat/completions", body, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			s := e.ext.nextStream(t)
			if got := kinds(s.got)[:2]; got[0] != "request_headers" || got[1] != "request_body(eos)" {
				t.Errorf("messages = %v", kinds(s.got))
			}
			if string(s.got[1].GetRequestBody().GetBody()) != body {
				t.Errorf("body message = %q", s.got[1].GetRequestBody().GetBody())
			}
			if tt.wantStatus != 200 {
				if up.count() != 0 {
					t.Error("a refused request reached the upstream")
				}
				if d := e.record(t).ResponseCodeDetails; !strings.Contains(d, "mismatch") {
					t.Errorf("details = %q", d)
				}
				return
			}
			r, got := up.last(t)
			if got != tt.wantBody || r.ContentLength != tt.wantCL {
				t.Errorf("upstream got %q with content length %d, want %q with %d", got, r.ContentLength, tt.wantBody, tt.wantCL)
			}
		})
	}
}

// TestBufferedRequestBodyOverLimit checks the 413 for a body over the buffer
// limit, and that this local reply, made by Envoy and not by ext_proc, still
// goes through ext_proc's response path.
//
// Envoy: BUFFERED mode "If the body exceeds the configured buffer limit, then
// the downstream system will receive an error" (ProcessingMode docs); the
// connection manager's local reply runs the encoder filters while
// processing_complete_ is false.
func TestBufferedRequestBodyOverLimit(t *testing.T) {
	up := &upstreamRecorder{}
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error { return s.answerAll(nil) }, up, func(o *Options) {
		o.Routes = []Route{{Name: "llm", Prefix: "/", RequestBodyLimit: 16}}
	})
	resp, _, err := e.do(t, http.MethodPost, "/v1/chat/completions", strings.Repeat("x", 17), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || up.count() != 0 {
		t.Fatalf("status %d, upstream requests %d", resp.StatusCode, up.count())
	}
	s := e.ext.nextStream(t)
	if got := strings.Join(kinds(s.got), ","); got != "request_headers,response_headers,response_body,response_body(eos)" {
		t.Errorf("messages = %s", got)
	}
	if st, _ := headerValue(s.got[1].GetResponseHeaders().GetHeaders(), ":status"); st != "413" {
		t.Errorf(":status = %q", st)
	}
}

// TestContinueAndReplaceOnRequestHeaders replaces the body from the headers
// answer.
//
// Envoy: CONTINUE_AND_REPLACE with a body mutation replaces the body, drops
// the content-length and sends nothing more for this direction
// (ProcessorState::handleHeadersResponseWithContinueAndReplace).
func TestContinueAndReplaceOnRequestHeaders(t *testing.T) {
	up := &upstreamRecorder{}
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error {
		return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if req.GetRequestHeaders() != nil {
				return answer(req, &extprocsvc.CommonResponse{Status: extprocsvc.CommonResponse_CONTINUE_AND_REPLACE,
					BodyMutation: &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: []byte("replaced")}}})
			}
			return nil
		})
	}, up)
	if resp, _, err := e.do(t, http.MethodPost, "/v1/completions", "original body", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	r, body := up.last(t)
	if body != "replaced" || r.ContentLength != -1 {
		t.Errorf("upstream got %q (content length %d)", body, r.ContentLength)
	}
	if got := kinds(e.ext.nextStream(t).got); strings.Contains(strings.Join(got, ","), "request_body") {
		t.Errorf("request body sent after CONTINUE_AND_REPLACE: %v", got)
	}
}
