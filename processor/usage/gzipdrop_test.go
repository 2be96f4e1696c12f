package usage

import (
	"bytes"
	"compress/gzip"
	"math/rand"
	"testing"
)

// TestDropUsageChunkFromCompressedStream: a provider that compresses the
// stream although it was asked for identity still has the added usage
// chunk removed; the client gets the stream decoded, minus that chunk,
// however the compressed bytes are split.
func TestDropUsageChunkFromCompressedStream(t *testing.T) {
	events := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
	usageEvent := "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n"
	done := "data: [DONE]\n\n"
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write([]byte(events + usageEvent + done))
	_ = zw.Close()
	compressed := z.Bytes()
	rng := rand.New(rand.NewSource(1))
	for split := range 60 {
		var m Meter
		m.Reset(MeterOptions{API: APIChatCompletions, SSE: true, Encoding: "gzip", DropUsageChunk: true})
		var out []byte
		for i := 0; i < len(compressed); {
			n := 1 + rng.Intn(16)
			if split == 0 {
				n = 1
			}
			end := min(i+n, len(compressed))
			fw, replaced := m.Write(compressed[i:end])
			if !replaced {
				t.Fatal("a compressed stream with DropUsageChunk must be forwarded decoded")
			}
			out = append(out, fw...)
			i = end
		}
		tail, _ := m.Finish()
		out = append(out, tail...)
		if string(out) != events+done {
			t.Fatalf("split %d: forwarded %q", split, out)
		}
		if u, ok := m.Usage(); !ok || u.Input != 7 || u.Output != 2 {
			t.Fatalf("usage %+v %v", u, ok)
		}
	}
}
