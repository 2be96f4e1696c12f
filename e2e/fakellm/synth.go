package fakellm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// event is one piece of a synthesized body: an SSE event, or the whole body
// of a non-streamed answer.
type event struct {
	data []byte
	// text is the generated text it carries; non-empty marks a content chunk.
	text    string
	content bool
	// usage marks the event that carries the usage numbers.
	usage bool
}

// answer is a synthesized response before it is written.
type answer struct {
	stream      bool
	contentType string
	events      []event
}

// request is what the synthesizers need from the client's request.
type request struct {
	model        string
	stream       bool
	includeUsage bool
	body         gjson.Result
	id           string
	created      int64
}

// synthesize answers with a generated response shaped by the Plan.
func (s *Server) synthesize(w http.ResponseWriter, r *http.Request, p Plan, api string, body []byte, rep *Report) {
	if !gjson.ValidBytes(body) {
		rep.Status = http.StatusBadRequest
		writeError(w, api, http.StatusBadRequest, "request body is not JSON")
		return
	}
	g := gjson.ParseBytes(body)
	req := request{
		model:        g.Get("model").String(),
		stream:       g.Get("stream").Bool(),
		includeUsage: g.Get("stream_options.include_usage").Bool(),
		body:         g,
		id:           newID(),
		created:      s.opts.Now().Unix(),
	}
	if req.model == "" {
		rep.Status = http.StatusBadRequest
		writeError(w, api, http.StatusBadRequest, "you must provide a model parameter")
		return
	}
	u := computedUsage(api, g, p)
	var a answer
	switch api {
	case APIChat:
		a = chatAnswer(req, p, u)
	case APICompletions:
		a = completionAnswer(req, p, u)
	case APIResponses:
		a = responsesAnswer(req, p, u)
	case APIEmbeddings:
		req.stream = false
		a = embeddingsAnswer(req, p, u)
	case APIMessages:
		a = messagesAnswer(req, p, u)
	}
	s.update(rep, func(rep *Report) {
		rep.Model, rep.Stream, rep.Status, rep.Usage = req.model, a.stream, http.StatusOK, u
	})
	s.write(w, r, p, a, rep)
}

// write sends the events, pausing before each content chunk, and cuts the
// connection where the Plan says.
func (s *Server) write(w http.ResponseWriter, r *http.Request, p Plan, a answer, rep *Report) {
	cutIndex := len(a.events)
	if p.Cut && a.stream {
		cutIndex = cutPoint(a.events, p.CutAfter)
	} else if p.Cut {
		// A non-streamed body is cut in its middle.
		whole := a.events[0].data
		a.events = []event{{data: whole[:len(whole)/2]}}
		cutIndex = 1
	}
	bw := startBody(w, r, p, http.StatusOK, a.contentType)
	written := 0
	var text strings.Builder
	for i, ev := range a.events {
		if i == cutIndex {
			bw.cut()
		}
		if ev.content {
			if err := s.opts.Sleep(r.Context().Done(), p.Delay); err != nil {
				return
			}
		}
		if err := bw.write(ev.data); err != nil {
			return
		}
		if ev.content {
			written++
		}
		text.WriteString(ev.text)
		s.update(rep, func(rep *Report) {
			rep.Chunks, rep.Text = written, text.String()
			if ev.usage {
				rep.UsageSent = true
			}
		})
	}
	if p.Cut {
		bw.cut()
	}
	if bw.finish() == nil {
		s.update(rep, func(rep *Report) { rep.Completed = true })
	}
}

// cutPoint is the index of the event before which a stream cut after n
// content chunks happens: right after the n-th content chunk (or the last
// one, when there are fewer), or before the first one when n is 0.
func cutPoint(evs []event, n int) int {
	seen := 0
	for i, ev := range evs {
		if !ev.content {
			continue
		}
		if seen == n {
			return i
		}
		seen++
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].content {
			return i + 1
		}
	}
	return len(evs)
}

