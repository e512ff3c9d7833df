package results

import (
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/bench/internal/proc"
	"github.com/cairnhq/cairn/bench/internal/prop"
	"github.com/cairnhq/cairn/bench/internal/stats"
)

func TestReport(t *testing.T) {
	lat := func(p50, p99 time.Duration) prop.Result {
		return prop.Result{Summary: stats.Summary{Count: 2000, P50: p50, P99: p99, Max: 2 * p99}}
	}
	cairn := &Suite{System: "cairn", Instances: 100_000, Concurrency: 64,
		Writes:     Throughput{Rate: 8000, ServerCores: 1},
		Renewals:   &Throughput{Rate: 25_000, ServerCores: 1},
		Memory:     proc.Memory{RSS: 200 << 20, HWM: 210 << 20},
		AfterChurn: &MemorySample{Memory: proc.Memory{RSS: 310 << 20}},
		Propagation: []Propagation{
			{Load: "idle", Result: lat(time.Millisecond, 3*time.Millisecond)},
			{Load: "renewals", Result: lat(time.Millisecond, 5*time.Millisecond), Background: &Throughput{Rate: 5000}},
		}}
	etcd := &Suite{System: "etcd", Instances: 100_000, Concurrency: 64, Writes: Throughput{Rate: 7000},
		Propagation: []Propagation{
			{Load: "idle", Result: lat(time.Millisecond, 2*time.Millisecond)},
			{Load: "puts", Result: lat(time.Millisecond, 2*time.Millisecond), Background: &Throughput{Rate: 4990}},
		}}
	var b strings.Builder
	Report(&b, []*Suite{etcd, cairn})
	out := b.String()
	for _, want := range []string{
		"| 100,000 | 64 | 8,000 (srv 1.00",
		"| 100,000 | idle | 2,000 | 1.00 ms | 3.00 ms | 6.00 ms | 1.00 ms | 2.00 ms | 4.00 ms | 1.50x | 0.00 / 0.00 |",
		"(5,000 / 4,990)",
		"| propagation p99 ≤ 2x etcd (idle) | 100,000 | 1.50x (3.00 ms vs 2.00 ms) | met |",
		"| propagation p99 ≤ 2x etcd (Cairn renewals / etcd puts) | 100,000 | 2.50x (5.00 ms vs 2.00 ms) | **not met** |",
		"| renewals/s ≥ 20,000 | 100,000 | 25,000 (25,000 per server core) | met |",
		"| RSS < 300 MiB | 100,000 | 200 MiB | met |",
		"| RSS < 300 MiB, after churn | 100,000 | 310 MiB | **not met** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestNum(t *testing.T) {
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := num(in); got != want {
			t.Errorf("num(%d) = %q, want %q", in, got, want)
		}
	}
}
