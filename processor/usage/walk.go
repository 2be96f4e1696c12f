package usage

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// walker reads one JSON text in a single pass: it checks it against the
// grammar gjson.Valid accepts (RFC 8259's, without checking strings for
// valid UTF-8) and, in the same pass, notes where the few values the Meter
// reads from a streamed event are (see walkevent.go). Everything else is
// skipped without being materialized. Streamed events come a few hundred a
// response; validating, parsing and then walking each level of an event
// with gjson read every byte several times.
//
// Results are offsets into the walked bytes; nothing is allocated once the
// buffers have grown.
type walker struct {
	d    []byte   // the text being walked
	deep []uint64 // container kinds of a skip nested past 64 levels (bit set: object)
	key  []byte   // an escaped key, unescaped
	ev   walked   // what the last walk found

	resume resumePoint
}

// reset forgets the last stream's events, and drops buffers a large one
// grew so that a pooled Meter does not pin them.
func (w *walker) reset() {
	w.resume.reset()
	if cap(w.ev.texts)*int(unsafe.Sizeof(span{})) > keepBuffer {
		w.ev.texts = nil
	}
	if cap(w.deep)*8 > keepBuffer {
		w.deep = nil
	}
	if cap(w.key) > keepBuffer {
		w.key = nil
	}
}

// span is where a value is in the walked text: d[start:end], quotes
// included for a string. end is 0 when there is none (no value ends at 0).
// Offsets are 32 bits: an event is at most maxEventSize, and a Meter keeps
// a dozen spans.
type span struct {
	start, end int32
	esc        bool // a string with a backslash in it
}

func newSpan(start, end int, esc bool) span {
	return span{int32(start), int32(end), esc}
}

func (s span) ok() bool { return s.end > 0 }

// next is the index past the value.
func (s span) next() int { return int(s.end) }

// raw returns the value's JSON text.
func (s span) raw(d []byte) []byte { return d[s.start:s.end] }

// isString tells whether the value is a string; nonEmpty whether it is one
// with something between its quotes.
func (s span) isString(d []byte) bool { return s.ok() && d[s.start] == '"' }
func (s span) nonEmpty(d []byte) bool { return s.isString(d) && s.end-s.start > 2 }

// body returns what is between a string's quotes.
func (s span) body(d []byte) []byte { return d[s.start+1 : s.end-1] }

// maxKeyEscaped bounds the raw length of an escaped key worth unescaping:
// the longest key read is 17 bytes, each at most 6 bytes escaped.
const maxKeyEscaped = 6 * 17

