//go:build !race

package stacktest

// Race is true when the race detector is on: its calls make every frame
// larger, about twice the stack for the same code.
const Race = false
