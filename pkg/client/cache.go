package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// CacheOptions says what a Cache follows.
type CacheOptions struct {
	// Namespace is the namespace followed (default "default").
	Namespace string
	// Service, when set, restricts the cache to one service.
	Service string
	// MinBackoff and MaxBackoff bound the delay between reconnections
	// (default 500ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout: a stream on which nothing (not even a keep-alive ping)
	// arrives for this long is considered dead and reopened (default 60s;
	// the server pings every 15s).
	IdleTimeout time.Duration
}

// CacheUpdate tells subscribers that the cache changed.
type CacheUpdate struct {
	// Revision is the cache's revision after the change.
	Revision int64
	// Services names the services whose definition or instances changed,
	// sorted. With Resync it is empty: anything may have changed.
	Services []string
	// Resync: the state was replaced by a snapshot (the first one, or a
	// resync after a disconnection, a slow read or a server restart).
	Resync bool
}

// merge folds a later update into u (coalescing for slow subscribers).
func (u CacheUpdate) merge(v CacheUpdate) CacheUpdate {
	out := CacheUpdate{Revision: v.Revision, Resync: u.Resync || v.Resync}
	if !out.Resync {
		out.Services = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(u.Services), v.Services...))))
	}
	return out
}

// Cache follows the watch stream of one namespace (or one service) and
// answers discovery queries from memory. It applies the opening snapshot,
// then every change; when the stream breaks it reconnects with backoff,
// resuming after the last revision it holds, and replaces its state when
// the server sends a resync snapshot. Until it reconnects it keeps serving
// the last state it had.
//
// All methods are safe for concurrent use. Returned instances and services
// are deep copies the caller owns. Subscribers never slow the cache down:
// each has a one-slot channel, and updates that find it full are merged
// into the pending one.
type Cache struct {
	c    *Client
	opts CacheOptions

	mu        sync.RWMutex
	services  map[string]*Service             // by name
	instances map[string]map[string]*Instance // service -> id -> instance
	rev       int64
	synced    bool
	connected bool
	err       error
	subs      map[*subscription]struct{}

	syncedCh chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
}

type subscription struct {
	ch chan CacheUpdate
}

// NewCache starts a cache following the namespace and service of opts. It
// runs until Close.
func NewCache(c *Client, opts CacheOptions) *Cache {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Cache{
		c: c, opts: opts,
		services: map[string]*Service{}, instances: map[string]map[string]*Instance{},
		subs: map[*subscription]struct{}{}, syncedCh: make(chan struct{}),
		cancel: cancel, done: make(chan struct{}),
	}
	go k.run(ctx)
	return k
}

// Close stops following the stream and closes every subscription channel.
// The cache keeps answering with its last state. Calling it again does
// nothing.
func (k *Cache) Close() {
	k.cancel()
	<-k.done
}

// run follows the stream until ctx ends.
func (k *Cache) run(ctx context.Context) {
	defer close(k.done)
	defer k.closeSubs()
	bo := newBackoff(k.opts.MinBackoff, k.opts.MaxBackoff)
	from, epoch := int64(0), ""
	for ctx.Err() == nil {
		s, err := k.c.Watch(ctx, WatchOptions{Namespace: k.opts.Namespace, Service: k.opts.Service,
			From: from, Epoch: epoch, IdleTimeout: k.opts.IdleTimeout})
		if err == nil {
			k.setConn(true, nil)
			var progressed bool
			from, progressed, err = k.follow(s, from)
			if from > 0 {
				epoch = s.Epoch()
			}
			s.Close()
			if progressed {
				bo.reset()
			}
		}
		if ctx.Err() != nil {
			break
		}
		k.setConn(false, err)
		sleep(ctx, bo.next())
	}
	k.setConn(false, k.Err())
}

// follow applies the events of one stream; it returns the revision to
// resume from, whether any event arrived, and why the stream ended.
func (k *Cache) follow(s *Stream, from int64) (int64, bool, error) {
	progressed := false
	for {
		ev, err := s.Next()
		if err != nil {
			return from, progressed, err
		}
		progressed = true
		switch ev.Type {
		case WatchSnapshot:
			k.applySnapshot(ev.Snapshot)
		case WatchChange:
			if !k.isSynced() {
				// Changes without a state to apply them to: the stream
				// resumed from a revision this cache never held.
				return 0, progressed, errors.New("client: cache: change before the first snapshot")
			}
			k.applyChange(ev.Change)
		}
		from = s.ResumeFrom()
	}
}

func (k *Cache) isSynced() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.synced
}

func (k *Cache) setConn(connected bool, err error) {
	k.mu.Lock()
	k.connected = connected
	if err != nil || connected {
		k.err = err
	}
	k.mu.Unlock()
}

// applySnapshot replaces the state.
func (k *Cache) applySnapshot(snap *Snapshot) {
	services := map[string]*Service{}
	instances := map[string]map[string]*Instance{}
	for _, s := range snap.Services {
		if s != nil && k.covers(s.Namespace, s.Name) {
			services[s.Name] = s
		}
	}
	for _, in := range snap.Instances {
		if in != nil && k.covers(in.Namespace, in.Service) {
			putInstance(instances, in)
		}
	}
	k.mu.Lock()
	k.services, k.instances, k.rev = services, instances, snap.Revision
	first := !k.synced
	k.synced = true
	k.mu.Unlock()
	if first {
		close(k.syncedCh)
	}
	k.publish(CacheUpdate{Revision: snap.Revision, Resync: true})
}

