package tokens

import (
	"math/rand/v2"
	"testing"
)

// maxFuzzLen bounds fuzz inputs: the reference is quadratic in a piece's
// length and would otherwise dominate the run.
const maxFuzzLen = 2048

func fuzzSeeds(f *testing.F) {
	for _, s := range edgeCases {
		f.Add(s)
	}
	for _, s := range invalidUTF8 {
		f.Add(s)
	}
	for _, s := range corpusParagraphs()[:40] {
		if len(s) <= maxFuzzLen {
			f.Add(s)
		}
	}
}

// FuzzCount checks every encoding's count against the reference.
func FuzzCount(f *testing.F) {
	fuzzSeeds(f)
	encs := make([]*Encoding, len(allEncodings))
	for i, name := range allEncodings {
		encs[i] = mustGet(f, name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzLen {
			return
		}
		for _, e := range encs {
			if got, want := e.Count(s), oracleCount(t, e.Name(), s); got != want {
				t.Fatalf("%s: Count(%q) = %d, want %d", e.Name(), s, got, want)
			}
		}
	})
}

// FuzzCounter checks that splitting a text into pieces never changes its count.
func FuzzCounter(f *testing.F) {
	fuzzSeeds(f)
	encs := make([]*Encoding, len(allEncodings))
	for i, name := range allEncodings {
		encs[i] = mustGet(f, name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4*maxFuzzLen {
			return
		}
		r := rand.New(rand.NewPCG(uint64(len(s)), 3))
		for _, e := range encs {
			want := int64(e.Count(s))
			for k := 0; k < 4; k++ {
				cuts := randomCuts(r, len(s))
				c := e.NewCounter()
				writeSplit(c, s, cuts)
				if got := c.Count(); got != want {
					t.Fatalf("%s: %q split at %v: Count() = %d, want %d", e.Name(), s, cuts, got, want)
				}
			}
			c := e.NewCounter()
			for i := 0; i < len(s); i++ {
				c.Write([]byte{s[i]})
			}
			if got := c.Count(); got != want {
				t.Fatalf("%s: %q one byte at a time: Count() = %d, want %d", e.Name(), s, got, want)
			}
		}
	})
}
