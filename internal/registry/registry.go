package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/store"
)

// Config tunes leases, eviction and the feed. Zero values take the
// documented defaults.
type Config struct {
	// FeedCapacity is how many recent events the feed holds (default 16384: each event pins the version it carries, ~1 KiB).
	FeedCapacity int
	// EvictionInterval is the period of the expired-lease sweep (default 5s).
	EvictionInterval time.Duration
	// EvictionMaxFraction caps the share of leased instances one sweep may
	// evict, as Eureka does (default 0.15; at least one per sweep).
	EvictionMaxFraction float64
	// SelfPreservation pauses evictions while renewals in the last
	// RenewalWindow fall below RenewalThreshold of those expected.
	SelfPreservation bool
	RenewalThreshold float64       // default 0.85
	RenewalWindow    time.Duration // default 1m
	// RestoreGrace: after a restart no instance is evicted for this long,
	// and restored leases count from the restart (default 90s).
	RestoreGrace time.Duration
	// CompactBytes: snapshot the state when the log grows past this (default 64 MiB).
	CompactBytes int64

	Logger *slog.Logger
	Now    func() time.Time // for tests
}

func (c *Config) defaults() {
	if c.FeedCapacity == 0 {
		c.FeedCapacity = 1 << 14
	}
	if c.EvictionInterval == 0 {
		c.EvictionInterval = 5 * time.Second
	}
	if c.EvictionMaxFraction == 0 {
		c.EvictionMaxFraction = 0.15
	}
	if c.RenewalThreshold == 0 {
		c.RenewalThreshold = 0.85
	}
	if c.RenewalWindow == 0 {
		c.RenewalWindow = time.Minute
	}
	if c.RestoreGrace == 0 {
		c.RestoreGrace = 90 * time.Second
	}
	if c.CompactBytes == 0 {
		c.CompactBytes = 64 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

type instEntry struct {
	inst      *Instance    // immutable; replaced on every change
	lastRenew atomic.Int64 // unix nanoseconds; renewals only touch this
	since     int64        // unix nanoseconds from which renewals are expected
}

type svcEntry struct {
	svc       *Service
	instances map[string]*instEntry
}

// Registry holds services and instances, their leases and health, and
// publishes every change on its Feed.
//
// Writes take an exclusive lock, apply in memory, append to the log and
// return once the log has made them durable; the feed publishes them in
// revision order right after. Renewals take only the read lock and touch
// an atomic, so they scale with cores and cost no disk write: after a
// restart, leases restart with a grace period (Eureka does the same).
type Registry struct {
	cfg   Config
	log   *slog.Logger
	wal   *store.WAL // nil: memory only
	feed  *Feed
	epoch string

	mu       sync.RWMutex
	rev      int64
	services map[ServiceKey]*svcEntry
	configs  map[config.Key]*config.Document // immutable documents, replaced on change (config.go)
	leased   int                             // instances with a TTL
	total    int

	startedAt  time.Time
	evictAfter time.Time

	renewals      atomic.Int64
	renewBuckets  []renewBucket // renewals per second over the window
	evictions     atomic.Int64
	spActive      atomic.Bool
	spExpected    atomic.Int64
	spActual      atomic.Int64
	compacting    atomic.Bool
	lastSnapBytes atomic.Int64
	closed        atomic.Bool
}

// New returns a registry. With a non-nil wal it first replays the state the
// log holds.
func New(cfg Config, wal *store.WAL) (*Registry, error) {
	cfg.defaults()
	r := &Registry{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "registry"),
		wal:      wal,
		services: map[ServiceKey]*svcEntry{},
		configs:  map[config.Key]*config.Document{},
	}
	r.renewBuckets = make([]renewBucket, int(cfg.RenewalWindow/time.Second)+1)
	r.startedAt = cfg.Now()
	r.epoch = newEpoch()
	if wal != nil {
		r.epoch = wal.Epoch()
		if err := r.restore(); err != nil {
			return nil, err
		}
	}
	if r.total > 0 {
		r.evictAfter = r.startedAt.Add(cfg.RestoreGrace)
	}
	if r.total > 0 || len(r.configs) > 0 {
		r.log.Info("restored registry", "revision", r.rev, "services", len(r.services), "instances", r.total,
			"configs", len(r.configs), "evictions_paused_until", r.evictAfter)
	}
	r.feed = NewFeed(cfg.FeedCapacity, r.rev)
	return r, nil
}

// Epoch names the history revisions count in: a memory-only registry gets
// a new one at every start, a persisted one keeps its data directory's.
// A reader holding a revision of another epoch must resync.
func (r *Registry) Epoch() string { return r.epoch }

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms
	return hex.EncodeToString(b[:])
}

// Feed returns the change feed.
func (r *Registry) Feed() *Feed { return r.feed }

// Revision returns the revision of the newest applied change.
func (r *Registry) Revision() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.rev
}

// mutation collects the events and log ops of one write under r.mu.
type mutation struct {
	rev    int64
	events []Event
	ops    []op
}

func (r *Registry) begin() *mutation {
	r.rev++
	return &mutation{rev: r.rev}
}

// commit logs m (if it changed anything) and must be called with r.mu held;
// the returned batch is waited on after unlocking.
func (r *Registry) commit(m *mutation) *store.Batch {
	if len(m.events) == 0 {
		r.rev--
		return nil
	}
	evs := m.events
	if r.wal == nil {
		r.feed.Publish(evs...)
		return nil
	}
	data := encodeRecord(m)
	return r.wal.Append(data, func() { r.feed.Publish(evs...) })
}

func (r *Registry) wait(b *store.Batch) error {
	if b == nil {
		return nil
	}
	if err := b.Wait(); err != nil {
		r.log.Error("write-ahead log failed", "err", err)
		return ErrUnavailable
	}
	r.maybeCompact()
	return nil
}

func (m *mutation) putService(s *Service, typ EventType, reason string) {
	m.events = append(m.events, Event{Revision: m.rev, Type: typ, Kind: KindService, Reason: reason, Service: s})
	if typ == EventDeleted {
		m.ops = append(m.ops, op{DeleteService: &ServiceKey{s.Namespace, s.Name}})
	} else {
		m.ops = append(m.ops, op{PutService: s})
	}
}

func (m *mutation) putInstance(in *Instance, typ EventType, reason string) {
	m.events = append(m.events, Event{Revision: m.rev, Type: typ, Kind: KindInstance, Reason: reason, Instance: in})
	if typ == EventDeleted {
		k := in.Key()
		m.ops = append(m.ops, op{DeleteInstance: &k})
	} else {
		m.ops = append(m.ops, op{PutInstance: in})
	}
}

// Register adds or replaces an instance after validating it with
// NormalizeInstance. A re-registration that changes nothing only renews.
func (r *Registry) Register(ctx context.Context, in Instance) (*Instance, int64, error) {
	inst, rev, _, err := r.Upsert(ctx, in)
	return inst, rev, err
}

// Upsert is Register that also says whether the instance is new (an API
// answers 201 rather than 200, Eureka tells ADDED from MODIFIED).
func (r *Registry) Upsert(ctx context.Context, in Instance) (inst *Instance, rev int64, created bool, err error) {
	in = in.clone() // the caller keeps its slices; published instances stay immutable
	if fe := NormalizeInstance(&in); fe != nil {
		return nil, 0, false, fe
	}
	if r.closed.Load() {
		return nil, 0, false, ErrClosed
	}
	now := r.cfg.Now()
	r.mu.Lock()
	se := r.services[in.Key().ServiceKey()]
	var old *instEntry
	if se != nil {
		old = se.instances[in.ID]
	}
	if old != nil && sameRegistration(old.inst, &in) {
		old.lastRenew.Store(now.UnixNano())
		inst, rev := r.withRenew(old), r.rev
		r.mu.Unlock()
		r.countRenewal(now)
		return inst, rev, false, nil
	}
	m := r.begin()
	if se == nil {
		svc := &Service{Namespace: in.Namespace, Name: in.Service, CreateRevision: m.rev, ModifyRevision: m.rev}
		se = &svcEntry{svc: svc, instances: map[string]*instEntry{}}
		r.services[svc.Key()] = se
		m.putService(svc, EventAdded, ReasonRegister)
	}
	in.ModifyRevision = m.rev
	in.RegisteredAt = now
	in.LastRenewedAt = now
	in.CreateRevision = m.rev
	in.Health = HealthNone
	if in.Check != nil {
		in.Health = HealthUnknown
	}
	typ := EventAdded
	e := &instEntry{inst: &in, since: now.UnixNano()}
	if old != nil {
		typ = EventModified
		in.CreateRevision = old.inst.CreateRevision
		in.RegisteredAt = old.inst.RegisteredAt
		if in.StatusOverride == "" {
			in.StatusOverride = old.inst.StatusOverride // an operator's override survives re-registration
		}
		if sameCheckTarget(old.inst, &in) {
			in.Health, in.HealthOutput = old.inst.Health, old.inst.HealthOutput
		}
		e.since = old.since
		r.untrack(old.inst)
	}
	e.lastRenew.Store(now.UnixNano())
	se.instances[in.ID] = e
	r.track(&in)
	m.putInstance(&in, typ, ReasonRegister)
	b := r.commit(m)
	rev = r.rev
	r.mu.Unlock()
	return &in, rev, old == nil, r.wait(b)
}

