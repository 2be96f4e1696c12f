package usage

// maxCapture bounds a captured value; a usage object is a few hundred
// bytes.
const maxCapture = 64 << 10

const (
	keyNone uint8 = iota
	keyUsage
	keyModel
	keyResponse // the Responses API's event wrapper
	keyMessage  // Anthropic's message_start wrapper
)

// jsonScan finds the "usage" and "model" values of a JSON object fed in
// chunks, keeping only those values: at the top level, and one level down
// in a "response" or "message" object (where streamed Responses API and
// Anthropic events keep them). It reads bodies and events too large to
// buffer (an embeddings response runs to many megabytes) in bounded memory.
// It does not validate the JSON; garbage yields nothing.
type jsonScan struct {
	depth     int
	topObject bool  // the top-level value is an object
	parent    uint8 // keyResponse or keyMessage while inside that object
	inStr     bool
	esc       bool
	expectKey bool // the next string is a key
	inKey     bool
	key       [8]byte
	keyLen    int
	keyFound  uint8 // the key just read, until its ':'
	valueFor  uint8 // the key whose value starts next
	capturing uint8 // the key whose value is being captured
	capDepth  int   // depth at which the captured value started
	scalar    bool  // the captured value is a number or literal
	capOver   bool  // the captured value outgrew maxCapture
	buf       []byte

	usage, model           []byte // top level
	innerUsage, innerModel []byte // inside "response" or "message"
}

func (s *jsonScan) reset() {
	if cap(s.buf) > keepBuffer {
		s.buf = nil
	}
	*s = jsonScan{
		buf:        s.buf[:0],
		usage:      s.usage[:0],
		model:      s.model[:0],
		innerUsage: s.innerUsage[:0],
		innerModel: s.innerModel[:0],
	}
}

func (s *jsonScan) feed(b []byte) {
	for _, c := range b {
		s.step(c)
	}
}

// finish ends a scalar value cut by the end of the input.
func (s *jsonScan) finish() {
	if s.capturing != keyNone && s.scalar {
		s.endCapture()
	}
}

// keyLevel tells whether the scanner is directly inside an object whose
// keys it watches.
func (s *jsonScan) keyLevel() bool {
	return s.depth == 1 && s.topObject || s.depth == 2 && s.parent != keyNone
}

func (s *jsonScan) step(c byte) {
	if s.inStr {
		s.stringByte(c)
		return
	}
	if s.capturing != keyNone && s.scalar {
		if c != ',' && c != '}' && c != ']' && !isSpace(c) {
			s.keep(c)
			return
		}
		s.endCapture()
	}
	switch c {
	case '"':
		s.inStr = true
		switch {
		case s.keyLevel() && s.expectKey:
			s.inKey, s.keyLen, s.expectKey = true, 0, false
		case s.keyLevel() && s.valueFor != keyNone:
			s.startCapture(false)
		}
		s.keep(c)
	case '{', '[':
		opensParent := false
		if s.keyLevel() && s.valueFor != keyNone {
			if s.valueFor == keyResponse || s.valueFor == keyMessage {
				opensParent = c == '{'
				if opensParent {
					s.parent = s.valueFor
				}
				s.valueFor = keyNone
			} else {
				s.startCapture(false)
			}
		}
		s.keep(c)
		s.depth++
		if c == '{' && s.depth == 1 {
			s.topObject = true
		}
		if c == '{' && (s.depth == 1 || opensParent) {
			s.expectKey = true
		}
	case '}', ']':
		s.keep(c)
		s.depth--
		if s.capturing != keyNone && s.depth == s.capDepth {
			s.endCapture()
		}
		if s.depth < 2 {
			s.parent = keyNone
		}
	case ':':
		s.keep(c)
		if s.keyLevel() {
			s.valueFor, s.keyFound = s.keyFound, keyNone
		}
	case ',':
		s.keep(c)
		if s.keyLevel() {
			s.expectKey, s.valueFor = true, keyNone
		}
	default:
		if s.keyLevel() && s.valueFor != keyNone && !isSpace(c) {
			s.startCapture(true)
		}
		s.keep(c)
	}
}

func (s *jsonScan) stringByte(c byte) {
	s.keep(c)
	switch {
	case s.esc:
		s.esc = false
	case c == '\\':
		s.esc = true
	case c == '"':
		s.inStr = false
		if s.inKey {
			s.inKey = false
			s.keyFound = s.matchKey()
		} else if s.capturing != keyNone && s.depth == s.capDepth {
			s.endCapture()
		}
		return
	}
	if s.inKey {
		if s.keyLen < len(s.key) {
			s.key[s.keyLen] = c
		}
		s.keyLen++
	}
}

func (s *jsonScan) matchKey() uint8 {
	if s.keyLen > len(s.key) {
		return keyNone
	}
	switch string(s.key[:s.keyLen]) {
	case "usage":
		return keyUsage
	case "model":
		return keyModel
	case "response":
		if s.depth == 1 {
			return keyResponse
		}
	case "message":
		if s.depth == 1 {
			return keyMessage
		}
	}
	return keyNone
}

func (s *jsonScan) startCapture(scalar bool) {
	s.capturing, s.valueFor = s.valueFor, keyNone
	s.capDepth = s.depth
	s.scalar = scalar
	s.capOver = false
	s.buf = s.buf[:0]
}

func (s *jsonScan) keep(c byte) {
	if s.capturing == keyNone || s.capOver {
		return
	}
	if len(s.buf) >= maxCapture {
		s.capOver = true
		return
	}
	s.buf = append(s.buf, c)
}

func (s *jsonScan) endCapture() {
	if !s.capOver {
		inner := s.capDepth == 2
		switch {
		case s.capturing == keyUsage && inner:
			s.innerUsage = append(s.innerUsage[:0], s.buf...)
		case s.capturing == keyUsage:
			s.usage = append(s.usage[:0], s.buf...)
		case s.capturing == keyModel && inner:
			s.innerModel = append(s.innerModel[:0], s.buf...)
		case s.capturing == keyModel:
			s.model = append(s.model[:0], s.buf...)
		}
	}
	s.capturing = keyNone
	s.scalar = false
	s.buf = s.buf[:0]
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }
