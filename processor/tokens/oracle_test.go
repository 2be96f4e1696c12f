package tokens

import (
	"sync"
	"testing"

	"github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"
)

// The reference implementation, used only to check counts. It is quadratic
// on long pre-tokenizer pieces, so it never sees the worst-case inputs.
var (
	oracleOnce sync.Once
	oracleMu   sync.Mutex
	oracles    = map[string]*tiktoken.Tiktoken{}
)

func oracle(tb testing.TB, name string) *tiktoken.Tiktoken {
	tb.Helper()
	oracleOnce.Do(func() { tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader()) })
	oracleMu.Lock()
	defer oracleMu.Unlock()
	if o, ok := oracles[name]; ok {
		return o
	}
	o, err := tiktoken.GetEncoding(name)
	if err != nil {
		tb.Fatalf("cannot load reference encoding %s: %v", name, err)
	}
	oracles[name] = o
	return o
}

func oracleCount(tb testing.TB, name, text string) int {
	tb.Helper()
	return len(oracle(tb, name).EncodeOrdinary(text))
}

func mustGet(tb testing.TB, name string) *Encoding {
	tb.Helper()
	e, err := Get(name)
	if err != nil {
		tb.Fatalf("Get(%q): %v", name, err)
	}
	return e
}

var allEncodings = []string{O200kBase, Cl100kBase, P50kBase, R50kBase}
