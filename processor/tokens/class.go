package tokens

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// Character classes of the pre-tokenizers, as bit flags. The patterns they
// stand for use \p{L}, \p{N}, \s (Go's unicode.IsSpace) and, for o200k_base,
// two letter groups A = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] (may start a word)
// and B = [\p{Ll}\p{Lm}\p{Lo}\p{M}] (may continue one).
const (
	fL  uint8 = 1 << iota // \p{L}
	fN                    // \p{N}
	fS                    // \s
	fNL                   // \r or \n
	fA                    // o200k_base group A
	fB                    // o200k_base group B
	fM                    // \p{M}
)

// isY reports [^\s\p{L}\p{N}]: punctuation, symbols, marks, controls.
func isY(c uint8) bool { return c&(fL|fN|fS) == 0 }

var (
	asciiClass [256]uint8 // indexed by a byte, so never bounds-checked; 0x80 up unused
	bmpOnce    sync.Once
	bmpClass   []uint8 // class of every rune below tableRunes
)

func init() {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		asciiClass[r] = classOf(r)
	}
}

// tableRunes is the number of runes whose class is kept in a table: planes 0
// to 2 hold nearly every character of real text, emoji included; rarer
// runes are looked up one by one.
const tableRunes = 0x30000

// loadClasses builds the class table.
func loadClasses() {
	bmpOnce.Do(func() {
		t := make([]uint8, tableRunes)
		set := func(tab *unicode.RangeTable, f uint8) {
			for _, r := range tab.R16 {
				for c := int(r.Lo); c <= int(r.Hi) && c < len(t); c += int(r.Stride) {
					t[c] |= f
				}
			}
			for _, r := range tab.R32 {
				for c := int(r.Lo); c <= int(r.Hi) && c < len(t); c += int(r.Stride) {
					t[c] |= f
				}
			}
		}
		set(unicode.Lu, fL|fA)
		set(unicode.Lt, fL|fA)
		set(unicode.Ll, fL|fB)
		set(unicode.Lm, fL|fA|fB)
		set(unicode.Lo, fL|fA|fB)
		set(unicode.M, fM|fA|fB)
		set(unicode.N, fN)
		set(unicode.White_Space, fS)
		// unicode.IsSpace is White_Space except U+0085 and U+00A0 handled
		// in its Latin-1 branch; both are in White_Space too.
		t['\r'] |= fNL
		t['\n'] |= fNL
		bmpClass = t
	})
}

// classOf computes the class of r from the Unicode tables.
func classOf(r rune) uint8 {
	var c uint8
	switch {
	case unicode.In(r, unicode.Lu, unicode.Lt):
		c = fL | fA
	case unicode.Is(unicode.Ll, r):
		c = fL | fB
	case unicode.In(r, unicode.Lm, unicode.Lo):
		c = fL | fA | fB
	case unicode.Is(unicode.M, r):
		c = fM | fA | fB
	case unicode.Is(unicode.N, r):
		c = fN
	}
	if unicode.IsSpace(r) {
		c |= fS
	}
	if r == '\r' || r == '\n' {
		c |= fNL
	}
	return c
}

// runeClass is classOf through the tables.
func runeClass(r rune) uint8 {
	if r < tableRunes {
		return bmpClass[r]
	}
	return classOf(r)
}

// replacementClass is the class of U+FFFD, which invalid UTF-8 bytes become.
var replacementClass = classOf(utf8.RuneError)
