package usage

import (
	"encoding/base64"
	"encoding/binary"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/processor/tokens"
)

// Fixed estimates for what tollgate cannot tokenize. They are estimates:
// the provider's bill is the truth, settled when the response reports it.
const (
	// perMessage and replyPriming are OpenAI's chat framing: each message
	// costs 3 tokens besides its fields, and 3 more prime the reply
	// (OpenAI cookbook, "How to count tokens with tiktoken").
	perMessage   = 3
	replyPriming = 3
	perName      = 1
	// toolsOverhead is the framing of the tool definitions block.
	toolsOverhead = 12
	// anthropicImage is Anthropic's charge for the largest image it takes
	// without downscaling (about 1.15 megapixels / 750 pixels per token).
	anthropicImage = 1600
	// fileTokens stands for a document (PDF) part: its text and page
	// images are extracted upstream, a page is roughly this much.
	fileTokens = 1000
	// audioBytesPerToken: OpenAI bills input audio at about 10 tokens a
	// second; without a WAV header the data is taken as 16 kB a second.
	audioBytesPerToken = 1600
)

// EstimatePrompt estimates the prompt tokens of a request body the way the
// provider counts them, before the call: OpenAI's chat framing (per message
// 3 tokens, its role, content and name, 3 to prime the reply), tool
// definitions rendered the way OpenAI shows them to the model, fixed
// estimates for images (measured when inline, see imageTokens), audio and
// files. Completions and embeddings count
// their prompt or input (token id arrays by their length). Anthropic's
// tokenizer is not public: its prompts are counted with enc, an estimate.
// enc nil counts 4 bytes a token. An unknown API or a body that is not a
// JSON object estimates 0.
func EstimatePrompt(api API, body []byte, enc *tokens.Encoding) int64 {
	s := bytesString(body)
	if !gjson.Valid(s) {
		return 0
	}
	root := gjson.Parse(s)
	if !root.IsObject() {
		return 0
	}
	e := estimator{enc: enc, model: root.Get("model").Str}
	switch api {
	case APIChatCompletions:
		e.chat(root)
	case APICompletions:
		e.promptInput(root.Get("prompt"))
		e.str(root.Get("suffix"))
	case APIEmbeddings:
		e.promptInput(root.Get("input"))
	case APIResponses:
		e.responses(root)
	case APIAnthropicMessages:
		e.anthropic(root)
	}
	return e.n
}

type estimator struct {
	enc   *tokens.Encoding
	model string
	n     int64
	buf   []byte
}

// str counts a JSON string value.
func (e *estimator) str(v gjson.Result) {
	if v.Type != gjson.String || len(v.Raw) <= 2 || v.Raw[0] != '"' {
		return
	}
	raw := v.Raw[1 : len(v.Raw)-1]
	if strings.IndexByte(raw, '\\') < 0 {
		e.text(stringBytes(raw))
		return
	}
	e.buf = appendUnescaped(e.buf[:0], raw)
	e.text(e.buf)
}

func (e *estimator) text(b []byte) {
	if e.enc == nil {
		e.n += int64(len(b)+3) / 4
		return
	}
	e.n += int64(e.enc.CountBytes(b))
}

// raw counts JSON as the compact text it is (a tool call's input, a
// schema): the whitespace a client pretty-prints with is not what the
// model is shown.
func (e *estimator) raw(v gjson.Result) {
	if !v.Exists() {
		return
	}
	e.buf = appendCompact(e.buf[:0], v.Raw)
	e.text(e.buf)
}

