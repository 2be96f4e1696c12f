package usage

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// benchStream is a 200-chunk chat stream, one event a chunk, ending with
// the usage chunk, from the recorded chat-streaming cassette's events.
func benchStream(b *testing.B) [][]byte {
	b.Helper()
	var events [][]byte
	for _, r := range loadRecorded(b) {
		if r.name == "chat-streaming" {
			for _, ev := range bytes.SplitAfter(r.response, []byte("\n\n")) {
				if bytes.Contains(ev, []byte(`"content":"`)) {
					events = append(events, ev)
				}
			}
		}
	}
	var chunks [][]byte
	for i := 0; len(chunks) < 198; i++ {
		chunks = append(chunks, events[i%len(events)])
	}
	chunks = append(chunks,
		[]byte(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-5-nano-2025-08-07","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":377,"total_tokens":385,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":320}}}`+"\n\n"),
		[]byte("data: [DONE]\n\n"))
	return chunks
}

// BenchmarkMeterWrite measures one Write of a 200-chunk chat stream; the
// Reset and Finish of each stream are included, amortized.
func BenchmarkMeterWrite(b *testing.B) {
	chunks := benchStream(b)
	size := 0
	for _, c := range chunks {
		size += len(c)
	}
	enc := encodingFor(b, "gpt-5-nano")
	for _, bc := range []struct {
		name string
		o    MeterOptions
		data [][]byte
	}{
		{"plain", MeterOptions{API: APIChatCompletions, SSE: true}, chunks},
		{"counting", MeterOptions{API: APIChatCompletions, SSE: true, Counter: enc.NewCounter()}, chunks},
		{"drop-usage", MeterOptions{API: APIChatCompletions, SSE: true, DropUsageChunk: true}, chunks},
		{"gzip", MeterOptions{API: APIChatCompletions, SSE: true, Encoding: "gzip"}, gzipChunks(b, chunks)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var m Meter
			m.Reset(bc.o)
			b.SetBytes(int64(size / len(chunks)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m.Write(bc.data[i])
				if i++; i == len(bc.data) {
					m.Finish()
					if u, ok := m.Usage(); !ok || u.Output != 377 {
						b.Fatalf("usage %+v", u)
					}
					if bc.o.Counter != nil {
						bc.o.Counter.Reset(enc)
					}
					m.Reset(bc.o)
					i = 0
				}
			}
		})
	}
}

// gzipChunks compresses a stream and cuts it into as many chunks.
func gzipChunks(b *testing.B, chunks [][]byte) [][]byte {
	gz := gzipBytes(b, bytes.Join(chunks, nil))
	n := (len(gz) + len(chunks) - 1) / len(chunks)
	var out [][]byte
	for off := 0; off < len(gz); off += n {
		out = append(out, gz[off:min(len(gz), off+n)])
	}
	return out
}

// benchRequest is a 2 KiB chat request with a system prompt, history, an
// image and a tool.
func benchRequest() []byte {
	var sb strings.Builder
	sb.WriteString(`{"model":"gpt-4o","stream":true,"max_completion_tokens":1024,"temperature":0.2,"messages":[`)
	sb.WriteString(`{"role":"system","content":"You are a careful assistant. Answer briefly and cite sources when you can."}`)
	for i := range 8 {
		fmt.Fprintf(&sb, `,{"role":"user","content":"Question %d: what is the capital of country number %d, and why is it \"famous\"?"}`, i, i)
		fmt.Fprintf(&sb, `,{"role":"assistant","content":"It is city %d. It is known for its history, its museums and its food."}`, i)
	}
	sb.WriteString(`,{"role":"user","content":[{"type":"text","text":"And this?"},{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}}]}]`)
	sb.WriteString(`,"tools":[{"type":"function","function":{"name":"search","description":"Search the web","parameters":{"type":"object","properties":{"q":{"type":"string","description":"query"}},"required":["q"]}}}]}`)
	return []byte(sb.String())
}

func BenchmarkParseRequest(b *testing.B) {
	body := benchRequest()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(APIChatCompletions, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEstimatePrompt(b *testing.B) {
	body := benchRequest()
	enc := encodingFor(b, "gpt-4o")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if EstimatePrompt(APIChatCompletions, body, enc) == 0 {
			b.Fatal("no estimate")
		}
	}
}

func BenchmarkAddIncludeUsage(b *testing.B) {
	body := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AddIncludeUsage(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInflate measures the push decoder on 16 KiB chunks of a gzip
// SSE stream (throughput of decoded bytes).
func BenchmarkInflate(b *testing.B) {
	in := bytes.Repeat(bytes.Join(benchStream(b), nil), 20)
	gz := gzipBytes(b, in)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	c := &collector{}
	var d decoder
	for b.Loop() {
		d.reset("gzip")
		c.b = c.b[:0]
		for off := 0; off < len(gz); off += 16 << 10 {
			d.write(gz[off:min(len(gz), off+16<<10)], c)
		}
		if d.failed || len(c.b) != len(in) {
			b.Fatal("decode failed")
		}
	}
}

// BenchmarkLargeBodyScan measures the bounded scan of a body past MaxBody.
func BenchmarkLargeBodyScan(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"data":[{"embedding":[`)
	for i := range 200000 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString("-0.012345678")
	}
	sb.WriteString(`]}],"model":"m","usage":{"prompt_tokens":5,"total_tokens":5}}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var m Meter
	for b.Loop() {
		m.Reset(MeterOptions{API: APIEmbeddings, MaxBody: 1024})
		for off := 0; off < len(body); off += 16 << 10 {
			m.Write(body[off:min(len(body), off+16<<10)])
		}
		m.Finish()
		if u, _ := m.Usage(); u.Input != 5 {
			b.Fatal("no usage")
		}
	}
}