// sameRegistration reports whether a re-registration would change nothing
// readers can see.
func sameRegistration(a, b *Instance) bool {
	return a.Address == b.Address && slices.Equal(a.Ports, b.Ports) && a.Zone == b.Zone &&
		a.Region == b.Region && a.Cluster == b.Cluster && a.Weight == b.Weight &&
		maps.Equal(a.Metadata, b.Metadata) && slices.Equal(a.Tags, b.Tags) && a.Source == b.Source &&
		a.Status == b.Status && (b.StatusOverride == "" || a.StatusOverride == b.StatusOverride) &&
		a.TTL == b.TTL && a.RenewInterval == b.RenewInterval &&
		((a.Check == nil && b.Check == nil) || (a.Check != nil && b.Check != nil && *a.Check == *b.Check))
}

// sameCheckTarget reports whether a health verdict about a still holds for
// b: same check, same address, same checked port.
func sameCheckTarget(a, b *Instance) bool {
	if a.Check == nil || b.Check == nil || *a.Check != *b.Check || a.Address != b.Address {
		return false
	}
	pa, _ := a.PortNamed(a.Check.Port)
	pb, _ := b.PortNamed(b.Check.Port)
	return pa == pb
}

func (r *Registry) track(in *Instance) {
	r.total++
	if in.TTL > 0 {
		r.leased++
	}
}

func (r *Registry) untrack(in *Instance) {
	r.total--
	if in.TTL > 0 {
		r.leased--
	}
}

func (r *Registry) withRenew(e *instEntry) *Instance {
	c := *e.inst
	c.LastRenewedAt = time.Unix(0, e.lastRenew.Load()).UTC()
	return &c
}

// Renew extends the lease of an instance. It returns ErrNotFound for an
// unknown instance, so the client re-registers.
func (r *Registry) Renew(k InstanceKey) error {
	now := r.cfg.Now()
	r.mu.RLock()
	e := r.lookup(k)
	if e != nil {
		e.lastRenew.Store(now.UnixNano())
	}
	r.mu.RUnlock()
	if e == nil {
		return notFound(k)
	}
	r.countRenewal(now)
	return nil
}

// notFound wraps ErrNotFound with what was not found.
func notFound(k fmt.Stringer) error {
	kind := "service"
	if _, ok := k.(InstanceKey); ok {
		kind = "instance"
	}
	return fmt.Errorf("%w: %s %s", ErrNotFound, kind, k)
}

func (r *Registry) lookup(k InstanceKey) *instEntry {
	se := r.services[k.ServiceKey()]
	if se == nil {
		return nil
	}
	return se.instances[k.ID]
}

// Deregister removes an instance (and its implicit service when it was the last).
func (r *Registry) Deregister(ctx context.Context, k InstanceKey) (int64, error) {
	return r.remove(k, ReasonDeregister)
}

func (r *Registry) remove(k InstanceKey, reason string) (int64, error) {
	r.mu.Lock()
	e := r.lookup(k)
	if e == nil {
		r.mu.Unlock()
		return 0, notFound(k)
	}
	m := r.begin()
	r.removeLocked(m, e, reason)
	b := r.commit(m)
	rev := r.rev
	r.mu.Unlock()
	return rev, r.wait(b)
}

func (r *Registry) removeLocked(m *mutation, e *instEntry, reason string) {
	se := r.services[e.inst.Key().ServiceKey()]
	delete(se.instances, e.inst.ID)
	r.untrack(e.inst)
	last := *e.inst
	last.LastRenewedAt = time.Unix(0, e.lastRenew.Load()).UTC()
	m.putInstance(&last, EventDeleted, reason)
	if len(se.instances) == 0 && !se.svc.Explicit {
		delete(r.services, se.svc.Key())
		m.putService(se.svc, EventDeleted, reason)
	}
}

