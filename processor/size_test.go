package processor

import (
	"testing"
	"unsafe"
)

// TestHeldStreamSize keeps a stream in the allocator's 1,152-byte size
// class: every stream held open between response chunks costs its size
// class, and 10,000 of them at 1,280 bytes cost 1.25 MiB more. A field that
// does not fit should move to what the stream needs only while a message is
// handled (see Meter.Idle), or the budget of BENCHMARKS.md
// ("Memory per in-flight stream") be measured again with make bench-hold.
func TestHeldStreamSize(t *testing.T) {
	if n := unsafe.Sizeof(stream{}); n > 1152 {
		t.Fatalf("a stream is %d bytes, more than the 1,152-byte size class", n)
	}
}
