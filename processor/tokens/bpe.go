package tokens

import (
	"math"
	"math/bits"
	"sync"
	"unicode/utf8"
)

// noRank marks a pair of adjacent parts whose concatenation is not a token.
const noRank = math.MaxUint32

// MaxPiece is the longest pre-tokenizer piece Count merges whole. Merging
// takes up to 40 bytes of working memory per byte of the piece (24 MiB at
// MaxPiece, a power of two), so a longer piece
// (a megabyte of one letter or of spaces: only adversarial text has one) is
// counted in MaxPiece-byte parts, cut between runes, to keep that memory
// bounded; its count may then differ from the reference's by a few tokens
// per part. The reference itself needs hours for such a piece.
const MaxPiece = 1 << 20

// pieceCounter counts the pieces of one text. Its working memory (the
// merge's tree and lists, a piece rewritten for invalid UTF-8) comes from a
// pool, taken by the first piece that needs it and kept until done, instead
// of arrays on the stack: counting then takes a few hundred bytes of stack.
// That matters because a prompt is counted at the bottom of a gRPC stream's
// deep stack, and a goroutine whose stack once grows keeps the doubled stack
// (8 KiB more per open stream) until a garbage collection shrinks it.
type pieceCounter struct {
	v *vocab
	s *scratch
}

type scratch struct {
	// Pieces up to smallPiece bytes, nearly all of them, merge in these.
	smallTree            [2 * smallPiece]uint64
	smallNext, smallPrev [smallPiece]int32
	tree                 []uint64
	next, prev           []int32
	text                 []byte
}

// smallPiece is the longest piece merged in a scratch's fixed arrays;
// longer ones grow its slices.
const smallPiece = 64

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (c *pieceCounter) scratch() *scratch {
	if c.s == nil {
		c.s = scratchPool.Get().(*scratch)
	}
	return c.s
}

// done gives the working memory back; c may be used again.
func (c *pieceCounter) done() {
	if c.s != nil {
		scratchPool.Put(c.s)
		c.s = nil
	}
}

// count counts one pre-tokenizer piece; bad reports that it may hold
// invalid UTF-8.
func (c *pieceCounter) count(piece []byte, bad bool) int {
	if !bad {
		return c.countPiece(piece)
	}
	// The reference reads text as runes, so each invalid byte is U+FFFD.
	s := c.scratch()
	buf := s.text[:0]
	for i := 0; i < len(piece); {
		r, n := utf8.DecodeRune(piece[i:])
		buf = utf8.AppendRune(buf, r)
		i += n
	}
	s.text = buf
	return c.countPiece(buf)
}

// countPiece returns the number of tokens BPE makes of one pre-tokenizer
// piece: starting from single bytes, repeatedly merge the adjacent pair whose
// concatenation has the lowest rank (the leftmost one on ties) until no
// adjacent pair is a token.
func (c *pieceCounter) countPiece(p []byte) int {
	if len(p) <= 1 {
		return len(p)
	}
	if _, ok := c.v.rank(p); ok {
		return 1
	}
	if len(p) > MaxPiece {
		n := 0
		for len(p) > MaxPiece {
			cut := MaxPiece
			for cut > MaxPiece-utf8.UTFMax && !utf8.RuneStart(p[cut]) {
				cut--
			}
			n += c.countPiece(p[:cut])
			p = p[cut:]
		}
		return n + c.countPiece(p)
	}
	s := c.scratch()
	if len(p) <= smallPiece {
		return c.v.merge(p, s.smallTree[:], s.smallNext[:len(p)], s.smallPrev[:len(p)])
	}
	s.tree = grow(s.tree, 2*leaves(len(p)))
	s.next = grow(s.next, len(p))
	s.prev = grow(s.prev, len(p))
	return c.v.merge(p, s.tree, s.next, s.prev)
}

// leaves is the number of leaves of the tournament tree for n parts: a power
// of two, so that the nodes of each level are contiguous.
func leaves(n int) int { return 1 << bits.Len(uint(n-1)) }

func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// merge runs BPE on p and returns the number of parts left.
//
// Parts are a linked list indexed by their first byte (next, prev). The rank
// of each part joined with the next one sits in a leaf of a tournament tree
// (tree[m+i], m leaves) as rank<<32 | i, so the root is the lowest rank and,
// among equal ranks, the leftmost pair. Each merge changes three leaves, each
// in O(log n) (O(log n + part length) for the three together): the whole
// piece costs O(n log n), never the O(n²) of rescanning every pair after
// every merge.
func (v *vocab) merge(p []byte, tree []uint64, next, prev []int32) int {
	n := len(p)
	m := leaves(n)
	tree = tree[:2*m]
	end := int32(n)
	for i := range next {
		next[i] = int32(i) + 1
		prev[i] = int32(i) - 1
	}
	for i := 0; i < m; i++ {
		tree[m+i] = math.MaxUint64
		if i < n-1 {
			if r, ok := v.rank(p[i : i+2]); ok {
				tree[m+i] = uint64(r)<<32 | uint64(i)
			}
		}
	}
	for k := m - 1; k >= 1; k-- {
		tree[k] = min(tree[2*k], tree[2*k+1])
	}
	pairKey := func(i int32) uint64 {
		j := next[i]
		if j >= end {
			return math.MaxUint64
		}
		if r, ok := v.rank(p[i:next[j]]); ok {
			return uint64(r)<<32 | uint64(i)
		}
		return math.MaxUint64
	}
	parts := n
	for tree[1] != math.MaxUint64 {
		i := int32(uint32(tree[1]))
		j := next[i]
		// Part j joins part i.
		next[i] = next[j]
		if next[i] < end {
			prev[next[i]] = i
		}
		parts--
		lo := i
		tree[m+int(j)] = math.MaxUint64
		tree[m+int(i)] = pairKey(i)
		if h := prev[i]; h >= 0 {
			tree[m+int(h)] = pairKey(h)
			lo = h
		}
		// The changed leaves lie in [lo, j]; their ancestors at each level
		// form a range that halves on the way up.
		for a, b := (m+int(lo))>>1, (m+int(j))>>1; a >= 1; a, b = a>>1, b>>1 {
			for k := a; k <= b; k++ {
				tree[k] = min(tree[2*k], tree[2*k+1])
			}
		}
	}
	return parts
}
