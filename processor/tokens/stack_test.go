package tokens

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"unsafe"
)

var padSink byte

// pad calls f n frames deeper than its caller.
//
//go:noinline
func pad(n int, f func()) {
	var frame [48]byte
	if n == 0 {
		f()
		return
	}
	pad(n-1, f)
	padSink = frame[n%len(frame)]
}

// grows reports whether calling f n pad frames deep on a new goroutine makes
// that goroutine's stack grow. The goroutine first grows its stack with pad
// frames that return (128 of them, 10 KiB or more: the stack becomes 16 KiB
// or larger), so that the room measured is more than a new goroutine's few
// kilobytes. A grown stack is a copy, so a local variable of the
// goroutine's first frame has moved.
func grows(n int, f func()) bool {
	moved := make(chan bool)
	go func() {
		pad(128, func() {})
		var mark byte
		at := uintptr(unsafe.Pointer(&mark))
		pad(n, f)
		moved <- uintptr(unsafe.Pointer(&mark)) != at
	}()
	return <-moved
}

// room returns the largest n for which f, called n pad frames deep on a new
// goroutine, does not grow its stack.
func room(f func()) int {
	lo, hi := -1, 1
	for !grows(hi, f) {
		lo, hi = hi, 2*hi
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if grows(mid, f) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return lo
}

// stackDepth returns the bytes of stack f uses at its deepest, beyond the
// frame that calls it, within one pad frame (80 bytes without the race
// detector). With the garbage collector off, which alone shrinks stacks and
// changes a new goroutine's stack size, the room left for pad frames above
// f, against the room above a call that does nothing, tells how deep f goes.
func stackDepth(t *testing.T, f func()) int {
	t.Helper()
	f() // anything loaded on first use is loaded before measuring
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	// One pad frame's size: where a local of f lies one pad frame deeper.
	var at [2]uintptr
	for n := range at {
		pad(n, func() {
			var x byte
			at[n] = uintptr(unsafe.Pointer(&x))
		})
	}
	frame := int(at[0] - at[1])
	empty := room(func() {})
	used := room(f)
	if empty < 8 {
		t.Fatalf("a new goroutine has room for only %d pad frames", empty)
	}
	return (empty - used) * frame
}

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
			d := stackDepth(t, func() { n = e.CountBytes(b) })
			if n == 0 {
				t.Fatal("counted nothing")
			}
			t.Logf("CountBytes: %d bytes of stack", d)
			if d > budget {
				t.Errorf("CountBytes uses %d bytes of stack, want at most %d", d, budget)
			}
			c := e.NewCounter()
			d = stackDepth(t, func() {
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
