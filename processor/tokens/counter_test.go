package tokens

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// writeSplit writes text to c in pieces ending at the given cut points.
func writeSplit(c *Counter, text string, cuts []int) {
	prev := 0
	for _, cut := range cuts {
		c.Write([]byte(text[prev:cut]))
		prev = cut
	}
	c.Write([]byte(text[prev:]))
}

func randomCuts(r *rand.Rand, n int) []int {
	if n < 2 {
		return nil
	}
	k := r.IntN(min(n, 64))
	cuts := make([]int, k)
	for i := range cuts {
		cuts[i] = 1 + r.IntN(n-1)
	}
	// Sorted, duplicates allowed (an empty write).
	for i := 1; i < len(cuts); i++ {
		for j := i; j > 0 && cuts[j] < cuts[j-1]; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	return cuts
}

// counterTexts are texts whose splits the Counter must not notice.
func counterTexts() []string {
	paras := corpusParagraphs()
	texts := []string{strings.Join(edgeCases, ""), strings.Join(paras[:50], "")}
	for i := 0; i < len(paras); i += len(paras) / 20 {
		texts = append(texts, paras[i])
	}
	return texts
}

func TestCounterOneByte(t *testing.T) {
	for _, name := range allEncodings {
		e := mustGet(t, name)
		t.Run(name, func(t *testing.T) {
			for i, text := range counterTexts() {
				c := e.NewCounter()
				for j := 0; j < len(text); j++ {
					c.Write([]byte{text[j]})
				}
				if got, want := c.Count(), int64(e.Count(text)); got != want {
					t.Errorf("text %d: one byte at a time: Count() = %d, want %d", i, got, want)
				}
			}
		})
	}
}

func TestCounterRandomSplits(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for _, name := range allEncodings {
		e := mustGet(t, name)
		t.Run(name, func(t *testing.T) {
			for i, text := range counterTexts() {
				want := int64(e.Count(text))
				for k := 0; k < 200; k++ {
					cuts := randomCuts(r, len(text))
					c := e.NewCounter()
					writeSplit(c, text, cuts)
					if got := c.Count(); got != want {
						t.Fatalf("text %d split at %v: Count() = %d, want %d", i, cuts, got, want)
					}
				}
			}
		})
	}
}

// TestCounterSplitInside cuts a text once at every byte that is inside a
// UTF-8 rune or a "\r\n", where a naive reader would see two broken halves.
func TestCounterSplitInside(t *testing.T) {
	text := "中文，测试。😀 naïve cafe\u0301 \r\n\r\nx\r\n  \r\n!\r\n/\xe4\xb8\r\n" + strings.Join(chineseFragments, "\r\n")
	for _, name := range allEncodings {
		e := mustGet(t, name)
		t.Run(name, func(t *testing.T) {
			want := int64(e.Count(text))
			for i := 1; i < len(text); i++ {
				if utf8.RuneStart(text[i]) && !(text[i-1] == '\r' && text[i] == '\n') {
					continue
				}
				c := e.NewCounter()
				writeSplit(c, text, []int{i})
				if got := c.Count(); got != want {
					t.Errorf("split at %d (%q|%q): Count() = %d, want %d", i, text[max(0, i-3):i], text[i:min(len(text), i+3)], got, want)
				}
			}
		})
	}
}

// TestCounterRunningCount checks that Count between writes is the count of
// what was written so far, pending tail included.
func TestCounterRunningCount(t *testing.T) {
	text := strings.Join(edgeCases[:100], "|")
	for _, name := range allEncodings {
		e := mustGet(t, name)
		t.Run(name, func(t *testing.T) {
			c := e.NewCounter()
			for i := 0; i < len(text); i++ {
				c.Write([]byte{text[i]})
				if got, want := c.Count(), int64(e.Count(text[:i+1])); got != want {
					t.Fatalf("after %q: Count() = %d, want %d", text[:i+1], got, want)
				}
			}
		})
	}
}

func TestCounterReset(t *testing.T) {
	o200k, cl100k := mustGet(t, O200kBase), mustGet(t, Cl100kBase)
	text := corpusParagraphs()[3]
	c := o200k.NewCounter()
	c.Write([]byte("something to forget "))
	c.Reset(cl100k)
	if got := c.Count(); got != 0 {
		t.Fatalf("Count() after Reset = %d, want 0", got)
	}
	c.WriteString(text[:len(text)/2])
	c.Write([]byte(text[len(text)/2:]))
	if got, want := c.Count(), int64(cl100k.Count(text)); got != want {
		t.Fatalf("Count() after Reset(cl100k) = %d, want %d", got, want)
	}
}

// TestCounterTailCap checks the documented limit of exactness: a piece up to
// MaxTail bytes is counted exactly; a longer one is counted in MaxTail-byte
// parts, and the Counter never holds more than MaxTail bytes.
func TestCounterTailCap(t *testing.T) {
	tests := []struct {
		name string
		unit string
	}{
		{"letters", "a"},
		{"spaces", " "},
		{"han", "中"},
		{"punctuation", "!"},
	}
	for _, enc := range []string{O200kBase, Cl100kBase} {
		e := mustGet(t, enc)
		for _, tt := range tests {
			t.Run(enc+"/"+tt.name, func(t *testing.T) {
				below := strings.Repeat(tt.unit, (MaxTail-1)/len(tt.unit))
				c := e.NewCounter()
				writeSplit(c, below, randomCuts(rand.New(rand.NewPCG(1, 1)), len(below)))
				if got, want := c.Count(), int64(e.Count(below)); got != want {
					t.Fatalf("%d bytes: Count() = %d, want exactly %d", len(below), got, want)
				}

				long := strings.Repeat(tt.unit, 3*MaxTail/len(tt.unit)+5)
				var want int64
				rest := long
				for len(rest) > MaxTail {
					cut := MaxTail
					for !utf8.RuneStart(rest[cut]) {
						cut--
					}
					want += int64(e.Count(rest[:cut]))
					rest = rest[cut:]
				}
				want += int64(e.Count(rest))
				for _, size := range []int{1, 7, 4096, len(long)} {
					c.Reset(e)
					for i := 0; i < len(long); i += size {
						c.Write([]byte(long[i:min(i+size, len(long))]))
						if len(c.tail) > MaxTail {
							t.Fatalf("writes of %d bytes: tail holds %d bytes, more than MaxTail", size, len(c.tail))
						}
					}
					if got := c.Count(); got != want {
						t.Fatalf("writes of %d bytes: Count() = %d, want %d (whole: %d)", size, got, want, e.Count(long))
					}
				}
			})
		}
	}
}

// TestCounterAdversarial splits short strings of every character class at
// every byte: the places where a piece's end depends on what follows.
func TestCounterAdversarial(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	for _, name := range allEncodings {
		e := mustGet(t, name)
		t.Run(name, func(t *testing.T) {
			for i := 0; i < 1500; i++ {
				var b strings.Builder
				for k := 1 + r.IntN(16); k > 0; k-- {
					b.WriteString(adversarialAlphabet[r.IntN(len(adversarialAlphabet))])
				}
				s := b.String()
				want := int64(e.Count(s))
				for cut := 1; cut < len(s); cut++ {
					c := e.NewCounter()
					writeSplit(c, s, []int{cut})
					if got := c.Count(); got != want {
						t.Fatalf("%q split at %d: Count() = %d, want %d", s, cut, got, want)
					}
				}
			}
		})
	}
}
