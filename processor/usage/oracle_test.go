package usage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/tidwall/gjson"
)

// The oracle: how the Meter read a streamed event before the walker, with
// gjson (Valid, Parse, then ForEach over every level), kept to check the
// walker against.

// extraction is what reading an OpenAI chunk yields, in a form both
// readers produce: texts are the raw bodies of the strings counted, in
// order; usage is the raw last root usage.
type extraction struct {
	texts   []string
	model   string
	usage   string
	choices int
	capped  int
}

func (e extraction) String() string {
	return fmt.Sprintf("texts %q model %q usage %q choices %d capped %d", e.texts, e.model, e.usage, e.choices, e.capped)
}

func (e extraction) equal(o extraction) bool {
	if len(e.texts) != len(o.texts) {
		return false
	}
	for i := range e.texts {
		if e.texts[i] != o.texts[i] {
			return false
		}
	}
	return e.model == o.model && e.usage == o.usage && e.choices == o.choices && e.capped == o.capped
}

// gjsonChunk reads a valid chunk as openAIChunk does: a ForEach over the
// root, the last choices and usage, the first non-empty model.
func gjsonChunk(s string) extraction {
	x := extraction{choices: -1}
	var choices, usage gjson.Result
	forEach(gjson.Parse(s), func(k, v gjson.Result) bool {
		switch k.Str {
		case "choices":
			choices = v
		case "usage":
			usage = v
		case "model":
			if x.model == "" && v.Type == gjson.String && v.Str != "" {
				x.model = v.Str
			}
		}
		return true
	})
	x.usage = usage.Raw
	if !choices.IsArray() {
		return x
	}
	x.choices = 0
	forEach(choices, func(_, c gjson.Result) bool {
		x.choices++
		if !c.IsObject() {
			return true
		}
		forEach(c, func(k, v gjson.Result) bool {
			switch k.Str {
			case "delta", "message":
				x.message(v)
			case "text":
				x.text(v)
			case "finish_reason":
				if v.Str == "length" {
					x.capped++
				}
			}
			return true
		})
		return true
	})
	return x
}

func (x *extraction) message(msg gjson.Result) {
	if !msg.IsObject() {
		return
	}
	forEach(msg, func(k, v gjson.Result) bool {
		switch k.Str {
		case "content":
			if v.Type == gjson.String {
				x.text(v)
			} else if v.IsArray() {
				forEach(v, func(_, part gjson.Result) bool {
					x.text(part.Get("text"))
					return true
				})
			}
		case "reasoning_content", "reasoning", "refusal":
			x.text(v)
		case "tool_calls":
			forEach(v, func(_, call gjson.Result) bool {
				x.function(call.Get("function"))
				return true
			})
		case "function_call":
			x.function(v)
		case "audio":
			x.text(v.Get("transcript"))
		}
		return true
	})
}

func (x *extraction) function(f gjson.Result) {
	if f.IsObject() {
		x.text(f.Get("name"))
		x.text(f.Get("arguments"))
	}
}

func (x *extraction) text(v gjson.Result) {
	if v.Type == gjson.String && len(v.Raw) > 2 {
		x.texts = append(x.texts, v.Raw[1:len(v.Raw)-1])
	}
}

// walkedChunk is the walker's reading of the same chunk.
func walkedChunk(w *walker, d []byte) extraction {
	ev := &w.ev
	x := extraction{choices: ev.choices, capped: ev.capped}
	for _, s := range ev.texts {
		x.texts = append(x.texts, string(s.body(d)))
	}
	if ev.model.ok() {
		x.model = gjson.Parse(string(ev.model.raw(d))).Str
	}
	if ev.usage.ok() {
		x.usage = string(ev.usage.raw(d))
	}
	return x
}

// gjsonEvents reads a Meter's events the old way.
type gjsonEvents struct{ *Meter }