// computedUsage is the Plan's usage, or one derived from the request: a word
// count of the prompt (not a tokenizer; tests compare with the ledger, not
// with a model) and one output token per chunk.
func computedUsage(api string, g gjson.Result, p Plan) Usage {
	if p.Usage != nil {
		return *p.Usage
	}
	var words int64
	for _, f := range []string{"messages", "input", "prompt", "system", "instructions"} {
		words += countWords(g.Get(f))
	}
	out := int64(p.Chunks)
	if api == APIEmbeddings {
		out = 0
	}
	return Usage{Input: words, Output: out}
}

// countWords counts whitespace-separated words in the text of a JSON value,
// skipping fields that name things rather than say them.
func countWords(v gjson.Result) int64 {
	switch {
	case v.Type == gjson.String:
		return int64(len(strings.Fields(v.String())))
	case v.Type == gjson.Number:
		return 1 // a token id in a pre-tokenized prompt
	case v.IsArray() || v.IsObject():
		var n int64
		v.ForEach(func(k, e gjson.Result) bool {
			switch k.String() {
			case "role", "type", "name", "id", "model", "media_type":
				return true
			}
			n += countWords(e)
			return true
		})
		return n
	}
	return 0
}

func sse(v any) []byte { return []byte("data: " + mustJSON(v) + "\n\n") }

func namedSSE(name string, v any) []byte {
	return []byte("event: " + name + "\ndata: " + mustJSON(v) + "\n\n")
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fakellm: cannot encode %T: %v", v, err))
	}
	return string(b)
}

type obj = map[string]any

