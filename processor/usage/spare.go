package usage

import "sync"

// spare holds what a Meter needs only while it reads a chunk: the SSE
// parser's buffers, the walker of events and the scratch of unescaped
// text. A stream can wait long between chunks (a model thinking, a client
// reading slowly), and a gateway holds thousands of such streams at once:
// [Meter.Idle] lends the spare of a Meter that holds nothing partial to
// the next Meter that reads, so a waiting stream carries none of it.
type spare struct {
	w       walker
	sse     sseBuffers
	scratch []byte // unescaped JSON strings
	fwd     []byte // the decoded bytes to forward of a compressed chunk
}

var spares = sync.Pool{New: func() any { return new(spare) }}

// borrow takes a spare for the chunk at hand.
func (m *Meter) borrow() {
	sp := spares.Get().(*spare)
	m.sp = sp
	sp.w.resume, m.resume = m.resume, resumePoint{}
	m.sse.b = &sp.sse
}

// lent returns the spare m reads with, borrowing one if it has none.
func (m *Meter) lent() *spare {
	if m.sp == nil {
		m.borrow()
	}
	return m.sp
}

// Idle tells m that the bytes the last Write or Finish returned are no
// longer needed (they have been sent on) and that the next chunk may be
// long in coming. Unless an event is still incomplete, m gives back the
// buffers it reads with, and takes others on its next Write. Calling Idle
// is optional; a Meter that is never idle keeps its buffers.
func (m *Meter) Idle() {
	sp := m.sp
	if sp == nil || sp.sse.holding() {
		return
	}
	sp.sse.reset()
	sp.scratch, sp.fwd = keep(sp.scratch), keep(sp.fwd)
	m.resume, sp.w.resume = sp.w.resume, resumePoint{}
	sp.w.d = nil
	sp.w.reset()
	m.sse.b, m.sp = nil, nil
	spares.Put(sp)
}

// keep returns b emptied, or nil when it is too large to keep.
func keep(b []byte) []byte {
	if cap(b) > keepBuffer {
		return nil
	}
	return b[:0]
}
