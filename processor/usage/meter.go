package usage

import (
	"bytes"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/processor/tokens"
)

// DefaultMaxBody is the default [MeterOptions.MaxBody].
const DefaultMaxBody = 4 << 20

// MeterOptions describe one response body.
type MeterOptions struct {
	// API is the API of the request (see [Detect]).
	API API
	// SSE is true when the response is a text/event-stream. A body labelled
	// otherwise that does not start like JSON is read as SSE all the same.
	SSE bool
	// Encoding is the response's content-encoding: "", "identity", "gzip",
	// "x-gzip", "deflate" or "br". The body is decoded for reading only;
	// forwarded bytes are never re-encoded. With any other encoding usage
	// cannot be read and [Meter.Usage] reports an estimate of 0.
	Encoding string
	// Counter counts the completion text for when the provider reports no
	// usage; the Meter writes to it and never resets it. Nil disables
	// counting.
	Counter *tokens.Counter
	// DropUsageChunk removes the usage-only chunk (choices empty, usage set)
	// of an OpenAI chat/completions stream from the forwarded bytes, for a
	// client that did not ask for stream_options.include_usage. A
	// compressed stream (see [Decodable]) is forwarded decoded: the caller
	// removes its content-encoding header.
	DropUsageChunk bool
	// MaxOutput is the request's output cap per choice ([Request.MaxOutput]).
	// A choice that stopped because it hit the cap produced exactly that
	// many tokens, reasoning included: the estimate takes it over the
	// counted text, which misses the reasoning a provider does not stream.
	MaxOutput int64
	// MaxBody caps the bytes of a non-SSE body kept for parsing
	// (default DefaultMaxBody). A larger body is scanned for its top-level
	// "usage" and "model" in bounded memory instead.
	MaxBody int
}

type bodyMode uint8

const (
	modeUndecided bodyMode = iota
	modeSSE
	modeJSON
)

// Meter reads the usage of one response body fed chunk by chunk, split
// anywhere. It keeps memory bounded whatever the body's size and allocates
// nothing per chunk once warmed up, so it can be pooled: [Meter.Reset]
// prepares it for the next response, and must also come before the first
// use. A Meter is not safe for concurrent use.
type Meter struct {
	o       MeterOptions
	mode    bodyMode
	forward bool // DropUsageChunk is in effect

	sse      sseParser
	dec      *decoder  // a content-encoded body's decoder; nil until one comes
	body     []byte    // non-SSE body while it fits in MaxBody
	scan     *jsonScan // non-SSE body past MaxBody, or an oversized event; nil until one comes
	overflow bool
	decoded  int64 // bytes of decoded body seen

	rep       Usage // what the provider reported
	hasInput  bool  // rep.Input is the provider's
	hasOutput bool  // rep.Output is the provider's final count
	anth      anthropicUsage
	noCount   bool  // the body reported its usage: skip counting its text
	capped    int64 // choices that stopped at MaxOutput
	model     string
	first     bool
	malformed int
	finished  bool

	// Buffers and walker lent by a spare while the Meter reads (see Idle);
	// resume is the walker's memory between events while none is lent.
	sp     *spare
	resume resumePoint
}

// Reset prepares m for a new response body.
func (m *Meter) Reset(o MeterOptions) {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if cap(m.body) > keepBuffer {
		m.body = nil
	}
	m.o = o
	m.mode = modeUndecided
	if o.SSE {
		m.mode = modeSSE
	}
	// Both rare cases' state is allocated on first need, and a pooled
	// Meter keeps it: a stream held open carries only what it uses.
	if m.dec != nil || encodingKind(o.Encoding) != encIdentity {
		if m.dec == nil {
			m.dec = new(decoder)
		}
		m.dec.reset(o.Encoding)
	}
	m.forward = o.SSE && o.DropUsageChunk && m.encoding() != encUnsupported &&
		(o.API == APIChatCompletions || o.API == APICompletions)
	m.sse.reset(m.forward)
	m.body = m.body[:0]
	if m.scan != nil {
		m.scan.reset()
	}
	m.overflow = false
	m.decoded = 0
	m.rep = Usage{}
	m.hasInput, m.hasOutput = false, false
	m.anth = anthropicUsage{}
	m.noCount = false
	m.capped = 0
	m.model = ""
	m.first = false
	m.malformed = 0
	m.finished = false
	m.resume.reset()
	if m.sp != nil {
		m.sp.w.reset()
	}
}

// Write consumes the next chunk of the body. When the usage chunk is being
// dropped it returns the bytes to forward in place of chunk (whole events
// only: the start of an event is held back until a later chunk completes
// it) and true; the slice is valid until the next call. Otherwise it
// returns nil and false: forward chunk unchanged. Malformed content never
// fails the call; it is skipped (see [Meter.Malformed]).
func (m *Meter) Write(chunk []byte) (forward []byte, replaced bool) {
	if m.finished {
		return nil, false
	}
	m.lent() // the parser's buffers and the walker, for this chunk
	if m.encoding() == encIdentity {
		m.consume(chunk)
		if m.forward {
			return m.sse.b.out, true
		}
		return nil, false
	}
	// A compressed chunk may decode in several pieces; what is forwarded
	// is all of them, decoded.
	m.sp.fwd = m.sp.fwd[:0]
	m.dec.write(chunk, m)
	if m.forward {
		return m.sp.fwd, true
	}
	return nil, false
}

// Finish ends the body (Envoy's end_of_stream) and returns the held bytes
// to forward, as Write does. The bytes the last Write returned stay valid,
// so both can be sent in the same body mutation. Later calls return
// nothing.
func (m *Meter) Finish() (forward []byte, replaced bool) {
	if m.finished {
		if m.forward {
			return nil, true
		}
		return nil, false
	}
	m.finished = true
	m.lent()
	switch m.mode {
	case modeSSE:
		m.sse.finish(m)
	case modeJSON:
		m.finishJSON()
	}
	if m.forward {
		return m.sse.b.tail, true
	}
	return nil, false
}

// Usage returns the usage of the response so far. reported is true when
// the provider reported usage; missing parts are then estimated (an
// Anthropic stream cut before its final message_delta: the output is
// counted) and Estimated is set. When nothing was reported, Output is the
// counted completion, Input is 0 (the caller knows its prompt estimate) and
// Estimated is true. A body that could not be decoded to its end is always
// Estimated: usage may have been in the part that was lost.
func (m *Meter) Usage() (u Usage, reported bool) {
	if m.hasInput || m.hasOutput {
		u = m.rep
		if !m.hasOutput {
			u.Output = max(u.Output, m.counted())
			u.Estimated = true
		}
		if m.decodeFailed() {
			u.Estimated = true
		}
		return u, true
	}
	return Usage{Output: m.counted(), Estimated: true}, false
}

// counted is the output tokens tollgate counted itself.
func (m *Meter) counted() int64 {
	if m.o.API == APIEmbeddings {
		return 0
	}
	if m.overflow {
		// The text of a body past MaxBody was not kept: about 4 bytes of
		// English per token, JSON syntax included.
		return (m.decoded + 3) / 4
	}
	var n int64
	if m.o.Counter != nil {
		n = m.o.Counter.Count()
	}
	return max(n, m.capped*m.o.MaxOutput)
}

// ResponseModel returns the model the provider says answered, "" until seen.
func (m *Meter) ResponseModel() string { return m.model }

// FirstContent tells whether any output (text, reasoning, tool call) was
// seen yet; the caller times the first token by it.
func (m *Meter) FirstContent() bool { return m.first }

// Malformed returns how many events or bodies were skipped as malformed
// (invalid JSON, an event over 1 MiB, a corrupt compressed stream).
func (m *Meter) Malformed() int {
	n := m.malformed + m.sse.malformed
	if m.decodeFailed() {
		n++
	}
	return n
}

// consume takes decoded body bytes.
func (m *Meter) consume(b []byte) {
	m.decoded += int64(len(b))
	if m.mode == modeUndecided {
		i := 0
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) {
			return
		}
		b = b[i:]
		m.mode = modeSSE
		if b[0] == '{' || b[0] == '[' {
			m.mode = modeJSON
		}
	}
	if m.mode == modeSSE {
		m.sse.feed(b, m)
		if m.forward && m.encoding() != encIdentity {
			m.sp.fwd = append(m.sp.fwd, m.sse.b.out...)
		}
		return
	}
	if m.overflow {
		m.scan.feed(b)
		return
	}
	if n := len(m.body) + len(b); n <= m.o.MaxBody {
		if n > cap(m.body) {
			// Grow by doubling, but never past MaxBody.
			grown := make([]byte, len(m.body), min(max(2*cap(m.body), n, 4096), m.o.MaxBody))
			copy(grown, m.body)
			m.body = grown
		}
		m.body = append(m.body, b...)
		return
	}
	m.overflow = true
	m.scanner().reset()
	m.scan.feed(m.body)
	m.scan.feed(b)
	m.body = m.body[:0]
}

// event implements eventHandler.
func (m *Meter) event(name, data []byte) bool {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "[DONE]" {
		return false
	}
	if data[0] != '{' {
		m.malformed++
		return false
	}
	var valid, usageOnly bool
	switch m.o.API {
	case APIResponses:
		valid = m.responsesStreamEvent(name, data)
	case APIAnthropicMessages:
		valid = m.anthropicStreamEvent(name, data)
	default:
		usageOnly, valid = m.openAIEvent(data)
	}
	if !valid {
		m.malformed++
	}
	return usageOnly && m.forward
}

// bigStart implements eventHandler: an event too large to keep is scanned
// for its usage instead.
func (m *Meter) bigStart() { m.scanner().reset() }

// bigData implements eventHandler.
func (m *Meter) bigData(p []byte) { m.scan.feed(p) }

// bigEnd implements eventHandler: the usage found in a large event counts
// as in a small one. Its text is not counted.
func (m *Meter) bigEnd([]byte) {
	s := m.scan
	s.finish()
	switch m.o.API {
	case APIResponses:
		m.setModel(gjson.Parse(bytesString(s.innerModel)))
		if u := gjson.Parse(bytesString(s.innerUsage)); u.IsObject() {
			m.openAIUsage(u)
		}
	case APIAnthropicMessages:
		m.setModel(gjson.Parse(bytesString(s.innerModel)))
		if u := gjson.Parse(bytesString(s.innerUsage)); u.IsObject() {
			m.anthropicUsage(u, false) // message_start
		}
		if u := gjson.Parse(bytesString(s.usage)); u.IsObject() {
			m.anthropicUsage(u, true) // message_delta
		}
	default:
		m.setModel(gjson.Parse(bytesString(s.model)))
		if u := gjson.Parse(bytesString(s.usage)); u.IsObject() {
			m.openAIUsage(u)
		}
	}
}

// finishJSON reads a whole non-SSE body.
func (m *Meter) finishJSON() {
	if m.overflow {
		m.scan.finish()
		m.setModel(gjson.Parse(bytesString(m.scan.model)))
		if u := gjson.Parse(bytesString(m.scan.usage)); u.IsObject() {
			m.applyUsage(u)
		}
		return
	}
	s := bytesString(m.body)
	if !gjson.Valid(s) {
		m.malformed++
		return
	}
	root := gjson.Parse(s)
	if !root.IsObject() {
		return
	}
	if u := root.Get("usage"); u.IsObject() {
		m.applyUsage(u)
	}
	m.noCount = m.hasOutput
	switch m.o.API {
	case APIResponses:
		m.responsesBody(root)
	case APIAnthropicMessages:
		m.anthropicEvent(nil, root, false)
	default:
		m.openAIChunk(root)
	}
}

// applyUsage reads a usage object of the response's API.
func (m *Meter) applyUsage(u gjson.Result) {
	if m.o.API == APIAnthropicMessages {
		m.anthropicUsage(u, true)
		return
	}
	m.openAIUsage(u)
}

func (m *Meter) setModel(v gjson.Result) {
	if m.model == "" && v.Type == gjson.String && v.Str != "" {
		m.model = strings.Clone(v.Str)
	}
}

// text counts a JSON string value of completion text.
func (m *Meter) text(v gjson.Result) {
	if v.Type != gjson.String || len(v.Raw) <= 2 || v.Raw[0] != '"' {
		return
	}
	raw := v.Raw[1 : len(v.Raw)-1]
	m.countString(stringBytes(raw), strings.IndexByte(raw, '\\') >= 0)
}

// countString counts the body of a non-empty JSON string value (between
// its quotes); esc tells whether it has escapes to undo.
func (m *Meter) countString(raw []byte, esc bool) {
	m.first = true
	if m.o.Counter == nil || m.noCount {
		return
	}
	if !esc {
		m.o.Counter.Write(raw)
		return
	}
	sp := m.lent()
	sp.scratch = appendUnescaped(sp.scratch[:0], bytesString(raw))
	m.o.Counter.Write(sp.scratch)
}

// rawText counts raw JSON (a tool call's input object) as text.
func (m *Meter) rawText(raw string) {
	if raw == "" {
		return
	}
	m.first = true
	if m.o.Counter != nil && !m.noCount {
		m.o.Counter.Write(stringBytes(raw))
	}
}

// tokenCount reads a usage number: a non-negative integer.
func tokenCount(v gjson.Result) (int64, bool) {
	return nonNegativeInt(v)
}

// encoding is the content encoding of the body being read.
func (m *Meter) encoding() encKind {
	if m.dec == nil {
		return encIdentity
	}
	return m.dec.kind
}

// decodeFailed tells whether the body's decoding stopped for good.
func (m *Meter) decodeFailed() bool { return m.dec != nil && m.dec.failed }

// scanner returns the scanner of large bodies and events, allocating it
// on first need.
func (m *Meter) scanner() *jsonScan {
	if m.scan == nil {
		m.scan = new(jsonScan)
	}
	return m.scan
}