// update replaces an instance with a changed copy made by fn; fn returns
// false when nothing changes (no revision is spent).
func (r *Registry) update(k InstanceKey, reason string, fn func(*Instance) bool) (*Instance, int64, error) {
	r.mu.Lock()
	e := r.lookup(k)
	if e == nil {
		r.mu.Unlock()
		return nil, 0, notFound(k)
	}
	c := *e.inst
	if !fn(&c) {
		inst, rev := r.withRenew(e), r.rev
		r.mu.Unlock()
		return inst, rev, nil
	}
	m := r.begin()
	c.ModifyRevision = m.rev
	c.LastRenewedAt = time.Unix(0, e.lastRenew.Load()).UTC()
	e.inst = &c // renewers touch only lastRenew, so replacing in place is safe under the write lock
	m.putInstance(&c, EventModified, reason)
	b := r.commit(m)
	rev := r.rev
	r.mu.Unlock()
	return &c, rev, r.wait(b)
}

// SetOverride sets the operator status override; UNKNOWN clears it.
func (r *Registry) SetOverride(ctx context.Context, k InstanceKey, s Status) (*Instance, int64, error) {
	s, fe := ValidateStatus("status", s)
	if fe != nil {
		return nil, 0, fe
	}
	if s == StatusUnknown {
		s = ""
	}
	return r.update(k, ReasonOverride, func(in *Instance) bool {
		if in.StatusOverride == s {
			return false
		}
		in.StatusOverride = s
		return true
	})
}

// ClearOverride removes the operator status override.
func (r *Registry) ClearOverride(ctx context.Context, k InstanceKey) (*Instance, int64, error) {
	return r.ResetOverride(ctx, k, "")
}

// ResetOverride removes the operator status override and, when status is
// not empty, sets the reported status in the same revision (Eureka's
// DELETE .../status?value=UP).
func (r *Registry) ResetOverride(ctx context.Context, k InstanceKey, status Status) (*Instance, int64, error) {
	if status != "" {
		var fe *FieldError
		if status, fe = ValidateStatus("value", status); fe != nil {
			return nil, 0, fe
		}
	}
	return r.update(k, ReasonOverride, func(in *Instance) bool {
		changed := in.StatusOverride != ""
		in.StatusOverride = ""
		if status != "" && in.Status != status {
			in.Status, changed = status, true
		}
		return changed
	})
}

// MergeMetadata sets the given metadata keys of an instance, keeping the
// others. The merged metadata is validated as a whole before anything
// changes.
func (r *Registry) MergeMetadata(ctx context.Context, k InstanceKey, set map[string]string) (*Instance, int64, error) {
	var verr *FieldError
	in, rev, err := r.update(k, ReasonMetadata, func(in *Instance) bool {
		merged := maps.Clone(in.Metadata)
		if merged == nil {
			merged = map[string]string{}
		}
		changed := false
		for mk, mv := range set {
			if old, ok := merged[mk]; !ok || old != mv {
				merged[mk], changed = mv, true
			}
		}
		if !changed {
			return false
		}
		if verr = validateMeta("metadata", merged); verr != nil {
			return false
		}
		in.Metadata = merged
		return true
	})
	if verr != nil {
		return nil, 0, verr
	}
	return in, rev, err
}

// SetStatus changes the status an instance reports about itself.
func (r *Registry) SetStatus(ctx context.Context, k InstanceKey, s Status) (*Instance, int64, error) {
	s, fe := ValidateStatus("status", s)
	if fe != nil {
		return nil, 0, fe
	}
	return r.update(k, ReasonStatus, func(in *Instance) bool {
		if in.Status == s {
			return false
		}
		in.Status = s
		return true
	})
}

// SetHealth records an active health check verdict. Only a change of
// verdict is a change; new output alone does not spend a revision.
func (r *Registry) SetHealth(k InstanceKey, h Health, output string) error {
	return r.SetHealthIf(k, h, output, nil)
}

