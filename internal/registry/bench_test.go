package registry

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cairnhq/cairn/internal/store"
)

func benchRegistry(b *testing.B, n int, wal bool) (*Registry, []InstanceKey) {
	b.Helper()
	var w *store.WAL
	if wal {
		var err error
		if w, err = store.Open(b.TempDir()); err != nil {
			b.Fatal(err)
		}
	}
	r, err := New(Config{}, w)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	keys := make([]InstanceKey, n)
	for i := range keys {
		in := inst(fmt.Sprintf("svc-%d", i%100), fmt.Sprintf("i-%d", i))
		if _, _, err := r.Register(context.Background(), in); err != nil {
			b.Fatal(err)
		}
		keys[i] = in.Key()
	}
	return r, keys
}

// BenchmarkRenew: the renewal hot path (read lock + atomic store).
func BenchmarkRenew(b *testing.B) {
	r, keys := benchRegistry(b, 10000, false)
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := r.Renew(keys[next.Add(1)%int64(len(keys))]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRegisterWAL: registrations with the write-ahead log, many
// concurrent writers sharing fsyncs.
func BenchmarkRegisterWAL(b *testing.B) {
	r, _ := benchRegistry(b, 0, true)
	var next atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, _, err := r.Register(context.Background(), inst(fmt.Sprintf("svc-%d", i%100), fmt.Sprintf("i-%d", i))); err != nil {
				b.Fatal(err)
			}
		}
	})
}
