package health

import (
	"context"
	"errors"

	"github.com/cairnhq/cairn/internal/registry"
)

// feedBatch is how many events Run asks the feed for at a time.
const feedBatch = 1024

// Run checks instances until ctx ends. It starts a probe for every instance
// of a snapshot that has a check, then follows the change feed: an added or
// changed instance starts (or restarts) its probe, a deleted one stops it.
// A reader that falls behind the feed resyncs from a new snapshot. Run
// returns once every probe has stopped. It must be called only once.
func (c *Checker) Run(ctx context.Context) {
	if c.running.Swap(true) {
		c.log.Error("Run called twice; ignoring the second call")
		return
	}
	probes := map[registry.InstanceKey]*probe{}
	defer func() {
		for _, p := range probes {
			p.cancel()
		}
		c.wg.Wait()
		c.log.Info("stopped")
	}()

	feed := c.reg.Feed()
	rev := c.resync(ctx, probes)
	cur := feed.Subscribe(rev)
	defer cur.Close()
	c.log.Info("started", "revision", rev, "probes", len(probes))

	for ctx.Err() == nil {
		evs, _, notify, err := feed.Since(rev, feedBatch)
		if err != nil {
			if !errors.Is(err, registry.ErrCompacted) {
				c.log.Error("reading the change feed; resyncing", "revision", rev, "err", err)
			} else {
				c.log.Warn("fell behind the change feed; resyncing", "revision", rev, "oldest", feed.Oldest())
			}
			rev = c.resync(ctx, probes)
			cur.Set(rev)
			continue
		}
		if len(evs) == 0 {
			select {
			case <-ctx.Done():
			case <-notify:
			}
			continue
		}
		for i := range evs {
			c.apply(ctx, probes, &evs[i])
		}
		rev = evs[len(evs)-1].Revision
		cur.Set(rev)
	}
}

// resync makes probes match a fresh snapshot and returns its revision:
// probes of instances that are gone (or lost their check) stop, new ones
// start and those whose target changed restart.
func (c *Checker) resync(ctx context.Context, probes map[registry.InstanceKey]*probe) int64 {
	snap := c.reg.Snapshot(registry.Filter{})
	c.resyncs.Add(1)
	seen := make(map[registry.InstanceKey]bool, len(snap.Instances))
	for _, in := range snap.Instances {
		if in.Check == nil {
			continue
		}
		seen[in.Key()] = true
		c.ensure(ctx, probes, in)
	}
	for k, p := range probes {
		if !seen[k] {
			p.stop()
			delete(probes, k)
		}
	}
	if c.afterSync != nil {
		c.afterSync()
	}
	return snap.Revision
}

// apply updates probes for one feed event.
func (c *Checker) apply(ctx context.Context, probes map[registry.InstanceKey]*probe, e *registry.Event) {
	if e.Kind != registry.KindInstance || e.Instance == nil {
		return
	}
	switch {
	case e.Type == registry.EventDeleted || e.Instance.Check == nil:
		c.drop(probes, e.Instance.Key())
	case e.Reason == registry.ReasonHealth:
		// The checker's own write: nothing a probe depends on changed.
	default:
		c.ensure(ctx, probes, e.Instance)
	}
}

// ensure runs a probe for in (which has a check) unless one with the same
// target is already running.
func (c *Checker) ensure(ctx context.Context, probes map[registry.InstanceKey]*probe, in *registry.Instance) {
	k := in.Key()
	t, err := targetOf(in)
	if err != nil {
		c.log.Warn("cannot check instance", "instance", k.String(), "err", err)
		c.drop(probes, k)
		return
	}
	old := probes[k]
	if old != nil {
		if old.target == t {
			return
		}
		old.stop()
		c.log.Debug("restarting probe", "instance", k.String(), "type", t.spec.Type, "addr", t.addr)
	}
	// Start from the health the registry holds now rather than the one in
	// the event: a replaced probe may have written a verdict since.
	h := in.Health
	if cur, _, err := c.reg.Instance(k); err == nil && cur.Check != nil {
		h = cur.Health
	}
	probes[k] = c.startProbe(ctx, t, h)
}

// drop stops the probe of k, if any.
func (c *Checker) drop(probes map[registry.InstanceKey]*probe, k registry.InstanceKey) {
	if p := probes[k]; p != nil {
		p.stop()
		delete(probes, k)
	}
}
