package usage

import "github.com/tidwall/gjson"

// openAIChunk reads one chunk of an OpenAI-style stream, or a whole
// non-streamed body: chat completions, legacy completions and embeddings,
// and the providers copying them (Azure OpenAI, DeepSeek, Qwen, Gemini's
// OpenAI endpoint). Streams carry "usage": null on every chunk but the last
// (when include_usage was asked); some providers never fill it, and then
// the streamed text is counted.
//
// It returns true for the usage-only chunk that include_usage adds: choices
// empty and usage set.
//
// Streamed chunks are read by [Meter.openAIEvent] in one pass instead; it
// must read what this reads (walkevent.go, checked against this in the
// tests).
func (m *Meter) openAIChunk(root gjson.Result) (usageOnly bool) {
	var choices, usage gjson.Result
	forEach(root, func(k, v gjson.Result) bool {
		switch k.Str {
		case "choices":
			choices = v
		case "usage":
			usage = v
		case "model":
			m.setModel(v)
		}
		return true
	})
	if usage.IsObject() {
		m.openAIUsage(usage)
	}
	if !choices.IsArray() {
		return false
	}
	n := 0
	forEach(choices, func(_, c gjson.Result) bool {
		n++
		m.openAIChoice(c)
		return true
	})
	return n == 0 && usage.IsObject()
}

// openAIChoice counts the output of one choice: a streamed delta, a
// non-streamed message, or a legacy completion's text.
func (m *Meter) openAIChoice(c gjson.Result) {
	if !c.IsObject() {
		return
	}
	forEach(c, func(k, v gjson.Result) bool {
		switch k.Str {
		case "delta", "message":
			m.openAIMessage(v)
		case "text":
			m.text(v)
		case "finish_reason":
			if v.Str == "length" {
				m.capped++
			}
		}
		return true
	})
}

func (m *Meter) openAIMessage(msg gjson.Result) {
	if !msg.IsObject() {
		return
	}
	forEach(msg, func(k, v gjson.Result) bool {
		switch k.Str {
		case "content":
			m.content(v)
		case "reasoning_content", "reasoning", "refusal":
			// reasoning_content: DeepSeek, Qwen; reasoning: vLLM, OpenRouter.
			m.text(v)
		case "tool_calls":
			forEach(v, func(_, call gjson.Result) bool {
				m.functionCall(call.Get("function"))
				return true
			})
		case "function_call":
			m.functionCall(v)
		case "audio":
			m.text(v.Get("transcript"))
		}
		return true
	})
}

// content counts a message content: a string, or (some compatible
// providers) an array of parts with text.
func (m *Meter) content(v gjson.Result) {
	if v.Type == gjson.String {
		m.text(v)
		return
	}
	if v.IsArray() {
		forEach(v, func(_, part gjson.Result) bool {
			m.text(part.Get("text"))
			return true
		})
	}
}

func (m *Meter) functionCall(f gjson.Result) {
	if !f.IsObject() {
		return
	}
	m.text(f.Get("name"))
	m.text(f.Get("arguments"))
}

// openAIUsage reads a usage object in OpenAI's shapes: chat and legacy
// completions (prompt_tokens, completion_tokens and their details),
// embeddings (prompt_tokens only), the Responses API (input_tokens,
// output_tokens and their details) and DeepSeek's prompt_cache_hit_tokens.
// The last usage seen wins: providers that repeat it on every chunk repeat
// a running total.
func (m *Meter) openAIUsage(u gjson.Result) {
	var r Usage
	var hasIn, hasOut bool
	forEach(u, func(k, v gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens", "input_tokens":
			r.Input, hasIn = tokenCount(v)
		case "completion_tokens", "output_tokens":
			r.Output, hasOut = tokenCount(v)
		case "prompt_tokens_details", "input_tokens_details":
			if n, ok := tokenCount(v.Get("cached_tokens")); ok {
				r.CachedInput = max(r.CachedInput, n)
			}
		case "prompt_cache_hit_tokens":
			if n, ok := tokenCount(v); ok {
				r.CachedInput = max(r.CachedInput, n)
			}
		case "completion_tokens_details", "output_tokens_details":
			r.Reasoning, _ = tokenCount(v.Get("reasoning_tokens"))
		}
		return true
	})
	if !hasIn && !hasOut {
		return
	}
	r.CachedInput = min(r.CachedInput, r.Input)
	r.Reasoning = min(r.Reasoning, r.Output)
	m.rep = r
	m.hasInput = hasIn
	// Embeddings produce no output: their usage is complete without it.
	m.hasOutput = hasOut || m.o.API == APIEmbeddings
}
