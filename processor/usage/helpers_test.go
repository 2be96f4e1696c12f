package usage

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/processor/tokens"
)

// recorded is one interaction of a go-vcr v2 cassette.
type recorded struct {
	name        string
	path        string // request URL path
	api         API
	request     []byte
	response    []byte
	contentType string
	code        int
}

type cassette struct {
	Interactions []struct {
		Request struct {
			Body string `yaml:"body"`
			URL  string `yaml:"url"`
		} `yaml:"request"`
		Response struct {
			Body    string              `yaml:"body"`
			Headers map[string][]string `yaml:"headers"`
			Code    int                 `yaml:"code"`
		} `yaml:"response"`
	} `yaml:"interactions"`
}

// loadRecorded reads every cassette under testdata/recorded.
func loadRecorded(t testing.TB) []recorded {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "recorded", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cassettes: %v", err)
	}
	var out []recorded
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c cassette
		if err := yaml.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, it := range c.Interactions {
			u, err := url.Parse(it.Request.URL)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			ct := ""
			if v := it.Response.Headers["Content-Type"]; len(v) > 0 {
				ct = v[0]
			}
			out = append(out, recorded{
				name:        strings.TrimSuffix(filepath.Base(f), ".yaml"),
				path:        u.Path,
				api:         Detect(u.Path),
				request:     []byte(it.Request.Body),
				response:    []byte(it.Response.Body),
				contentType: ct,
				code:        it.Response.Code,
			})
		}
	}
	return out
}

func (r recorded) sse() bool { return strings.HasPrefix(r.contentType, "text/event-stream") }

// splitBytes cuts b one byte at a time.
func splitBytes(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// splitRandom cuts b at random points, from a few large chunks to many
// small ones.
func splitRandom(b []byte, rng *rand.Rand) [][]byte {
	if len(b) < 2 {
		return [][]byte{b}
	}
	cuts := 1 + rng.IntN(min(len(b)-1, 1+rng.IntN(64)))
	points := make([]int, 0, cuts+2)
	points = append(points, 0)
	for range cuts {
		points = append(points, 1+rng.IntN(len(b)-1))
	}
	points = append(points, len(b))
	sortInts(points)
	var out [][]byte
	for i := 1; i < len(points); i++ {
		out = append(out, b[points[i-1]:points[i]])
	}
	return out
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// runMeter feeds chunks to a fresh Meter and returns it with the bytes it
// forwarded (the chunks themselves when it replaced nothing).
func runMeter(o MeterOptions, chunks [][]byte) (*Meter, []byte) {
	m := &Meter{}
	m.Reset(o)
	var fwd []byte
	for _, c := range chunks {
		// Envoy's buffers are not ours to keep: the Meter must have
		// copied whatever it holds before the next chunk arrives.
		c = bytes.Clone(c)
		out, replaced := m.Write(c)
		if replaced {
			fwd = append(fwd, out...)
		} else {
			fwd = append(fwd, c...)
		}
		clear(c)
		// Sent on, as the processor does: the Meter may lend its buffers.
		m.Idle()
	}
	out, replaced := m.Finish()
	if replaced {
		fwd = append(fwd, out...)
	}
	return m, fwd
}

func gzipBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zlibBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func brotliBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := brotli.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// encodingFor returns the tokenizer of a model as the processor picks it,
// o200k_base when the model is unknown.
func encodingFor(t testing.TB, model string) *tokens.Encoding {
	t.Helper()
	if e, ok := tokens.ForModel(model); ok {
		return e
	}
	e, err := tokens.Get(tokens.O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
