package loadgen

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestClosedRunsEachOpOnce(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{}
	r := Closed(context.Background(), 8, 1000, 10*time.Second, func(_ context.Context, i int) error {
		mu.Lock()
		seen[i]++
		mu.Unlock()
		if i%100 == 0 {
			return errors.New("boom")
		}
		return nil
	})
	if r.Ops != 990 || r.Errors != 10 || r.FirstErr == nil {
		t.Fatalf("result %+v", r)
	}
	for i := range 1000 {
		if seen[i] != 1 {
			t.Fatalf("op %d ran %d times", i, seen[i])
		}
	}
}

func TestClosedStopsAtDeadline(t *testing.T) {
	r := Closed(context.Background(), 4, 1<<40, 100*time.Millisecond, func(ctx context.Context, _ int) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
			return nil
		}
	})
	if r.Elapsed > 2*time.Second || r.Ops == 0 || r.Errors != 0 {
		t.Fatalf("result %+v", r)
	}
}

func TestPacedRate(t *testing.T) {
	r := Paced(context.Background(), 1000, 4, 500*time.Millisecond, func(context.Context, int) error { return nil })
	if r.Ops < 350 || r.Ops > 550 {
		t.Fatalf("paced 1000/s for 0.5s ran %d ops (%+v)", r.Ops, r)
	}
}