func (g gjsonEvents) event(name, data []byte) bool {
	m := g.Meter
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "[DONE]" {
		return false
	}
	s := bytesString(data)
	if data[0] != '{' || !gjson.Valid(s) {
		m.malformed++
		return false
	}
	root := gjson.Parse(s)
	switch m.o.API {
	case APIResponses:
		m.responsesEvent(name, root)
	case APIAnthropicMessages:
		m.anthropicEvent(name, root, true)
	default:
		if m.openAIChunk(root) && m.forward {
			return true
		}
	}
	return false
}

// runGjsonMeter feeds an uncompressed stream to a Meter that reads its
// events the old way, and returns it with the bytes it forwarded.
func runGjsonMeter(o MeterOptions, chunks [][]byte) (*Meter, []byte) {
	m := &Meter{}
	m.Reset(o)
	m.lent() // as Write does before it feeds the parser
	g := gjsonEvents{m}
	var fwd []byte
	for _, c := range chunks {
		m.decoded += int64(len(c))
		m.sse.feed(c, g)
		if m.forward {
			fwd = append(fwd, m.sse.b.out...)
		} else {
			fwd = append(fwd, c...)
		}
	}
	m.finished = true
	m.sse.finish(g)
	if m.forward {
		fwd = append(fwd, m.sse.b.tail...)
	}
	return m, fwd
}

// jsonGen writes random JSON documents shaped like provider events: the
// keys the Meter reads at the places it reads them, often repeated or
// escaped, values mostly of the type expected and sometimes of any other,
// strings with every kind of escape.
type jsonGen struct {
	rng *rand.Rand
	sb  strings.Builder
}

