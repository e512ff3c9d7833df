// Package pollprop measures change propagation to a polling client: the
// time from the moment a write is sent to the moment a poll's answer that
// shows it has been read. Writes are paced (about one every Every,
// whatever the poller does) while one poller loops, back to back or on an
// interval, as a Eureka client polling /apps/delta does.
package pollprop

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cairnhq/cairn/bench/internal/prop"
	"github.com/cairnhq/cairn/bench/internal/stats"
)

// Poll makes one poll and returns whether its answer shows the write with
// a given id, and the answer's size in bytes.
type Poll func(ctx context.Context) (contains func(id string) bool, size int, err error)

// Config bounds a run.
type Config struct {
	N        int           // writes
	Every    time.Duration // mean time between the starts of two writes
	Interval time.Duration // between the starts of two polls; 0: back to back
	Timeout  time.Duration // a write not seen this long after it was sent is a timeout
}

// Result is a run's latencies and what the poller did.
type Result struct {
	prop.Result
	Polls      int64         `json:"polls"`
	PollErrors int64         `json:"pollErrors"`
	FirstErr   string        `json:"firstErr,omitempty"`
	MeanBytes  float64       `json:"meanBytes"` // mean answer size
	MaxBytes   int           `json:"maxBytes"`
	Elapsed    time.Duration `json:"elapsed"`
}

// PollRate returns polls per second.
func (r Result) PollRate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Polls) / r.Elapsed.Seconds()
}

// Run makes cfg.N writes while poll runs in a loop. Write i starts a
// random time between Every/2 and 3*Every/2 (the same sequence every run)
// after write i-1 started, or right after it returned when it took
// longer: the random gaps keep the writes from falling at the same point
// of every poll interval, as they would with a period that divides it.
// The latency of write i is the time from just before it was sent to the
// moment the first poll answer read after that which shows id(i) was read
// in full. An answer to a poll sent just before the write can show it
// when the server handled it after applying the write: it counts, as the
// client would see the instance then. A failed write ends the run.
func Run(ctx context.Context, cfg Config, id func(int) string, write func(ctx context.Context, i int) error, poll Poll) (Result, error) {
	type pending struct {
		id   string
		sent time.Time
	}
	var (
		mu       sync.Mutex
		waiting  []pending
		samples  = make([]time.Duration, 0, cfg.N)
		raw      = make([]prop.Sample, 0, cfg.N)
		timeouts int
		res      Result
		bytes    int64
	)
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	polled := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(polled)
		var tick *time.Ticker
		if cfg.Interval > 0 {
			tick = time.NewTicker(cfg.Interval)
			defer tick.Stop()
		}
		for pctx.Err() == nil {
			contains, size, err := poll(pctx)
			at := time.Now()
			if err != nil {
				if pctx.Err() != nil {
					return
				}
				res.PollErrors++
				if res.FirstErr == "" {
					res.FirstErr = err.Error()
				}
				time.Sleep(10 * time.Millisecond) // no busy loop against a failing server
				continue
			}
			res.Polls++
			bytes += int64(size)
			res.MaxBytes = max(res.MaxBytes, size)
			mu.Lock()
			kept := waiting[:0]
			for _, p := range waiting {
				switch {
				case contains(p.id):
					samples = append(samples, at.Sub(p.sent))
					raw = append(raw, prop.Sample{Sent: p.sent, Latency: at.Sub(p.sent)})
				case at.Sub(p.sent) > cfg.Timeout:
					timeouts++
				default:
					kept = append(kept, p)
				}
			}
			waiting = kept
			mu.Unlock()
			if tick != nil {
				select {
				case <-pctx.Done():
					return
				case <-tick.C:
				}
			}
		}
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	next := time.Now()
	for i := range cfg.N {
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				return Result{}, ctx.Err()
			case <-time.After(d):
			}
		}
		next = next.Add(cfg.Every/2 + time.Duration(rng.Int64N(int64(cfg.Every)+1)))
		p := pending{id: id(i), sent: time.Now()}
		mu.Lock()
		waiting = append(waiting, p)
		mu.Unlock()
		if err := write(ctx, i); err != nil {
			return Result{}, fmt.Errorf("write %d (%s): %w", i, p.id, err)
		}
		if now := time.Now(); now.After(next) {
			next = now // a slow write delays the next one, no burst to catch up
		}
	}
	// Wait for the last writes to be seen, or to time out.
	deadline := time.Now().Add(cfg.Timeout + time.Second)
	for {
		mu.Lock()
		left := len(waiting)
		mu.Unlock()
		if left == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopPoll()
	<-polled
	mu.Lock()
	defer mu.Unlock()
	timeouts += len(waiting)
	res.Elapsed = time.Since(start)
	if res.Polls > 0 {
		res.MeanBytes = float64(bytes) / float64(res.Polls)
	}
	res.Result = prop.Result{Summary: stats.Summarize(samples), Timeouts: timeouts, Samples: raw}
	return res, nil
}
