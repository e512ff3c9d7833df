package pollprop

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// A fake store that makes a write visible 3ms after it was made.
func TestRun(t *testing.T) {
	var mu sync.Mutex
	visible := map[string]time.Time{}
	id := func(i int) string { return fmt.Sprintf("w-%d", i) }
	write := func(_ context.Context, i int) error {
		mu.Lock()
		visible[id(i)] = time.Now().Add(3 * time.Millisecond)
		mu.Unlock()
		return nil
	}
	poll := func(context.Context) (func(string) bool, int, error) {
		time.Sleep(200 * time.Microsecond)
		now := time.Now()
		mu.Lock()
		seen := map[string]bool{}
		for k, at := range visible {
			seen[k] = !now.Before(at)
		}
		mu.Unlock()
		return func(k string) bool { return seen[k] }, 100, nil
	}
	for _, interval := range []time.Duration{0, 20 * time.Millisecond} {
		r, err := Run(context.Background(), Config{N: 20, Every: 5 * time.Millisecond, Interval: interval, Timeout: time.Second}, id, write, poll)
		if err != nil {
			t.Fatal(err)
		}
		if r.Count != 20 || r.Timeouts != 0 {
			t.Fatalf("interval %v: count %d, timeouts %d", interval, r.Count, r.Timeouts)
		}
		if r.Min < 3*time.Millisecond || r.Max > 3*time.Millisecond+interval+50*time.Millisecond {
			t.Fatalf("interval %v: latencies %v..%v", interval, r.Min, r.Max)
		}
		if r.Polls == 0 || r.MeanBytes != 100 {
			t.Fatalf("interval %v: polls %d, mean bytes %v", interval, r.Polls, r.MeanBytes)
		}
	}
}

func TestRunTimeout(t *testing.T) {
	never := func(context.Context) (func(string) bool, int, error) {
		time.Sleep(time.Millisecond)
		return func(string) bool { return false }, 0, nil
	}
	r, err := Run(context.Background(), Config{N: 3, Every: time.Millisecond, Timeout: 20 * time.Millisecond},
		func(i int) string { return fmt.Sprint(i) }, func(context.Context, int) error { return nil }, never)
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != 0 || r.Timeouts != 3 {
		t.Fatalf("count %d, timeouts %d", r.Count, r.Timeouts)
	}
}