// SetHealthIf is SetHealth guarded by match: the verdict is recorded only
// if match (when non-nil) accepts the instance as it is now, so a probe of
// an old address or check cannot overwrite a newer registration's health.
// A rejected verdict is not an error.
func (r *Registry) SetHealthIf(k InstanceKey, h Health, output string, match func(*Instance) bool) error {
	output = truncateUTF8(output, 512)
	_, _, err := r.update(k, ReasonHealth, func(in *Instance) bool {
		if in.Health == h || in.Check == nil || (match != nil && !match(in)) {
			return false
		}
		in.Health, in.HealthOutput = h, output
		return true
	})
	return err
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// PutService creates or updates a service's metadata and tags; a service
// put this way is explicit and outlives its instances.
func (r *Registry) PutService(ctx context.Context, s Service) (*Service, int64, error) {
	if fe := NormalizeService(&s); fe != nil {
		return nil, 0, fe
	}
	r.mu.Lock()
	se := r.services[s.Key()]
	if se != nil && se.svc.Explicit && maps.Equal(se.svc.Metadata, s.Metadata) && slices.Equal(se.svc.Tags, s.Tags) {
		svc, rev := se.svc, r.rev
		r.mu.Unlock()
		return svc, rev, nil
	}
	m := r.begin()
	s.Explicit = true
	s.ModifyRevision = m.rev
	s.CreateRevision = m.rev
	typ := EventAdded
	if se == nil {
		se = &svcEntry{instances: map[string]*instEntry{}}
		r.services[s.Key()] = se
	} else {
		typ = EventModified
		s.CreateRevision = se.svc.CreateRevision
	}
	se.svc = &s
	m.putService(&s, typ, ReasonPut)
	b := r.commit(m)
	rev := r.rev
	r.mu.Unlock()
	return &s, rev, r.wait(b)
}

// DeleteService removes a service. With instances it fails with
// ErrHasInstances unless cascade is set, which removes them in the same change.
func (r *Registry) DeleteService(ctx context.Context, k ServiceKey, cascade bool) (int64, error) {
	r.mu.Lock()
	se := r.services[k]
	if se == nil {
		r.mu.Unlock()
		return 0, notFound(k)
	}
	if len(se.instances) > 0 && !cascade {
		r.mu.Unlock()
		return 0, ErrHasInstances
	}
	m := r.begin()
	for _, id := range sortedKeys(se.instances) {
		e := se.instances[id]
		delete(se.instances, id)
		r.untrack(e.inst)
		m.putInstance(e.inst, EventDeleted, ReasonDeleteService)
	}
	delete(r.services, k)
	m.putService(se.svc, EventDeleted, ReasonDeleteService)
	b := r.commit(m)
	rev := r.rev
	r.mu.Unlock()
	return rev, r.wait(b)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ServiceInfo is a service with instance counts.
type ServiceInfo struct {
	*Service
	Instances int `json:"instances"`
	Healthy   int `json:"healthy"`
}

// Services lists services matching the namespace and tag of f, sorted.
func (r *Registry) Services(f Filter) ([]ServiceInfo, int64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []ServiceInfo{}
	for k, se := range r.services {
		if !f.MatchService(k.Namespace, k.Name) {
			continue
		}
		if f.Tag != "" && !slices.Contains(se.svc.Tags, f.Tag) {
			continue
		}
		info := ServiceInfo{Service: se.svc, Instances: len(se.instances)}
		for _, e := range se.instances {
			if e.inst.Healthy() {
				info.Healthy++
			}
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, r.rev
}

// Service returns one service.
func (r *Registry) Service(k ServiceKey) (*Service, int64, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	se := r.services[k]
	if se == nil {
		return nil, r.rev, notFound(k)
	}
	return se.svc, r.rev, nil
}

// Instance returns one instance with its current renewal time.
func (r *Registry) Instance(k InstanceKey) (*Instance, int64, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.lookup(k)
	if e == nil {
		return nil, r.rev, notFound(k)
	}
	return r.withRenew(e), r.rev, nil
}

// Instances lists instances passing f, sorted by namespace, service and id,
// with the revision they reflect.
func (r *Registry) Instances(f Filter) ([]*Instance, int64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []*Instance{}
	visit := func(se *svcEntry) {
		for _, e := range se.instances {
			if f.Match(e.inst, se.svc) {
				out = append(out, r.withRenew(e))
			}
		}
	}
	if f.Namespace != "" && f.Service != "" {
		if se := r.services[ServiceKey{f.Namespace, f.Service}]; se != nil {
			visit(se)
		}
	} else {
		for _, se := range r.services {
			visit(se)
		}
	}
	sortInstances(out)
	return out, r.rev
}

func sortInstances(out []*Instance) {
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.ID < b.ID
	})
}

// Snapshot is the whole state at one revision, for readers that (re)build
// their view before following the feed from Revision.
type Snapshot struct {
	Epoch     string             `json:"epoch"`
	Revision  int64              `json:"revision"`
	Services  []*Service         `json:"services"`
	Instances []*Instance        `json:"instances"`
	Configs   []*config.Document `json:"configs"`
}

// Snapshot returns the services and instances passing f at one revision,
// and the config documents of f's namespace when f names no service (the
// events a reader of f follows: Filter.MatchEvent).
func (r *Registry) Snapshot(f Filter) *Snapshot {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := &Snapshot{Epoch: r.epoch, Revision: r.rev, Services: []*Service{}, Instances: []*Instance{},
		Configs: []*config.Document{}}
	if f.Service == "" {
		s.Configs = r.configDocsLocked("", f.Namespace)
	}
	for k, se := range r.services {
		if !f.MatchService(k.Namespace, k.Name) {
			continue
		}
		s.Services = append(s.Services, se.svc)
		for _, e := range se.instances {
			if f.Match(e.inst, se.svc) {
				s.Instances = append(s.Instances, r.withRenew(e))
			}
		}
	}
	sort.Slice(s.Services, func(i, j int) bool {
		return s.Services[i].Key().String() < s.Services[j].Key().String()
	})
	sortInstances(s.Instances)
	return s
}

// Stats are counters and gauges for metrics and the status endpoint.
type Stats struct {
	Revision         int64
	Services         int
	Instances        int
	Configs          int // config documents
	Leased           int
	Healthy          int
	Counts           map[StatusHealth]int // instances by effective status and health
	Renewals         int64
	Evictions        int64
	SelfPreservation SelfPreservation
}

// StatusHealth is a pair for counting instances.
type StatusHealth struct {
	Status Status
	Health Health
}

// SelfPreservation says whether evictions are paused and why.
type SelfPreservation struct {
	Enabled            bool    `json:"enabled"`
	Active             bool    `json:"active"`
	Threshold          float64 `json:"threshold"`
	ExpectedRenewals   int64   `json:"expectedRenewals"`
	RenewalsLastWindow int64   `json:"renewalsLastWindow"`
	WindowSeconds      float64 `json:"windowSeconds"`
}

// SelfPreservationState returns the state found by the last sweep.
func (r *Registry) SelfPreservationState() SelfPreservation {
	return SelfPreservation{
		Enabled:            r.cfg.SelfPreservation,
		Active:             r.spActive.Load(),
		Threshold:          r.cfg.RenewalThreshold,
		ExpectedRenewals:   r.spExpected.Load(),
		RenewalsLastWindow: r.spActual.Load(),
		WindowSeconds:      r.cfg.RenewalWindow.Seconds(),
	}
}

// Stats returns the current counts.
func (r *Registry) Stats() Stats {
	r.mu.RLock()
	st := Stats{Revision: r.rev, Services: len(r.services), Instances: r.total, Configs: len(r.configs),
		Leased: r.leased, Counts: map[StatusHealth]int{}}
	r.mu.RUnlock()
	r.eachService(func(se *svcEntry) {
		for _, e := range se.instances {
			st.Counts[StatusHealth{e.inst.EffectiveStatus(), e.inst.Health}]++
			if e.inst.Healthy() {
				st.Healthy++
			}
		}
	})
	st.Renewals = r.renewals.Load()
	st.Evictions = r.evictions.Load()
	st.SelfPreservation = r.SelfPreservationState()
	return st
}

// eachService calls fn for every service, holding the read lock for one
// service at a time: a scan of a large registry (sweeps, metrics) never
// keeps writers, and the readers queued behind them, waiting for all of it.
// A service removed during the scan may still be visited; fn sees each
// service's instances consistently, but not all services at one revision.
func (r *Registry) eachService(fn func(*svcEntry)) {
	r.mu.RLock()
	ses := make([]*svcEntry, 0, len(r.services))
	for _, se := range r.services {
		ses = append(ses, se)
	}
	r.mu.RUnlock()
	for _, se := range ses {
		r.mu.RLock()
		fn(se)
		r.mu.RUnlock()
	}
}

// Close stops accepting writes and flushes the log.
func (r *Registry) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	if r.wal != nil {
		return r.wal.Close()
	}
	return nil
}
