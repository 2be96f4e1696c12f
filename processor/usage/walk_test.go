package usage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// valid tells whether d is one JSON value with only whitespace around it,
// exactly when gjson.Valid does.
func (w *walker) valid(d []byte) bool {
	w.d = d
	i := skipWS(d, 0)
	i, ok := w.skip(i)
	return ok && skipWS(d, i) == len(d)
}

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
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.40q", tt.doc), func(t *testing.T) {
			if gjson.Valid(tt.doc) != tt.valid {
				t.Fatalf("the case disagrees with gjson.Valid")
			}
			var w walker
			if got := w.valid([]byte(tt.doc)); got != tt.valid {
				t.Errorf("valid = %v, want %v", got, tt.valid)
			}
			for _, kind := range []objKind{objChunk, objAnthropic, objResponses} {
				if got := w.walk([]byte(tt.doc), kind); got != tt.valid {
					t.Errorf("walk as %d = %v, want %v", kind, got, tt.valid)
				}
			}
			checkWalk(t, &walkers{}, tt.doc)
		})
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

// walkers are a walker for each kind of event, each kept from document to
// document as a Meter keeps its own: the start of a document that repeats
// the last one's is not walked again.
type walkers struct{ chunk, anthropic, responses walker }

// checkWalk compares the walkers' reading of doc, and fresh walkers', with
// gjson's.
func checkWalk(t testing.TB, ws *walkers, doc string) {
	t.Helper()
	checkWalkers(t, ws, doc)
	checkWalkers(t, &walkers{}, doc)
}

func checkWalkers(t testing.TB, ws *walkers, doc string) {
	t.Helper()
	d := []byte(doc)
	valid := gjson.Valid(doc)
	var w walker
	if w.valid(d) != valid {
		t.Fatalf("valid(%q) = %v, gjson: %v", doc, !valid, valid)
	}
	for _, k := range []struct {
		w    *walker
		kind objKind
	}{{&ws.chunk, objChunk}, {&ws.anthropic, objAnthropic}, {&ws.responses, objResponses}} {
		if got := k.w.walk(d, k.kind); got != valid {
			t.Fatalf("walk(%q, %d) = %v, gjson: %v", doc, k.kind, got, valid)
		}
	}
	if !valid || d[skipWS(d, 0)] != '{' {
		return
	}
	if got, want := walkedChunk(&ws.chunk, d), gjsonChunk(doc); !got.equal(want) {
		t.Fatalf("chunk %q:\nwalker %v\ngjson  %v", doc, got, want)
	}
	root := gjson.Parse(doc)
	raw := func(s span) string {
		if !s.ok() {
			return ""
		}
		return string(s.raw(d))
	}
	ev := &ws.anthropic.ev
	delta := root.Get("delta")
	for _, c := range []struct {
		what      string
		got, want string
	}{
		{"type", raw(ev.typ), root.Get("type").Raw},
		{"delta", raw(ev.delta), delta.Raw},
		{"delta.type", raw(ev.deltaType), delta.Get("type").Raw},
		{"delta.text", raw(ev.deltaText), delta.Get("text").Raw},
		{"delta.thinking", raw(ev.deltaThinking), delta.Get("thinking").Raw},
		{"delta.partial_json", raw(ev.deltaJSON), delta.Get("partial_json").Raw},
	} {
		if c.got != c.want {
			t.Fatalf("anthropic event %q: %s %q, gjson %q", doc, c.what, c.got, c.want)
		}
	}
	want := root.Get("type").Str
	if want == "" {
		want = "name"
	}
	if got := string(ws.anthropic.eventType([]byte("name"))); got != want {
		t.Fatalf("event %q: type %q, gjson %q", doc, got, want)
	}
	ev = &ws.responses.ev
	if raw(ev.typ) != root.Get("type").Raw || raw(ev.delta) != delta.Raw {
		t.Fatalf("responses event %q: type %q delta %q", doc, raw(ev.typ), raw(ev.delta))
	}
}

// resumePrefix returns the start of doc a walk of a kind resumes after.
func resumePrefix(doc string, kind objKind) string {
	var w walker
	w.walk([]byte(doc), kind)
	return string(w.resume.prefix)
}

// TestWalkMatchesGjson reads every recorded event, generated events and
// damaged ones with both the walker and gjson: the same validity, the same
// values. Generated events follow one another with the same start and
// another end, as a stream's do.
func TestWalkMatchesGjson(t *testing.T) {
	var ws walkers
	events := streamEvents(t)
	rng := rand.New(rand.NewPCG(30, 31))
	for _, ev := range events {
		checkWalk(t, &ws, ev)
		for range 20 {
			checkWalk(t, &ws, mutate(rng, ev))
		}
	}
	g := &jsonGen{rng: rng}
	hits := 0
	for range 12000 {
		doc := g.doc()
		checkWalk(t, &ws, doc)
		checkWalk(t, &ws, mutate(rng, doc))
		for _, kind := range []objKind{objChunk, objAnthropic} {
			p := resumePrefix(doc, kind)
			if p == "" {
				continue
			}
			next := g.doc()
			tail := next[len(resumePrefix(next, kind)):]
			if tail == next {
				tail = next[1:] // the members of another object
			}
			checkWalk(t, &ws, doc)
			checkWalk(t, &ws, p+tail)
			checkWalk(t, &ws, mutate(rng, p+tail))
			hits++
		}
	}
	if hits < 2000 {
		t.Fatalf("only %d documents repeated the start of the last one", hits)
	}
}

