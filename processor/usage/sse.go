package usage

import "bytes"

// maxEventSize bounds the memory one SSE event may take (its data and, when
// forwarding, its raw bytes). A larger event is skipped as malformed and
// forwarded untouched; the stream goes on. No provider sends usage or a
// token delta anywhere near this size.
const maxEventSize = 1 << 20

// keepBuffer is the largest buffer kept across a reset: a pooled Meter
// that once read a large body should not pin it.
const keepBuffer = 256 << 10

// maxEventName bounds the "event:" field kept; longer names match nothing.
const maxEventName = 128

// eventHandler receives the events of a stream. data is only valid during
// the call. It returns true to remove the event from the forwarded bytes.
type eventHandler interface {
	event(name, data []byte) (drop bool)
}

// sseParser frames a text/event-stream the way the WHATWG HTML standard
// ("Server-sent events", "Interpreting an event stream") does, fed with
// chunks split anywhere: lines end with \n, \r\n or a lone \r; a blank line
// dispatches the event; data lines are joined with \n; lines starting with
// ':' are comments. Unlike a browser it also dispatches an event left
// without its blank line when the stream ends, so a stream cut after its
// last event still counts.
//
// When track is set it also splits the raw bytes into those of whole events
// (appended to out, minus dropped events) and those of an event not yet
// complete (held in pending until a later chunk completes it).
type sseParser struct {
	line     []byte // a line split across chunks (empty once oversize)
	lineLen  int    // its length, counting bytes not kept
	data     []byte // data buffer of the current event, one "\n" per line
	name     []byte // event type buffer
	evBytes  int    // raw bytes of the current event so far
	oversize bool   // the current event passed maxEventSize
	started  bool   // a line was processed (a BOM is only skipped before)
	cr       bool   // the last chunk ended with \r: a leading \n is its tail

	// crBoundary is set when that \r ended the blank line closing an event:
	// the \n then belongs to that event and is forwarded or dropped with it.
	crBoundary bool
	crDropped  bool

	malformed int // events skipped because they passed maxEventSize

	track   bool
	out     []byte // forwardable bytes produced by the last feed or finish
	pending []byte // raw bytes of the event in progress
	passing bool   // the event in progress is oversize: its bytes go straight out
}

func (p *sseParser) reset(track bool) {
	*p = sseParser{
		line:    p.line[:0],
		data:    p.data[:0],
		name:    p.name[:0],
		out:     p.out[:0],
		pending: p.pending[:0],
		track:   track,
	}
}

// feed frames chunk b. With track set, p.out holds the forwardable bytes
// afterwards.
func (p *sseParser) feed(b []byte, h eventHandler) {
	p.out = p.out[:0]
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
					p.out = append(p.out, '\n')
				}
				start = 1
			} else {
				p.addBytes(1)
			}
		}
		p.crBoundary = false
	}
	for i < len(b) {
		j := lineEnd(b[i:])
		if j < 0 {
			p.carry(b[i:])
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
		line := b[i:end]
		if p.lineLen > 0 {
			p.carry(line)
			line = p.line
		} else {
			p.lineLen = len(line)
			p.addBytes(len(line))
		}
		if p.lineLen > 0 {
			p.addBytes(next - end)
			p.process(line)
			p.line = p.line[:0]
			p.lineLen = 0
			i = next
			continue
		}
		drop := p.dispatch(h)
		if p.track {
			if !drop {
				p.out = append(p.out, p.pending...)
				p.out = append(p.out, b[start:next]...)
			}
			p.pending = p.pending[:0]
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
			p.out = append(p.out, b[start:]...)
		} else {
			p.pending = append(p.pending, b[start:]...)
		}
	}
}

// finish ends the stream. Unlike a browser, it dispatches an event left
// without its closing blank line, so that a stream cut right after its last
// event still counts. Held bytes are released to p.out.
func (p *sseParser) finish(h eventHandler) {
	p.out = p.out[:0]
	if p.lineLen > 0 {
		p.process(p.line)
		p.line = p.line[:0]
		p.lineLen = 0
	}
	drop := p.dispatch(h)
	if p.track {
		if !drop {
			p.out = append(p.out, p.pending...)
		}
		p.pending = p.pending[:0]
		p.passing = false
	}
	p.cr = false
	p.crBoundary = false
}

// carry keeps part of a line that continues in a later chunk.
func (p *sseParser) carry(seg []byte) {
	p.lineLen += len(seg)
	p.addBytes(len(seg))
	if !p.oversize {
		p.line = append(p.line, seg...)
	}
}

// addBytes accounts n raw bytes to the current event and gives the event
// up once it passes maxEventSize.
func (p *sseParser) addBytes(n int) {
	p.evBytes += n
	if p.evBytes <= maxEventSize || p.oversize {
		return
	}
	p.oversize = true
	p.data = p.data[:0]
	p.line = p.line[:0]
	if p.track {
		p.out = append(p.out, p.pending...)
		p.pending = p.pending[:0]
		p.passing = true
	}
}

// process interprets one complete, non-blank line.
func (p *sseParser) process(line []byte) {
	if !p.started {
		p.started = true
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	if p.oversize || len(line) == 0 || line[0] == ':' {
		return
	}
	field, value := line, []byte(nil)
	if c := bytes.IndexByte(line, ':'); c >= 0 {
		field, value = line[:c], line[c+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "data":
		p.data = append(p.data, value...)
		p.data = append(p.data, '\n')
	case "event":
		if len(value) > maxEventName {
			value = value[:maxEventName]
		}
		p.name = append(p.name[:0], value...)
	}
}

// dispatch ends the current event at a blank line (or the end of the
// stream) and hands it over when it has data.
func (p *sseParser) dispatch(h eventHandler) (drop bool) {
	p.started = true
	switch {
	case p.oversize:
		p.malformed++
	case len(p.data) > 0:
		drop = h.event(p.name, p.data[:len(p.data)-1])
	}
	p.data = p.data[:0]
	p.name = p.name[:0]
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

// shrink drops buffers a large event left behind, so that a pooled parser
// does not pin them.
func (p *sseParser) shrink() {
	for _, b := range []*[]byte{&p.line, &p.data, &p.out, &p.pending} {
		if cap(*b) > keepBuffer {
			*b = nil
		}
	}
}
