package resilience

import (
	"sync"
	"testing"
	"time"
)

func TestBudgetBoundsRetries(t *testing.T) {
	b := NewBudget(0.2, 0)
	now := time.Now()
	// 1,000 requests all failing, each wanting a retry: about 200 get one.
	retries := 0
	for range 1000 {
		b.Request()
		if b.TryRetry(now) {
			retries++
		}
	}
	if retries < 195 || retries > 200 {
		t.Fatalf("%d retries for 1,000 requests at ratio 0.2", retries)
	}
	// Ratio is clamped to 1: retries never more than double the load.
	b = NewBudget(5, 0)
	retries = 0
	for range 1000 {
		b.Request()
		for b.TryRetry(now) {
			retries++
		}
	}
	if retries > 1000 {
		t.Fatalf("%d retries for 1,000 requests", retries)
	}
}

func TestBudgetTrickle(t *testing.T) {
	b := NewBudget(0, 10) // no traffic-based deposits; 10 retries a second
	now := time.Now()
	n := 0
	for b.TryRetry(now) {
		n++
	}
	if n != 10 {
		t.Fatalf("starts with %d retries, want 10", n)
	}
	if b.TryRetry(now) {
		t.Fatal("spent budget gave a retry")
	}
	later := now.Add(500 * time.Millisecond)
	n = 0
	for b.TryRetry(later) {
		n++
	}
	if n < 4 || n > 5 {
		t.Fatalf("half a second later: %d retries, want about 5", n)
	}
	// It does not hoard more than ten seconds' worth.
	much := later.Add(time.Hour)
	n = 0
	for b.TryRetry(much) {
		n++
	}
	if n > 100 {
		t.Fatalf("an idle hour banked %d retries", n)
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	for n, limit := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 9: 50 * time.Millisecond} {
		var maxSeen time.Duration
		for range 2000 {
			d := b.Delay(n)
			if d < 0 || d > limit {
				t.Fatalf("retry %d: delay %v outside [0, %v]", n, d, limit)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < limit*8/10 {
			t.Fatalf("retry %d: delays never near the cap %v (max %v): no jitter range", n, limit, maxSeen)
		}
	}
	if d := (Backoff{}).Delay(1); d > 25*time.Millisecond {
		t.Fatalf("default base: %v", d)
	}
}

func TestLimit(t *testing.T) {
	l := NewLimit(2)
	if !l.Acquire() || !l.Acquire() {
		t.Fatal("under the limit refused")
	}
	if l.Acquire() || !l.Open() || l.Shed() != 1 {
		t.Fatal("over the limit accepted")
	}
	l.Release()
	if !l.Acquire() {
		t.Fatal("a released slot not reusable")
	}
	// Concurrent use never lets more than max in.
	l = NewLimit(5)
	var wg sync.WaitGroup
	var peak, cur int64
	var mu sync.Mutex
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if l.Acquire() {
					mu.Lock()
					cur++
					peak = max(peak, cur)
					mu.Unlock()
					mu.Lock()
					cur--
					mu.Unlock()
					l.Release()
				}
			}
		}()
	}
	wg.Wait()
	if peak > 5 || l.InUse() != 0 {
		t.Fatalf("peak %d in use, %d left", peak, l.InUse())
	}
	if NewLimit(0).Open() || !NewLimit(0).Acquire() {
		t.Fatal("0 is unlimited")
	}
}