func chatUsage(u Usage) obj {
	return obj{
		"prompt_tokens": u.Input, "completion_tokens": u.Output, "total_tokens": u.Total(),
		"prompt_tokens_details":     obj{"cached_tokens": u.CachedInput, "audio_tokens": 0},
		"completion_tokens_details": obj{"reasoning_tokens": u.Reasoning, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
	}
}

// chatAnswer follows OpenAI's chat completions: with
// stream_options.include_usage every chunk carries "usage": null and a last
// chunk with empty choices carries the numbers; without it there is no usage.
func chatAnswer(req request, p Plan, u Usage) answer {
	id := "chatcmpl-" + req.id
	text := strings.Repeat(p.Content, p.Chunks)
	if !req.stream {
		m := obj{
			"id": id, "object": "chat.completion", "created": req.created, "model": req.model,
			"choices": []obj{{"index": 0, "message": obj{"role": "assistant", "content": text, "refusal": nil}, "logprobs": nil, "finish_reason": "stop"}},
		}
		setUsage(m, p, chatUsage(u))
		return answer{contentType: "application/json", events: []event{{data: []byte(mustJSON(m)), text: text, usage: !p.OmitUsage && !p.NullUsage}}}
	}
	withNull := req.includeUsage || p.NullUsage
	chunk := func(delta obj, finish any) obj {
		c := obj{"id": id, "object": "chat.completion.chunk", "created": req.created, "model": req.model, "system_fingerprint": nil,
			"choices": []obj{{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
		if withNull {
			c["usage"] = nil
		}
		return c
	}
	evs := []event{{data: sse(chunk(obj{"role": "assistant", "content": ""}, nil))}}
	for i := 0; i < p.Chunks; i++ {
		evs = append(evs, event{data: sse(chunk(obj{"content": p.Content}, nil)), text: p.Content, content: true})
	}
	evs = append(evs, event{data: sse(chunk(obj{}, "stop"))})
	if req.includeUsage && !p.OmitUsage && !p.NullUsage {
		last := obj{"id": id, "object": "chat.completion.chunk", "created": req.created, "model": req.model, "system_fingerprint": nil,
			"choices": []obj{}, "usage": chatUsage(u)}
		evs = append(evs, event{data: sse(last), usage: true})
	}
	evs = append(evs, event{data: []byte("data: [DONE]\n\n")})
	return answer{stream: true, contentType: "text/event-stream; charset=utf-8", events: evs}
}

// completionAnswer follows OpenAI's legacy completions, which honour
// stream_options.include_usage the same way.
func completionAnswer(req request, p Plan, u Usage) answer {
	id := "cmpl-" + req.id
	usage := obj{"prompt_tokens": u.Input, "completion_tokens": u.Output, "total_tokens": u.Total()}
	text := strings.Repeat(p.Content, p.Chunks)
	if !req.stream {
		m := obj{"id": id, "object": "text_completion", "created": req.created, "model": req.model,
			"choices": []obj{{"text": text, "index": 0, "logprobs": nil, "finish_reason": "stop"}}}
		setUsage(m, p, usage)
		return answer{contentType: "application/json", events: []event{{data: []byte(mustJSON(m)), text: text, usage: !p.OmitUsage && !p.NullUsage}}}
	}
	withNull := req.includeUsage || p.NullUsage
	chunk := func(text string, finish any) obj {
		c := obj{"id": id, "object": "text_completion", "created": req.created, "model": req.model,
			"choices": []obj{{"text": text, "index": 0, "logprobs": nil, "finish_reason": finish}}}
		if withNull {
			c["usage"] = nil
		}
		return c
	}
	var evs []event
	for i := 0; i < p.Chunks; i++ {
		evs = append(evs, event{data: sse(chunk(p.Content, nil)), text: p.Content, content: true})
	}
	evs = append(evs, event{data: sse(chunk("", "stop"))})
	if req.includeUsage && !p.OmitUsage && !p.NullUsage {
		last := obj{"id": id, "object": "text_completion", "created": req.created, "model": req.model, "choices": []obj{}, "usage": usage}
		evs = append(evs, event{data: sse(last), usage: true})
	}
	evs = append(evs, event{data: []byte("data: [DONE]\n\n")})
	return answer{stream: true, contentType: "text/event-stream; charset=utf-8", events: evs}
}

// setUsage puts usage in a non-streamed body, or null, or nothing.
func setUsage(m obj, p Plan, usage obj) {
	switch {
	case p.NullUsage:
		m["usage"] = nil
	case !p.OmitUsage:
		m["usage"] = usage
	}
}

// embeddingsAnswer returns one small vector per input.
func embeddingsAnswer(req request, p Plan, u Usage) answer {
	in := req.body.Get("input")
	n := 1
	if in.IsArray() {
		n = len(in.Array())
		if n > 0 && in.Array()[0].Type == gjson.Number {
			n = 1 // one pre-tokenized input
		}
	}
	dims := int(req.body.Get("dimensions").Int())
	if dims <= 0 {
		dims = 8
	}
	data := make([]obj, n)
	for i := range data {
		vec := make([]float64, dims)
		for j := range vec {
			vec[j] = float64((i+1)*(j+1)%97) / 97
		}
		data[i] = obj{"object": "embedding", "index": i, "embedding": vec}
	}
	m := obj{"object": "list", "data": data, "model": req.model}
	setUsage(m, p, obj{"prompt_tokens": u.Input, "total_tokens": u.Input})
	return answer{contentType: "application/json", events: []event{{data: []byte(mustJSON(m)), usage: !p.OmitUsage && !p.NullUsage}}}
}

// writeError fails a request in the API's own error format.
func writeError(w http.ResponseWriter, api string, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	if api == APIMessages {
		types := map[int]string{400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}
		t, ok := types[status]
		if !ok {
			t = "api_error"
		}
		_, _ = w.Write([]byte(mustJSON(obj{"type": "error", "error": obj{"type": t, "message": msg}})))
		return
	}
	e := obj{"message": msg, "type": "invalid_request_error", "param": nil, "code": nil}
	switch {
	case status == http.StatusTooManyRequests:
		e["type"], e["code"] = "requests", "rate_limit_exceeded"
	case status >= 500:
		e["type"] = "server_error"
	}
	_, _ = w.Write([]byte(mustJSON(obj{"error": e})))
}
