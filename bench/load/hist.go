// Package load is the measuring half of camwarden's benchmark suite: RTSP
// readers that count packets, sequence gaps, latency (from camsim's
// timestamp SEI) and time to the first keyframe, a latency histogram, and
// readers of /proc for the CPU and memory of a process.
package load

import (
	"math"
	"math/bits"
	"time"
)

// Histogram is a log-linear histogram of durations in microseconds: 16
// sub-buckets per power of two, so any quantile is within ~6% of the truth.
// The zero value is empty and ready. It is not safe for concurrent use.
type Histogram struct {
	Counts [histBuckets]uint64
	N      uint64
	Max    time.Duration
	Min    time.Duration
}

const (
	histSub     = 16
	histBits    = 4 // log2(histSub)
	histBuckets = 40 * histSub
)

// bucketOf maps v µs to its bucket; values below histSub have their own.
func bucketOf(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - 1 // us in [2^e, 2^(e+1))
	sub := int(us>>(uint(e)-histBits)) - histSub
	b := (e-histBits+1)*histSub + sub
	if b >= histBuckets {
		return histBuckets - 1
	}
	return b
}

// bucketUpper is the largest µs value that lands in bucket b.
func bucketUpper(b int) uint64 {
	if b < histSub {
		return uint64(b)
	}
	e := b/histSub + histBits - 1
	sub := uint64(b%histSub + histSub)
	return (sub+1)<<(uint(e)-histBits) - 1
}

// Record adds one observation; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.Counts[bucketOf(uint64(d/time.Microsecond))]++
	if h.N == 0 || d < h.Min {
		h.Min = d
	}
	if d > h.Max {
		h.Max = d
	}
	h.N++
}

// Merge adds o's observations to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.N == 0 {
		return
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	if h.N == 0 || o.Min < h.Min {
		h.Min = o.Min
	}
	if o.Max > h.Max {
		h.Max = o.Max
	}
	h.N += o.N
}

// Quantile returns the upper bound of the bucket holding quantile q (0..1),
// capped at Max; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.N)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for b, c := range h.Counts {
		seen += c
		if seen >= rank {
			d := time.Duration(bucketUpper(b)) * time.Microsecond
			return min(max(d, h.Min), h.Max)
		}
	}
	return h.Max
}

// HistSummary is the JSON form of a histogram: quantiles in milliseconds
// and the non-empty buckets as [upper bound µs, count] pairs.
type HistSummary struct {
	N       uint64      `json:"n"`
	MinMs   float64     `json:"min_ms"`
	P50Ms   float64     `json:"p50_ms"`
	P90Ms   float64     `json:"p90_ms"`
	P99Ms   float64     `json:"p99_ms"`
	MaxMs   float64     `json:"max_ms"`
	Buckets [][2]uint64 `json:"buckets_us,omitempty"`
}

// Summary returns h in its JSON form.
func (h *Histogram) Summary(withBuckets bool) HistSummary {
	s := HistSummary{N: h.N, MinMs: Ms(h.Min), P50Ms: Ms(h.Quantile(0.5)), P90Ms: Ms(h.Quantile(0.9)),
		P99Ms: Ms(h.Quantile(0.99)), MaxMs: Ms(h.Max)}
	if withBuckets {
		for b, c := range h.Counts {
			if c > 0 {
				s.Buckets = append(s.Buckets, [2]uint64{bucketUpper(b), c})
			}
		}
	}
	return s
}

// Ms is d in milliseconds, rounded to the microsecond.
func Ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
