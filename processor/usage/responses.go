package usage

import "github.com/tidwall/gjson"

// responsesEvent reads one event of an OpenAI Responses API stream. Every
// event's JSON carries its "type" (the SSE event name repeats it); the
// usage comes with the final response object of response.completed,
// response.incomplete or response.failed.
func (m *Meter) responsesEvent(name []byte, root gjson.Result) {
	typ := root.Get("type").Str
	if typ == "" {
		typ = bytesString(name)
	}
	if isResponsesDelta(typ) {
		m.text(root.Get("delta"))
		return
	}
	switch typ {
	case "response.created", "response.queued", "response.in_progress",
		"response.completed", "response.incomplete", "response.failed":
		r := root.Get("response")
		m.setModel(r.Get("model"))
		if typ == "response.incomplete" && r.Get("incomplete_details.reason").Str == "max_output_tokens" {
			m.capped = 1
		}
		if u := r.Get("usage"); u.IsObject() {
			m.openAIUsage(u)
		}
	case "response.output_item.added":
		// A function call's name arrives whole here, never as a delta.
		item := root.Get("item")
		switch item.Get("type").Str {
		case "function_call", "custom_tool_call", "mcp_call":
			m.text(item.Get("name"))
		}
	}
}

// isResponsesDelta tells whether a Responses API event type streams
// output text in its "delta".
func isResponsesDelta(typ string) bool {
	switch typ {
	case "response.output_text.delta",
		"response.refusal.delta",
		"response.reasoning_text.delta",
		"response.reasoning_summary_text.delta",
		"response.function_call_arguments.delta",
		"response.custom_tool_call_input.delta",
		"response.mcp_call_arguments.delta",
		"response.code_interpreter_call_code.delta",
		"response.audio.transcript.delta":
		return true
	}
	return false
}

// responsesBody reads a non-streamed response object.
func (m *Meter) responsesBody(root gjson.Result) {
	m.setModel(root.Get("model"))
	if root.Get("incomplete_details.reason").Str == "max_output_tokens" {
		m.capped = 1
	}
	m.responsesOutput(root.Get("output"))
}

// responsesOutput counts the output items of a non-streamed response.
func (m *Meter) responsesOutput(output gjson.Result) {
	forEach(output, func(_, item gjson.Result) bool {
		switch item.Get("type").Str {
		case "message":
			forEach(item.Get("content"), func(_, part gjson.Result) bool {
				m.text(part.Get("text"))
				m.text(part.Get("refusal"))
				return true
			})
		case "reasoning":
			for _, key := range [...]string{"summary", "content"} {
				forEach(item.Get(key), func(_, part gjson.Result) bool {
					m.text(part.Get("text"))
					return true
				})
			}
		case "function_call", "mcp_call":
			m.text(item.Get("name"))
			m.text(item.Get("arguments"))
		case "custom_tool_call":
			m.text(item.Get("name"))
			m.text(item.Get("input"))
		}
		return true
	})
}
