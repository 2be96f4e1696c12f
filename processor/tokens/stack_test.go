package tokens

import (
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/internal/stacktest"
)

// TestCountStack checks that counting stays shallow: a gRPC stream's
// goroutine counts a prompt at the bottom of a deep stack, and a goroutine
// whose stack grows keeps the larger stack, a cost per open stream, until a
// garbage collection shrinks it.
func TestCountStack(t *testing.T) {
	budget := 1024 // bytes; about 640 for CountBytes and 800 for a Counter
	if raceEnabled {
		budget = 2048 // the race detector's calls make every frame larger
	}
	e := mustGet(t, O200kBase)
	texts := map[string]string{
		"words":      strings.Repeat("Summarize the quarterly report for the board. ", 40),
		"rare words": strings.Repeat("Antidisestablishmentarianism pneumonoultramicroscopic ", 20),
		"invalid":    strings.Repeat("caf\xe9 na\xefve r\xe9sum\xe9 ", 40),
		"long piece": strings.Repeat("x", 300),
	}
	for name, text := range texts {
		t.Run(name, func(t *testing.T) {
			b := []byte(text)
			var n int
			d := stacktest.Depth(t, func() { n = e.CountBytes(b) })
			if n == 0 {
				t.Fatal("counted nothing")
			}
			t.Logf("CountBytes: %d bytes of stack", d)
			if d > budget {
				t.Errorf("CountBytes uses %d bytes of stack, want at most %d", d, budget)
			}
			c := e.NewCounter()
			d = stacktest.Depth(t, func() {
				c.Reset(e)
				c.Write(b)
				n = int(c.Count())
			})
			t.Logf("Counter: %d bytes of stack", d)
			if d > budget {
				t.Errorf("Counter uses %d bytes of stack, want at most %d", d, budget)
			}
		})
	}
}
