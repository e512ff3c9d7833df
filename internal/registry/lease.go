package registry

import (
	"context"
	"sync/atomic"
	"time"
)

// Run sweeps expired leases every EvictionInterval until ctx ends.
func (r *Registry) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.EvictionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Sweep()
		}
	}
}

// renewBucket counts the renewals of one second.
type renewBucket struct{ sec, n atomic.Int64 }

func (r *Registry) countRenewal(now time.Time) {
	r.renewals.Add(1)
	s := now.Unix()
	b := &r.renewBuckets[s%int64(len(r.renewBuckets))]
	if b.sec.Load() != s && b.sec.Swap(s) != s {
		b.n.Store(0) // the bucket last counted an older second (a racing Add may be lost: fine for a rate)
	}
	b.n.Add(1)
}

// renewalsInWindow sums the renewals of the last window.
func (r *Registry) renewalsInWindow(now time.Time) int64 {
	cur := now.Unix()
	oldest := cur - int64(r.cfg.RenewalWindow/time.Second)
	var sum int64
	for i := range r.renewBuckets {
		b := &r.renewBuckets[i]
		if s := b.sec.Load(); s > oldest && s <= cur {
			sum += b.n.Load()
		}
	}
	return sum
}

// Sweep evicts instances whose lease has expired, unless self-preservation
// is active or the restore grace period is running. It returns how many it
// evicted.
//
// Self-preservation (Eureka's rule): each leased instance is expected to
// renew once per RenewInterval; if the renewals seen in the last window fall
// below RenewalThreshold of those expected, the registry assumes the network,
// not the instances, failed, and evicts nothing until renewals recover.
func (r *Registry) Sweep() int {
	now := r.cfg.Now()
	nowNs := now.UnixNano()
	window := r.cfg.RenewalWindow
	windowStart := now.Add(-window).UnixNano()

	var expired []*instEntry
	var expected float64
	r.eachService(func(se *svcEntry) {
		for _, e := range se.instances {
			in := e.inst
			if in.TTL <= 0 {
				continue
			}
			// A renewal is first due one interval after registration.
			from := max(e.since+int64(in.RenewInterval), windowStart)
			if from < nowNs {
				expected += float64(nowNs-from) / float64(in.RenewInterval.D())
			}
			if nowNs > e.lastRenew.Load()+int64(in.TTL) {
				expired = append(expired, e)
			}
		}
	})
	r.mu.RLock()
	leased := r.leased
	r.mu.RUnlock()

	actual := r.renewalsInWindow(now)
	r.spExpected.Store(int64(expected))
	r.spActual.Store(actual)
	active := r.cfg.SelfPreservation && int64(expected) > 0 && float64(actual) < r.cfg.RenewalThreshold*expected
	if was := r.spActive.Swap(active); was != active {
		if active {
			r.log.Warn("self-preservation on: renewals fell below the threshold, evictions paused",
				"renewals", actual, "expected", int64(expected), "threshold", r.cfg.RenewalThreshold)
		} else {
			r.log.Info("self-preservation off: renewals recovered, evictions resume",
				"renewals", actual, "expected", int64(expected))
		}
	}
	if len(expired) == 0 || active || now.Before(r.evictAfter) {
		return 0
	}
	limit := max(1, int(float64(leased)*r.cfg.EvictionMaxFraction))
	if len(expired) > limit {
		expired = expired[:limit]
	}

	r.mu.Lock()
	m := r.begin()
	for _, e := range expired {
		// Re-check under the write lock: it may have renewed or gone.
		cur := r.lookup(e.inst.Key())
		if cur != e || nowNs <= e.lastRenew.Load()+int64(e.inst.TTL) {
			continue
		}
		r.removeLocked(m, e, ReasonEvict)
	}
	n := 0
	for _, ev := range m.events {
		if ev.Kind == KindInstance {
			n++
		}
	}
	b := r.commit(m)
	r.mu.Unlock()
	if err := r.wait(b); err != nil {
		r.log.Error("eviction not persisted", "err", err)
	}
	if n > 0 {
		r.evictions.Add(int64(n))
		r.log.Info("evicted expired leases", "count", n)
	}
	return n
}
