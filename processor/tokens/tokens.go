// Package tokens counts the tokens of a text the way OpenAI's BPE encodings
// (o200k_base, cl100k_base, p50k_base, r50k_base) split it, for responses
// whose provider does not report usage and for estimating prompts before
// admission.
//
// Counts equal those of the reference tiktoken implementation, including on
// invalid UTF-8 (each invalid byte counts as U+FFFD). Time is linear in the
// input on every input, since prompts are untrusted.
package tokens

import (
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// Names of the supported encodings.
const (
	O200kBase  = "o200k_base"
	Cl100kBase = "cl100k_base"
	P50kBase   = "p50k_base"
	R50kBase   = "r50k_base"
)

// Pre-tokenizer patterns of the encodings: BPE never merges across the
// pieces they split a text into.
var patterns = map[string]string{
	O200kBase: `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|` +
		`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|` +
		`\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	Cl100kBase: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	P50kBase:   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
	R50kBase:   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
}

// Encoding is one BPE vocabulary with its pre-tokenizer. It is immutable and
// safe for concurrent use.
type Encoding struct {
	name  string
	vocab *vocab
	split *regexp2.Regexp
}

var (
	encodingsMu sync.Mutex
	encodings   = map[string]*Encoding{}
)

// Get returns the encoding called name, loading its vocabulary on first use.
func Get(name string) (*Encoding, error) {
	encodingsMu.Lock()
	defer encodingsMu.Unlock()
	if e, ok := encodings[name]; ok {
		return e, nil
	}
	pat, ok := patterns[name]
	if !ok {
		return nil, fmt.Errorf("unknown encoding %q", name)
	}
	v, err := loadVocab(name)
	if err != nil {
		return nil, fmt.Errorf("cannot load encoding %q: %w", name, err)
	}
	re, err := regexp2.Compile(pat, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("cannot compile pre-tokenizer of %q: %w", name, err)
	}
	e := &Encoding{name: name, vocab: v, split: re}
	encodings[name] = e
	return e, nil
}

// Name returns the encoding's name, e.g. "o200k_base".
func (e *Encoding) Name() string { return e.name }

// Count returns the number of tokens of text encoded as ordinary text:
// special-token markers such as "<|endoftext|>" count as the text they are.
// Each invalid UTF-8 byte counts as U+FFFD.
func (e *Encoding) Count(text string) int {
	runes := []rune(text)
	var buf []byte
	n := 0
	m, err := e.split.FindRunesMatch(runes)
	for m != nil && err == nil {
		buf = buf[:0]
		for _, r := range runes[m.Index : m.Index+m.Length] {
			buf = utf8.AppendRune(buf, r)
		}
		n += e.vocab.countPiece(buf)
		m, err = e.split.FindNextMatch(m)
	}
	return n
}

// CountBytes is Count for a byte slice.
func (e *Encoding) CountBytes(b []byte) int {
	return e.Count(string(b))
}
