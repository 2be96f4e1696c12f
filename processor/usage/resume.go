package usage

// maxResumePrefix bounds the bytes kept to resume a walk.
const maxResumePrefix = 4 << 10

// resumePoint lets a walk skip the start of an event that repeats the
// last one's. The events of a stream differ little: every OpenAI chunk
// repeats the id, object, created, model and system_fingerprint before
// its choices; every Anthropic text delta its type and index before its
// delta. The walk is a function of the bytes read so far, so an event
// whose bytes up to its first root "choices" (or "delta") value equal the
// last one's reaches there in the same state: the walk compares those
// bytes and starts at the value with that state.
//
// Before that value a walk notes nothing but the root's model and usage
// (a chunk) or type (an Anthropic event): those are the state kept.
type resumePoint struct {
	kind              objKind
	prefix            []byte // the event up to the colon after the key
	model, usage, typ span   // what the walk had noted by then
	seen              uint8  // the root object's first-occurrence bits then
}

func (r *resumePoint) reset() {
	r.prefix = r.prefix[:0]
}

// resumeKey is the root member of a kind whose value a walk resumes at.
func resumeKey(kind objKind) string {
	if kind == objChunk {
		return "choices"
	}
	return "delta"
}

// saveResume notes the walk's state at d[p], just past the colon of the
// kind's first resumeKey.
func (w *walker) saveResume(p int, kind objKind, seen uint8) {
	r := &w.resume
	if p > maxResumePrefix {
		r.reset()
		return
	}
	r.kind, r.seen = kind, seen
	r.prefix = append(r.prefix[:0], w.d[:p]...)
	r.model, r.usage, r.typ = w.ev.model, w.ev.usage, w.ev.typ
}