// applyChange applies one change (idempotent: applying it twice is harmless).
func (k *Cache) applyChange(ev *Event) {
	var name string
	k.mu.Lock()
	switch {
	case ev.Kind == KindInstance && ev.Instance != nil && k.covers(ev.Instance.Namespace, ev.Instance.Service):
		name = ev.Instance.Service
		if ev.Type == EventDeleted {
			if m := k.instances[name]; m != nil {
				delete(m, ev.Instance.ID)
				if len(m) == 0 {
					delete(k.instances, name)
				}
			}
		} else {
			putInstance(k.instances, ev.Instance)
		}
	case ev.Kind == KindService && ev.Service != nil && k.covers(ev.Service.Namespace, ev.Service.Name):
		name = ev.Service.Name
		if ev.Type == EventDeleted {
			delete(k.services, name)
			delete(k.instances, name) // their deletions come as events too
		} else {
			k.services[name] = ev.Service
		}
	}
	k.rev = max(k.rev, ev.Revision)
	rev := k.rev
	k.mu.Unlock()
	if name != "" {
		k.publish(CacheUpdate{Revision: rev, Services: []string{name}})
	}
}

func putInstance(m map[string]map[string]*Instance, in *Instance) {
	byID := m[in.Service]
	if byID == nil {
		byID = map[string]*Instance{}
		m[in.Service] = byID
	}
	byID[in.ID] = in
}

func (k *Cache) covers(ns, svc string) bool {
	return ns == k.opts.Namespace && (k.opts.Service == "" || svc == k.opts.Service)
}

// Instances returns the instances of service (in the cache's namespace),
// sorted by ID; with healthyOnly, only those that should get traffic.
func (k *Cache) Instances(service string, healthyOnly bool) []Instance {
	k.mu.RLock()
	defer k.mu.RUnlock()
	byID := k.instances[service]
	out := make([]Instance, 0, len(byID))
	for _, in := range byID {
		if !healthyOnly || in.Healthy() {
			out = append(out, in.Clone())
		}
	}
	slices.SortFunc(out, func(a, b Instance) int { return compareStrings(a.ID, b.ID) })
	return out
}

// Instance returns one instance of service by ID.
func (k *Cache) Instance(service, id string) (Instance, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	in := k.instances[service][id]
	if in == nil {
		return Instance{}, false
	}
	return in.Clone(), true
}

// Services returns the services held, sorted by name.
func (k *Cache) Services() []Service {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]Service, 0, len(k.services))
	for _, s := range k.services {
		out = append(out, s.Clone())
	}
	slices.SortFunc(out, func(a, b Service) int { return compareStrings(a.Name, b.Name) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Revision returns the revision of the state held (0 before the first snapshot).
func (k *Cache) Revision() int64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.rev
}

// Synced reports whether the cache has applied its first snapshot.
func (k *Cache) Synced() bool { return k.isSynced() }

// Connected reports whether the cache's watch stream is open now. While it
// is not, the cache serves the last state it had.
func (k *Cache) Connected() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.connected
}

// Err returns why the last stream failed or could not be opened; nil
// while connected.
func (k *Cache) Err() error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.err
}

// WaitSynced waits until the cache has applied its first snapshot, or ctx
// ends (the error then includes the last connection error, if any).
func (k *Cache) WaitSynced(ctx context.Context) error {
	select {
	case <-k.syncedCh:
		return nil
	case <-ctx.Done():
		if err := k.Err(); err != nil {
			return errors.Join(ctx.Err(), err)
		}
		return ctx.Err()
	case <-k.done:
		if k.isSynced() {
			return nil
		}
		return errors.New("client: cache closed before its first snapshot")
	}
}

// Subscribe returns a channel that receives an update after every change
// of the cache, and a function that ends the subscription. When the cache
// already holds a state, the channel starts with an update (Resync) for it,
// so that no change falls between reading the cache and subscribing. The
// channel has one slot: when the subscriber is slow, later updates are
// merged into the pending one, so the cache never waits. The channel is
// closed by cancel or Close.
func (k *Cache) Subscribe() (<-chan CacheUpdate, func()) {
	s := &subscription{ch: make(chan CacheUpdate, 1)}
	k.mu.Lock()
	if k.subs == nil { // closed
		k.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	k.subs[s] = struct{}{}
	if k.synced {
		s.ch <- CacheUpdate{Revision: k.rev, Resync: true} // the state so far
	}
	k.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			k.mu.Lock()
			defer k.mu.Unlock()
			if _, ok := k.subs[s]; ok {
				delete(k.subs, s)
				close(s.ch)
			}
		})
	}
}

// OnChange calls fn after changes of the cache, from a goroutine of its
// own, one call at a time; updates that arrive while fn runs are merged.
// It returns a function that ends the subscription.
func (k *Cache) OnChange(fn func(CacheUpdate)) (cancel func()) {
	ch, cancel := k.Subscribe()
	go func() {
		for u := range ch {
			fn(u)
		}
	}()
	return cancel
}

// publish hands u to every subscriber without blocking.
func (k *Cache) publish(u CacheUpdate) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for s := range k.subs {
		select {
		case s.ch <- u:
			continue
		default:
		}
		// Full: merge with the pending update. Only publish sends, under
		// the lock, so the slot is free once drained.
		pending := u
		select {
		case old := <-s.ch:
			pending = old.merge(u)
		default:
		}
		select {
		case s.ch <- pending:
		default:
		}
	}
}

func (k *Cache) closeSubs() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for s := range k.subs {
		close(s.ch)
	}
	k.subs = nil
}
