package health

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/cairnhq/cairn/internal/registry"
)

// maxOutput bounds the check output stored with the instance.
const maxOutput = 256

// probe is one running check loop for one instance.
type probe struct {
	target target
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine has exited
}

// stop cancels the probe and waits for its goroutine to exit, so that it
// cannot write a verdict after it has been replaced.
func (p *probe) stop() {
	p.cancel()
	<-p.done
}

// startProbe starts the check loop of t. initial is the instance's health
// as the registry holds it, so that a restarted probe only writes when the
// verdict really changes.
func (c *Checker) startProbe(parent context.Context, t target, initial registry.Health) *probe {
	ctx, cancel := context.WithCancel(parent)
	p := &probe{target: t, cancel: cancel, done: make(chan struct{})}
	c.wg.Add(1)
	c.active.Add(1)
	c.started.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(p.done)
		defer c.active.Add(-1)
		c.loop(ctx, &p.target, initial)
	}()
	return p
}

// loop checks t right away and then every interval plus a jitter of up to
// 10% of it, until ctx ends.
func (c *Checker) loop(ctx context.Context, t *target, initial registry.Health) {
	if initial != registry.HealthPassing && initial != registry.HealthFailing {
		initial = registry.HealthUnknown
	}
	v := verdict{health: initial}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		c.checkOnce(ctx, t, &v)
		interval := t.spec.Interval.D()
		timer.Reset(max(interval+jitter(interval)-time.Since(start), 0))
	}
}

// jitter returns a random duration of up to 10% of interval.
func jitter(interval time.Duration) time.Duration {
	n := int64(interval / 10)
	if n <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(n + 1))
}

// checkOnce runs one check, feeds the result to the verdict and records a
// changed verdict in the registry.
func (c *Checker) checkOnce(ctx context.Context, t *target, v *verdict) {
	timeout := t.spec.Timeout.D()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	out, err := c.check(cctx, t)
	timedOut := errors.Is(cctx.Err(), context.DeadlineExceeded)
	cancel()
	if ctx.Err() != nil {
		return // the probe is stopping: the result says nothing about the instance
	}
	c.checks.Add(1)
	pass := err == nil
	if !pass {
		c.failures.Add(1)
		out = err.Error()
		if timedOut {
			out = "timeout after " + timeout.String()
		}
	}
	out = shorten(out, maxOutput)
	h, changed := v.observe(pass, t.spec.HealthyThreshold, t.spec.UnhealthyThreshold)
	if !changed {
		if !pass {
			c.log.Debug("check failed", "instance", t.key.String(), "type", t.spec.Type, "output", out)
		}
		return
	}
	// Guarded: a verdict about an old address or check is dropped.
	match := func(in *registry.Instance) bool { cur, err := targetOf(in); return err == nil && cur == *t }
	if err := c.reg.SetHealthIf(t.key, h, out, match); err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			v.health = h // the instance is gone; its DELETED event stops this probe
			return
		}
		c.log.Warn("could not record health", "instance", t.key.String(), "health", string(h), "err", err)
		return // v.health unchanged: the next result retries
	}
	c.log.Info("health changed", "instance", t.key.String(), "type", t.spec.Type,
		"from", string(v.health), "to", string(h), "output", out)
	v.health = h
}

// shorten cuts s to at most n bytes without splitting a UTF-8 sequence.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
