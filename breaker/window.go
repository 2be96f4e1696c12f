package breaker

import (
	"math"
	"math/bits"
	"time"
)

// numSlots is how many buckets a window is cut into: the window slides by
// a tenth of its length, and its memory is fixed whatever the traffic.
const numSlots = 10

// Latencies are kept in microseconds in log-linear bins, as HDR histograms
// do: exact below 32µs, then 16 bins per power of two, so a bin is at most
// 1/16 of its lower bound wide and its midpoint is within 3.2% of any
// value in it. Latencies from 2^33µs (about 2.4 hours) up share the last
// bin.
const (
	subBits   = 4
	subCount  = 1 << subBits
	maxExp    = 32
	numBins   = (maxExp - subBits + 2) * subCount
	maxBinVal = 1<<(maxExp+1) - 1
)

// binOf returns the bin of a latency of us microseconds.
func binOf(us int64) int {
	if us < 2*subCount {
		return int(max(us, 0))
	}
	v := uint64(min(us, maxBinVal))
	e := bits.Len64(v) - 1
	m := int(v>>(e-subBits)) - subCount
	return (e-subBits+1)*subCount + m
}

// binRange returns the lowest latency (µs) a bin holds and its width.
func binRange(b int) (lo, width int64) {
	if b < 2*subCount {
		return int64(b), 1
	}
	e := b/subCount + subBits - 1
	m := b % subCount
	return int64(subCount+m) << (e - subBits), 1 << (e - subBits)
}

// slot holds the outcomes of one tenth of a window.
type slot struct {
	epoch int64 // which tenth: time since the Set's start / slot width

	// What the breaker judges. Cleared when the breaker closes, so that
	// failures from before an outage do not reopen it at once.
	calls, fails uint32

	// What health reports; kept across state changes.
	classes  [numClasses]uint32
	failed   uint32 // outcomes that count as failures
	slow     uint32 // of which slow calls
	rejected uint32 // calls failed fast while open
	hist     [numBins]uint32
}

// window is a ring of slots covering the recent past.
type window struct {
	width time.Duration // of one slot
	slots [numSlots]slot
}

func newWindow(length time.Duration) window {
	return window{width: max(length/numSlots, 1)}
}

// at returns the slot for time now, cleared first if it last held an
// older tenth.
func (w *window) at(now time.Duration) *slot {
	e := int64(max(now, 0) / w.width)
	sl := &w.slots[e%numSlots]
	if sl.epoch != e {
		*sl = slot{epoch: e}
	}
	return sl
}

// live calls f with each slot inside the window ending at now.
func (w *window) live(now time.Duration, f func(*slot)) {
	e := int64(max(now, 0) / w.width)
	for i := range w.slots {
		sl := &w.slots[i]
		if sl.epoch <= e && sl.epoch > e-numSlots {
			f(sl)
		}
	}
}

// judged returns the calls and failures the breaker judges at now.
func (w *window) judged(now time.Duration) (calls, fails int64) {
	e := int64(max(now, 0) / w.width)
	for i := range w.slots {
		sl := &w.slots[i]
		if sl.epoch <= e && sl.epoch > e-numSlots {
			calls += int64(sl.calls)
			fails += int64(sl.fails)
		}
	}
	return calls, fails
}

// forget clears what the breaker judges, keeping health figures.
func (w *window) forget() {
	for i := range w.slots {
		w.slots[i].calls, w.slots[i].fails = 0, 0
	}
}

// quantile returns the q-quantile (0 < q <= 1) of a histogram holding n
// values, in milliseconds: the midpoint of the bin holding the value of
// rank ⌈q·n⌉.
func quantile(h *[numBins]uint64, n uint64, q float64) float64 {
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for b := range h {
		seen += h[b]
		if seen >= rank {
			lo, width := binRange(b)
			mid := float64(lo) + float64(width-1)/2
			return mid / 1000
		}
	}
	return 0
}
