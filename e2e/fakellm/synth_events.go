package fakellm

import "strings"

// responsesAnswer follows OpenAI's Responses API: typed events with sequence
// numbers; usage is null until response.completed, which carries it.
func responsesAnswer(req request, p Plan, u Usage) answer {
	id := "resp_" + req.id
	itemID := "msg_" + req.id
	text := strings.Repeat(p.Content, p.Chunks)
	usage := obj{
		"input_tokens": u.Input, "input_tokens_details": obj{"cached_tokens": u.CachedInput},
		"output_tokens": u.Output, "output_tokens_details": obj{"reasoning_tokens": u.Reasoning},
		"total_tokens": u.Total(),
	}
	response := func(status string, done bool) obj {
		r := obj{"id": id, "object": "response", "created_at": req.created, "status": status, "model": req.model,
			"output": []obj{}, "usage": nil}
		if done {
			r["output"] = []obj{{"id": itemID, "type": "message", "status": "completed", "role": "assistant",
				"content": []obj{{"type": "output_text", "text": text, "annotations": []obj{}}}}}
			setUsage(r, p, usage)
		}
		return r
	}
	if !req.stream {
		return answer{contentType: "application/json",
			events: []event{{data: []byte(mustJSON(response("completed", true))), text: text, usage: !p.OmitUsage && !p.NullUsage}}}
	}
	seq := 0
	ev := func(typ string, fields obj) []byte {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		return namedSSE(typ, fields)
	}
	evs := []event{
		{data: ev("response.created", obj{"response": response("in_progress", false)})},
		{data: ev("response.in_progress", obj{"response": response("in_progress", false)})},
		{data: ev("response.output_item.added", obj{"output_index": 0,
			"item": obj{"id": itemID, "type": "message", "status": "in_progress", "role": "assistant", "content": []obj{}}})},
		{data: ev("response.content_part.added", obj{"item_id": itemID, "output_index": 0, "content_index": 0,
			"part": obj{"type": "output_text", "text": "", "annotations": []obj{}}})},
	}
	for i := 0; i < p.Chunks; i++ {
		evs = append(evs, event{data: ev("response.output_text.delta", obj{"item_id": itemID, "output_index": 0,
			"content_index": 0, "delta": p.Content}), text: p.Content, content: true})
	}
	evs = append(evs,
		event{data: ev("response.output_text.done", obj{"item_id": itemID, "output_index": 0, "content_index": 0, "text": text})},
		event{data: ev("response.content_part.done", obj{"item_id": itemID, "output_index": 0, "content_index": 0,
			"part": obj{"type": "output_text", "text": text, "annotations": []obj{}}})},
		event{data: ev("response.output_item.done", obj{"output_index": 0,
			"item": obj{"id": itemID, "type": "message", "status": "completed", "role": "assistant",
				"content": []obj{{"type": "output_text", "text": text, "annotations": []obj{}}}}})},
		event{data: ev("response.completed", obj{"response": response("completed", true)}), usage: !p.OmitUsage && !p.NullUsage},
	)
	return answer{stream: true, contentType: "text/event-stream; charset=utf-8", events: evs}
}

// messagesAnswer follows Anthropic's Messages API. Its input_tokens exclude
// the cache reads and writes, which it reports apart; message_start carries
// the input side and message_delta the cumulative output tokens.
func messagesAnswer(req request, p Plan, u Usage) answer {
	id := "msg_" + req.id
	text := strings.Repeat(p.Content, p.Chunks)
	uncached := max(u.Input-u.CachedInput-u.CacheCreation, 0)
	startUsage := obj{"input_tokens": uncached, "cache_creation_input_tokens": u.CacheCreation,
		"cache_read_input_tokens": u.CachedInput, "output_tokens": 1}
	fullUsage := obj{"input_tokens": uncached, "cache_creation_input_tokens": u.CacheCreation,
		"cache_read_input_tokens": u.CachedInput, "output_tokens": u.Output}
	if !req.stream {
		m := obj{"id": id, "type": "message", "role": "assistant", "model": req.model,
			"content": []obj{{"type": "text", "text": text}}, "stop_reason": "end_turn", "stop_sequence": nil}
		setUsage(m, p, fullUsage)
		return answer{contentType: "application/json",
			events: []event{{data: []byte(mustJSON(m)), text: text, usage: !p.OmitUsage && !p.NullUsage}}}
	}
	message := obj{"id": id, "type": "message", "role": "assistant", "model": req.model, "content": []obj{},
		"stop_reason": nil, "stop_sequence": nil}
	setUsage(message, p, startUsage)
	delta := obj{"type": "message_delta", "delta": obj{"stop_reason": "end_turn", "stop_sequence": nil}}
	setUsage(delta, p, obj{"output_tokens": u.Output})
	evs := []event{
		{data: namedSSE("message_start", obj{"type": "message_start", "message": message})},
		{data: namedSSE("content_block_start", obj{"type": "content_block_start", "index": 0,
			"content_block": obj{"type": "text", "text": ""}})},
		{data: namedSSE("ping", obj{"type": "ping"})},
	}
	for i := 0; i < p.Chunks; i++ {
		evs = append(evs, event{data: namedSSE("content_block_delta", obj{"type": "content_block_delta", "index": 0,
			"delta": obj{"type": "text_delta", "text": p.Content}}), text: p.Content, content: true})
	}
	evs = append(evs,
		event{data: namedSSE("content_block_stop", obj{"type": "content_block_stop", "index": 0})},
		event{data: namedSSE("message_delta", delta), usage: !p.OmitUsage && !p.NullUsage},
		event{data: namedSSE("message_stop", obj{"type": "message_stop"})},
	)
	return answer{stream: true, contentType: "text/event-stream; charset=utf-8", events: evs}
}
