package usage

import (
	"bytes"
	"compress/flate"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fuzzSeeds are the fixtures, as seed inputs.
func fuzzSeeds(f testing.TB) [][]byte {
	var out [][]byte
	files, _ := filepath.Glob(filepath.Join("testdata", "synth", "*"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	out = append(out, []byte("data: a\r\n\r\ndata: b\r\rdata:c\n\n"), []byte(":x\n\xef\xbb\xbfdata\n\n"))
	return out
}

// fuzzSplits cuts b three ways chosen by seed.
func fuzzSplits(b []byte, seed uint64) [][][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	return [][][]byte{{b}, splitBytes(b), splitRandom(b, rng)}
}

// FuzzSSE checks that framing does not depend on where the stream is cut,
// and that forwarding keeps every byte of the events it does not drop.
func FuzzSSE(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint64(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		var wantEvents []string
		var wantFwd []byte
		for i, chunks := range fuzzSplits(data, seed) {
			events, fwd, _ := frame(chunks, "U")
			if i == 0 {
				wantEvents, wantFwd = events, fwd
				if !slices.Contains(events, "|U") && !bytes.Equal(fwd, data) {
					t.Fatalf("nothing dropped but forwarded %q != %q", fwd, data)
				}
				continue
			}
			if !slices.Equal(events, wantEvents) {
				t.Fatalf("splitting %d: events %q, whole: %q", i, events, wantEvents)
			}
			if !bytes.Equal(fwd, wantFwd) {
				t.Fatalf("splitting %d: forwarded %q, whole: %q", i, fwd, wantFwd)
			}
		}
	})
}

// FuzzMeter feeds any bytes as any API and encoding: it never panics and
// reads the same usage however the body is cut.
func FuzzMeter(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint8(APIChatCompletions), true, uint8(0), uint64(1))
		f.Add(s, uint8(APIAnthropicMessages), false, uint8(1), uint64(2))
	}
	encodings := []string{"", "gzip", "deflate", "br", "zstd"}
	f.Fuzz(func(t *testing.T, data []byte, api uint8, sse bool, enc uint8, seed uint64) {
		o := MeterOptions{
			API:            API(api % 6),
			SSE:            sse,
			Encoding:       encodings[int(enc)%len(encodings)],
			DropUsageChunk: seed%2 == 0,
			MaxBody:        int(seed % 4096),
			MaxOutput:      int64(seed % 100),
		}
		var want Usage
		var wantModel string
		var wantFwd []byte
		for i, chunks := range fuzzSplits(data, seed) {
			m, fwd := runMeter(o, chunks)
			u, _ := m.Usage()
			if u.Input < 0 || u.Output < 0 || u.CachedInput > u.Input || u.Reasoning > u.Output {
				t.Fatalf("inconsistent usage %+v", u)
			}
			if i == 0 {
				want, wantModel, wantFwd = u, m.ResponseModel(), fwd
				continue
			}
			if u != want || m.ResponseModel() != wantModel || !bytes.Equal(fwd, wantFwd) {
				t.Fatalf("splitting %d: usage %+v model %q, whole: %+v %q", i, u, m.ResponseModel(), want, wantModel)
			}
		}
	})
}

// FuzzParseRequest checks that request parsing, the include_usage rewrite
// and the prompt estimate never panic, and that the rewrite keeps a valid
// request valid.
func FuzzParseRequest(f *testing.F) {
	for _, r := range loadRecorded(f) {
		f.Add(r.request, uint8(r.api))
	}
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9h"}}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"anyOf":[{"type":"string"},{"$ref":"#/$defs/X"}]}}}}}]}`), uint8(APIChatCompletions))
	f.Fuzz(func(t *testing.T, body []byte, api uint8) {
		a := API(api % 6)
		r, err := ParseRequest(a, body)
		if n := EstimatePrompt(a, body, nil); n < 0 {
			t.Fatalf("negative estimate %d", n)
		}
		if err != nil || a == APIUnknown {
			return
		}
		if r.MaxOutput < 0 || r.Choices < 1 {
			t.Fatalf("request %+v", r)
		}
		out, err := AddIncludeUsage(body)
		if err != nil {
			t.Fatalf("valid request refused: %v", err)
		}
		r2, err := ParseRequest(a, out)
		if err != nil || !r2.IncludeUsage || r2.Model != r.Model || r2.MaxOutput != r.MaxOutput {
			t.Fatalf("after rewrite: %+v, %v (before %+v)", r2, err, r)
		}
	})
}

// FuzzInflate compares the push decoder with compress/flate on any input:
// whatever flate decodes cleanly, the push decoder decodes the same way,
// one byte at a time too.
func FuzzInflate(f *testing.F) {
	for _, s := range samples() {
		if len(s) < 4096 {
			f.Add(deflateBytes(f, s, flate.BestSpeed))
		}
	}
	f.Add([]byte{0x01, 0x00, 0x00, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		want, err := io.ReadAll(flate.NewReader(bytes.NewReader(data)))
		for _, chunks := range [][][]byte{{data}, splitBytes(data)} {
			d := &decoder{}
			d.reset("deflate")
			d.raw = true // the zlib sniff would take some inputs as zlib
			d.wrap = wrapBody
			c := &collector{}
			for _, ch := range chunks {
				d.write(ch, c)
			}
			if err == nil && (d.failed || !bytes.Equal(c.b, want)) {
				t.Fatalf("flate: %d bytes; push decoder: failed %v, %d bytes", len(want), d.failed, len(c.b))
			}
		}
	})
}
