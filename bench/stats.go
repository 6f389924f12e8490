package bench

import (
	"math"
	"slices"
	"time"

	"github.com/camwarden/camwarden/bench/load"
)

// Dist summarises a small set of samples exactly (nearest-rank quantiles).
type Dist struct {
	N     int     `json:"n"`
	MinMs float64 `json:"min_ms"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func distOf(s []time.Duration) Dist {
	if len(s) == 0 {
		return Dist{}
	}
	s = slices.Clone(s)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Dist{N: len(s), MinMs: load.Ms(s[0]), P50Ms: load.Ms(q(0.5)), P99Ms: load.Ms(q(0.99)), MaxMs: load.Ms(s[len(s)-1])}
}
