package tokens

import "unicode/utf8"

// The pre-tokenizers below are hand-written equivalents of the encodings'
// regular expressions as the reference's backtracking engine runs them
// (leftmost alternative first, greedy quantifiers giving back one character
// at a time). Each finds where the piece starting at p ends, in time linear
// in the piece, and reports needMore when the answer depends on text not yet
// written: that is what lets a Counter count a piece as soon as it is final.
//
// o200k_base:
//
//	[^\r\n\p{L}\p{N}]?[A]*[B]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|[^\r\n\p{L}\p{N}]?[A]+[B]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// cl100k_base:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
//	| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// p50k_base and r50k_base:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+

// needMore is returned instead of a piece's end when that end depends on
// text after what the scanner holds.
const needMore = -1

type splitKind uint8

const (
	splitO200k splitKind = iota
	splitCl100k
	splitGPT2 // p50k_base and r50k_base
)

// scanner splits b into pieces. When eof is false, b may continue: a rune cut
// at the end of b is incomplete rather than invalid, and a piece whose end
// depends on what follows is not reported.
type scanner struct {
	b   []byte
	eof bool
	// bad is set when an invalid UTF-8 byte was read; such bytes count as
	// U+FFFD, so the piece must be rewritten before BPE.
	bad bool
}

// class returns the class and size of the rune at i, or size 0 at the end of
// what b holds.
func (s *scanner) class(i int) (uint8, int) {
	if uint(i) < uint(len(s.b)) {
		if c := s.b[i]; c < utf8.RuneSelf {
			return asciiClass[c], 1
		}
	}
	return s.classRune(i)
}

func (s *scanner) classRune(i int) (uint8, int) {
	if i >= len(s.b) {
		return 0, 0
	}
	if !s.eof && !utf8.FullRune(s.b[i:]) {
		return 0, 0
	}
	r, n := utf8.DecodeRune(s.b[i:])
	if r == utf8.RuneError && n == 1 {
		s.bad = true
		return replacementClass, 1
	}
	return runeClass(r), n
}

// next returns the end of the piece starting at p < len(s.b), or needMore.
func (s *scanner) next(k splitKind, p int) int {
	switch k {
	case splitO200k:
		return s.nextO200k(p)
	case splitCl100k:
		return s.nextCl100k(p)
	default:
		return s.nextGPT2(p)
	}
}

func (s *scanner) nextO200k(p int) int {
	c0, n0 := s.class(p)
	if n0 == 0 {
		return needMore
	}
	q := p + n0
	switch {
	case c0&(fA|fB) != 0:
		if c0&fM != 0 {
			// A mark may be the optional leading character of a word.
			if e := s.lettersAB(q, false); e != 0 {
				return s.contractionAfter(e, true)
			}
		}
		e := s.lettersAB(p, true)
		return s.contractionAfter(e, true)
	case c0&fN != 0:
		return s.digits3(p)
	case c0&fNL != 0:
		return s.spaces(p, true)
	}
	// c0 is [^\r\n\p{L}\p{N}] but no mark: a word may follow it.
	if e := s.lettersAB(q, true); e != 0 {
		return s.contractionAfter(e, true)
	}
	if c0&fS == 0 {
		return s.punct(p, trailNewSlash)
	}
	if s.b[p] == ' ' {
		c1, n1 := s.class(q)
		if n1 == 0 && !s.eof {
			return needMore
		}
		if n1 != 0 && isY(c1) {
			return s.punct(q, trailNewSlash)
		}
	}
	return s.spaces(p, true)
}

// lettersAB matches o200k_base's words at q: [A]*[B]+ and, when alt2 is
// true, then [A]+[B]*. It returns the end, 0 when neither matches, or
// needMore.
func (s *scanner) lettersAB(q int, alt2 bool) int {
	i, lastB := q, 0
	for {
		c, n := s.class(i)
		if n == 0 {
			if !s.eof {
				return needMore
			}
			break
		}
		if c&fA == 0 {
			if c&fB != 0 {
				// [A]* took all it could and a lowercase letter continues
				// with [B]+.
				return s.run(i+n, fB)
			}
			break
		}
		i += n
		if c&fB != 0 {
			lastB = i
		}
	}
	// [A]* gives back characters until [B]+ can take the last one of group B.
	if lastB != 0 {
		return lastB
	}
	if alt2 && i > q {
		return i
	}
	return 0
}

// run returns the end of the run of characters with a flag in f from i.
func (s *scanner) run(i int, f uint8) int {
	for {
		c, n := s.class(i)
		if n == 0 {
			if !s.eof {
				return needMore
			}
			return i
		}
		if c&f == 0 {
			return i
		}
		i += n
	}
}

