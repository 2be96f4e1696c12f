// Package stacktest measures how much goroutine stack a function uses.
//
// A gRPC stream's goroutine lives as long as the stream and does tollgate's
// work at the bottom of a deep stack. When that work once goes past the
// goroutine's stack size, the stack doubles and stays doubled (only a
// garbage collection shrinks it), a cost paid per open stream; tests of code
// on that path bound its depth with Depth.
package stacktest

import (
	"runtime"
	"runtime/debug"
	"testing"
	"unsafe"
)

var sink byte

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
	sink = frame[n%len(frame)]
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

// Depth returns the bytes of stack f uses at its deepest, beyond the frame
// that calls it, within one pad frame (80 bytes without the race detector)
// and the 128 bytes by which a frame may reach into the stack's guard.
// f is called once first, so that what it loads on first use is loaded,
// and then several times with the garbage collector off (it alone shrinks
// stacks and changes a new goroutine's stack size): the room left for pad
// frames above f, against the room above a call that does nothing, tells
// how deep f goes.
func Depth(tb testing.TB, f func()) int {
	tb.Helper()
	f()
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
	if empty < 8 {
		tb.Fatalf("stacktest: a new goroutine has room for only %d pad frames", empty)
	}
	return (empty - room(f)) * frame
}
