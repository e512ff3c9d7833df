package inprocess

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

// sizes are the registry sizes of the HTTP benchmark.
var sizes = []int{10_000, 100_000}

// instance returns instance i shaped like cmd/cairnbench's registrations:
// one port, a zone, two metadata entries, a tag, a 300s lease.
func instance(i, services int) registry.Instance {
	return registry.Instance{
		Namespace: "default", Service: fmt.Sprintf("svc-%04d", i%services), ID: fmt.Sprintf("i-%06d", i),
		Address:  fmt.Sprintf("10.%d.%d.%d", (i>>16)&0xff, (i>>8)&0xff, i&0xff),
		Ports:    []registry.Port{{Name: "http", Port: 8080, Protocol: "http"}},
		Zone:     fmt.Sprintf("bench-%c", 'a'+rune(i%3)),
		Metadata: map[string]string{"version": "1.0.0", "team": "bench"},
		Tags:     []string{"bench"},
		TTL:      registry.Duration(300 * time.Second), RenewInterval: registry.Duration(30 * time.Second),
	}
}

// filled returns an in-memory registry holding n instances over n/100 services.
func filled(tb testing.TB, n int) (*registry.Registry, []registry.InstanceKey) {
	tb.Helper()
	r, err := registry.New(registry.Config{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	keys := make([]registry.InstanceKey, n)
	for i := range n {
		in := instance(i, max(1, n/100))
		if _, _, err := r.Register(context.Background(), in); err != nil {
			tb.Fatal(err)
		}
		keys[i] = in.Key()
	}
	return r, keys
}

// BenchmarkSweep times one expired-lease sweep, a scan of every instance.
// Held under one lock, the whole scan is what a write (and, with RWMutex
// writer preference, every read queued behind it) waits; see RESULTS.md.
func BenchmarkSweep(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r, _ := filled(b, n)
			b.ResetTimer()
			worst(b, func() { r.Sweep() })
		})
	}
}

// BenchmarkStats times Registry.Stats (every /metrics scrape and
// /v1/status), which also scans every instance.
func BenchmarkStats(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r, _ := filled(b, n)
			b.ResetTimer()
			worst(b, func() { r.Stats() })
		})
	}
}

// worst runs fn in a benchmark loop and also reports the slowest call
// (max-ms): back-to-back calls find the instances in the CPU caches, the
// first one, like a sweep every 5s in a busy server, does not.
func worst(b *testing.B, fn func()) {
	var slowest time.Duration
	for b.Loop() {
		start := time.Now()
		fn()
		slowest = max(slowest, time.Since(start))
	}
	b.ReportMetric(float64(slowest)/float64(time.Millisecond), "max-ms")
}

// BenchmarkHeap reports the live heap per registered instance.
func BenchmarkHeap(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				before := liveHeap()
				r, _ := filled(b, n)
				after := liveHeap()
				b.ReportMetric(float64(after-before)/float64(n), "B/instance")
				runtime.KeepAlive(r)
			}
		})
	}
}

// BenchmarkHeapAfterChurn reports the live heap of a registry of n
// instances before and after 65,536 re-registrations (the feed's default
// capacity) that change one of 1,000 hot instances each time: the change
// feed then holds ~64,500 replaced versions and keeps them all alive, the
// worst case for the feed's memory.
func BenchmarkHeapAfterChurn(b *testing.B) {
	const churn, hot = 1 << 16, 1000
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				base := liveHeap()
				r, _ := filled(b, n)
				before := liveHeap()
				for i := range churn {
					in := instance(i%hot, max(1, n/100))
					in.Metadata = map[string]string{"version": fmt.Sprint("2.", i/hot), "team": "bench"}
					if _, _, err := r.Register(context.Background(), in); err != nil {
						b.Fatal(err)
					}
				}
				after := liveHeap()
				b.ReportMetric(float64(before-base)/(1<<20), "MiB-before")
				b.ReportMetric(float64(after-base)/(1<<20), "MiB-after")
				runtime.KeepAlive(r)
			}
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
