// Package visible measures how long a registration takes to show in a
// DNS answer, and a deregistration to leave it: one write at a time, then
// the same name asked again and again (back to back) until the answer has
// the new address (or no longer has it).
package visible

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/cairnhq/cairn/bench/internal/prop"
	"github.com/cairnhq/cairn/bench/internal/stats"
)

// Poll asks once and returns the addresses of the answer.
type Poll func(ctx context.Context) ([]netip.Addr, error)

// Config bounds a run.
type Config struct {
	N       int           // registrations (each followed by its deregistration)
	Gap     time.Duration // a random pause of 0 to Gap after each pair, so writes do not lock step with anything periodic in the server
	Timeout time.Duration // an address not seen (or not gone) this long after its write was sent is a timeout
}

// Result is a run's latencies and what the poller did.
type Result struct {
	// Added: registration sent -> first answer read that has the address.
	Added prop.Result `json:"added"`
	// Removed: deregistration sent -> first answer read without it.
	Removed    prop.Result `json:"removed"`
	Polls      int64       `json:"polls"`
	PollErrors int64       `json:"pollErrors"`
	FirstErr   string      `json:"firstErr,omitempty"`
	// PollTime is the time spent polling (Elapsed less the writes and gaps).
	PollTime time.Duration `json:"pollTime"`
	Elapsed  time.Duration `json:"elapsed"`
}

// MeanPoll returns the mean time of one poll (question and answer).
func (r Result) MeanPoll() time.Duration {
	if n := r.Polls + r.PollErrors; n > 0 {
		return r.PollTime / time.Duration(n)
	}
	return 0
}

// Run makes cfg.N registrations one after another: add(i) registers an
// instance with address addr(i); its latency runs from just before add was
// called to the moment the first answer containing addr(i) was read (so it
// includes the registration's own round trip: polling starts when add
// returns). Then remove(i) deregisters it and the poller waits for an
// answer without it (skipped when remove is nil). A failed write ends the
// run; a failed poll is counted and retried.
func Run(ctx context.Context, cfg Config, addr func(int) netip.Addr,
	add, remove func(ctx context.Context, i int) error, poll Poll) (Result, error) {
	var res Result
	var added, removed []time.Duration
	var addedRaw, removedRaw []prop.Sample
	var addTimeouts, removeTimeouts int
	rng := rand.New(rand.NewPCG(7, 7))
	start := time.Now()

	// wait polls until has(answer) holds, and returns when that answer was read.
	wait := func(sent time.Time, has func([]netip.Addr) bool) (time.Time, bool) {
		deadline := sent.Add(cfg.Timeout)
		for ctx.Err() == nil {
			t := time.Now()
			ans, err := poll(ctx)
			at := time.Now()
			res.PollTime += at.Sub(t)
			if err != nil {
				res.PollErrors++
				if res.FirstErr == "" {
					res.FirstErr = err.Error()
				}
			} else {
				res.Polls++
				if has(ans) {
					return at, true
				}
			}
			if at.After(deadline) {
				return time.Time{}, false
			}
		}
		return time.Time{}, false
	}

	for i := range cfg.N {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		a := addr(i)
		sent := time.Now()
		if err := add(ctx, i); err != nil {
			return res, fmt.Errorf("registration %d (%s): %w", i, a, err)
		}
		if at, ok := wait(sent, func(ans []netip.Addr) bool { return slices.Contains(ans, a) }); ok {
			added = append(added, at.Sub(sent))
			addedRaw = append(addedRaw, prop.Sample{Sent: sent, Latency: at.Sub(sent)})
		} else {
			addTimeouts++
		}
		if remove != nil {
			sent = time.Now()
			if err := remove(ctx, i); err != nil {
				return res, fmt.Errorf("deregistration %d (%s): %w", i, a, err)
			}
			if at, ok := wait(sent, func(ans []netip.Addr) bool { return !slices.Contains(ans, a) }); ok {
				removed = append(removed, at.Sub(sent))
				removedRaw = append(removedRaw, prop.Sample{Sent: sent, Latency: at.Sub(sent)})
			} else {
				removeTimeouts++
			}
		}
		if cfg.Gap > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(time.Duration(rng.Int64N(int64(cfg.Gap) + 1))):
			}
		}
	}
	res.Elapsed = time.Since(start)
	res.Added = prop.Result{Summary: stats.Summarize(added), Timeouts: addTimeouts, Samples: addedRaw}
	res.Removed = prop.Result{Summary: stats.Summarize(removed), Timeouts: removeTimeouts, Samples: removedRaw}
	return res, nil
}
