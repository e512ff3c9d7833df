package client

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff computes retry delays: exponential from min to max, with jitter
// so that many clients of a restarted server do not retry in step.
type backoff struct {
	min, max time.Duration
	n        int
}

// newBackoff returns a backoff from lo to hi, with defaults for zero values.
func newBackoff(lo, hi time.Duration) backoff {
	if lo <= 0 {
		lo = 500 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	return backoff{min: lo, max: max(lo, hi)}
}

// next returns the delay before the next attempt: a random duration in
// [d/2, d] where d doubles from min up to max.
func (b *backoff) next() time.Duration {
	d := max(b.min, 1)
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	if d < b.max {
		b.n++ // past max, n stops growing
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// reset starts over from min after a success.
func (b *backoff) reset() { b.n = 0 }

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