// TestWalkResume walks events that repeat the start of the last one,
// with every kind of end: whatever the walk skipped is as if it was
// walked.
func TestWalkResume(t *testing.T) {
	chunk := `{"id":"c1","model":"gpt-5","usage":null,"choices":`
	anthropic := `{"type":"content_block_delta","index":0,"delta":`
	tests := []string{
		chunk + `[{"delta":{"content":"Hi"}}]}`,
		chunk + `[{"delta":{"content":" there"},"finish_reason":"length"}],"model":"other"}`,
		chunk + ` [],"usage":{"prompt_tokens":1,"completion_tokens":2}}`,
		chunk + `[],"choices":[{"text":"again"}]}`,
		chunk,
		chunk + ` `,
		chunk + `[{"delta":{"content":"x"}}]`,
		chunk + `[{"delta":{"content":"x"}}]}}`,
		chunk + `[{"delta":{"content":"x"}}]} x`,
		chunk + `{"delta":{"content":"not a list"}}}`,
		`{"id":"c2","model":"gpt-5","usage":null,"choices":[{"delta":{"content":"Hi"}}]}`,
		`{"id":"c1","model":"gpt-5","usage":{"prompt_tokens":3},"choices":[{"delta":{"content":"Hi"}}]}`,
		chunk + `[{"delta":{"content":"Hi"}}]}`,
		anthropic + `{"type":"text_delta","text":"Hi"}}`,
		anthropic + `{"text":" there","type":"text_delta"}}`,
		anthropic + `{"type":"thinking_delta","thinking":"hmm"},"delta":{"type":"text_delta","text":"no"}}`,
		anthropic + `"not an object"}`,
		anthropic + `{"type":"text_delta","text":"Hi"},"type":"message_delta"}`,
		anthropic + `{"type":"text_delta","text":"Hi"}`,
		anthropic + `{"type":"text_delta","text":"Hi"}},`,
		`{"type":"message_delta","index":0,"delta":{"stop_reason":"max_tokens"}}`,
		anthropic + `{"type":"text_delta"},"choices":[{"text":"Hi"}]}`,
		anthropic + `{"type":"text_delta"},"choices":[{"text":"Hi"}]}`,
		anthropic + `{"type":"input_json_delta","partial_json":"{\"a\":"}}`,
	}
	var ws walkers
	var one walker // walks every kind in turn
	for _, doc := range tests {
		checkWalk(t, &ws, doc)
		checkWalk(t, &ws, doc)
		for _, kind := range []objKind{objAnthropic, objChunk, objResponses, objChunk} {
			var fresh walker
			d := []byte(doc)
			if one.walk(d, kind) != fresh.walk(d, kind) || !slices.Equal(one.ev.texts, fresh.ev.texts) {
				t.Fatalf("%q as %d: the walk depends on the kind walked before", doc, kind)
			}
			a, b := one.ev, fresh.ev
			a.texts, b.texts = nil, nil
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%q as %d: the walk depends on the kind walked before", doc, kind)
			}
		}
	}
	if p := resumePrefix(tests[0], objChunk); p != chunk {
		t.Fatalf("chunk resumes after %q", p)
	}
	if p := resumePrefix(tests[13], objAnthropic); p != anthropic {
		t.Fatalf("anthropic event resumes after %q", p)
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
// valid exactly when gjson.Valid does, and reads the values gjson reads,
// also when the document follows another (next, then data again) whose
// start it may repeat.
func FuzzWalk(f *testing.F) {
	rng := rand.New(rand.NewPCG(34, 35))
	for _, ev := range streamEvents(f) {
		f.Add([]byte(ev), []byte(mutate(rng, ev)))
	}
	g := &jsonGen{rng: rng}
	for range 50 {
		doc := g.doc()
		f.Add([]byte(doc), []byte(mutate(rng, doc)))
	}
	f.Add([]byte(`{"a":`+strings.Repeat("[", 70)+strings.Repeat("]", 70)+`}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, data, next []byte) {
		var ws walkers
		checkWalk(t, &ws, string(data))
		checkWalk(t, &ws, string(next))
		checkWalk(t, &ws, string(data))
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
	// The same chunk from another stream: every walk of the two in turn
	// starts from the beginning.
	other := bytes.Replace(chat, []byte(`"id":"chatcmpl-`), []byte(`"id":"chatcmpm-`), 1)
	for _, bc := range []struct {
		name, event string
		api         API
		data, other []byte
	}{
		{"chat-chunk", "", APIChatCompletions, chat, nil},
		{"chat-chunk-unlike-last", "", APIChatCompletions, chat, other},
		{"anthropic-text-delta", "content_block_delta", APIAnthropicMessages,
			[]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" How can I help"}}`), nil},
		{"responses-text-delta", "response.output_text.delta", APIResponses,
			[]byte(`{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_68af0f8c2d8c8193a6ad1d6a1b2c3d4e0bd5ebc9a1f2e3d4","output_index":0,"content_index":0,"delta":" there","logprobs":[]}`), nil},
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
				data, other := bc.data, bc.other
				if other == nil {
					other = data
				}
				for b.Loop() {
					reader.h.event(name, data)
					data, other = other, data
				}
				if m.Malformed() != 0 || !m.FirstContent() {
					b.Fatalf("malformed %d, first content %v", m.Malformed(), m.FirstContent())
				}
			})
		}
	}
}
