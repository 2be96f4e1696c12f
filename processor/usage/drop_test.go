package usage

import (
	"bytes"
	"fmt"
	"testing"
)

// TestDropUsageChunk checks that the forwarded bytes are the stream minus
// exactly its usage-only event, however it is cut, while the usage is
// still read from it.
func TestDropUsageChunk(t *testing.T) {
	type stream struct {
		name string
		api  API
		body []byte
		want Usage
	}
	var streams []stream
	for _, r := range loadRecorded(t) {
		if r.sse() {
			u, _, _ := providerUsage(t, r)
			streams = append(streams, stream{r.name, r.api, r.response, u})
		}
	}
	for _, c := range synthCases {
		if c.sse() && c.api == APIChatCompletions {
			streams = append(streams, stream{c.file, c.api, c.body(t), c.want})
		}
	}
	totalDropped := 0
	defer func() {
		if totalDropped < 6 {
			t.Errorf("only %d streams had a usage chunk to drop", totalDropped)
		}
	}()
	for _, s := range streams {
		for _, end := range []string{"\n", "\r\n", "\r"} {
			t.Run(fmt.Sprintf("%s/%q", s.name, end), func(t *testing.T) {
				body := bytes.ReplaceAll(s.body, []byte("\n"), []byte(end))
				sep := []byte(end + end)
				var want []byte
				dropped := 0
				for _, ev := range bytes.SplitAfter(body, sep) {
					if bytes.Contains(ev, []byte(`"choices":[],`)) && bytes.Contains(ev, []byte(`"usage":{`)) {
						dropped++
						continue
					}
					want = append(want, ev...)
				}
				if dropped > 1 {
					t.Fatalf("fixture has %d usage chunks", dropped)
				}
				totalDropped += dropped
				for i, chunks := range splittings(body, 200, 16) {
					m, fwd := runMeter(MeterOptions{API: s.api, SSE: true, DropUsageChunk: true}, chunks)
					if !bytes.Equal(fwd, want) {
						t.Fatalf("splitting %d: forwarded\n%q\nwant\n%q", i, fwd, want)
					}
					u, reported := m.Usage()
					if s.want != (Usage{}) && (u != s.want || !reported) {
						t.Fatalf("splitting %d: usage %+v, want %+v", i, u, s.want)
					}
				}
			})
		}
	}
}

// TestDropUsageChunkOnlyWhereItApplies: other APIs and non-SSE bodies are
// forwarded untouched even when asked; a compressed chat stream is
// forwarded decoded (see TestDropUsageChunkFromCompressedStream).
func TestDropUsageChunkOnlyWhereItApplies(t *testing.T) {
	for _, c := range synthCases {
		body := c.body(t)
		for _, enc := range []string{"", "gzip"} {
			data := body
			if enc == "gzip" {
				data = gzipBytes(t, body)
			}
			replacing := c.sse() && c.api == APIChatCompletions
			m := &Meter{}
			m.Reset(MeterOptions{API: c.api, SSE: c.sse(), Encoding: enc, DropUsageChunk: true})
			if _, replaced := m.Write(data); replaced != replacing {
				t.Fatalf("%s %q: replaced %v", c.file, enc, replaced)
			}
		}
	}
}

// TestDropUsageChunkLastWrite forwards the last chunk and Finish's bytes
// in one mutation, as the processor does at end_of_stream: Finish must not
// overwrite what Write returned.
func TestDropUsageChunkLastWrite(t *testing.T) {
	body := []byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: [DONE]")
	want := bytes.Replace(body, []byte("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n"), nil, 1)
	for cut := 0; cut <= len(body); cut++ {
		var m Meter
		m.Reset(MeterOptions{API: APIChatCompletions, SSE: true, DropUsageChunk: true})
		first, _ := m.Write(body[:cut])
		fwd := bytes.Clone(first)
		out, _ := m.Write(body[cut:])
		tail, _ := m.Finish()
		fwd = append(append(fwd, out...), tail...)
		if !bytes.Equal(fwd, want) {
			t.Fatalf("cut %d: forwarded %q", cut, fwd)
		}
	}
}
