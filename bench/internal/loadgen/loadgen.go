// Package loadgen drives operations from a fixed pool of workers. Every run
// is bounded both in the number of operations and in time.
package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Op performs operation number i. A non-nil error counts as a failed operation.
type Op func(ctx context.Context, i int) error

// Result counts what a run did.
type Result struct {
	Ops      int64         // operations that succeeded
	Errors   int64         // operations that failed
	Skipped  int64         // paced runs: operations due that no worker was free to start
	Elapsed  time.Duration // from the start to the last worker's return
	FirstErr error         // the first failure, if any
}

// Rate returns successful operations per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

type counter struct {
	ops, errs atomic.Int64
	once      sync.Once
	first     error
}

func (c *counter) do(ctx context.Context, op Op, i int) {
	if err := op(ctx, i); err != nil {
		if ctx.Err() != nil {
			return // cut off by the end of the run: neither success nor failure
		}
		c.errs.Add(1)
		c.once.Do(func() { c.first = err })
		return
	}
	c.ops.Add(1)
}

func (c *counter) result(start time.Time) Result {
	return Result{Ops: c.ops.Load(), Errors: c.errs.Load(), Elapsed: time.Since(start), FirstErr: c.first}
}

// Closed runs op as fast as workers goroutines can (a closed loop: each
// worker starts its next operation when the previous one returns), for
// operations 0, 1, 2, ... until maxOps have started or maxDur has passed.
// Operations still running at maxDur are cancelled and not counted.
func Closed(ctx context.Context, workers int, maxOps int64, maxDur time.Duration, op Op) Result {
	ctx, cancel := context.WithTimeout(ctx, maxDur)
	defer cancel()
	var c counter
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= maxOps {
					return
				}
				c.do(ctx, op, int(i))
			}
		})
	}
	wg.Wait()
	return c.result(start)
}

// Paced starts op about rate times per second on workers goroutines until
// ctx ends or maxDur passes (an open loop: operations that come due while
// every worker is busy are skipped and counted, not queued, so a slow
// server does not build a backlog that distorts what is measured next).
func Paced(ctx context.Context, rate float64, workers int, maxDur time.Duration, op Op) Result {
	ctx, cancel := context.WithTimeout(ctx, maxDur)
	defer cancel()
	var c counter
	var skipped atomic.Int64
	tokens := make(chan int, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case i := <-tokens:
					c.do(ctx, op, i)
				}
			}
		})
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	issued := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			due := int(rate * now.Sub(start).Seconds())
			for ; issued < due; issued++ {
				select {
				case tokens <- issued:
				default:
					skipped.Add(1)
				}
			}
		}
	}
	wg.Wait()
	r := c.result(start)
	r.Skipped = skipped.Load()
	return r
}
