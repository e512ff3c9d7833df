// Package prop measures change propagation: the time from the moment a
// write is sent to the moment a watcher sees the change it made.
package prop

import (
	"context"
	"fmt"
	"time"

	"github.com/cairnhq/cairn/bench/internal/stats"
)

// Seen is a change a watcher received: the key it concerns and when it
// arrived (taken as soon as the event was read off the stream).
type Seen struct {
	Key string
	At  time.Time
}

// Result is the outcome of a propagation run.
type Result struct {
	stats.Summary
	Timeouts int      `json:"timeouts"` // writes whose change was not seen within the timeout
	Samples  []Sample `json:"-"`        // every write that was seen, in order
}

// Sample is one write that was seen: when it was sent and how long its
// change took to reach the watcher.
type Sample struct {
	Sent    time.Time
	Latency time.Duration
}

// Run makes n writes one after another: write i is sent, then Run waits
// until the watcher reports key(i) (up to timeout) before sending the next,
// so each write meets an otherwise idle pipeline apart from any background
// load. The latency of a write is Seen.At minus the time just before it was
// sent. Changes for other keys (stale ones after a timeout) are skipped.
func Run(ctx context.Context, n int, timeout time.Duration, key func(int) string,
	write func(ctx context.Context, i int) error, seen <-chan Seen) (Result, error) {
	samples := make([]time.Duration, 0, n)
	raw := make([]Sample, 0, n)
	timeouts := 0
	for i := range n {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		k := key(i)
		sent := time.Now()
		if err := write(ctx, i); err != nil {
			return Result{}, fmt.Errorf("write %d (%s): %w", i, k, err)
		}
		if at, ok := waitFor(ctx, k, sent.Add(timeout), seen); ok {
			samples = append(samples, at.Sub(sent))
			raw = append(raw, Sample{Sent: sent, Latency: at.Sub(sent)})
		} else {
			timeouts++
		}
	}
	return Result{Summary: stats.Summarize(samples), Timeouts: timeouts, Samples: raw}, nil
}

func waitFor(ctx context.Context, key string, deadline time.Time, seen <-chan Seen) (time.Time, bool) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case s, ok := <-seen:
			if !ok {
				return time.Time{}, false
			}
			if s.Key == key {
				return s.At, true
			}
		case <-timer.C:
			return time.Time{}, false
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
}
