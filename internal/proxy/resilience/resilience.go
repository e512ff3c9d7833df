// Package resilience holds the gateway's guards against overload: a retry
// budget, backoff with jitter, and circuit-breaking limits. Each is safe
// for concurrent use and takes no lock.
package resilience

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Budget allows retries while they stay within Ratio of the requests (as
// Finagle's and Linkerd's retry budgets): every request deposits Ratio of a
// token, every retry withdraws one, and MinPerSecond tokens a second keep a
// trickle of retries possible at low traffic. Ratio is at most 1, so
// retries can never more than double the load on a backend.
type Budget struct {
	ratio    int64 // milli-tokens deposited per request
	minPerS  int64 // milli-tokens added per second
	capacity int64 // milli-tokens the budget can hold

	tokens atomic.Int64 // milli-tokens
	last   atomic.Int64 // Unix ns of the last trickle
}

// NewBudget returns a budget; ratio is clamped to [0, 1]. The budget holds
// at most ten seconds' worth of the trickle plus 100 requests' deposits,
// and starts full enough for the trickle.
func NewBudget(ratio float64, minPerSecond int) *Budget {
	ratio = min(max(ratio, 0), 1)
	b := &Budget{ratio: int64(ratio * 1000), minPerS: int64(max(minPerSecond, 0)) * 1000}
	b.capacity = 10*b.minPerS + 100*b.ratio
	b.tokens.Store(b.minPerS)
	b.last.Store(time.Now().UnixNano())
	return b
}

// Ratio and MinPerSecond return what the budget was made with.
func (b *Budget) Ratio() float64    { return float64(b.ratio) / 1000 }
func (b *Budget) MinPerSecond() int { return int(b.minPerS / 1000) }

// Request records a request (not a retry).
func (b *Budget) Request() { b.add(b.ratio) }

// TryRetry withdraws a retry; false means the budget is spent.
func (b *Budget) TryRetry(now time.Time) bool {
	b.trickle(now)
	for {
		t := b.tokens.Load()
		if t < 1000 {
			return false
		}
		if b.tokens.CompareAndSwap(t, t-1000) {
			return true
		}
	}
}

func (b *Budget) trickle(now time.Time) {
	last := b.last.Load()
	el := now.UnixNano() - last
	if el < int64(10*time.Millisecond) || b.minPerS == 0 {
		return
	}
	if b.last.CompareAndSwap(last, now.UnixNano()) {
		b.add(b.minPerS * el / int64(time.Second))
	}
}

func (b *Budget) add(n int64) {
	for {
		t := b.tokens.Load()
		next := min(t+n, b.capacity)
		if next == t || b.tokens.CompareAndSwap(t, next) {
			return
		}
	}
}

// Backoff is exponential backoff with full jitter: before retry n (from 1)
// wait a random time in [0, min(Max, Base×2^(n-1))].
type Backoff struct {
	Base time.Duration // default 25ms (Envoy's)
	Max  time.Duration // default 10×Base
}

// Delay returns the wait before retry n.
func (b Backoff) Delay(n int) time.Duration {
	base := b.Base
	if base <= 0 {
		base = 25 * time.Millisecond
	}
	limit := b.Max
	if limit <= 0 {
		limit = 10 * base
	}
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// Limit is a circuit-breaking limit (connections, pending or active
// requests to a backend): Acquire fails fast when it is full, so the
// gateway answers 503 at once instead of queueing.
type Limit struct {
	max  int64 // 0: unlimited
	used atomic.Int64
	shed atomic.Int64
}

// NewLimit returns a limit of max (0: unlimited).
func NewLimit(max int) *Limit { return &Limit{max: int64(max)} }

// Acquire takes a slot; false when the limit is reached (the circuit is
// open for this request).
func (l *Limit) Acquire() bool {
	if n := l.used.Add(1); l.max > 0 && n > l.max {
		l.used.Add(-1)
		l.shed.Add(1)
		return false
	}
	return true
}

// Release gives a slot back.
func (l *Limit) Release() { l.used.Add(-1) }

// InUse returns the slots taken; Shed the acquisitions refused so far.
func (l *Limit) InUse() int64 { return l.used.Load() }
func (l *Limit) Shed() int64  { return l.shed.Load() }

// Open reports whether the limit is reached.
func (l *Limit) Open() bool { return l.max > 0 && l.used.Load() >= l.max }
