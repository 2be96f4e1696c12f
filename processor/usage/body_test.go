package usage

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestLargeBodyScan reads recorded bodies with a MaxBody far below their
// size: usage and model come from the streaming scan, exactly.
func TestLargeBodyScan(t *testing.T) {
	for _, r := range loadRecorded(t) {
		want, wantModel, ok := providerUsage(t, r)
		if !ok || r.sse() {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			for i, chunks := range splittings(r.response, 50, 17) {
				m, _ := runMeter(MeterOptions{API: r.api, MaxBody: 64}, chunks)
				got, reported := m.Usage()
				if !m.overflow || !reported || got != want || m.ResponseModel() != wantModel {
					t.Fatalf("splitting %d: overflow %v usage %+v model %q, want %+v %q",
						i, m.overflow, got, m.ResponseModel(), want, wantModel)
				}
			}
		})
	}
}

// TestHugeEmbeddingsBody feeds a 13 MB embeddings response in 16 KiB
// chunks, usage at the end: it is found with bounded memory.
func TestHugeEmbeddingsBody(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"object":"list","data":[`)
	rng := rand.New(rand.NewPCG(18, 19))
	for i := range 700 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"object":"embedding","index":%d,"embedding":[`, i)
		for j := range 1536 {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%.9f", rng.Float64()*2-1)
		}
		b.WriteString("]}")
	}
	b.WriteString(`],"model":"text-embedding-3-large","usage":{"prompt_tokens":9000,"total_tokens":9000}}`)
	body := []byte(b.String())
	if len(body) < 10<<20 {
		t.Fatalf("body is only %d bytes", len(body))
	}
	m := &Meter{}
	m.Reset(MeterOptions{API: APIEmbeddings})
	for off := 0; off < len(body); off += 16 << 10 {
		m.Write(body[off:min(len(body), off+16<<10)])
		scanned := 0
		if m.scan != nil {
			scanned = cap(m.scan.buf)
		}
		if cap(m.body) > DefaultMaxBody || scanned > maxCapture {
			t.Fatalf("buffers grew: body %d, scan %d", cap(m.body), scanned)
		}
	}
	m.Finish()
	got, reported := m.Usage()
	if !reported || got != (Usage{Input: 9000}) || m.ResponseModel() != "text-embedding-3-large" {
		t.Fatalf("usage %+v reported %v model %q", got, reported, m.ResponseModel())
	}
}

// TestLargeBodyWithoutUsage: past MaxBody with no usage the output is
// estimated from the size (embeddings have none).
func TestLargeBodyWithoutUsage(t *testing.T) {
	body := []byte(`{"model":"m","choices":[{"message":{"content":"` + strings.Repeat("word ", 1000) + `"}}]}`)
	m, _ := runMeter(MeterOptions{API: APIChatCompletions, MaxBody: 1024}, [][]byte{body})
	got, reported := m.Usage()
	if reported || !got.Estimated || got.Output != int64(len(body)+3)/4 || m.ResponseModel() != "m" {
		t.Fatalf("usage %+v reported %v model %q", got, reported, m.ResponseModel())
	}
	m, _ = runMeter(MeterOptions{API: APIEmbeddings, MaxBody: 10}, [][]byte{[]byte(`{"data":[1,2,3,4,5,6,7,8,9]}`)})
	if got, _ := m.Usage(); got.Output != 0 {
		t.Fatalf("embeddings estimate %+v", got)
	}
}

