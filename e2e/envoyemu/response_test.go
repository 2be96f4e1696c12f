package envoyemu

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate-ai/tollgate/e2e/fakellm"
)

func fakeLLM(t testing.TB) *fakellm.Server {
	t.Helper()
	s, err := fakellm.New(fakellm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStreamedResponseBody checks STREAMED response bodies.
//
// Envoy: each data frame becomes one HttpBody (Filter::onData, STREAMED);
// "If responding to an HttpBody request, simply replace or clear the body
// chunk that was sent with that request" (CommonResponse.body_mutation);
// the last chunk carries end_of_stream, an empty one when the upstream's end
// comes alone; content-length is removed downstream in STREAMED mode
// (shouldRemoveContentLength) after the response headers were sent to
// ext_proc with it.
func TestStreamedResponseBody(t *testing.T) {
	const upstreamBody = "first|second|third"
	// The upstream writes the next part only once ext_proc saw the last one,
	// so that each part is one read, one chunk.
	seen := make(chan struct{}, 10)
	up := &upstreamRecorder{reply: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "18")
		for i, part := range strings.SplitAfter(upstreamBody, "|") {
			if i > 0 {
				<-seen
			}
			_, _ = io.WriteString(w, part)
			_ = http.NewResponseController(w).Flush()
		}
	}}
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error {
		return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if req.GetResponseBody() != nil {
				seen <- struct{}{}
			}
			if b := req.GetResponseBody(); b != nil && strings.Contains(string(b.GetBody()), "second") {
				return answer(req, &extprocsvc.CommonResponse{BodyMutation: &extprocsvc.BodyMutation{
					Mutation: &extprocsvc.BodyMutation_Body{Body: []byte("SECOND!|")}}})
			}
			return nil
		})
	}, up)
	resp, body, err := e.do(t, http.MethodGet, "/v1/models", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := e.ext.nextStream(t)
	var chunks []string
	for _, m := range s.got {
		if b := m.GetResponseBody(); b != nil {
			chunks = append(chunks, string(b.GetBody()))
		}
	}
	if strings.Join(chunks, "") != upstreamBody || !s.got[len(s.got)-1].GetResponseBody().GetEndOfStream() {
		t.Fatalf("chunks sent = %q (messages %v)", chunks, kinds(s.got))
	}
	if !strings.Contains(body, "SECOND!|") || body != strings.Replace(upstreamBody, "second|", "SECOND!|", 1) {
		t.Errorf("client got %q: only the answered chunk may change", body)
	}
	if cl, _ := headerValue(s.got[1].GetResponseHeaders().GetHeaders(), "content-length"); cl != "18" {
		t.Errorf("ext_proc saw content-length %q, want the upstream's", cl)
	}
	if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
		t.Errorf("client got content-length %q in STREAMED mode", resp.Header.Get("Content-Length"))
	}
}

// TestStreamedChunksArePipelined proves chunks are sent before earlier ones
// are answered: the server reads two chunks before answering the first.
//
// Envoy: in STREAMED mode "we pipeline data from the proxy to the external
// processor" (Filter::onData comment); answers are matched to the queued
// chunks in order.
func TestStreamedChunksArePipelined(t *testing.T) {
	llm := fakeLLM(t)
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error {
		var pending []*extprocsvc.ProcessingRequest
		for {
			req, err := s.recv()
			if err != nil {
				return nil
			}
			if req.GetResponseBody() == nil {
				if err := s.send(cont(req)); err != nil {
					return nil
				}
				continue
			}
			pending = append(pending, req)
			if len(pending) < 2 && !req.GetResponseBody().GetEndOfStream() {
				continue
			}
			for _, p := range pending {
				if err := s.send(cont(p)); err != nil {
					return nil
				}
			}
			pending = nil
		}
	}, llm)
	resp, body, err := e.do(t, http.MethodPost, "/v1/chat/completions",
		`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, http.Header{"X-Fakellm-Chunks": {"6"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	if !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Errorf("stream incomplete: %q", body)
	}
}

// TestImmediateResponse checks immediate responses sent before the response
// started.
//
// Envoy: an ImmediateResponse makes sendLocalReply send its status, headers
// (subject to the filter's mutation rules, so x-envoy-* is ignored) and body
// to the client; processing is then complete; a missing status is 200.
func TestImmediateResponse(t *testing.T) {
	for _, at := range []string{"request_headers", "request_body", "response_headers"} {
		t.Run(at, func(t *testing.T) {
			up := &upstreamRecorder{}
			e := newEnv(t, shippedFilter(t), func(s *serverStream) error {
				return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					if kinds([]*extprocsvc.ProcessingRequest{req})[0] == at || kinds([]*extprocsvc.ProcessingRequest{req})[0] == at+"(eos)" {
						r := immediate(http.StatusTooManyRequests, `{"error":{"message":"over limit"}}`,
							setHeader("content-type", "application/json"), setHeader("retry-after", "7"), setHeader("x-envoy-ratelimited", "true"))
						r.DynamicMetadata = metadata(t, map[string]any{"tollgate": map[string]any{"consumer": "alice"}})
						return r
					}
					return nil
				})
			}, up)
			resp, body, err := e.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 429 || body != `{"error":{"message":"over limit"}}` ||
				resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Retry-After") != "7" {
				t.Errorf("client got %d %v %q", resp.StatusCode, resp.Header, body)
			}
			if resp.Header.Get("X-Envoy-Ratelimited") != "" {
				t.Error("an x-envoy-* header was set by an immediate response")
			}
			rec := e.record(t)
			if rec.ResponseCodeDetails != "tollgate_rejected" || rec.DynamicMetadata["tollgate"].GetFields()["consumer"].GetStringValue() != "alice" {
				t.Errorf("record = %+v", rec)
			}
			if at != "response_headers" && up.count() != 0 {
				t.Error("a rejected request reached the upstream")
			}
		})
	}
}

// TestImmediateResponseAfterHeadersResets checks an immediate response to a
// response body chunk, when the headers already went downstream.
//
// Envoy: "If a response has already started ... this will either ship the
// reply directly to the downstream codec, or reset the stream"
// (ImmediateResponse docs); sendLocalReply after the response started resets.
func TestImmediateResponseAfterHeadersResets(t *testing.T) {
	llm := fakeLLM(t)
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error {
		bodies := 0
		return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if req.GetResponseBody() != nil {
				if bodies++; bodies == 2 {
					return immediate(http.StatusForbidden, "quota exhausted")
				}
			}
			return nil
		})
	}, llm)
	resp, body, err := e.do(t, http.MethodPost, "/v1/chat/completions",
		`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, http.Header{"X-Fakellm-Delay": {"5ms"}})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read err = %v (status %v, body %q), want the stream reset", err, resp, body)
	}
	if resp.StatusCode != 200 || strings.Contains(body, "quota exhausted") {
		t.Errorf("client got %d %q", resp.StatusCode, body)
	}
	if rec := e.record(t); !rec.Reset {
		t.Errorf("record = %+v, want Reset", rec)
	}
}

