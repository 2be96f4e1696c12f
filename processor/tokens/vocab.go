package tokens

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// vocab maps each token's bytes to its rank (its id, which is also its merge
// priority: lower merges first).
//
// BPE looks up a rank for every pair of adjacent parts, so lookups dominate
// counting. Instead of a Go map keyed by string, tokens of two bytes (the
// first merges of every piece) are read from a direct table, and others from
// an open-addressing table whose slots hold a token's first eight bytes, so
// most probes compare one integer and never touch the token's other bytes.
type vocab struct {
	pair2  []uint32 // rank of the two-byte token b0<<8|b1, or noRank
	single [256]uint32
	slots  []slot
	shift  uint   // 64 - log2(len(slots))
	arena  []byte // bytes 8 and up of the tokens longer than 8 bytes
	maxLen int
}

type slot struct {
	head uint64 // the token's first 8 bytes, little-endian, zero-padded
	rank uint32
	// meta is len<<24 | offset in arena of the bytes after the first 8;
	// 0 marks an empty slot (no token is empty).
	meta uint32
}

const hashMul = 0x9E3779B97F4A7C15

// loadVocab parses the rank file embedded in the loader module: one token a
// line, "<base64 bytes> <rank>".
func loadVocab(name string) (*vocab, error) {
	data, err := assets.Assets.ReadFile(name + ".tiktoken")
	if err != nil {
		return nil, fmt.Errorf("cannot read vocabulary %s: %w", name, err)
	}
	lines := bytes.Count(data, []byte{'\n'}) + 1
	size := 1 << bits.Len(uint(2*lines))
	v := &vocab{
		pair2: make([]uint32, 1<<16),
		slots: make([]slot, size),
		shift: uint(64 - bits.TrailingZeros(uint(size))),
	}
	for i := range v.pair2 {
		v.pair2[i] = noRank
	}
	for i := range v.single {
		v.single[i] = noRank
	}
	buf := make([]byte, 0, 256)
	for lineNo := 1; len(data) > 0; lineNo++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("vocabulary %s line %d: no rank", name, lineNo)
		}
		if base64.StdEncoding.DecodedLen(sp) > cap(buf) {
			return nil, fmt.Errorf("vocabulary %s line %d: token too long", name, lineNo)
		}
		n, err := base64.StdEncoding.Decode(buf[:cap(buf)], line[:sp])
		if err != nil {
			return nil, fmt.Errorf("vocabulary %s line %d: %w", name, lineNo, err)
		}
		rank, err := strconv.ParseUint(string(line[sp+1:]), 10, 32)
		if err != nil || rank >= noRank {
			return nil, fmt.Errorf("vocabulary %s line %d: bad rank %q", name, lineNo, line[sp+1:])
		}
		if err := v.add(buf[:n], uint32(rank)); err != nil {
			return nil, fmt.Errorf("vocabulary %s line %d: %w", name, lineNo, err)
		}
	}
	for b, r := range v.single {
		// BPE starts from single bytes, so every byte must be a token.
		if r == noRank {
			return nil, fmt.Errorf("vocabulary %s has no token for byte %#x", name, b)
		}
	}
	return v, nil
}

func (v *vocab) add(tok []byte, rank uint32) error {
	switch {
	case len(tok) == 0 || len(tok) > 255:
		return fmt.Errorf("token of %d bytes", len(tok))
	case len(tok) == 1:
		v.single[tok[0]] = rank
	case len(tok) == 2:
		v.pair2[int(tok[0])<<8|int(tok[1])] = rank
	}
	v.maxLen = max(v.maxLen, len(tok))
	head := loadHead(tok)
	meta := uint32(len(tok)) << 24
	if len(tok) > 8 {
		if len(v.arena) >= 1<<24 {
			return fmt.Errorf("vocabulary too large")
		}
		meta |= uint32(len(v.arena))
		v.arena = append(v.arena, tok[8:]...)
	}
	mask := len(v.slots) - 1
	for i := v.hash(head, tok); ; i = (i + 1) & mask {
		s := &v.slots[i]
		if s.meta == 0 {
			*s = slot{head: head, rank: rank, meta: meta}
			return nil
		}
		if s.head == head && s.meta>>24 == uint32(len(tok)) && v.tailEqual(s, tok) {
			return fmt.Errorf("duplicate token %q", tok)
		}
	}
}

// loadHead returns b's first 8 bytes as a little-endian integer, zero-padded.
func loadHead(b []byte) uint64 {
	if len(b) >= 8 {
		return binary.LittleEndian.Uint64(b)
	}
	if cap(b) >= 8 {
		// Reading past len within cap is safe; the extra bytes are masked.
		return binary.LittleEndian.Uint64(b[:8]) & (1<<(8*len(b)) - 1)
	}
	var h uint64
	for i := len(b) - 1; i >= 0; i-- {
		h = h<<8 | uint64(b[i])
	}
	return h
}

func (v *vocab) hash(head uint64, b []byte) int {
	h := (head + uint64(len(b))) * hashMul
	for i := 8; i < len(b); i += 8 {
		h = (bits.RotateLeft64(h, 29) ^ loadHead(b[i:min(i+8, len(b))])) * hashMul
	}
	return int(h >> v.shift)
}

func (v *vocab) tailEqual(s *slot, b []byte) bool {
	if len(b) <= 8 {
		return true
	}
	off := int(s.meta & (1<<24 - 1))
	return bytes.Equal(v.arena[off:off+len(b)-8], b[8:])
}

// rank returns the rank of the token b, if b is one.
func (v *vocab) rank(b []byte) (uint32, bool) {
	switch {
	case len(b) == 2:
		r := v.pair2[int(b[0])<<8|int(b[1])]
		return r, r != noRank
	case len(b) == 1:
		return v.single[b[0]], true
	case len(b) > v.maxLen || len(b) == 0:
		return noRank, false
	}
	head := loadHead(b)
	mask := len(v.slots) - 1
	meta := uint32(len(b)) << 24
	for i := v.hash(head, b); ; i = (i + 1) & mask {
		s := &v.slots[i]
		if s.meta == 0 {
			return noRank, false
		}
		if s.head == head && s.meta&^(1<<24-1) == meta && v.tailEqual(s, b) {
			return s.rank, true
		}
	}
}
