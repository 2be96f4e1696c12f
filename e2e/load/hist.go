package main

import (
	"math/bits"
	"time"
)

// subBuckets is the number of linear buckets in each power of two of a
// histogram: values are kept to within 1/64 (1.6 %) of what they were.
const subBuckets = 64

// hist is a log-linear histogram of durations: constant memory whatever the
// number of samples, mergeable, quantiles within 1.6 %.
type hist struct {
	counts [64 * subBuckets]uint64
	n      uint64
	max    time.Duration
}

func bucketOf(d time.Duration) int {
	v := uint64(max(d, 0))
	if v < subBuckets {
		return int(v)
	}
	// The top 7 significant bits: the power of two picks the row, the
	// next 6 bits the bucket within it.
	exp := bits.Len64(v) - 7
	return (exp+1)*subBuckets + int(v>>uint(exp)) - subBuckets
}

// lowerBound is the smallest duration that falls in bucket i.
func lowerBound(i int) time.Duration {
	if i < subBuckets {
		return time.Duration(i)
	}
	exp := i/subBuckets - 1
	return time.Duration(uint64(i%subBuckets+subBuckets) << uint(exp))
}

func (h *hist) add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.max = max(h.max, d)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the duration below which a fraction q of the samples
// fall: the middle of the bucket holding the q-th sample, and never above
// the largest sample.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			return min((lo+hi)/2, h.max)
		}
	}
	return h.max
}
