package usage

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/andybalholm/brotli"
)

// collector gathers decoded bytes.
type collector struct{ b []byte }

func (c *collector) consume(p []byte) { c.b = append(c.b, p...) }

// decodeChunks runs a decoder over chunks. held is the most compressed
// input the inflater kept between chunks: consumed input is dropped, never
// decoded again.
func decodeChunks(enc string, chunks [][]byte) (out []byte, d *decoder, held int) {
	d = &decoder{}
	d.reset(enc)
	c := &collector{}
	for _, ch := range chunks {
		d.write(bytes.Clone(ch), c)
		if d.inf != nil {
			held = max(held, len(d.inf.in))
		}
	}
	return c.b, d, held
}

// samples are inputs that exercise every block type: text (dynamic
// Huffman), random bytes (stored), short input (fixed Huffman), long
// repeats (matches reaching back the whole window).
func samples() map[string][]byte {
	rng := rand.New(rand.NewPCG(11, 12))
	random := make([]byte, 100<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"héllo wörld\"}}]}\n\n"), 3000)
	var mixed []byte
	for i := range 2000 {
		mixed = fmt.Appendf(mixed, "line %d %x\n", i*i, rng.Uint64())
	}
	far := append(bytes.Clone(random[:40000]), random[:40000]...)
	return map[string][]byte{
		"empty":  {},
		"short":  []byte("hi"),
		"text":   text,
		"random": random,
		"mixed":  mixed,
		"far":    far,
	}
}