// genKeys are the keys of each kind of object the generator writes.
var genKeys = map[string][]string{
	"root":     {"choices", "choices", "usage", "model", "type", "delta", "id", "object", "response"},
	"choice":   {"delta", "message", "text", "finish_reason", "index", "logprobs"},
	"message":  {"content", "reasoning_content", "reasoning", "refusal", "tool_calls", "function_call", "audio", "role"},
	"call":     {"function", "function", "id", "type", "index"},
	"function": {"name", "arguments", "arguments", "name"},
	"part":     {"text", "type", "text"},
	"audio":    {"transcript", "id", "transcript"},
	"adelta":   {"type", "text", "thinking", "partial_json", "stop_reason"},
	"usage":    {"prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "prompt_tokens_details"},
	"any":      {"a", "", "text", "choices", "content", `x\u0000`, `cho\"ices`},
}

var genStrings = []string{
	"", "Hi", " there", "length", "stop", `le\u006egth`, "text_delta", "thinking_delta",
	"input_json_delta", "content_block_delta", "message_delta", "message_start",
	"response.output_text.delta", "response.completed", "response.function_call_arguments.delta",
	`content_block_d\u0065lta`, `tab\there`, `quote \" and \\ backslash`, `\/slash \b\f\n\r`,
	`\u00e9t\u00E9`, `\ud83d\ude00 emoji`, `lone \ud800 high`, `lone \udc00 low`, `\ud800\u0041`,
	"héllo 世界", "gpt-4o", `{\"location\":\"Paris\"}`, "\x7f\xff raw bytes", "a longer piece of text, past sixteen bytes",
}

func (g *jsonGen) doc() string {
	g.sb.Reset()
	g.object(0, "root")
	return g.sb.String()
}

func (g *jsonGen) object(depth int, kind string) {
	g.sb.WriteByte('{')
	keys := genKeys[kind]
	for i := range g.rng.IntN(6) {
		if i > 0 {
			g.sb.WriteByte(',')
		}
		g.ws()
		k := keys[g.rng.IntN(len(keys))]
		g.key(k)
		g.ws()
		g.sb.WriteByte(':')
		g.ws()
		g.member(depth+1, kind, k)
		g.ws()
	}
	g.sb.WriteByte('}')
}

// key writes a key, now and then with a letter escaped.
func (g *jsonGen) key(k string) {
	g.sb.WriteByte('"')
	if k != "" && !strings.Contains(k, `\`) && g.rng.IntN(8) == 0 {
		i := g.rng.IntN(len(k))
		fmt.Fprintf(&g.sb, "%s\\u%04x%s", k[:i], k[i], k[i+1:])
	} else {
		g.sb.WriteString(k)
	}
	g.sb.WriteByte('"')
}

// member writes the value of key k in an object of a kind: mostly of the
// expected type.
func (g *jsonGen) member(depth int, kind, k string) {
	if depth > 8 || g.rng.IntN(6) == 0 {
		g.value(depth)
		return
	}
	switch k {
	case "choices":
		g.array(depth, "choice")
	case "delta":
		if kind == "root" {
			g.object(depth, "adelta")
		} else {
			g.object(depth, "message")
		}
	case "message", "response":
		g.object(depth, "message")
	case "content":
		if g.rng.IntN(3) == 0 {
			g.array(depth, "part")
		} else {
			g.str()
		}
	case "tool_calls":
		if g.rng.IntN(3) == 0 {
			g.object(depth, "call")
		} else {
			g.array(depth, "call")
		}
	case "function", "function_call":
		g.object(depth, "function")
	case "audio":
		g.object(depth, "audio")
	case "usage":
		g.object(depth, "usage")
	case "index", "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens":
		g.number()
	default:
		g.str()
	}
}

func (g *jsonGen) value(depth int) {
	n := 6
	if depth < 8 {
		n = 9
	}
	switch g.rng.IntN(n) {
	case 0, 1, 2:
		g.str()
	case 3:
		g.number()
	case 4:
		g.sb.WriteString([...]string{"true", "false", "null"}[g.rng.IntN(3)])
	case 5:
		g.sb.WriteString([...]string{"{}", "[]", "[ ]", "{ }"}[g.rng.IntN(4)])
	case 6, 7:
		g.object(depth+1, "any")
	default:
		g.array(depth+1, "any")
	}
}

func (g *jsonGen) str() {
	g.sb.WriteByte('"')
	g.sb.WriteString(genStrings[g.rng.IntN(len(genStrings))])
	if g.rng.IntN(4) == 0 {
		g.sb.WriteString(genStrings[g.rng.IntN(len(genStrings))])
	}
	g.sb.WriteByte('"')
}

func (g *jsonGen) number() {
	g.sb.WriteString([...]string{"0", "-1", "12", "3.25", "-0.5e10", "1E+2", "7e-3", "1234567890123"}[g.rng.IntN(8)])
}

func (g *jsonGen) ws() {
	if g.rng.IntN(6) == 0 {
		g.sb.WriteString([...]string{" ", "\n", "\t", "\r\n  "}[g.rng.IntN(4)])
	}
}

// array writes an array of objects of a kind, and now and then of other
// values.
func (g *jsonGen) array(depth int, kind string) {
	g.sb.WriteByte('[')
	for i := range g.rng.IntN(4) {
		if i > 0 {
			g.sb.WriteByte(',')
		}
		g.ws()
		if g.rng.IntN(5) > 0 {
			g.object(depth+1, kind)
		} else {
			g.value(depth)
		}
		g.ws()
	}
	g.sb.WriteByte(']')
}

// mutate damages a document the ways a broken stream does: a byte
// changed, dropped or added, the end cut off.
func mutate(rng *rand.Rand, s string) string {
	if s == "" {
		return "{"
	}
	b := []byte(s)
	i := rng.IntN(len(b))
	const alphabet = "{}[]\":,\\ntfu0-.eE \x01\x1f"
	switch rng.IntN(4) {
	case 0:
		b[i] = alphabet[rng.IntN(len(alphabet))]
	case 1:
		b = append(b[:i], b[i+1:]...)
	case 2:
		b = append(b[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[i:]...)...)
	default:
		b = b[:i]
	}
	return string(b)
}