// appendCompact appends JSON without the whitespace between tokens.
func appendCompact(dst []byte, s string) []byte {
	inStr, esc := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case isSpace(c):
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// promptInput counts a completions prompt or an embeddings input: a string,
// an array of strings, an array of token ids, or an array of those.
func (e *estimator) promptInput(v gjson.Result) {
	switch {
	case v.Type == gjson.String:
		e.str(v)
	case v.IsArray():
		forEach(v, func(_, el gjson.Result) bool {
			switch {
			case el.Type == gjson.String:
				e.str(el)
			case el.Type == gjson.Number:
				e.n++
			case el.IsArray():
				forEach(el, func(_, _ gjson.Result) bool {
					e.n++
					return true
				})
			}
			return true
		})
	}
}

func (e *estimator) chat(root gjson.Result) {
	forEach(root.Get("messages"), func(_, msg gjson.Result) bool {
		e.n += perMessage
		forEach(msg, func(k, v gjson.Result) bool {
			switch k.Str {
			case "content":
				e.chatContent(v)
			case "name":
				e.str(v)
				e.n += perName
			case "tool_calls":
				forEach(v, func(_, call gjson.Result) bool {
					e.str(call.Get("function.name"))
					e.str(call.Get("function.arguments"))
					return true
				})
			case "function_call":
				e.str(v.Get("name"))
				e.str(v.Get("arguments"))
			default:
				e.str(v) // role, tool_call_id, refusal…
			}
			return true
		})
		return true
	})
	e.n += replyPriming
	harmony := isHarmony(e.model)
	e.tools(root.Get("tools"), "function", harmony)
	e.tools(root.Get("functions"), "", harmony)
	if rf := root.Get("response_format"); rf.Get("type").Str == "json_schema" {
		e.responseFormat(rf.Get("json_schema.name"), rf.Get("json_schema.schema"))
	}
}

// chatContent counts an OpenAI message content: a string or an array of
// parts (text, image_url, input_audio, file, refusal).
func (e *estimator) chatContent(v gjson.Result) {
	if v.Type == gjson.String {
		e.str(v)
		return
	}
	forEach(v, func(_, part gjson.Result) bool {
		switch part.Get("type").Str {
		case "text", "input_text", "output_text":
			e.str(part.Get("text"))
		case "refusal":
			e.str(part.Get("refusal"))
		case "image_url":
			e.n += imageTokens(e.model, part.Get("image_url.url").Str, part.Get("image_url.detail").Str)
		case "input_image":
			e.n += imageTokens(e.model, part.Get("image_url").Str, part.Get("detail").Str)
		case "input_audio":
			e.audio(part.Get("input_audio.data").Str)
		case "file", "input_file":
			e.n += fileTokens
		}
		return true
	})
}

// audio estimates base64 audio: by its duration when it is a WAV file
// (byte rate from the header), by its size otherwise.
func (e *estimator) audio(b64 string) {
	size := int64(base64.StdEncoding.DecodedLen(len(b64)))
	var head [45]byte
	if len(b64) >= 60 {
		if n, err := base64.StdEncoding.Decode(head[:], []byte(b64[:60])); err == nil && n >= 32 &&
			string(head[0:4]) == "RIFF" && string(head[8:12]) == "WAVE" {
			if rate := int64(binary.LittleEndian.Uint32(head[28:32])); rate > 0 {
				// 10 tokens a second, rounded up.
				e.n += (size*10 + rate - 1) / rate
				return
			}
		}
	}
	e.n += 1 + size/audioBytesPerToken
}

func (e *estimator) responses(root gjson.Result) {
	e.str(root.Get("instructions"))
	input := root.Get("input")
	if input.Type == gjson.String {
		e.n += perMessage
		e.str(input)
	}
	forEach(input, func(_, item gjson.Result) bool {
		e.n += perMessage
		switch item.Get("type").Str {
		case "", "message":
			e.str(item.Get("role"))
			e.chatContent(item.Get("content"))
		case "function_call":
			e.str(item.Get("name"))
			e.str(item.Get("arguments"))
		case "function_call_output", "custom_tool_call_output":
			if o := item.Get("output"); o.Type == gjson.String {
				e.str(o)
			} else {
				e.chatContent(o)
			}
		case "reasoning":
			forEach(item.Get("summary"), func(_, p gjson.Result) bool {
				e.str(p.Get("text"))
				return true
			})
		case "custom_tool_call":
			e.str(item.Get("name"))
			e.str(item.Get("input"))
		}
		return true
	})
	e.n += replyPriming
	e.tools(root.Get("tools"), "", isHarmony(e.model))
	if f := root.Get("text.format"); f.Get("type").Str == "json_schema" {
		e.responseFormat(f.Get("name"), f.Get("schema"))
	}
}

// responseFormat counts a structured-output schema, which the model is
// shown under a "Response Formats" heading as compact JSON.
func (e *estimator) responseFormat(name, schema gjson.Result) {
	e.text([]byte("# Response Formats\n\n## "))
	e.str(name)
	e.raw(schema)
}

func (e *estimator) anthropic(root gjson.Result) {
	if sys := root.Get("system"); sys.Type == gjson.String {
		e.str(sys)
	} else {
		e.anthropicContent(sys)
	}
	forEach(root.Get("messages"), func(_, msg gjson.Result) bool {
		e.n += perMessage
		e.str(msg.Get("role"))
		if c := msg.Get("content"); c.Type == gjson.String {
			e.str(c)
		} else {
			e.anthropicContent(c)
		}
		return true
	})
	e.n += replyPriming
	forEach(root.Get("tools"), func(_, t gjson.Result) bool {
		e.str(t.Get("name"))
		e.str(t.Get("description"))
		e.raw(t.Get("input_schema"))
		return true
	})
}

// anthropicContent counts Anthropic content blocks.
func (e *estimator) anthropicContent(v gjson.Result) {
	forEach(v, func(_, b gjson.Result) bool {
		switch b.Get("type").Str {
		case "text":
			e.str(b.Get("text"))
		case "thinking":
			e.str(b.Get("thinking"))
		case "image":
			e.n += anthropicImage
		case "document":
			e.n += fileTokens
		case "tool_use", "server_tool_use":
			e.str(b.Get("name"))
			e.raw(b.Get("input"))
		case "tool_result":
			if c := b.Get("content"); c.Type == gjson.String {
				e.str(c)
			} else {
				e.anthropicContent(c)
			}
		}
		return true
	})
}
