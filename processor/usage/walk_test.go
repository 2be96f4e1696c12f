package usage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestWalkValid(t *testing.T) {
	deep := func(n int, open, close string) string {
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	tests := []struct {
		doc   string
		valid bool
	}{
		{`{}`, true},
		{` { } `, true},
		{"\t\r\n{\"a\" : [ 1 , 2 ] }\n", true},
		{`{"a":1,}`, false},
		{`{,"a":1}`, false},
		{`{"a" 1}`, false},
		{`{"a":}`, false},
		{`{a:1}`, false},
		{`{"a":1}}`, false},
		{`{"a":1} x`, false},
		{`{"a":[1,]}`, false},
		{`{"a":[,1]}`, false},
		{`{"a":[1 2]}`, false},
		{`{"a":[}`, false},
		{`{"a":{]}`, false},
		{`[1,2,{"a":[true,false,null]}]`, true},
		{`"str"`, true},
		{`12`, true},
		{``, false},
		{` `, false},
		{`{"a":0}`, true},
		{`{"a":-0}`, true},
		{`{"a":01}`, false},
		{`{"a":-}`, false},
		{`{"a":-a}`, false},
		{`{"a":1.}`, false},
		{`{"a":1.5e}`, false},
		{`{"a":1.5e+}`, false},
		{`{"a":1.5E-7}`, true},
		{`{"a":.5}`, false},
		{`{"a":+1}`, false},
		{`{"a":tru}`, false},
		{`{"a":truex}`, false},
		{`{"a":nul}`, false},
		{`{"a":NaN}`, false},
		{`{"a":"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t"}`, true},
		{`{"a":"\u00g0"}`, false},
		{`{"a":"\u00e"}`, false},
		{`{"a":"\x"}`, false},
		{`{"a":"\'"}`, false},
		{"{\"a\":\"tab\there\"}", false},
		{"{\"a\":\"\x7f\xff\xfe not utf-8\"}", true},
		{`{"a":"unterminated}`, false},
		{`{"a":"ends in backslash\`, false},
		{`{"abcdefghijklmnopqrstuvwxyz":"0123456789abcdefghij\"klmnop"}`, true},
		{`{"a":` + deep(200, "[", "]") + `}`, true},
		{`{"a":` + deep(200, `{"b":`, "}") + `}`, false},
		{`{"a":` + strings.Repeat(`{"b":`, 200) + "1" + strings.Repeat("}", 200) + `}`, true},
		{`{"a":` + strings.Repeat(`[{"b":`, 100) + "1" + strings.Repeat("}]", 100) + `}`, true},
		{`{"a":` + strings.Repeat(`[{"b":`, 100) + "1" + strings.Repeat("]}", 100) + `}`, false},
		{`{"a":` + deep(100, "[", "]") + "]}", false},
	}
	var w walker
	for _, tt := range tests {
		if gjson.Valid(tt.doc) != tt.valid {
			t.Fatalf("%.60q: the case disagrees with gjson.Valid", tt.doc)
		}
		if got := w.valid([]byte(tt.doc)); got != tt.valid {
			t.Errorf("valid(%.60q) = %v, want %v", tt.doc, got, tt.valid)
		}
		for _, kind := range []objKind{objChunk, objAnthropic, objResponses} {
			if got := w.walk([]byte(tt.doc), kind); got != tt.valid {
				t.Errorf("walk(%.60q, %d) = %v, want %v", tt.doc, kind, got, tt.valid)
			}
		}
	}
}

// streamEvents returns the data of every event of the recorded and
// synthesized streams, and of the recorded non-streamed bodies.
func streamEvents(t testing.TB) []string {
	var out []string
	for _, r := range loadRecorded(t) {
		if r.sse() {
			out = append(out, referenceEvents(r.response)...)
		} else {
			out = append(out, string(r.response))
		}
	}
	for _, c := range synthCases {
		b, err := readSynth(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if c.sse() {
			out = append(out, referenceEvents(b)...)
		} else {
			out = append(out, string(b))
		}
	}
	return out
}

func readSynth(file string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", "synth", file))
}

// checkWalk compares the walker's reading of doc with gjson's.
func checkWalk(t testing.TB, w *walker, doc string) {
	d := []byte(doc)
	valid := gjson.Valid(doc)
	if w.valid(d) != valid {
		t.Fatalf("valid(%q) = %v, gjson: %v", doc, !valid, valid)
	}
	if got := w.walk(d, objChunk); got != valid {
		t.Fatalf("walk(%q) = %v, gjson: %v", doc, got, valid)
	}
	if !valid || d[skipWS(d, 0)] != '{' {
		return
	}
	if got, want := walkedChunk(w, d), gjsonChunk(doc); !got.equal(want) {
		t.Fatalf("chunk %q:\nwalker %v\ngjson  %v", doc, got, want)
	}
	root := gjson.Parse(doc)
	raw := func(s span) string {
		if !s.ok() {
			return ""
		}
		return string(d[s.start:s.end])
	}
	w.walk(d, objAnthropic)
	delta := root.Get("delta")
	for _, c := range []struct {
		what      string
		got, want string
	}{
		{"type", raw(w.ev.typ), root.Get("type").Raw},
		{"delta", raw(w.ev.delta), delta.Raw},
		{"delta.type", raw(w.ev.deltaType), delta.Get("type").Raw},
		{"delta.text", raw(w.ev.deltaText), delta.Get("text").Raw},
		{"delta.thinking", raw(w.ev.deltaThinking), delta.Get("thinking").Raw},
		{"delta.partial_json", raw(w.ev.deltaJSON), delta.Get("partial_json").Raw},
	} {
		if c.got != c.want {
			t.Fatalf("anthropic event %q: %s %q, gjson %q", doc, c.what, c.got, c.want)
		}
	}
	want := root.Get("type").Str
	if want == "" {
		want = "name"
	}
	if got := string(w.eventType([]byte("name"))); got != want {
		t.Fatalf("event %q: type %q, gjson %q", doc, got, want)
	}
	w.walk(d, objResponses)
	if raw(w.ev.typ) != root.Get("type").Raw || raw(w.ev.delta) != delta.Raw {
		t.Fatalf("responses event %q: type %q delta %q", doc, raw(w.ev.typ), raw(w.ev.delta))
	}
}

// TestWalkMatchesGjson reads every recorded event, generated events and
// damaged ones with both the walker and gjson: the same validity, the same
// values.
func TestWalkMatchesGjson(t *testing.T) {
	var w walker
	events := streamEvents(t)
	rng := rand.New(rand.NewPCG(30, 31))
	for _, ev := range events {
		checkWalk(t, &w, ev)
		for range 20 {
			checkWalk(t, &w, mutate(rng, ev))
		}
	}
	g := &jsonGen{rng: rng}
	for range 30000 {
		doc := g.doc()
		checkWalk(t, &w, doc)
		checkWalk(t, &w, mutate(rng, doc))
	}
}

// TestMeterMatchesGjson runs every stream, as is and damaged, through a
// Meter and through one reading events the old way, as every API: the
// same usage, model, counts and forwarded bytes.
func TestMeterMatchesGjson(t *testing.T) {
	var streams [][]byte
	for _, r := range loadRecorded(t) {
		if r.sse() {
			streams = append(streams, r.response)
		}
	}
	for _, c := range synthCases {
		if b, err := readSynth(c.file); err != nil {
			t.Fatal(err)
		} else if c.sse() {
			streams = append(streams, b, withoutUsage(t, c, b))
		}
	}
	rng := rand.New(rand.NewPCG(32, 33))
	g := &jsonGen{rng: rng}
	var sb strings.Builder
	for range 300 {
		sb.Reset()
		for range 1 + rng.IntN(8) {
			fmt.Fprintf(&sb, "event: %s\ndata: %s\n\n", genStrings[rng.IntN(len(genStrings))], g.doc())
		}
		streams = append(streams, []byte(sb.String()), []byte(mutate(rng, sb.String())))
	}
	enc := encodingFor(t, "gpt-4o")
	newCounter, oldCounter := enc.NewCounter(), enc.NewCounter()
	for i, s := range streams {
		for api := APIUnknown; api <= APIAnthropicMessages; api++ {
			chunks := splitRandom(s, rng)
			newCounter.Reset(enc)
			oldCounter.Reset(enc)
			o := MeterOptions{API: api, SSE: true, DropUsageChunk: i%2 == 0, MaxOutput: 7}
			o.Counter = newCounter
			m, fwd := runMeter(o, chunks)
			o.Counter = oldCounter
			old, oldFwd := runGjsonMeter(o, chunks)
			u, rep := m.Usage()
			ou, orep := old.Usage()
			if u != ou || rep != orep || m.ResponseModel() != old.ResponseModel() ||
				m.FirstContent() != old.FirstContent() || m.Malformed() != old.Malformed() ||
				newCounter.Count() != oldCounter.Count() || !bytes.Equal(fwd, oldFwd) {
				t.Fatalf("stream %d as %v:\n%q\nwalker: %+v %v model %q first %v malformed %d counted %d\n"+
					"gjson:  %+v %v model %q first %v malformed %d counted %d", i, api, s,
					u, rep, m.ResponseModel(), m.FirstContent(), m.Malformed(), newCounter.Count(),
					ou, orep, old.ResponseModel(), old.FirstContent(), old.Malformed(), oldCounter.Count())
			}
		}
	}
}

// FuzzWalk checks the walker on any bytes: it never panics, finds them
// valid exactly when gjson.Valid does, and reads the values gjson reads.
func FuzzWalk(f *testing.F) {
	for _, ev := range streamEvents(f) {
		f.Add([]byte(ev))
	}
	g := &jsonGen{rng: rand.New(rand.NewPCG(34, 35))}
	for range 50 {
		f.Add([]byte(g.doc()))
	}
	f.Add([]byte(`{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var w walker
		checkWalk(t, &w, string(data))
	})
}

// BenchmarkEvent measures reading one streamed event of each hot kind,
// SSE framing aside: with the walker, and with gjson as it was read before.
func BenchmarkEvent(b *testing.B) {
	var chat []byte
	for _, c := range benchStream(b) {
		if d, ok := bytes.CutPrefix(bytes.TrimSpace(c), []byte("data: ")); ok && bytes.Contains(d, []byte(`"content":"`)) && !bytes.Contains(d, []byte(`"content":""`)) {
			chat = d
			break
		}
	}
	for _, bc := range []struct {
		name, event string
		api         API
		data        []byte
	}{
		{"chat-chunk", "", APIChatCompletions, chat},
		{"anthropic-text-delta", "content_block_delta", APIAnthropicMessages,
			[]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" How can I help"}}`)},
		{"responses-text-delta", "response.output_text.delta", APIResponses,
			[]byte(`{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_68af0f8c2d8c8193a6ad1d6a1b2c3d4e0bd5ebc9a1f2e3d4","output_index":0,"content_index":0,"delta":" there","logprobs":[]}`)},
	} {
		var m Meter
		m.Reset(MeterOptions{API: bc.api, SSE: true})
		for _, reader := range []struct {
			name string
			h    eventHandler
		}{{"walker", &m}, {"gjson", gjsonEvents{&m}}} {
			b.Run(bc.name+"/"+reader.name, func(b *testing.B) {
				name := []byte(bc.event)
				b.SetBytes(int64(len(bc.data)))
				b.ReportAllocs()
				for b.Loop() {
					reader.h.event(name, bc.data)
				}
				if m.Malformed() != 0 || !m.FirstContent() {
					b.Fatalf("malformed %d, first content %v", m.Malformed(), m.FirstContent())
				}
			})
		}
	}
}
