package visible

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// A fake server whose answers show a write 2ms after it was made.
func TestRun(t *testing.T) {
	var mu sync.Mutex
	type change struct {
		at  time.Time
		add bool
	}
	changes := map[netip.Addr]change{}
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 200, 0, byte(i + 1)}) }
	set := func(i int, add bool) error {
		mu.Lock()
		changes[addr(i)] = change{time.Now().Add(2 * time.Millisecond), add}
		mu.Unlock()
		return nil
	}
	poll := func(context.Context) ([]netip.Addr, error) {
		time.Sleep(100 * time.Microsecond)
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		var out []netip.Addr
		for a, c := range changes {
			if c.add == !now.Before(c.at) { // added and visible, or removed and not yet gone
				out = append(out, a)
			}
		}
		return out, nil
	}
	r, err := Run(context.Background(), Config{N: 20, Gap: time.Millisecond, Timeout: time.Second}, addr,
		func(_ context.Context, i int) error { return set(i, true) },
		func(_ context.Context, i int) error { return set(i, false) }, poll)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]struct {
		n, timeouts int
		p50         time.Duration
	}{"added": {r.Added.Count, r.Added.Timeouts, r.Added.P50}, "removed": {r.Removed.Count, r.Removed.Timeouts, r.Removed.P50}} {
		if p.n != 20 || p.timeouts != 0 {
			t.Errorf("%s: %d samples, %d timeouts", name, p.n, p.timeouts)
		}
		if p.p50 < 2*time.Millisecond || p.p50 > 50*time.Millisecond {
			t.Errorf("%s: p50 %v, want about 2ms", name, p.p50)
		}
	}
	if r.Polls < 40 || r.MeanPoll() < 100*time.Microsecond {
		t.Errorf("%d polls of %v", r.Polls, r.MeanPoll())
	}
}