// strPlain marks the bytes a JSON string holds as they are: not the
// closing quote, not a backslash, not a control character.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// str reads a string whose opening quote is at d[i-1]. It returns the
// index past its closing quote and whether it has escapes.
func str(d []byte, i int) (end int, esc, ok bool) {
	for {
		if i+8 <= len(d) {
			// Eight bytes at a time: flag each quote, backslash and byte
			// below 0x20. A flag can be wrong only above a true one, so the
			// lowest is exact.
			x := binary.LittleEndian.Uint64(d[i:])
			q := x ^ ('"' * ones)
			b := x ^ ('\\' * ones)
			m := ((q-ones)&^q | (b-ones)&^b | (x-0x20*ones)&^x) & highs
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else {
			for i < len(d) && strPlain[d[i]] {
				i++
			}
			if i >= len(d) {
				return i, esc, false
			}
		}
		switch d[i] {
		case '"':
			return i + 1, esc, true
		case '\\':
			esc = true
			i++
			if i >= len(d) {
				return i, esc, false
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+5 > len(d) || !isHex(d[i+1]) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) {
					return i, esc, false
				}
				i += 5
			default:
				return i, esc, false
			}
		default: // a control character
			return i, esc, false
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipWS returns the index of the first byte from i that is not JSON
// whitespace.
func skipWS(d []byte, i int) int {
	for i < len(d) && d[i] <= ' ' && (d[i] == ' ' || d[i] == '\n' || d[i] == '\r' || d[i] == '\t') {
		i++
	}
	return i
}

// number reads a number starting at d[i] ('-' or a digit).
func number(d []byte, i int) (int, bool) {
	if d[i] == '-' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return i, false
		}
	}
	if d[i] == '0' {
		i++
	} else {
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return i, false
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return i, false
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	return i, true
}

// literal reads true, false or null starting at d[i].
func literal(d []byte, i int, word string) (int, bool) {
	if len(d)-i < len(word) || string(d[i:i+len(word)]) != word {
		return i, false
	}
	return i + len(word), true
}

// skip reads the value starting at d[i] (not whitespace) and returns the
// index past it.
func (w *walker) skip(i int) (int, bool) {
	d := w.d
	if i >= len(d) {
		return i, false
	}
	switch d[i] {
	case '{', '[':
		return w.skipNested(i)
	}
	return w.scalar(i)
}

// skipValue is skip for d[i] with i < len(d), a string read directly.
func (w *walker) skipValue(i int) (int, bool) {
	if w.d[i] == '"' {
		end, _, ok := str(w.d, i+1)
		return end, ok
	}
	return w.skip(i)
}

// scalar reads a string, number or literal starting at d[i] (i < len(d)).
func (w *walker) scalar(i int) (int, bool) {
	d := w.d
	switch d[i] {
	case '"':
		end, _, ok := str(w.d, i+1)
		return end, ok
	case 't':
		return literal(d, i, "true")
	case 'f':
		return literal(d, i, "false")
	case 'n':
		return literal(d, i, "null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return number(d, i)
	}
	return i, false
}

// skipNested reads the object or array starting at d[i] without recursion:
// a container's kind is one bit per level, so that any nesting an event
// may hold costs a bit of memory, not a stack frame.
func (w *walker) skipNested(i int) (int, bool) {
	d := w.d
	var (
		low   uint64 // bit k set: level k is an object, for levels < 64
		depth int
		obj   bool
		ok    bool
	)
open:
	obj = d[i] == '{'
	if depth < 64 {
		if obj {
			low |= 1 << depth
		} else {
			low &^= 1 << depth
		}
	} else {
		w.setDeep(depth-64, obj)
	}
	depth++
	i = skipWS(d, i+1)
	if i >= len(d) {
		return i, false
	}
	if obj {
		if d[i] == '}' {
			i++
			goto closed
		}
		goto member
	}
	if d[i] == ']' {
		i++
		goto closed
	}
	goto value
member:
	if d[i] != '"' {
		return i, false
	}
	if i, _, ok = str(w.d, i+1); !ok {
		return i, false
	}
	i = skipWS(d, i)
	if i >= len(d) || d[i] != ':' {
		return i, false
	}
	i = skipWS(d, i+1)
	if i >= len(d) {
		return i, false
	}
value:
	if d[i] == '{' || d[i] == '[' {
		goto open
	}
	if i, ok = w.scalar(i); !ok {
		return i, false
	}
next:
	i = skipWS(d, i)
	if i >= len(d) {
		return i, false
	}
	switch d[i] {
	case ',':
		i = skipWS(d, i+1)
		if i >= len(d) {
			return i, false
		}
		if obj {
			goto member
		}
		goto value
	case '}':
		if !obj {
			return i, false
		}
	case ']':
		if obj {
			return i, false
		}
	default:
		return i, false
	}
	i++
closed:
	depth--
	if depth == 0 {
		return i, true
	}
	if depth-1 < 64 {
		obj = low&(1<<(depth-1)) != 0
	} else {
		obj = w.isDeepObject(depth - 1 - 64)
	}
	goto next
}

func (w *walker) setDeep(level int, obj bool) {
	word, bit := level/64, uint64(1)<<(level%64)
	for word >= len(w.deep) {
		w.deep = append(w.deep, 0)
	}
	if obj {
		w.deep[word] |= bit
	} else {
		w.deep[word] &^= bit
	}
}

func (w *walker) isDeepObject(level int) bool {
	return w.deep[level/64]&(1<<(level%64)) != 0
}

// unescapeKey returns an escaped key unescaped, or empty when it is too
// long to be one the walker looks for. The key is valid until the walker
// unescapes another string.
func (w *walker) unescapeKey(raw []byte) []byte {
	if len(raw) > maxKeyEscaped {
		return nil
	}
	w.key = appendUnescaped(w.key[:0], bytesString(raw))
	return w.key
}

// strIs tells whether the value at s is a string equal to want once
// unescaped.
func (w *walker) strIs(s span, want string) bool {
	if !s.isString(w.d) {
		return false
	}
	body := s.body(w.d)
	if !s.esc {
		return string(body) == want
	}
	if len(body) > 6*len(want) {
		return false
	}
	w.key = appendUnescaped(w.key[:0], bytesString(body))
	return string(w.key) == want
}
