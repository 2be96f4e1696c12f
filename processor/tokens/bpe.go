package tokens

import (
	"math"
	"sync"
)

// noRank marks a pair of adjacent parts whose concatenation is not a token.
const noRank = math.MaxUint32

// smallPiece is the longest piece merged by rescanning all pairs after each
// merge; that is quadratic but allocation-free and fastest for words. Longer
// pieces use a heap, O(n log n).
const smallPiece = 64

// countPiece returns the number of tokens BPE makes of one pre-tokenizer
// piece: starting from single bytes, repeatedly merge the adjacent pair whose
// concatenation has the lowest rank (the leftmost one on ties) until no
// adjacent pair is a token.
func (v *vocab) countPiece(p []byte) int {
	switch {
	case len(p) <= 1:
		return len(p)
	case len(p) <= smallPiece:
		if _, ok := v.rank(p); ok {
			return 1
		}
		return v.mergeSmall(p)
	default:
		if _, ok := v.rank(p); ok {
			return 1
		}
		return v.mergeLong(p)
	}
}

func (v *vocab) mergeSmall(p []byte) int {
	// start[i] is where part i begins; ranks[i] is the rank of part i joined
	// with part i+1.
	var start [smallPiece + 1]int
	var ranks [smallPiece]uint32
	n := len(p) // number of parts
	for i := 0; i <= n; i++ {
		start[i] = i
	}
	pair := func(i int) uint32 {
		if i+2 > n {
			return noRank
		}
		if r, ok := v.rank(p[start[i]:start[i+2]]); ok {
			return r
		}
		return noRank
	}
	for i := 0; i < n-1; i++ {
		ranks[i] = pair(i)
	}
	for n > 1 {
		best, at := uint32(noRank), -1
		for i := 0; i < n-1; i++ {
			if ranks[i] < best {
				best, at = ranks[i], i
			}
		}
		if at < 0 {
			break
		}
		// Part at+1 joins part at.
		copy(start[at+1:n], start[at+2:n+1])
		copy(ranks[at+1:n-1], ranks[at+2:n])
		n--
		ranks[at] = pair(at)
		if at > 0 {
			ranks[at-1] = pair(at - 1)
		}
	}
	return n
}

// longScratch is the working memory of mergeLong, pooled so that counting
// allocates nothing in the steady state.
type longScratch struct {
	next  []int32  // next[i]: start of the part after the part starting at i
	prev  []int32  // prev[i]: start of the part before it
	ranks []uint32 // ranks[i]: rank of the part at i joined with the next one
	heap  []uint64 // rank<<32 | start, a min-heap: lowest rank, then leftmost
}

var longPool = sync.Pool{New: func() any { return new(longScratch) }}

func (v *vocab) mergeLong(p []byte) int {
	s := longPool.Get().(*longScratch)
	defer longPool.Put(s)
	n := len(p)
	s.next = grow(s.next, n)
	s.prev = grow(s.prev, n)
	s.ranks = grow(s.ranks, n)
	s.heap = s.heap[:0]
	next, prev, ranks := s.next, s.prev, s.ranks
	end := int32(n)
	pair := func(i int32) uint32 {
		j := next[i]
		if j >= end {
			return noRank
		}
		k := next[j]
		if r, ok := v.rank(p[i:k]); ok {
			return r
		}
		return noRank
	}
	for i := int32(0); i < end; i++ {
		next[i] = i + 1
		prev[i] = i - 1
	}
	for i := int32(0); i < end; i++ {
		ranks[i] = pair(i)
		if ranks[i] != noRank {
			s.push(uint64(ranks[i])<<32 | uint64(i))
		}
	}
	parts := n
	for len(s.heap) > 0 {
		top := s.pop()
		r, i := uint32(top>>32), int32(uint32(top))
		if ranks[i] != r {
			continue // stale: part i merged away or its pair changed
		}
		j := next[i]
		ranks[j] = noRank // part j joins part i and is gone
		next[i] = next[j]
		if next[i] < end {
			prev[next[i]] = i
		}
		parts--
		if ranks[i] = pair(i); ranks[i] != noRank {
			s.push(uint64(ranks[i])<<32 | uint64(i))
		}
		if h := prev[i]; h >= 0 {
			if ranks[h] = pair(h); ranks[h] != noRank {
				s.push(uint64(ranks[h])<<32 | uint64(h))
			}
		}
	}
	return parts
}

func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

func (s *longScratch) push(x uint64) {
	h := append(s.heap, x)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent] <= x {
			break
		}
		h[i] = h[parent]
		i = parent
	}
	h[i] = x
	s.heap = h
}

func (s *longScratch) pop() uint64 {
	h := s.heap
	top := h[0]
	last := h[len(h)-1]
	h = h[:len(h)-1]
	n := len(h)
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && h[c+1] < h[c] {
			c++
		}
		if last <= h[c] {
			break
		}
		h[i] = h[c]
		i = c
	}
	if n > 0 {
		h[i] = last
	}
	s.heap = h
	return top
}