func deflateBytes(t testing.TB, b []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestInflateMatchesFlate checks the push decoder against compress/flate's
// encoder at every level, split randomly and one byte at a time.
func TestInflateMatchesFlate(t *testing.T) {
	levels := []int{flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression, flate.HuffmanOnly}
	for name, in := range samples() {
		for _, level := range levels {
			t.Run(fmt.Sprintf("%s/level%d", name, level), func(t *testing.T) {
				raw := deflateBytes(t, in, level)
				gz := gzipLevel(t, in, level)
				zl := zlibBytes(t, in)
				rng := rand.New(rand.NewPCG(uint64(level+2), uint64(len(in))))
				for _, v := range []struct {
					enc  string
					data []byte
				}{{"deflate", raw}, {"gzip", gz}, {"deflate", zl}} {
					splits := [][][]byte{{v.data}}
					for range 10 {
						splits = append(splits, splitRandom(v.data, rng))
					}
					if len(v.data) < 20000 {
						splits = append(splits, splitBytes(v.data))
					}
					for i, chunks := range splits {
						out, d, held := decodeChunks(v.enc, chunks)
						if d.failed || !bytes.Equal(out, in) {
							t.Fatalf("%s split %d: failed %v, %d bytes out of %d", v.enc, i, d.failed, len(out), len(in))
						}
						// A dynamic block header is the most a step needs.
						if held > 1024 {
							t.Fatalf("%s split %d: held %d bytes of input", v.enc, i, held)
						}
					}
				}
			})
		}
	}
}

func gzipLevel(t *testing.T, b []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Name = "body.json" // exercise the optional header fields
	w.Comment = "comment"
	w.Extra = []byte("xx")
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGzipMultipleMembers(t *testing.T) {
	a, b := []byte("data: first member\n\n"), []byte("data: second member\n\n")
	body := append(gzipBytes(t, a), gzipBytes(t, b)...)
	for i, chunks := range splittings(body, 50, 13) {
		out, d, _ := decodeChunks("gzip", chunks)
		if d.failed || string(out) != string(a)+string(b) {
			t.Fatalf("split %d: failed %v, out %q", i, d.failed, out)
		}
	}
}

// TestDecodeCorrupt flips bytes of compressed bodies: decoding stops, never
// panics, and the usage is marked estimated.
func TestDecodeCorrupt(t *testing.T) {
	body := findSynth("deepseek-reasoner.sse").body(t) // deepseek-reasoner stream with usage
	for _, enc := range []string{"gzip", "deflate", "br"} {
		t.Run(enc, func(t *testing.T) {
			var data []byte
			switch enc {
			case "gzip":
				data = gzipBytes(t, body)
			case "deflate":
				data = zlibBytes(t, body)
			default:
				data = brotliBytes(t, body)
			}
			rng := rand.New(rand.NewPCG(14, 15))
			failed := 0
			for i := range 300 {
				bad := bytes.Clone(data)
				for range 1 + rng.IntN(3) {
					bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
				}
				m, _ := runMeter(MeterOptions{API: APIChatCompletions, SSE: true, Encoding: enc}, splitRandom(bad, rng))
				u, reported := m.Usage()
				if m.dec.failed {
					failed++
					if !u.Estimated {
						t.Fatalf("corruption %d: decoding failed but usage %+v is not estimated", i, u)
					}
				} else if reported && u != findSynth("deepseek-reasoner.sse").want {
					// A flip that decodes cleanly yet changes the usage
					// digits is possible only where no checksum covers it.
					if enc != "br" {
						t.Fatalf("corruption %d: checksum passed but usage %+v", i, u)
					}
				}
			}
			if failed < 150 {
				t.Fatalf("only %d of 300 corruptions detected", failed)
			}
		})
	}
}

func TestDecodeUnsupportedEncoding(t *testing.T) {
	body := findSynth("deepseek-reasoner.sse").body(t)
	for _, enc := range []string{"zstd", "compress", "gzip, br"} {
		m, fwd := runMeter(MeterOptions{API: APIChatCompletions, SSE: true, Encoding: enc, DropUsageChunk: true}, [][]byte{body})
		u, reported := m.Usage()
		if reported || !u.Estimated || u.Output != 0 {
			t.Fatalf("%s: usage %+v reported %v, want an estimate of 0", enc, u, reported)
		}
		if !bytes.Equal(fwd, body) {
			t.Fatalf("%s: forwarded bytes changed", enc)
		}
	}
}

// TestDecodeHeldInputBounded feeds a gzip header whose file name never
// ends: the decoder gives up instead of holding it all.
func TestDecodeHeldInputBounded(t *testing.T) {
	var d decoder
	d.reset("gzip")
	c := &collector{}
	d.write([]byte{0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 0}, c)
	name := bytes.Repeat([]byte("n"), 4096)
	for i := 0; i < 100 && !d.failed; i++ {
		d.write(name, c)
	}
	if !d.failed || len(d.inf.in) > maxHeld+len(name) {
		t.Fatalf("failed %v, holding %d bytes", d.failed, len(d.inf.in))
	}
}

func TestAdler32(t *testing.T) {
	in := samples()["random"]
	want := zlibBytes(t, in)
	got := adler32Update(1, in)
	tail := want[len(want)-4:]
	if uint32(tail[0])<<24|uint32(tail[1])<<16|uint32(tail[2])<<8|uint32(tail[3]) != got {
		t.Fatalf("adler32 %08x, zlib trailer %x", got, tail)
	}
}

// TestBrotliBomb: a small brotli body claiming far more output than any
// response is given up on, quickly.
func TestBrotliBomb(t *testing.T) {
	huge := bytes.Repeat([]byte{'a'}, 40<<20)
	bomb := brotliBytes(t, huge)
	if len(bomb) > 1024 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	out, d, _ := decodeChunks("br", [][]byte{bomb})
	if !d.failed || len(out) > maxBrotliRatio*len(bomb)+maxBrotliSlack+len(d.out) {
		t.Fatalf("failed %v after %d bytes", d.failed, len(out))
	}
	// A large but ordinary ratio is fine.
	var text []byte
	for i := range 100000 {
		text = fmt.Appendf(text, "data: {\"choices\":[{\"delta\":{\"content\":\"hello %d\"}}]}\n\n", i)
	}
	out, d, _ = decodeChunks("br", [][]byte{brotliBytes(t, text)})
	if d.failed || !bytes.Equal(out, text) {
		t.Fatalf("ordinary stream: failed %v, %d bytes of %d", d.failed, len(out), len(text))
	}
}

// TestDecodeIncrementally compresses a stream the way a server does,
// flushing after each event: every event is read as soon as its chunk
// arrives, not at the end of the body.
func TestDecodeIncrementally(t *testing.T) {
	c := findSynth("deepseek-reasoner.sse")
	events := bytes.SplitAfter(c.body(t), []byte("\n\n"))
	for _, enc := range []string{"gzip", "br"} {
		var buf bytes.Buffer
		var w interface {
			Write([]byte) (int, error)
			Flush() error
		}
		if enc == "gzip" {
			w = gzip.NewWriter(&buf)
		} else {
			w = brotli.NewWriter(&buf)
		}
		var m Meter
		m.Reset(MeterOptions{API: c.api, SSE: true, Encoding: enc})
		for i, ev := range events {
			buf.Reset()
			if _, err := w.Write(ev); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			m.Write(buf.Bytes())
			if i == 1 && !m.FirstContent() {
				t.Fatalf("%s: first content not seen after its event's chunk", enc)
			}
			if _, reported := m.Usage(); reported != (i >= 5) {
				t.Fatalf("%s: after event %d reported %v", enc, i, reported)
			}
		}
		if u, _ := m.Usage(); u != c.want {
			t.Fatalf("%s: usage %+v", enc, u)
		}
	}
}
