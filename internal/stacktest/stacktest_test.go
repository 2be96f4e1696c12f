package stacktest

import "testing"

var big [4096]byte

//go:noinline
func frame2K() {
	var b [2048]byte
	copy(b[:], big[:])
	sink = b[int(sink)%len(b)]
}

//go:noinline
func frame2KTwice() {
	var b [2048]byte
	copy(b[:], big[:])
	frame2K()
	sink = b[int(sink)%len(b)]
}

func TestDepth(t *testing.T) {
	tests := []struct {
		name     string
		f        func()
		min, max int
	}{
		{"nothing", func() {}, 0, 256},
		// Depth is exact within a pad frame, and the stack check lets a
		// large frame reach 128 bytes into the guard below it.
		{"2 KiB frame", frame2K, 2048 - 208, 2048 + 256},
		{"two 2 KiB frames", frame2KTwice, 4096 - 208, 4096 + 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := Depth(t, tt.f); d < tt.min || d > tt.max {
				t.Errorf("Depth = %d bytes, want %d to %d", d, tt.min, tt.max)
			}
		})
	}
}
