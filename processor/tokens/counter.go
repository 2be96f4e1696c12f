package tokens

import "unicode/utf8"

// MaxTail bounds the text a Counter keeps while it cannot yet tell where the
// current pre-tokenizer piece ends. Counts are exact as long as every piece,
// with the few characters after it that decide where it ends, fits in
// MaxTail bytes. A longer piece (tens of kilobytes of letters, spaces or
// punctuation with no boundary, which no real completion holds) is counted in
// parts of MaxTail bytes, which may differ from counting it whole by a few
// tokens per part.
const MaxTail = 64 << 10

// Counter counts the tokens of a text that arrives in pieces (a streamed
// completion), in memory bounded by MaxTail whatever the text's length.
// Pieces that can no longer change are counted as soon as they are complete
// and dropped; only the unfinished tail is kept.
// A Counter is not safe for concurrent use.
type Counter struct {
	enc     *Encoding
	counted int64
	tail    []byte
	// scanAt is the tail length at which the tail is scanned again. Waiting
	// for it to double keeps a long unfinished piece from being rescanned on
	// every small write, so that writing costs linear time.
	scanAt int
}

// NewCounter returns an empty Counter for e.
func (e *Encoding) NewCounter() *Counter {
	return &Counter{enc: e}
}

// Write appends p to the text. p may end anywhere, even inside a UTF-8 rune;
// it is not kept.
func (c *Counter) Write(p []byte) {
	for len(p) > 0 {
		n := min(len(p), MaxTail-len(c.tail))
		c.tail = append(c.tail, p[:n]...)
		p = p[n:]
		if len(c.tail) >= c.scanAt || len(c.tail) == MaxTail {
			c.scan()
		}
	}
}

// WriteString is Write for a string.
func (c *Counter) WriteString(s string) {
	c.Write(unsafeBytes(s))
}

// scan counts the pieces of the tail that are final and drops them.
func (c *Counter) scan() {
	s := scanner{b: c.tail}
	pc := pieceCounter{v: c.enc.vocab}
	p := 0
	for p < len(c.tail) {
		end := s.next(c.enc.kind, p)
		if end == needMore {
			break
		}
		c.counted += int64(pc.count(c.tail[p:end], s.bad))
		s.bad = false
		p = end
	}
	pc.done()
	if p == 0 && len(c.tail) == MaxTail {
		// One piece fills the tail: count what is there as if the text
		// ended, except an incomplete rune, which the next write completes.
		p = len(c.tail)
		for i := 1; i <= utf8.UTFMax && i <= len(c.tail); i++ {
			if utf8.RuneStart(c.tail[len(c.tail)-i]) {
				if !utf8.FullRune(c.tail[len(c.tail)-i:]) {
					p = len(c.tail) - i
				}
				break
			}
		}
		c.counted += int64(c.enc.CountBytes(c.tail[:p]))
	}
	if p > 0 {
		c.tail = c.tail[:copy(c.tail, c.tail[p:])]
	}
	c.scanAt = 2 * len(c.tail)
}

// Count returns the number of tokens of everything written so far, the
// unfinished tail counted as if the text ended there.
func (c *Counter) Count() int64 {
	return c.counted + int64(c.enc.CountBytes(c.tail))
}

// keepTail is the largest tail buffer Reset keeps, so that pooled Counters
// do not each hold on to a MaxTail buffer grown by one unusual text.
const keepTail = 4 << 10

// Reset empties c and makes it count with e, keeping a small buffer.
func (c *Counter) Reset(e *Encoding) {
	c.enc = e
	c.counted = 0
	c.scanAt = 0
	if cap(c.tail) > keepTail {
		c.tail = nil
	} else {
		c.tail = c.tail[:0]
	}
}
