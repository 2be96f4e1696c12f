package usage

import "bytes"

// maxEventSize bounds the memory one SSE event may take (its data and, when
// forwarding, its raw bytes). A larger event is not kept: its data is only
// scanned for a usage object in bounded memory (a Responses API
// response.completed event repeats the whole output, generated images
// included, and can run to megabytes), it is counted as malformed and
// forwarded untouched; the stream goes on.
const maxEventSize = 1 << 20

// keepBuffer is the largest buffer kept across a reset: a pooled Meter
// that once read a large body should not pin it.
const keepBuffer = 256 << 10

// maxEventName bounds the "event:" field kept; longer names match nothing.
const maxEventName = 128

var (
	bom     = [3]byte{0xef, 0xbb, 0xbf}
	newline = []byte{'\n'}
)

// eventHandler receives the events of a stream. data is only valid during
// the call. event returns true to remove the event from the forwarded
// bytes. An event past maxEventSize comes as bigStart, its data in pieces
// through bigData, and bigEnd.
type eventHandler interface {
	event(name, data []byte) (drop bool)
	bigStart()
	bigData(p []byte)
	bigEnd(name []byte)
}

type fieldKind uint8

const (
	fieldPending fieldKind = iota // the colon has not been seen yet
	fieldData
	fieldEvent
	fieldOther
)

// sseParser frames a text/event-stream the way the WHATWG HTML standard
// ("Server-sent events", "Interpreting an event stream") does, fed with
// chunks split anywhere: lines end with \n, \r\n or a lone \r; a blank line
// dispatches the event; data lines are joined with \n; lines starting with
// ':' are comments; a leading BOM is skipped. Unlike a browser it also
// dispatches an event left without its blank line when the stream ends, so
// a stream cut after its last event still counts.
//
// Field values stream straight into the event's buffers: no line is
// buffered, so a line split across chunks costs nothing more.
//
// When track is set it also splits the raw bytes into those of whole events
// (appended to out, minus dropped events) and those of an event not yet
// complete (held in pending until a later chunk completes it).
type sseParser struct {
	// The line in progress.
	inLine    bool      // the line has bytes
	kind      fieldKind // what its field is, once known
	field     [8]byte   // the field name's first bytes
	fieldLen  int       // the field name's length so far
	skipSpace bool      // a space right after the colon is not part of the value
	bomSeen   int       // BOM bytes matched at the stream's start; -1 past it
	cr        bool      // the last chunk ended with \r: a leading \n is its tail

	// The event in progress, and the bytes to forward.
	b        *sseBuffers
	evBytes  int  // raw bytes so far
	oversize bool // passed maxEventSize: data goes to bigData

	// crBoundary is set when that \r ended the blank line closing an event:
	// the \n then belongs to that event and is forwarded or dropped with it.
	crBoundary bool
	crDropped  bool

	malformed int // events past maxEventSize

	track   bool
	passing bool // the event in progress is oversize: its bytes go straight out
}

func (p *sseParser) reset(track bool) {
	b := p.b
	*p = sseParser{b: b, track: track}
	if b != nil {
		b.reset()
	}
}

// sseBuffers are a parser's buffers: the event in progress and the bytes
// to forward. A Meter lends them out while its stream waits (see spare).
type sseBuffers struct {
	data    []byte // data buffer, one "\n" after each data line
	name    []byte // event type buffer
	out     []byte // forwardable bytes produced by the last feed
	tail    []byte // forwardable bytes produced by finish, apart from out
	pending []byte // bytes of the event in progress, held back until it is judged
}

// reset empties b, dropping buffers a large event left behind so that a
// pooled parser does not pin them.
func (b *sseBuffers) reset() {
	for _, x := range [...]*[]byte{&b.data, &b.name, &b.out, &b.tail, &b.pending} {
		*x = keep(*x)
	}
}

// holding tells whether b holds bytes of an event in progress.
func (b *sseBuffers) holding() bool {
	return len(b.data) > 0 || len(b.name) > 0 || len(b.pending) > 0
}

// bufs returns p's buffers, allocating them on first need.
func (p *sseParser) bufs() *sseBuffers {
	if p.b == nil {
		p.b = new(sseBuffers)
	}
	return p.b
}

// feed frames chunk b. With track set, p.b.out holds the forwardable bytes
// afterwards.
func (p *sseParser) feed(b []byte, h eventHandler) {
	p.bufs().out = p.b.out[:0]
	if len(b) == 0 {
		return
	}
	start := 0 // where the raw bytes of the event in progress begin in b
	i := 0
	if p.cr {
		p.cr = false
		if b[0] == '\n' {
			i = 1
			if p.crBoundary {
				if p.track && !p.crDropped {
					p.b.out = append(p.b.out, '\n')
				}
				start = 1
			} else {
				p.addBytes(1, h)
			}
		}
		p.crBoundary = false
	}
	for i < len(b) {
		j := lineEnd(b[i:])
		if j < 0 {
			p.addBytes(len(b)-i, h)
			p.segment(b[i:], h)
			break
		}
		end := i + j
		next := end + 1
		if b[end] == '\r' {
			if next < len(b) {
				if b[next] == '\n' {
					next++
				}
			} else {
				p.cr = true
			}
		}
		if end > i || p.inLine {
			p.addBytes(next-i, h)
			p.segment(b[i:end], h)
			p.endLine(h)
			i = next
			continue
		}
		drop := p.dispatch(h)
		if p.track {
			if !drop {
				p.b.out = append(p.b.out, p.b.pending...)
				p.b.out = append(p.b.out, b[start:next]...)
			}
			p.b.pending = p.b.pending[:0]
			p.passing = false
		}
		start = next
		if p.cr {
			p.crBoundary = true
			p.crDropped = drop
		}
		i = next
	}
	if p.track && start < len(b) {
		if p.passing {
			p.b.out = append(p.b.out, b[start:]...)
		} else {
			p.b.pending = append(p.b.pending, b[start:]...)
		}
	}
}

