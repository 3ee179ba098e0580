package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram buckets: values below 2*histSub are exact; above, each power
// of two is split into histSub buckets, so a recorded value is known to
// within 1/histSub (about 3%). A fixed array keeps Record allocation-free
// and the memory per connection bounded (15 KiB), whatever the run length.
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits) * histSub
)

// Histogram is a log-linear histogram of non-negative int64 values
// (latencies in nanoseconds). The zero value is empty and ready to use. It
// is not safe for concurrent use: give each goroutine its own and Merge.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    int64
}

func histIndex(v int64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1)
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// histBounds returns the smallest and largest value of bucket i.
func histBounds(i int) (lo, hi int64) {
	if i < 2*histSub {
		return int64(i), int64(i)
	}
	shift := i/histSub - 1
	lo = int64(i%histSub+histSub) << shift
	return lo, lo + (int64(1) << shift) - 1
}

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded value.
func (h *Histogram) Max() int64 { return h.max }

// Quantile returns the value below which a fraction q of the recorded
// values lie (the middle of its bucket, never above Max), or 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := histBounds(i)
			return min(lo+(hi-lo)/2, h.max)
		}
	}
	return h.max
}

// Millis converts a nanosecond value to milliseconds.
func Millis(ns int64) float64 { return float64(ns) / float64(time.Millisecond) }
