// Package stats summarises latency samples.
package stats

import (
	"math"
	"slices"
	"time"
)

// Summary describes a set of latency samples. Percentiles use the
// nearest-rank method, so they are always an observed value.
type Summary struct {
	Count int           `json:"count"`
	Min   time.Duration `json:"min"`
	P50   time.Duration `json:"p50"`
	P90   time.Duration `json:"p90"`
	P99   time.Duration `json:"p99"`
	Max   time.Duration `json:"max"`
	Mean  time.Duration `json:"mean"`
}

// Summarize returns the summary of samples; it sorts a copy, so samples
// may be reused by the caller. The zero Summary stands for no samples.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Summary{
		Count: len(s),
		Min:   s[0],
		P50:   Percentile(s, 0.50),
		P90:   Percentile(s, 0.90),
		P99:   Percentile(s, 0.99),
		Max:   s[len(s)-1],
		Mean:  sum / time.Duration(len(s)),
	}
}

// Percentile returns the nearest-rank p-quantile (0 < p <= 1) of sorted,
// a non-empty slice in ascending order.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}
