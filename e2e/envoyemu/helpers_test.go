package envoyemu

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

const shippedYAML = "../../envoy/envoy.yaml"

// shippedFilter is the ext_proc filter of tollgate's own envoy.yaml; tests
// change a copy when they need other settings.
func shippedFilter(t testing.TB) *extprocv3.ExternalProcessor {
	t.Helper()
	f, err := LoadFilterConfig(shippedYAML)
	if err != nil {
		t.Fatal(err)
	}
	return proto.Clone(f).(*extprocv3.ExternalProcessor)
}

// script is what a scripted ext_proc server does with one stream.
type script func(s *serverStream) error

// serverStream wraps a server-side stream, keeping what it received.
type serverStream struct {
	srv extprocsvc.ExternalProcessor_ProcessServer
	got []*extprocsvc.ProcessingRequest
	// end is how the stream ended for the server (io.EOF, a cancellation...).
	end error
	// closeNow makes the server end the stream as soon as the script
	// returns, instead of waiting to see how the client ends it.
	closeNow bool
}

func (s *serverStream) recv() (*extprocsvc.ProcessingRequest, error) {
	req, err := s.srv.Recv()
	if err != nil {
		s.end = err
		return nil, err
	}
	s.got = append(s.got, req)
	return req, nil
}

func (s *serverStream) send(r *extprocsvc.ProcessingResponse) error { return s.srv.Send(r) }

// answerAll answers every message with fn's answer (CONTINUE when fn is nil
// or returns nil) until the stream ends.
func (s *serverStream) answerAll(fn func(*extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse) error {
	for {
		req, err := s.recv()
		if err != nil {
			return nil
		}
		var resp *extprocsvc.ProcessingResponse
		if fn != nil {
			resp = fn(req)
		}
		if resp == nil {
			resp = cont(req)
		}
		if err := s.send(resp); err != nil {
			return nil
		}
	}
}

// extServer is a scripted ext_proc gRPC server.
type extServer struct {
	extprocsvc.UnimplementedExternalProcessorServer
	addr   string
	script script
	mu     sync.Mutex
	ended  []*serverStream
	doneCh chan *serverStream
}

func startExtServer(t testing.TB, sc script) *extServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &extServer{addr: lis.Addr().String(), script: sc, doneCh: make(chan *serverStream, 100)}
	gs := grpc.NewServer()
	extprocsvc.RegisterExternalProcessorServer(gs, e)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return e
}

// Process implements [extprocsvc.ExternalProcessorServer].
func (e *extServer) Process(srv extprocsvc.ExternalProcessor_ProcessServer) error {
	s := &serverStream{srv: srv}
	err := e.script(s)
	if s.end == nil && err == nil && !s.closeNow {
		// Wait for the client to end the stream, to see how it does.
		for {
			if _, rerr := s.recv(); rerr != nil {
				break
			}
		}
	}
	e.doneCh <- s
	return err
}

// nextStream waits for a stream to end on the server.
func (e *extServer) nextStream(t testing.TB) *serverStream {
	t.Helper()
	select {
	case s := <-e.doneCh:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no ext_proc stream ended")
		return nil
	}
}

// env is a downstream client → emulator → upstream chain.
type env struct {
	proxy   *Proxy
	url     string
	ext     *extServer
	records chan Record
}

func newEnv(t testing.TB, f *extprocv3.ExternalProcessor, sc script, upstream http.Handler, mod ...func(*Options)) *env {
	t.Helper()
	ext := startExtServer(t, sc)
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	u, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	records := make(chan Record, 100)
	opts := Options{Filter: f, ExtProcAddr: ext.addr, Upstream: u, RouteName: "llm",
		OnComplete: func(r Record) { records <- r }}
	for _, m := range mod {
		m(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return &env{proxy: p, url: front.URL, ext: ext, records: records}
}

func (e *env) record(t testing.TB) Record {
	t.Helper()
	select {
	case r := <-e.records:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no record")
		return Record{}
	}
}

// do sends a request through the emulator and reads the whole response.
func (e *env) do(t testing.TB, method, path, body string, hdr http.Header) (*http.Response, string, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// upstreamRecorder is an upstream that keeps the requests it got.
type upstreamRecorder struct {
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
	reply  func(w http.ResponseWriter, r *http.Request)
}

func (u *upstreamRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, r)
	u.bodies = append(u.bodies, string(b))
	u.mu.Unlock()
	if u.reply != nil {
		u.reply(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func (u *upstreamRecorder) last(t *testing.T) (*http.Request, string) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream got no request")
	}
	return u.reqs[len(u.reqs)-1], u.bodies[len(u.bodies)-1]
}

func (u *upstreamRecorder) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// cont is the plain CONTINUE answer to req.
func cont(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
	return answer(req, &extprocsvc.CommonResponse{})
}

// answer wraps a CommonResponse in the answer type matching req.
func answer(req *extprocsvc.ProcessingRequest, cr *extprocsvc.CommonResponse) *extprocsvc.ProcessingResponse {
	switch req.GetRequest().(type) {
	case *extprocsvc.ProcessingRequest_RequestHeaders:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvc.HeadersResponse{Response: cr}}}
	case *extprocsvc.ProcessingRequest_ResponseHeaders:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvc.HeadersResponse{Response: cr}}}
	case *extprocsvc.ProcessingRequest_RequestBody:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_RequestBody{RequestBody: &extprocsvc.BodyResponse{Response: cr}}}
	case *extprocsvc.ProcessingRequest_ResponseBody:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ResponseBody{ResponseBody: &extprocsvc.BodyResponse{Response: cr}}}
	}
	return &extprocsvc.ProcessingResponse{}
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}}
}

func immediate(code int, body string, hdrs ...*corev3.HeaderValueOption) *extprocsvc.ProcessingResponse {
	return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocsvc.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
		Body:    []byte(body),
		Headers: &extprocsvc.HeaderMutation{SetHeaders: hdrs},
		Details: "tollgate rejected",
	}}}
}

func metadata(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// headerValue returns a header of a proto header map, reading raw_value as
// Envoy fills it.
func headerValue(h *corev3.HeaderMap, k string) (string, bool) {
	for _, e := range h.GetHeaders() {
		if e.GetKey() == k {
			return string(e.GetRawValue()), true
		}
	}
	return "", false
}

// kinds lists the message kinds a stream received, for comparisons.
func kinds(reqs []*extprocsvc.ProcessingRequest) []string {
	var out []string
	for _, r := range reqs {
		switch v := r.GetRequest().(type) {
		case *extprocsvc.ProcessingRequest_RequestHeaders:
			out = append(out, "request_headers")
		case *extprocsvc.ProcessingRequest_RequestBody:
			if v.RequestBody.GetEndOfStream() {
				out = append(out, "request_body(eos)")
			} else {
				out = append(out, "request_body")
			}
		case *extprocsvc.ProcessingRequest_ResponseHeaders:
			out = append(out, "response_headers")
		case *extprocsvc.ProcessingRequest_ResponseBody:
			if v.ResponseBody.GetEndOfStream() {
				out = append(out, "response_body(eos)")
			} else {
				out = append(out, "response_body")
			}
		}
	}
	return out
}

var errScript = errors.New("scripted failure")
