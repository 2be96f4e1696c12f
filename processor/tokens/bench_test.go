package tokens

import (
	"strings"
	"testing"

	"github.com/tiktoken-go/tokenizer"
)

// BenchmarkCount compares counting throughput on the corpus with the
// reference (tiktoken-go) and with github.com/tiktoken-go/tokenizer.
func BenchmarkCount(b *testing.B) {
	text := corpusText()
	for _, name := range []string{O200kBase, Cl100kBase} {
		b.Run(name+"/tollgate", func(b *testing.B) {
			e := mustGet(b, name)
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for b.Loop() {
				e.Count(text)
			}
		})
		b.Run(name+"/tiktoken-go", func(b *testing.B) {
			o := oracle(b, name)
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for b.Loop() {
				o.EncodeOrdinary(text)
			}
		})
		b.Run(name+"/tokenizer", func(b *testing.B) {
			id := tokenizer.Encoding(name)
			c, err := tokenizer.Get(id)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Count(text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCounter measures streaming counting of the corpus in 64-byte
// writes, the size of a typical streamed completion delta.
func BenchmarkCounter(b *testing.B) {
	text := []byte(corpusText())
	for _, name := range []string{O200kBase, Cl100kBase} {
		b.Run(name, func(b *testing.B) {
			e := mustGet(b, name)
			c := e.NewCounter()
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for b.Loop() {
				c.Reset(e)
				for i := 0; i < len(text); i += 64 {
					c.Write(text[i:min(i+64, len(text))])
				}
				c.Count()
			}
		})
	}
}

// BenchmarkWorstCase measures inputs that make a quadratic tokenizer stall.
// The reference is left out: it takes tens of seconds on them.
func BenchmarkWorstCase(b *testing.B) {
	inputs := []struct{ name, text string }{
		{"han100k", strings.Repeat("中", 100_000)},
		{"a1MB", strings.Repeat("a", 1<<20)},
		{"spaces1MB", strings.Repeat(" ", 1<<20)},
		{"digits1MB", strings.Repeat("7", 1<<20)},
		{"punct1MB", strings.Repeat("!?", 1<<19)},
	}
	for _, name := range []string{O200kBase, Cl100kBase} {
		e := mustGet(b, name)
		for _, in := range inputs {
			b.Run(name+"/"+in.name, func(b *testing.B) {
				b.SetBytes(int64(len(in.text)))
				for b.Loop() {
					e.Count(in.text)
				}
			})
		}
	}
}
