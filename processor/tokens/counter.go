package tokens

import (
	"bytes"
	"unicode/utf8"
)

// MaxTail bounds the text a Counter keeps while it cannot yet tell where the
// current pre-tokenizer piece ends. Counts are exact while every piece is
// shorter than MaxTail bytes; a longer piece (a run of tens of kilobytes of
// letters or spaces with no boundary) is counted in MaxTail-sized parts, which
// may differ from counting it whole by a few tokens per part.
const MaxTail = 64 << 10

// flushAt is the tail length at which a Counter looks for a boundary.
const flushAt = 4 << 10

// Counter counts the tokens of a text that arrives in pieces (a streamed
// completion), in memory bounded by MaxTail whatever the text's length.
// A Counter is not safe for concurrent use.
type Counter struct {
	enc     *Encoding
	counted int64
	tail    []byte
	tryAt   int // tail length at which to look for a boundary again
}

// NewCounter returns an empty Counter for e.
func (e *Encoding) NewCounter() *Counter {
	return &Counter{enc: e, tryAt: flushAt}
}

// Write appends p to the text. p may end anywhere, even inside a UTF-8 rune.
func (c *Counter) Write(p []byte) {
	for len(p) > 0 {
		n := min(len(p), MaxTail-len(c.tail))
		c.write(p[:n])
		p = p[n:]
	}
}

func (c *Counter) write(p []byte) {
	c.tail = append(c.tail, p...)
	if len(c.tail) >= c.tryAt {
		if cut := safeCut(c.tail); cut > 0 {
			c.flush(cut)
		}
		c.tryAt = max(flushAt, 2*len(c.tail))
	}
	if len(c.tail) >= MaxTail {
		cut := len(c.tail)
		// Keep an incomplete rune at the end for the next Write.
		for i := 1; i <= utf8.UTFMax && i <= len(c.tail); i++ {
			if utf8.RuneStart(c.tail[len(c.tail)-i]) {
				if !utf8.FullRune(c.tail[len(c.tail)-i:]) {
					cut = len(c.tail) - i
				}
				break
			}
		}
		c.flush(cut)
	}
}

func (c *Counter) flush(n int) {
	c.counted += int64(c.enc.CountBytes(c.tail[:n]))
	c.tail = append(c.tail[:0], c.tail[n:]...)
}

// safeCut returns the last position in b before which every encoding's
// pre-tokenizer ends a piece whatever follows: a letter or digit right after
// "\n" that follows a visible ASCII character (no piece holds both sides, and
// no whitespace run before it can change). It returns 0 when there is none.
func safeCut(b []byte) int {
	for i := bytes.LastIndexByte(b, '\n'); i >= 1; i = bytes.LastIndexByte(b[:i], '\n') {
		if i+1 < len(b) && b[i-1] > ' ' && b[i-1] < 0x7f {
			c := b[i+1]
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
				return i + 1
			}
		}
	}
	return 0
}

// Count returns the number of tokens of everything written so far.
func (c *Counter) Count() int64 {
	return c.counted + int64(c.enc.CountBytes(c.tail))
}

// Reset empties c and makes it count with e, keeping its buffer.
func (c *Counter) Reset(e *Encoding) {
	c.enc = e
	c.counted = 0
	c.tail = c.tail[:0]
	c.tryAt = flushAt
}
