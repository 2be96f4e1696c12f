package tokens

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// naiveBPE merges by rescanning every pair after every merge, the textbook
// algorithm the tournament tree must agree with.
func naiveBPE(v *vocab, p []byte) int {
	if len(p) == 0 {
		return 0
	}
	bounds := make([]int, len(p)+1)
	for i := range bounds {
		bounds[i] = i
	}
	for len(bounds) > 2 {
		best, at := uint32(noRank), -1
		for i := 0; i+2 < len(bounds); i++ {
			if r, ok := v.rank(p[bounds[i]:bounds[i+2]]); ok && r < best {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		bounds = append(bounds[:at+1], bounds[at+2:]...)
	}
	return len(bounds) - 1
}

func TestMergeMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	alphabets := []string{"ab", "a ", "aeiou st", "中文字", "!?.", "0123456789abcdef", "\x00\xff\x80"}
	for _, name := range []string{O200kBase, Cl100kBase} {
		v := mustGet(t, name).vocab
		t.Run(name, func(t *testing.T) {
			for _, n := range []int{2, 3, 5, 17, 63, 64, 65, 100, 127, 128, 129, 1000, 1500} {
				for _, alpha := range alphabets {
					var b strings.Builder
					for b.Len() < n {
						b.WriteByte(alpha[r.IntN(len(alpha))])
					}
					p := []byte(b.String()[:n])
					pc := pieceCounter{v: v}
					got := pc.countPiece(p)
					pc.done()
					if want := naiveBPE(v, p); got != want {
						t.Fatalf("%d bytes of %q: countPiece = %d, want %d", n, alpha, got, want)
					}
				}
			}
		})
	}
}

// TestMaxPiece checks the documented limit: a piece longer than MaxPiece is
// counted in MaxPiece-byte parts cut between runes.
func TestMaxPiece(t *testing.T) {
	e := mustGet(t, O200kBase)
	// MaxPiece is not a multiple of 3, so the cut must move to a rune start.
	for _, unit := range []string{"中"} {
		long := strings.Repeat(unit, (MaxPiece+MaxPiece/8)/len(unit))
		want := 0
		for rest := long; len(rest) > 0; {
			cut := min(len(rest), MaxPiece)
			cut -= cut % len(unit)
			want += e.Count(rest[:cut])
			rest = rest[cut:]
		}
		if got := e.Count(long); got != want {
			t.Errorf("%d bytes of %q: Count = %d, want %d", len(long), unit, got, want)
		}
	}
}
