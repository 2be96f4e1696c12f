// Package tokens counts the tokens of a text the way OpenAI's BPE encodings
// (o200k_base, cl100k_base, p50k_base, r50k_base) split it, for responses
// whose provider does not report usage and for estimating prompts before
// admission.
//
// Counts equal those of the reference tiktoken implementation, including on
// invalid UTF-8 (each invalid byte counts as U+FFFD), for every text whose
// pre-tokenizer pieces are shorter than MaxPiece (Count) or MaxTail (Counter)
// bytes, which only adversarial text exceeds. Time is O(n log n) in the input
// on every input and memory is bounded, since prompts are untrusted; counting
// allocates nothing in the steady state.
package tokens

import (
	"fmt"
	"sync"
)

// Names of the supported encodings.
const (
	O200kBase  = "o200k_base"
	Cl100kBase = "cl100k_base"
	P50kBase   = "p50k_base"
	R50kBase   = "r50k_base"
)

var splitKinds = map[string]splitKind{
	O200kBase:  splitO200k,
	Cl100kBase: splitCl100k,
	P50kBase:   splitGPT2,
	R50kBase:   splitGPT2,
}

// Encoding is one BPE vocabulary with its pre-tokenizer. It is immutable and
// safe for concurrent use.
type Encoding struct {
	name  string
	kind  splitKind
	vocab *vocab
}

var (
	encodingsMu sync.Mutex
	encodings   = map[string]*Encoding{}
)

// Get returns the encoding called name, loading its vocabulary on first use
// (tens of milliseconds; later calls return the same *Encoding).
func Get(name string) (*Encoding, error) {
	encodingsMu.Lock()
	defer encodingsMu.Unlock()
	if e, ok := encodings[name]; ok {
		return e, nil
	}
	kind, ok := splitKinds[name]
	if !ok {
		return nil, fmt.Errorf("unknown encoding %q", name)
	}
	v, err := loadVocab(name)
	if err != nil {
		return nil, fmt.Errorf("cannot load encoding %q: %w", name, err)
	}
	loadClasses()
	e := &Encoding{name: name, kind: kind, vocab: v}
	encodings[name] = e
	return e, nil
}

// Name returns the encoding's name, e.g. "o200k_base".
func (e *Encoding) Name() string { return e.name }

// Count returns the number of tokens of text encoded as ordinary text:
// special-token markers such as "<|endoftext|>" count as the text they are.
func (e *Encoding) Count(text string) int {
	// The conversion does not copy: b is only read.
	return e.CountBytes(unsafeBytes(text))
}

// CountBytes is Count for a byte slice; it neither copies nor keeps b.
func (e *Encoding) CountBytes(b []byte) int {
	// Rank lookups may read past a piece up to the slice's capacity; cap it
	// at len so they never read memory the caller may be writing.
	b = b[:len(b):len(b)]
	s := scanner{b: b, eof: true}
	pc := pieceCounter{v: e.vocab}
	n := 0
	for p := 0; p < len(b); {
		end := s.next(e.kind, p)
		n += pc.count(b[p:end], s.bad)
		s.bad = false
		p = end
	}
	pc.done()
	return n
}