func TestJSONScan(t *testing.T) {
	tests := []struct {
		name, body, usage, model string
	}{
		{"simple", `{"model":"a","usage":{"prompt_tokens":1}}`, `{"prompt_tokens":1}`, `"a"`},
		{"nested usage ignored", `{"x":{"usage":{"a":1},"model":"no"},"usage":{"b":2}}`, `{"b":2}`, ``},
		{"key inside a string", `{"s":"\"usage\":{\"a\":1}","usage":null}`, `null`, ``},
		{"escaped key", `{"us\u0061ge":{"a":1}}`, ``, ``},
		{"longer key", `{"usages":{"a":1},"modelx":"b"}`, ``, ``},
		{"last wins", `{"usage":{"a":1},"usage":{"a":2}}`, `{"a":2}`, ``},
		{"whitespace", "{ \"usage\" :\n { \"a\" : [1, {\"b\":\"}\"}] } , \"model\" : \"m\\\"x\" }", `{ "a" : [1, {"b":"}"}] }`, `"m\"x"`},
		{"scalar", `{"usage":42,"model":7}`, `42`, `7`},
		{"scalar at end", `{"usage":42}`, `42`, ``},
		{"top-level array", `[{"usage":{"a":1}},"usage",{"usage":2}]`, ``, ``},
		{"garbage", `}}]]"usage":{"a":1}`, ``, ``},
		{"nested is separate", `{"response":{"usage":{"a":1},"model":"r"},"usage":{"b":2}}`, `{"b":2}`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, chunks := range splittings([]byte(tt.body), 50, 20) {
				var s jsonScan
				s.reset()
				for _, c := range chunks {
					s.feed(c)
				}
				s.finish()
				if string(s.usage) != tt.usage || string(s.model) != tt.model {
					t.Fatalf("splitting %d: usage %q model %q, want %q %q", i, s.usage, s.model, tt.usage, tt.model)
				}
			}
		})
	}
}

func TestJSONScanNested(t *testing.T) {
	tests := []struct {
		name, body, usage, model string
	}{
		{"response", `{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":1},"model":"m"}}`, `{"input_tokens":1}`, `"m"`},
		{"message", `{"type":"message_start","message":{"model":"c","usage":{"input_tokens":3}}}`, `{"input_tokens":3}`, `"c"`},
		{"deeper is ignored", `{"response":{"output":[{"usage":{"x":1},"model":"no"}]}}`, ``, ``},
		{"parent closes", `{"response":{"a":1},"x":{"usage":{"y":2}}}`, ``, ``},
		{"not an object", `{"response":"usage","message":[{"usage":1}]}`, ``, ``},
		{"nested response key", `{"x":{"response":{"usage":{"a":1}}}}`, ``, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, chunks := range splittings([]byte(tt.body), 30, 23) {
				var s jsonScan
				s.reset()
				for _, c := range chunks {
					s.feed(c)
				}
				s.finish()
				if string(s.innerUsage) != tt.usage || string(s.innerModel) != tt.model || len(s.usage) != 0 {
					t.Fatalf("splitting %d: inner usage %q model %q, top usage %q", i, s.innerUsage, s.innerModel, s.usage)
				}
			}
		})
	}
}

// TestSniffUnlabelledStream reads an SSE body whose content-type says
// otherwise, and a JSON body after leading whitespace.
func TestSniffUnlabelledStream(t *testing.T) {
	c := findSynth("deepseek-reasoner.sse")
	m, _ := runMeter(MeterOptions{API: c.api, SSE: false}, splitBytes(c.body(t)))
	if got, _ := m.Usage(); got != c.want {
		t.Fatalf("SSE labelled JSON: usage %+v", got)
	}
	body := append([]byte("\r\n  \n"), findSynth("deepseek-cache.json").body(t)...)
	m, _ = runMeter(MeterOptions{API: APIChatCompletions}, splitBytes(body))
	if got, _ := m.Usage(); got != findSynth("deepseek-cache.json").want {
		t.Fatalf("JSON after whitespace: usage %+v", got)
	}
}

// TestMeterReuse runs different responses through one Meter with Reset in
// between, as a pool does: nothing carries over.
func TestMeterReuse(t *testing.T) {
	enc := encodingFor(t, "gpt-4o")
	counter := enc.NewCounter()
	var m Meter
	for round := range 3 {
		for _, c := range synthCases {
			counter.Reset(enc)
			m.Reset(MeterOptions{API: c.api, SSE: c.sse(), Counter: counter})
			for _, ch := range splitRandom(c.body(t), rand.New(rand.NewPCG(uint64(round), 21))) {
				m.Write(ch)
			}
			m.Finish()
			got, reported := m.Usage()
			want := c.want
			if want == (Usage{}) {
				want = Usage{Output: int64(enc.Count(c.text)), Estimated: true}
			}
			if got != want || reported == (c.want == Usage{}) || m.ResponseModel() != c.model {
				t.Fatalf("round %d %s: usage %+v model %q", round, c.file, got, m.ResponseModel())
			}
			// Writes after Finish are ignored.
			if out, replaced := m.Write([]byte("data: {}\n\n")); out != nil || replaced {
				t.Fatalf("write after finish returned %q %v", out, replaced)
			}
		}
	}
}