// contractionAfter extends a word ending at e (or needMore) by an optional
// 's, 't, 're, 've, 'm, 'll or 'd.
func (s *scanner) contractionAfter(e int, fold bool) int {
	if e == needMore {
		return needMore
	}
	if n := s.contraction(e, fold); n != 0 {
		return n
	}
	return e
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d at i, ignoring ASCII case when
// fold is true (no other rune lowercases to these letters). It returns the
// end, 0 for no match, or needMore.
func (s *scanner) contraction(i int, fold bool) int {
	b := s.b
	if i >= len(b) {
		if s.eof {
			return 0
		}
		return needMore
	}
	if b[i] != '\'' {
		return 0
	}
	if i+1 >= len(b) {
		if s.eof {
			return 0
		}
		return needMore
	}
	c := b[i+1]
	if fold {
		c |= 0x20
	}
	switch c {
	case 's', 't', 'm', 'd':
		return i + 2
	case 'r', 'v', 'l':
	default:
		return 0
	}
	if i+2 >= len(b) {
		if s.eof {
			return 0
		}
		return needMore
	}
	c2 := b[i+2]
	if fold {
		c2 |= 0x20
	}
	if c == 'r' && c2 == 'e' || c == 'v' && c2 == 'e' || c == 'l' && c2 == 'l' {
		return i + 3
	}
	return 0
}

// digits3 matches \p{N}{1,3} at p.
func (s *scanner) digits3(p int) int {
	i := p
	for k := 0; k < 3; k++ {
		c, n := s.class(i)
		if n == 0 {
			if !s.eof {
				return needMore
			}
			break
		}
		if c&fN == 0 {
			break
		}
		i += n
	}
	return i
}

// What may follow a run of punctuation in the same piece.
const (
	trailNone     = iota // p50k_base, r50k_base
	trailNewlines        // [\r\n]*, cl100k_base
	trailNewSlash        // [\r\n/]*, o200k_base
)

// punct matches [^\s\p{L}\p{N}]+ at p and its trail. In o200k_base '/' is
// punctuation, so the run has taken every '/' before the first newline.
func (s *scanner) punct(p int, trail int) int {
	i := p
	for {
		c, n := s.class(i)
		if n == 0 {
			if !s.eof {
				return needMore
			}
			return i
		}
		if !isY(c) {
			break
		}
		i += n
	}
	if trail == trailNone {
		return i
	}
	return s.newlines(i, trail == trailNewSlash)
}

// newlines matches [\r\n]* at i, or [\r\n/]* when slash is true.
func (s *scanner) newlines(i int, slash bool) int {
	for {
		if i >= len(s.b) {
			if !s.eof {
				return needMore
			}
			return i
		}
		c := s.b[i]
		if c != '\r' && c != '\n' && (!slash || c != '/') {
			return i
		}
		i++
	}
}

// spaces matches, at a whitespace character p, \s*[\r\n]+ (when nl is
// true), then \s+(?!\S), then \s+.
func (s *scanner) spaces(p int, nl bool) int {
	i, last, lastNL := p, p, 0
	for {
		c, n := s.class(i)
		if n == 0 {
			if !s.eof {
				return needMore
			}
			break
		}
		if c&fS == 0 {
			break
		}
		last = i
		i += n
		if c&fNL != 0 {
			lastNL = i
		}
	}
	if nl && lastNL != 0 {
		return lastNL
	}
	if i < len(s.b) && last > p {
		// Followed by a non-space: leave the last space to the next piece.
		return last
	}
	return i
}

func (s *scanner) nextCl100k(p int) int {
	if s.b[p] == '\'' {
		if e := s.contraction(p, true); e != 0 {
			return e
		}
	}
	c0, n0 := s.class(p)
	if n0 == 0 {
		return needMore
	}
	q := p + n0
	switch {
	case c0&fL != 0:
		return s.run(q, fL)
	case c0&fN != 0:
		return s.digits3(p)
	case c0&fNL != 0:
		return s.spaces(p, true)
	}
	c1, n1 := s.class(q)
	if n1 == 0 && !s.eof {
		return needMore
	}
	if n1 != 0 && c1&fL != 0 {
		return s.run(q+n1, fL)
	}
	if c0&fS == 0 {
		return s.punct(p, trailNewlines)
	}
	if s.b[p] == ' ' && n1 != 0 && isY(c1) {
		return s.punct(q, trailNewlines)
	}
	return s.spaces(p, true)
}

func (s *scanner) nextGPT2(p int) int {
	if s.b[p] == '\'' {
		if e := s.contraction(p, false); e != 0 {
			return e
		}
	}
	c0, n0 := s.class(p)
	if n0 == 0 {
		return needMore
	}
	start := p
	if s.b[p] == ' ' {
		c1, n1 := s.class(p + 1)
		if n1 == 0 && !s.eof {
			return needMore
		}
		if n1 != 0 && c1&fS == 0 {
			// " ?" takes the space before a letter, digit or other run.
			start, c0 = p+1, c1
		}
	}
	switch {
	case c0&fL != 0:
		return s.run(start, fL)
	case c0&fN != 0:
		return s.run(start, fN)
	case c0&fS == 0:
		return s.punct(start, trailNone)
	}
	return s.spaces(p, false)
}