// TestClientDisconnectCancelsStream checks what the ext_proc server sees when
// the client goes away mid-stream.
//
// Envoy: on downstream reset the filter is destroyed and closes its stream
// (ExternalProcessorStreamImpl::close: half-close then reset) without ever
// sending a body with end_of_stream.
func TestClientDisconnectCancelsStream(t *testing.T) {
	llm := fakeLLM(t)
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error { return s.answerAll(nil) }, llm)
	req, err := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Fakellm-Chunks", "200")
	req.Header.Set("X-Fakellm-Delay", "10ms")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	s := e.ext.nextStream(t)
	for _, m := range s.got {
		if m.GetResponseBody().GetEndOfStream() {
			t.Fatal("ext_proc got end_of_stream from a stream the client abandoned")
		}
	}
	if s.end == nil {
		t.Fatal("the server's stream did not end")
	}
	if rec := e.record(t); rec.ResponseFlags != "DC" {
		t.Errorf("response flags = %q, want DC", rec.ResponseFlags)
	}
}

// TestStreamClosedAfterLastAnswer checks the server sees its stream end once
// the request is done, without a message it was not sent.
//
// Envoy: after the last answer the filter closes the stream
// (closeGrpcStreamIfLastRespReceived, or onDestroy): half-close, then reset.
func TestStreamClosedAfterLastAnswer(t *testing.T) {
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error { return s.answerAll(nil) }, fakeLLM(t))
	if resp, _, err := e.do(t, http.MethodPost, "/v1/chat/completions",
		`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	s := e.ext.nextStream(t)
	got := kinds(s.got)
	if got[len(got)-1] != "response_body(eos)" {
		t.Errorf("last message %q", got[len(got)-1])
	}
	if s.end == nil || !(errors.Is(s.end, io.EOF) || strings.Contains(s.end.Error(), "Canceled")) {
		t.Errorf("server's stream ended with %v, want EOF or cancellation", s.end)
	}
}

// TestUpstreamCutResetsClient checks a provider that breaks mid-stream.
//
// Envoy: an upstream reset after the response started resets the
// downstream stream ("UR"), and the ext_proc stream is closed without an
// end_of_stream body.
func TestUpstreamCutResetsClient(t *testing.T) {
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error { return s.answerAll(nil) }, fakeLLM(t))
	_, _, err := e.do(t, http.MethodPost, "/v1/chat/completions",
		`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, http.Header{"X-Fakellm-Fault": {"cut-after=2"}})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want a reset stream", err)
	}
	s := e.ext.nextStream(t)
	for _, m := range s.got {
		if m.GetResponseBody().GetEndOfStream() {
			t.Error("ext_proc got end_of_stream from a broken upstream")
		}
	}
	if rec := e.record(t); !rec.Reset || rec.ResponseFlags != "UR" {
		t.Errorf("record = %+v", rec)
	}
}

// TestUpstreamFailureGoesThroughExtProc checks Envoy's own 503 reaches
// ext_proc's response path.
//
// Envoy: the router's local reply for a connection failure runs the
// encoder filters, ext_proc included, while processing is not complete.
func TestUpstreamFailureGoesThroughExtProc(t *testing.T) {
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error { return s.answerAll(nil) }, &upstreamRecorder{}, func(o *Options) {
		u := *o.Upstream
		u.Host = "127.0.0.1:1"
		o.Upstream = &u
	})
	resp, _, err := e.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("%v %v", resp, err)
	}
	s := e.ext.nextStream(t)
	var status string
	for _, m := range s.got {
		if h := m.GetResponseHeaders(); h != nil {
			status, _ = headerValue(h.GetHeaders(), ":status")
		}
	}
	if status != "503" {
		t.Errorf("ext_proc saw response status %q (messages %v)", status, kinds(s.got))
	}
	if rec := e.record(t); rec.ResponseFlags != "UF" {
		t.Errorf("flags = %q", rec.ResponseFlags)
	}
}
