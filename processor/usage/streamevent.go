package usage

import "github.com/tidwall/gjson"

// openAIEvent reads one streamed event of an OpenAI-style API as
// [Meter.openAIChunk] reads a document, in one pass over its bytes. valid
// is false when the event is not valid JSON; nothing is read from it then.
func (m *Meter) openAIEvent(data []byte) (usageOnly, valid bool) {
	w := &m.lent().w
	if !w.walk(data, objChunk) {
		return false, false
	}
	ev := &w.ev
	if ev.model.ok() && m.model == "" {
		m.setModel(gjson.Parse(bytesString(ev.model.raw(data))))
	}
	hasUsage := ev.usage.ok() && ev.usage.raw(data)[0] == '{'
	if hasUsage {
		// One chunk a stream: gjson reads it.
		m.openAIUsage(gjson.Parse(bytesString(ev.usage.raw(data))))
	}
	for _, s := range ev.texts {
		m.countString(s.body(data), s.esc)
	}
	m.capped += int64(ev.capped)
	return ev.choices == 0 && hasUsage, true
}

// anthropicStreamEvent reads one event of an Anthropic Messages stream as
// [Meter.anthropicEvent] does. The text deltas, one per token or so, are
// read from the walk; the few other events by gjson once the walk found
// them valid.
func (m *Meter) anthropicStreamEvent(name, data []byte) (valid bool) {
	w := &m.lent().w
	if !w.walk(data, objAnthropic) {
		return false
	}
	ev := &w.ev
	if string(w.eventType(name)) != "content_block_delta" {
		m.anthropicEvent(name, gjson.Parse(bytesString(data)), true)
		return true
	}
	switch {
	case w.strIs(ev.deltaType, "text_delta"):
		m.textSpan(ev.deltaText)
	case w.strIs(ev.deltaType, "thinking_delta"):
		m.textSpan(ev.deltaThinking)
	case w.strIs(ev.deltaType, "input_json_delta"):
		m.textSpan(ev.deltaJSON)
	}
	return true
}

// responsesStreamEvent reads one event of a Responses API stream as
// [Meter.responsesEvent] does; its deltas are read from the walk.
func (m *Meter) responsesStreamEvent(name, data []byte) (valid bool) {
	w := &m.lent().w
	if !w.walk(data, objResponses) {
		return false
	}
	if isResponsesDelta(string(w.eventType(name))) {
		m.textSpan(w.ev.delta)
		return true
	}
	m.responsesEvent(name, gjson.Parse(bytesString(data)))
	return true
}

// textSpan counts the value at s of the last walk when it is a non-empty
// string.
func (m *Meter) textSpan(s span) {
	d := m.lent().w.d
	if s.nonEmpty(d) {
		m.countString(s.body(d), s.esc)
	}
}
