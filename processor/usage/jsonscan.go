package usage

// maxCapture bounds a captured top-level value; a usage object is a few
// hundred bytes.
const maxCapture = 64 << 10

const (
	keyNone uint8 = iota
	keyUsage
	keyModel
)

// jsonScan finds the top-level "usage" and "model" values of a JSON object
// fed in chunks, keeping only those values: it reads response bodies too
// large to buffer (an embeddings response runs to many megabytes) in
// bounded memory. It does not validate the JSON; garbage yields nothing.
type jsonScan struct {
	depth     int
	topObject bool // the top-level value is an object
	inStr     bool
	esc       bool
	expectKey bool // at depth 1 the next string is a key
	inKey     bool
	key       [5]byte
	keyLen    int
	keyFound  uint8 // the key just read, until its ':'
	valueFor  uint8 // the key whose value starts next
	capturing uint8 // the key whose value is being captured
	capDepth  int   // depth at which the captured value started
	scalar    bool  // the captured value is a number or literal
	capOver   bool  // the captured value outgrew maxCapture
	buf       []byte
	usage     []byte
	model     []byte
}

func (s *jsonScan) reset() {
	if cap(s.buf) > keepBuffer {
		s.buf = nil
	}
	*s = jsonScan{buf: s.buf[:0], usage: s.usage[:0], model: s.model[:0]}
}

func (s *jsonScan) feed(b []byte) {
	for _, c := range b {
		s.step(c)
	}
}

// finish ends a scalar value cut by the end of the body.
func (s *jsonScan) finish() {
	if s.capturing != keyNone && s.scalar {
		s.endCapture()
	}
}

func (s *jsonScan) step(c byte) {
	if s.inStr {
		s.stringByte(c)
		return
	}
	if s.capturing != keyNone && s.scalar {
		if c == ',' || c == '}' || c == ']' || isSpace(c) {
			s.endCapture()
		} else {
			s.keep(c)
			return
		}
	}
	switch c {
	case '"':
		s.inStr = true
		switch {
		case s.depth == 1 && s.expectKey:
			s.inKey, s.keyLen, s.expectKey = true, 0, false
		case s.depth == 1 && s.valueFor != keyNone:
			s.startCapture(false)
		}
		s.keep(c)
	case '{', '[':
		if s.depth == 1 && s.valueFor != keyNone {
			s.startCapture(false)
		}
		s.keep(c)
		s.depth++
		if s.depth == 1 && c == '{' {
			s.topObject, s.expectKey = true, true
		}
	case '}', ']':
		s.keep(c)
		s.depth--
		if s.capturing != keyNone && s.depth == s.capDepth {
			s.endCapture()
		}
	case ':':
		s.keep(c)
		if s.depth == 1 {
			s.valueFor, s.keyFound = s.keyFound, keyNone
		}
	case ',':
		s.keep(c)
		if s.depth == 1 && s.topObject {
			s.expectKey, s.valueFor = true, keyNone
		}
	default:
		if s.depth == 1 && s.valueFor != keyNone && !isSpace(c) {
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
			s.keyFound = keyNone
			switch string(s.key[:min(s.keyLen, len(s.key))]) {
			case "usage":
				if s.keyLen == 5 {
					s.keyFound = keyUsage
				}
			case "model":
				if s.keyLen == 5 {
					s.keyFound = keyModel
				}
			}
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
		switch s.capturing {
		case keyUsage:
			s.usage = append(s.usage[:0], s.buf...)
		case keyModel:
			s.model = append(s.model[:0], s.buf...)
		}
	}
	s.capturing = keyNone
	s.scalar = false
	s.buf = s.buf[:0]
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }
