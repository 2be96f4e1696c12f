package tokens

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// vocab maps each token's bytes to its rank (its id, which is also its merge
// priority: lower merges first).
type vocab struct {
	ranks map[string]uint32
}

// loadVocab parses the rank file embedded in the loader module: one token a
// line, "<base64 bytes> <rank>".
func loadVocab(name string) (*vocab, error) {
	data, err := assets.Assets.ReadFile(name + ".tiktoken")
	if err != nil {
		return nil, fmt.Errorf("cannot read vocabulary %s: %w", name, err)
	}
	v := &vocab{ranks: make(map[string]uint32, bytes.Count(data, []byte{'\n'})+1)}
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
		n := base64.StdEncoding.DecodedLen(sp)
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		n, err = base64.StdEncoding.Decode(buf[:n], line[:sp])
		if err != nil {
			return nil, fmt.Errorf("vocabulary %s line %d: %w", name, lineNo, err)
		}
		rank, err := strconv.ParseUint(string(line[sp+1:]), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("vocabulary %s line %d: %w", name, lineNo, err)
		}
		v.ranks[string(buf[:n])] = uint32(rank)
	}
	for b := 0; b < 256; b++ {
		// BPE starts from single bytes, so every byte must be a token.
		if _, ok := v.ranks[string([]byte{byte(b)})]; !ok {
			return nil, fmt.Errorf("vocabulary %s has no token for byte %#x", name, b)
		}
	}
	return v, nil
}

func (v *vocab) rank(b []byte) (uint32, bool) {
	r, ok := v.ranks[string(b)]
	return r, ok
}
