package processor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"

	"github.com/tollgate-ai/tollgate/telemetry"
)

// directStream feeds a Server's Process loop without gRPC, so the benchmark
// measures tollgate's own work per message and nothing of the transport.
type directStream struct {
	extprocv3.ExternalProcessor_ProcessServer
	ctx  context.Context
	reqs []*extprocv3.ProcessingRequest
	i    int
	sent int
}

func (d *directStream) Context() context.Context { return d.ctx }
func (d *directStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if d.i == len(d.reqs) {
		return nil, io.EOF
	}
	d.i++
	return d.reqs[d.i-1], nil
}
func (d *directStream) Send(*extprocv3.ProcessingResponse) error { d.sent++; return nil }
func (d *directStream) SetHeader(metadata.MD) error              { return nil }
func (d *directStream) SendHeader(metadata.MD) error             { return nil }
func (d *directStream) SetTrailer(metadata.MD)                   {}

// benchRequest is the standard shape: a 2 KiB user message, stream: true,
// 200 SSE chunks with usage in the last.
func benchRequest() []*extprocv3.ProcessingRequest {
	msg := strings.Repeat("Summarize the quarterly report for the board. ", 2048/47)
	body := fmt.Sprintf(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":%q}]}`, msg)
	deltas := make([]string, 199)
	for i := range deltas {
		deltas[i] = " token"
	}
	stream, _ := chatStream(deltas, 480, 200)
	events := bytes.SplitAfter(stream, []byte("\n\n"))
	reqs := []*extprocv3.ProcessingRequest{
		requestHeaders(false, chatHeaders("sk-a")...),
		requestBody(body),
		responseHeaders(false, ":status", "200", "content-type", "text/event-stream"),
	}
	for i, ev := range events {
		if len(ev) == 0 {
			continue
		}
		reqs = append(reqs, responseBody(ev, i == len(events)-1 || len(events[i+1]) == 0))
	}
	return reqs
}

// BenchmarkRequest is one whole request through the processor: headers,
// 2 KiB body, response headers and ~200 streamed chunks, with a token
// window, a request window and a quota on the in-memory store.
func BenchmarkRequest(b *testing.B) {
	b.Run("telemetry=off", func(b *testing.B) { benchmarkRequest(b, false) })
	b.Run("telemetry=on", func(b *testing.B) { benchmarkRequest(b, true) })
}

func benchmarkRequest(b *testing.B, withTelemetry bool) {
	f := newFixture(b, `
token_ratelimit:
  - rule_name: tpm
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", token_per_minute: 1000000000}]}]
request_ratelimit:
  - rule_name: rpm
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", query_per_minute: 1000000000}]}]
quota:
  default: {tokens: 1000000000000}
`)
	if withTelemetry {
		tel, err := telemetry.New(context.Background(), telemetry.Config{RequestLog: "off"}, telemetry.Options{
			Consumers: func() []string { return []string{"team-a"} },
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
		f.server.o.Telemetry = tel
	}
	reqs := benchRequest()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := &directStream{ctx: ctx, reqs: reqs}
		if err := f.server.Process(d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(reqs)), "msgs/req")
}

// BenchmarkResponseChunk is the steady state of a streamed response: one
// response body message in, its answer out. It allocates nothing.
func BenchmarkResponseChunk(b *testing.B) {
	f := newFixture(b, "")
	st := &stream{}
	st.reset(f.server, f.server.Policy())
	ctx := context.Background()
	reqs := benchRequest()
	for _, r := range reqs[:3] {
		st.handle(ctx, r)
	}
	chunk := responseBody([]byte("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" token\"}}],\"usage\":null}\n\n"), false)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk.GetResponseBody().GetBody())))
	for b.Loop() {
		st.handle(ctx, chunk)
		st.sent()
	}
}
