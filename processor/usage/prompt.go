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
	s = strings.TrimSpace(s)
	if s == "" || s[0] != '{' {
		return 0
	}
	e := estimator{enc: enc, model: strOf(getRaw(s, "model"))}
	switch api {
	case APIChatCompletions:
		e.chat(s)
	case APICompletions:
		e.promptInput(getRaw(s, "prompt"))
		e.str(getRaw(s, "suffix"))
	case APIEmbeddings:
		e.promptInput(getRaw(s, "input"))
	case APIResponses:
		e.responses(s)
	case APIAnthropicMessages:
		e.anthropic(s)
	}
	return e.n
}

// An estimator walks the body as raw JSON text, read with jsonIter and
// getRaw (see prompt_json.go), each element in a method of its own: the
// frames on the stack between the estimate and the tokenizer stay small.
type estimator struct {
	enc   *tokens.Encoding
	model string
	n     int64
	buf   []byte
}

// str counts a JSON string given as raw JSON; anything else counts 0.
func (e *estimator) str(raw string) {
	if len(raw) < 2 || raw[0] != '"' {
		return
	}
	raw = raw[1 : len(raw)-1]
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
	e.compact(v.Raw)
}

func (e *estimator) compact(raw string) {
	if raw == "" {
		return
	}
	e.buf = appendCompact(e.buf[:0], raw)
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
func (e *estimator) promptInput(raw string) {
	if firstByte(raw) == '"' {
		e.str(raw)
		return
	}
	var els jsonIter
	for els.start(raw); els.next(); {
		switch c := els.cur[0]; {
		case c == '"':
			e.str(els.cur)
		case c == '[':
			e.n += int64(count(els.cur))
		case c == '-' || '0' <= c && c <= '9':
			e.n++
		}
	}
}

// firstByte returns the first byte of raw JSON (its kind), or 0 for none.
func firstByte(raw string) byte {
	if raw == "" {
		return 0
	}
	return raw[0]
}

// count returns the number of elements of an array.
func count(raw string) int {
	n := 0
	var it jsonIter
	for it.start(raw); it.next(); {
		n++
	}
	return n
}

func (e *estimator) chat(root string) {
	e.chatMessages(getRaw(root, "messages"))
	// gpt-5 models prime the reply with a token less than OpenAI's
	// documented chat framing (see tokens.ChatFormatFor).
	e.n += int64(tokens.ChatFormatFor(e.model).Reply)
	e.chatTools(root)
}

func (e *estimator) chatMessages(msgs string) {
	var it jsonIter
	for it.start(msgs); it.next(); {
		e.n += perMessage
		e.chatMessage(it.cur)
	}
}

func (e *estimator) chatMessage(msg string) {
	var m jsonIter
	for m.start(msg); m.next(); {
		switch m.key {
		case "content":
			e.chatContent(m.cur)
		case "name":
			e.str(m.cur)
			e.n += perName
		case "tool_calls":
			e.toolCalls(m.cur)
		case "function_call":
			e.str(getRaw(m.cur, "name"))
			e.str(getRaw(m.cur, "arguments"))
		default:
			e.str(m.cur) // role, tool_call_id, refusal…
		}
	}
}

func (e *estimator) toolCalls(calls string) {
	var it jsonIter
	for it.start(calls); it.next(); {
		e.str(getRaw(it.cur, "function.name"))
		e.str(getRaw(it.cur, "function.arguments"))
	}
}

func (e *estimator) chatTools(root string) {
	harmony := isHarmony(e.model)
	e.tools(parse(getRaw(root, "tools")), "function", harmony)
	e.tools(parse(getRaw(root, "functions")), "", harmony)
	if rf := getRaw(root, "response_format"); strOf(getRaw(rf, "type")) == "json_schema" {
		e.responseFormat(getRaw(rf, "json_schema.name"), getRaw(rf, "json_schema.schema"))
	}
}

// chatContent counts an OpenAI message content: a string or an array of
// parts (text, image_url, input_audio, file, refusal).
func (e *estimator) chatContent(content string) {
	if firstByte(content) == '"' {
		e.str(content)
		return
	}
	var parts jsonIter
	for parts.start(content); parts.next(); {
		e.chatPart(parts.cur)
	}
}

func (e *estimator) chatPart(part string) {
	switch strOf(getRaw(part, "type")) {
	case "text", "input_text", "output_text":
		e.str(getRaw(part, "text"))
	case "refusal":
		e.str(getRaw(part, "refusal"))
	case "image_url":
		e.image(part, "image_url.url", "image_url.detail")
	case "input_image":
		e.image(part, "image_url", "detail")
	case "input_audio":
		e.audio(strOf(getRaw(part, "input_audio.data")))
	case "file", "input_file":
		e.n += fileTokens
	}
}

func (e *estimator) image(part, url, detail string) {
	e.n += imageTokens(e.model, strOf(getRaw(part, url)), strOf(getRaw(part, detail)))
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

func (e *estimator) responses(root string) {
	e.str(getRaw(root, "instructions"))
	input := getRaw(root, "input")
	if firstByte(input) == '"' {
		e.n += perMessage
		e.str(input)
	}
	var items jsonIter
	for items.start(input); items.next(); {
		e.n += perMessage
		e.responsesItem(items.cur)
	}
	e.n += replyPriming
	e.tools(parse(getRaw(root, "tools")), "", isHarmony(e.model))
	if f := getRaw(root, "text.format"); strOf(getRaw(f, "type")) == "json_schema" {
		e.responseFormat(getRaw(f, "name"), getRaw(f, "schema"))
	}
}

func (e *estimator) responsesItem(item string) {
	switch strOf(getRaw(item, "type")) {
	case "", "message":
		e.str(getRaw(item, "role"))
		e.chatContent(getRaw(item, "content"))
	case "function_call":
		e.str(getRaw(item, "name"))
		e.str(getRaw(item, "arguments"))
	case "function_call_output", "custom_tool_call_output":
		e.chatContent(getRaw(item, "output"))
	case "reasoning":
		var ps jsonIter
		for ps.start(getRaw(item, "summary")); ps.next(); {
			e.str(getRaw(ps.cur, "text"))
		}
	case "custom_tool_call":
		e.str(getRaw(item, "name"))
		e.str(getRaw(item, "input"))
	}
}

// responseFormat counts a structured-output schema, which the model is
// shown under a "Response Formats" heading as compact JSON.
func (e *estimator) responseFormat(name, schema string) {
	e.text([]byte("# Response Formats\n\n## "))
	e.str(name)
	e.compact(schema)
}

func (e *estimator) anthropic(root string) {
	e.anthropicContent(getRaw(root, "system"))
	var msgs jsonIter
	for msgs.start(getRaw(root, "messages")); msgs.next(); {
		e.n += perMessage
		e.str(getRaw(msgs.cur, "role"))
		e.anthropicContent(getRaw(msgs.cur, "content"))
	}
	e.n += replyPriming
	var tools jsonIter
	for tools.start(getRaw(root, "tools")); tools.next(); {
		e.str(getRaw(tools.cur, "name"))
		e.str(getRaw(tools.cur, "description"))
		e.compact(getRaw(tools.cur, "input_schema"))
	}
}

// anthropicContent counts Anthropic content: a string or content blocks.
func (e *estimator) anthropicContent(content string) {
	if firstByte(content) == '"' {
		e.str(content)
		return
	}
	var blocks jsonIter
	for blocks.start(content); blocks.next(); {
		e.anthropicBlock(blocks.cur)
	}
}

func (e *estimator) anthropicBlock(b string) {
	switch strOf(getRaw(b, "type")) {
	case "text":
		e.str(getRaw(b, "text"))
	case "thinking":
		e.str(getRaw(b, "thinking"))
	case "image":
		e.n += anthropicImage
	case "document":
		e.n += fileTokens
	case "tool_use", "server_tool_use":
		e.str(getRaw(b, "name"))
		e.compact(getRaw(b, "input"))
	case "tool_result":
		e.anthropicContent(getRaw(b, "content"))
	}
}