// finish ends the stream and releases held bytes to p.b.tail. It leaves
// p.b.out alone: a caller may still hold the last feed's bytes.
func (p *sseParser) finish(h eventHandler) {
	p.bufs().tail = p.b.tail[:0]
	if p.inLine {
		p.endLine(h)
	}
	drop := p.dispatch(h)
	if p.track {
		if !drop {
			p.b.tail = append(p.b.tail, p.b.pending...)
		}
		p.b.pending = p.b.pending[:0]
		p.passing = false
	}
	p.cr = false
	p.crBoundary = false
}

// segment takes the next bytes of the current line.
func (p *sseParser) segment(s []byte, h eventHandler) {
	if len(s) == 0 {
		return
	}
	p.inLine = true
	for p.bomSeen >= 0 && len(s) > 0 {
		if s[0] != bom[p.bomSeen] {
			p.unBOM()
			break
		}
		s = s[1:]
		if p.bomSeen++; p.bomSeen == len(bom) {
			p.bomSeen = -1
		}
	}
	if p.kind == fieldPending {
		c := bytes.IndexByte(s, ':')
		name := s
		if c >= 0 {
			name = s[:c]
		}
		p.fieldBytes(name)
		if c < 0 {
			return
		}
		p.kind = p.fieldKind()
		if p.kind == fieldEvent {
			p.b.name = p.b.name[:0] // the last "event:" line names the event
		}
		p.skipSpace = true
		s = s[c+1:]
	}
	if p.skipSpace && len(s) > 0 {
		p.skipSpace = false
		if s[0] == ' ' {
			s = s[1:]
		}
	}
	p.value(s, h)
}

// unBOM gives back as field bytes the start of a BOM that was not one.
func (p *sseParser) unBOM() {
	if p.bomSeen > 0 {
		p.fieldBytes(bom[:p.bomSeen])
	}
	p.bomSeen = -1
}

func (p *sseParser) fieldBytes(b []byte) {
	copy(p.field[min(p.fieldLen, len(p.field)):], b)
	p.fieldLen += len(b)
}

func (p *sseParser) fieldKind() fieldKind {
	switch string(p.field[:min(p.fieldLen, len(p.field))]) {
	case "data":
		if p.fieldLen == 4 {
			return fieldData
		}
	case "event":
		if p.fieldLen == 5 {
			return fieldEvent
		}
	}
	return fieldOther
}

// value routes part of a field's value.
func (p *sseParser) value(v []byte, h eventHandler) {
	switch p.kind {
	case fieldData:
		if p.oversize {
			h.bigData(v)
		} else {
			p.b.data = append(p.b.data, v...)
		}
	case fieldEvent:
		if n := maxEventName - len(p.b.name); n > 0 {
			p.b.name = append(p.b.name, v[:min(n, len(v))]...)
		}
	}
}

// endLine ends a non-blank line.
func (p *sseParser) endLine(h eventHandler) {
	if p.bomSeen > 0 {
		p.unBOM()
	}
	if p.kind == fieldPending {
		// A field without a colon has an empty value.
		if p.kind = p.fieldKind(); p.kind == fieldEvent {
			p.b.name = p.b.name[:0]
		}
	}
	switch p.kind {
	case fieldData:
		p.value(newline, h)
	}
	p.inLine = false
	p.kind = fieldPending
	p.fieldLen = 0
	p.skipSpace = false
}

// addBytes accounts n raw bytes to the current event and stops keeping it
// once it passes maxEventSize.
func (p *sseParser) addBytes(n int, h eventHandler) {
	p.evBytes += n
	if p.evBytes <= maxEventSize || p.oversize {
		return
	}
	p.oversize = true
	h.bigStart()
	h.bigData(p.b.data)
	p.b.data = p.b.data[:0]
	if p.track {
		p.b.out = append(p.b.out, p.b.pending...)
		p.b.pending = p.b.pending[:0]
		p.passing = true
	}
}

// dispatch ends the current event at a blank line (or the end of the
// stream) and hands it over when it has data.
func (p *sseParser) dispatch(h eventHandler) (drop bool) {
	p.bomSeen = -1
	switch {
	case p.oversize:
		p.malformed++
		h.bigEnd(p.b.name)
	case len(p.b.data) > 0:
		drop = h.event(p.b.name, p.b.data[:len(p.b.data)-1])
	}
	p.b.data = p.b.data[:0]
	p.b.name = p.b.name[:0]
	p.evBytes = 0
	p.oversize = false
	return drop
}

// lineEnd returns the index of the first \r or \n in b, or -1. Two
// IndexByte scans beat IndexAny's byte loop on the long lines of a stream.
func lineEnd(b []byte) int {
	n := bytes.IndexByte(b, '\n')
	if n < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if r := bytes.IndexByte(b[:n], '\r'); r >= 0 {
		return r
	}
	return n
}
