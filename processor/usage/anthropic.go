package usage

import "github.com/tidwall/gjson"

// anthropicUsage keeps Anthropic's usage fields apart until the end: they
// arrive in two events and the input is their sum.
type anthropicUsage struct {
	input, cacheRead, cacheCreation, output int64
}

// anthropicEvent reads one event of an Anthropic Messages stream, or a
// whole non-streamed message (stream false). A stream opens with
// message_start, whose message.usage has the input (input_tokens,
// cache_read_input_tokens, cache_creation_input_tokens) and a first
// output_tokens; each message_delta's usage.output_tokens is the running
// total so far (the last one is final) and may restate the input fields.
func (m *Meter) anthropicEvent(name []byte, root gjson.Result, stream bool) {
	typ := root.Get("type").Str
	if typ == "" {
		typ = bytesString(name)
	}
	switch typ {
	case "message_start":
		msg := root.Get("message")
		m.setModel(msg.Get("model"))
		if u := msg.Get("usage"); u.IsObject() {
			m.anthropicUsage(u, false)
		}
	case "content_block_start":
		m.anthropicBlock(root.Get("content_block"), stream)
	case "content_block_delta":
		// A streamed one is read by anthropicStreamEvent: the two must
		// agree.
		d := root.Get("delta")
		switch d.Get("type").Str {
		case "text_delta":
			m.text(d.Get("text"))
		case "thinking_delta":
			m.text(d.Get("thinking"))
		case "input_json_delta":
			m.text(d.Get("partial_json"))
		}
	case "message_delta":
		if root.Get("delta.stop_reason").Str == "max_tokens" {
			m.capped++
		}
		if u := root.Get("usage"); u.IsObject() {
			m.anthropicUsage(u, true)
		}
	case "message":
		if root.Get("stop_reason").Str == "max_tokens" {
			m.capped++
		}
		m.setModel(root.Get("model"))
		forEach(root.Get("content"), func(_, b gjson.Result) bool {
			m.anthropicBlock(b, stream)
			return true
		})
	}
}

// anthropicBlock counts a content block. A streamed tool_use block starts
// with an empty input that input_json_delta events fill; a non-streamed one
// has its whole input, counted as the JSON the model wrote.
func (m *Meter) anthropicBlock(b gjson.Result, stream bool) {
	switch b.Get("type").Str {
	case "text":
		m.text(b.Get("text"))
	case "thinking":
		m.text(b.Get("thinking"))
	case "tool_use", "server_tool_use":
		m.text(b.Get("name"))
		if !stream {
			m.rawText(b.Get("input").Raw)
		}
	}
}

// anthropicUsage takes the fields present in u (the last value of each
// wins) and recomputes the normalized usage. final marks the output count
// as the provider's last word: a message_delta, or a non-streamed message.
func (m *Meter) anthropicUsage(u gjson.Result, final bool) {
	a := &m.anth
	sawInput, sawOutput := false, false
	forEach(u, func(k, v gjson.Result) bool {
		n, ok := tokenCount(v)
		if !ok {
			return true
		}
		switch k.Str {
		case "input_tokens":
			a.input, sawInput = n, true
		case "cache_read_input_tokens":
			a.cacheRead = n
		case "cache_creation_input_tokens":
			a.cacheCreation = n
		case "output_tokens":
			a.output, sawOutput = n, true
		}
		return true
	})
	m.rep = Usage{
		Input:         a.input + a.cacheRead + a.cacheCreation,
		Output:        a.output,
		CachedInput:   a.cacheRead,
		CacheCreation: a.cacheCreation,
	}
	m.hasInput = m.hasInput || sawInput
	m.hasOutput = m.hasOutput || (final && sawOutput)
}
