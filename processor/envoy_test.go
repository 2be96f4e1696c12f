package processor

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// envoy drives a Server the way Envoy's ext_proc filter does, over a real
// gRPC connection: one stream per request, each message answered before
// the next is sent.
type envoy struct {
	t      testing.TB
	client extprocv3.ExternalProcessorClient
}

func startEnvoy(t testing.TB, s *Server) *envoy {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.WaitForHandlers(true))
	extprocv3.RegisterExternalProcessorServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return &envoy{t: t, client: extprocv3.NewExternalProcessorClient(conn)}
}

// exchange is one request's ext_proc stream.
type exchange struct {
	t      testing.TB
	stream extprocv3.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
}

func (e *envoy) open() *exchange {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := e.client.Process(ctx)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	e.t.Cleanup(cancel)
	return &exchange{t: e.t, stream: st, cancel: cancel}
}

func (x *exchange) send(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	x.t.Helper()
	if err := x.stream.Send(req); err != nil {
		x.t.Fatalf("send: %v", err)
	}
	resp, err := x.stream.Recv()
	if err != nil {
		x.t.Fatalf("recv: %v", err)
	}
	return resp
}

// close ends the stream the way Envoy does after the last message.
func (x *exchange) close() {
	_ = x.stream.CloseSend()
	_, _ = x.stream.Recv() // wait for the server to finish (io.EOF)
}

func headerMap(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return hm
}

func requestHeaders(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(kv...), EndOfStream: eos}}}
}

func requestBody(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}}
}

func responseHeaders(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(kv...), EndOfStream: eos}}}
}

func responseBody(chunk []byte, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: chunk, EndOfStream: eos}}}
}

// immediateOf returns the immediate response in resp, or fails.
func immediateOf(t *testing.T, resp *extprocv3.ProcessingResponse) *extprocv3.ImmediateResponse {
	t.Helper()
	ir := resp.GetImmediateResponse()
	if ir == nil {
		t.Fatalf("want an immediate response, got %v", resp)
	}
	return ir
}

// mutationHeaders flattens a header mutation into name → value, and the
// removed names.
func mutationHeaders(m *extprocv3.HeaderMutation) (set map[string]string, removed []string) {
	set = map[string]string{}
	for _, h := range m.GetSetHeaders() {
		v := string(h.GetHeader().GetRawValue())
		if v == "" {
			v = h.GetHeader().GetValue()
		}
		set[h.GetHeader().GetKey()] = v
	}
	return set, m.GetRemoveHeaders()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
