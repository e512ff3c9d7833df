package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for lease tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestRegistry(t *testing.T, cfg Config) (*Registry, *fakeClock) {
	t.Helper()
	clk := newClock()
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	r, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, clk
}

func inst(svc, id string) Instance {
	return Instance{Namespace: "default", Service: svc, ID: id, Address: "10.0.0.1", Ports: []Port{{Name: "http", Port: 8080}}, TTL: Duration(30 * time.Second)}
}

func TestRegisterAssignsRevisionsAndEvents(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	ctx := context.Background()
	in, rev, err := r.Register(ctx, inst("web", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if rev != 1 || in.CreateRevision != 1 || in.ModifyRevision != 1 {
		t.Fatalf("rev=%d create=%d modify=%d, want 1", rev, in.CreateRevision, in.ModifyRevision)
	}
	if in.Namespace != "default" || in.Weight != 1 || in.Status != StatusUp || in.Source != "api" || in.Health != HealthNone {
		t.Fatalf("defaults not applied: %+v", in)
	}
	if in.RenewInterval.D() != 10*time.Second {
		t.Fatalf("renewInterval = %v, want ttl/3", in.RenewInterval.D())
	}
	evs, head, _, err := r.Feed().Since(0, 0)
	if err != nil || head != 1 || len(evs) != 2 {
		t.Fatalf("Since(0) = %d events, head %d, err %v; want service+instance ADDED at 1", len(evs), head, err)
	}
	if evs[0].Kind != KindService || evs[1].Kind != KindInstance || evs[1].Type != EventAdded {
		t.Fatalf("events = %+v", evs)
	}

	// Same registration again: a renewal, no new revision.
	_, rev, _ = r.Register(ctx, inst("web", "a"))
	if rev != 1 {
		t.Fatalf("identical re-registration spent a revision: %d", rev)
	}
	// Changed registration: MODIFIED, CreateRevision kept.
	changed := inst("web", "a")
	changed.Zone = "z1"
	in, rev, _ = r.Register(ctx, changed)
	if rev != 2 || in.CreateRevision != 1 || in.ModifyRevision != 2 {
		t.Fatalf("re-registration: rev=%d create=%d modify=%d", rev, in.CreateRevision, in.ModifyRevision)
	}
	evs, _, _, _ = r.Feed().Since(1, 0)
	if len(evs) != 1 || evs[0].Type != EventModified {
		t.Fatalf("want one MODIFIED, got %+v", evs)
	}
}

func TestInvalidInputChangesNothing(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	ctx := context.Background()
	cases := []struct {
		name  string
		mod   func(*Instance)
		field string
	}{
		{"no service", func(i *Instance) { i.Service = "" }, "service"},
		{"uppercase service", func(i *Instance) { i.Service = "Web" }, "service"},
		{"bad id", func(i *Instance) { i.ID = "a/b" }, "id"},
		{"bad address", func(i *Instance) { i.Address = "not an address" }, "address"},
		{"port range", func(i *Instance) { i.Ports[0].Port = 70000 }, "ports[0].port"},
		{"port protocol", func(i *Instance) { i.Ports[0].Protocol = "smtp" }, "ports[0].protocol"},
		{"dup port", func(i *Instance) { i.Ports = append(i.Ports, Port{Name: "http", Port: 1}) }, "ports[1].name"},
		{"status", func(i *Instance) { i.Status = "HAPPY" }, "status"},
		{"weight", func(i *Instance) { i.Weight = -1 }, "weight"},
		{"ttl", func(i *Instance) { i.TTL = Duration(time.Millisecond) }, "ttl"},
		{"check type", func(i *Instance) { i.Check = &CheckSpec{Type: "icmp"} }, "check.type"},
		{"check port", func(i *Instance) { i.Check = &CheckSpec{Type: "tcp", Port: "nope"} }, "check.port"},
		{"meta key", func(i *Instance) { i.Metadata = map[string]string{"a b": "c"} }, "metadata.a b"},
		{"zone", func(i *Instance) { i.Zone = "a zone" }, "zone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := inst("web", "a")
			tc.mod(&in)
			_, _, err := r.Register(ctx, in)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v, want a FieldError on %q", err, tc.field)
			}
			if r.Revision() != 0 {
				t.Fatalf("a rejected registration changed the revision to %d", r.Revision())
			}
		})
	}
}

func TestOverrideAndStatus(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	ctx := context.Background()
	in := inst("web", "a")
	r.Register(ctx, in)
	k := InstanceKey{"default", "web", "a"}
	got, _, err := r.SetOverride(ctx, k, StatusOutOfService)
	if err != nil || got.EffectiveStatus() != StatusOutOfService || got.Healthy() {
		t.Fatalf("override: %+v %v", got, err)
	}
	// The override survives a re-registration that does not carry one.
	in.Zone = "z2"
	got, _, _ = r.Register(ctx, in)
	if got.StatusOverride != StatusOutOfService {
		t.Fatalf("override lost on re-registration")
	}
	if hs, _ := r.Instances(Filter{HealthyOnly: true}); len(hs) != 0 {
		t.Fatalf("overridden instance listed as healthy")
	}
	got, _, _ = r.ClearOverride(ctx, k)
	if got.StatusOverride != "" || !got.Healthy() {
		t.Fatalf("clear override: %+v", got)
	}
	got, _, _ = r.SetStatus(ctx, k, StatusDown)
	if got.Status != StatusDown || got.Healthy() {
		t.Fatalf("status: %+v", got)
	}
	if _, _, err := r.SetOverride(ctx, InstanceKey{"default", "web", "zz"}, StatusUp); !errors.Is(err, ErrNotFound) {
		t.Fatalf("override on unknown instance: %v", err)
	}
	if _, _, err := r.SetOverride(ctx, k, "NOPE"); err == nil {
		t.Fatal("invalid override accepted")
	}
}

// TestEurekaOverrideRules: an instance's own DOWN or STARTING wins over an
// override; ResetOverride clears and optionally sets the status in one
// revision; MergeMetadata validates the merged map before changing it.
func TestEurekaOverrideRules(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	ctx := context.Background()
	r.Register(ctx, inst("web", "a"))
	k := InstanceKey{"default", "web", "a"}
	r.SetOverride(ctx, k, StatusUp)
	for _, st := range []Status{StatusDown, StatusStarting} {
		got, _, _ := r.SetStatus(ctx, k, st)
		if got.EffectiveStatus() != st || got.Healthy() {
			t.Fatalf("reported %s under an UP override: effective %s", st, got.EffectiveStatus())
		}
	}
	got, _, _ := r.SetStatus(ctx, k, StatusOutOfService)
	if got.EffectiveStatus() != StatusUp {
		t.Fatalf("override over OUT_OF_SERVICE: %s", got.EffectiveStatus())
	}

	rev := r.Revision()
	got, rev2, err := r.ResetOverride(ctx, k, StatusUp)
	if err != nil || got.StatusOverride != "" || got.Status != StatusUp || rev2 != rev+1 {
		t.Fatalf("reset override: %+v rev %d->%d %v", got, rev, rev2, err)
	}
	if _, _, err := r.ResetOverride(ctx, k, "BOGUS"); err == nil || r.Revision() != rev2 {
		t.Fatalf("invalid status accepted or changed the registry: %v", err)
	}

	got, _, err = r.MergeMetadata(ctx, k, map[string]string{"a": "1", "b": "2"})
	if err != nil || got.Metadata["a"] != "1" || got.Metadata["b"] != "2" {
		t.Fatalf("merge: %+v %v", got, err)
	}
	rev = r.Revision()
	if _, _, err := r.MergeMetadata(ctx, k, map[string]string{"bad key": "x"}); err == nil || r.Revision() != rev {
		t.Fatalf("invalid metadata merged: %v", err)
	}
	if _, rev3, _ := r.MergeMetadata(ctx, k, map[string]string{"a": "1"}); rev3 != rev {
		t.Fatal("a merge that changes nothing spent a revision")
	}
	if _, _, err := r.MergeMetadata(ctx, InstanceKey{"default", "web", "zz"}, map[string]string{"a": "1"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("merge on unknown instance: %v", err)
	}
}

func TestFilters(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	ctx := context.Background()
	a := inst("web", "a")
	a.Zone, a.Tags, a.Metadata = "z1", []string{"canary"}, map[string]string{"v": "1"}
	b := inst("web", "b")
	b.Zone, b.Metadata = "z2", map[string]string{"v": "2"}
	c := inst("db", "c")
	c.Namespace = "prod"
	for _, in := range []Instance{a, b, c} {
		if _, _, err := r.Register(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	r.SetStatus(ctx, InstanceKey{"default", "web", "b"}, StatusDown)
	cases := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{"a", "b", "c"}},
		{"namespace", Filter{Namespace: "prod"}, []string{"c"}},
		{"service", Filter{Namespace: "default", Service: "web"}, []string{"a", "b"}},
		{"zone", Filter{Zone: "z2"}, []string{"b"}},
		{"tag", Filter{Tag: "canary"}, []string{"a"}},
		{"meta", Filter{Meta: map[string]string{"v": "2"}}, []string{"b"}},
		{"healthy", Filter{HealthyOnly: true}, []string{"a", "c"}},
		{"status", Filter{Status: StatusDown}, []string{"b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := r.Instances(tc.f)
			var ids []string
			for _, in := range got {
				ids = append(ids, in.ID)
			}
			if len(ids) != len(tc.want) {
				t.Fatalf("got %v, want %v", ids, tc.want)
			}
			for i := range ids {
				if ids[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", ids, tc.want)
				}
			}
		})
	}
}

func TestServiceLifecycle(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	ctx := context.Background()
	r.Register(ctx, inst("web", "a"))
	k := InstanceKey{"default", "web", "a"}
	if _, err := r.Deregister(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Service(ServiceKey{"default", "web"}); !errors.Is(err, ErrNotFound) {
		t.Fatal("implicit service outlived its last instance")
	}
	if _, err := r.Deregister(ctx, k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second deregister: %v", err)
	}
	if _, _, err := r.PutService(ctx, Service{Namespace: "default", Name: "db", Tags: []string{"sql"}}); err != nil {
		t.Fatal(err)
	}
	r.Register(ctx, inst("db", "x"))
	r.Deregister(ctx, InstanceKey{"default", "db", "x"})
	if _, _, err := r.Service(ServiceKey{"default", "db"}); err != nil {
		t.Fatal("explicit service removed with its instances")
	}
	r.Register(ctx, inst("db", "y"))
	if _, err := r.DeleteService(ctx, ServiceKey{"default", "db"}, false); !errors.Is(err, ErrHasInstances) {
		t.Fatalf("delete with instances: %v", err)
	}
	before := r.Revision()
	rev, err := r.DeleteService(ctx, ServiceKey{"default", "db"}, true)
	if err != nil || rev != before+1 {
		t.Fatalf("cascade delete: rev %d err %v", rev, err)
	}
	if got, _ := r.Instances(Filter{}); len(got) != 0 {
		t.Fatalf("instances left: %d", len(got))
	}
}

func TestLeaseExpiryAndEviction(t *testing.T) {
	r, clk := newTestRegistry(t, Config{EvictionMaxFraction: 1})
	ctx := context.Background()
	r.Register(ctx, inst("web", "a"))
	r.Register(ctx, inst("web", "b"))
	clk.Add(20 * time.Second)
	if err := r.Renew(InstanceKey{"default", "web", "a"}); err != nil {
		t.Fatal(err)
	}
	if n := r.Sweep(); n != 0 {
		t.Fatalf("evicted %d before expiry", n)
	}
	clk.Add(15 * time.Second) // b: 35s since renewal > 30s ttl; a: 15s
	if n := r.Sweep(); n != 1 {
		t.Fatalf("evicted %d, want 1", n)
	}
	if _, _, err := r.Instance(InstanceKey{"default", "web", "b"}); !errors.Is(err, ErrNotFound) {
		t.Fatal("expired instance b still present")
	}
	if _, _, err := r.Instance(InstanceKey{"default", "web", "a"}); err != nil {
		t.Fatal("renewed instance a evicted")
	}
	if err := r.Renew(InstanceKey{"default", "web", "b"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renewing an evicted lease: %v, want ErrNotFound", err)
	}
	evs, _, _, _ := r.Feed().Since(2, 0)
	if len(evs) != 1 || evs[0].Type != EventDeleted || evs[0].Reason != "evict" {
		t.Fatalf("eviction event: %+v", evs)
	}
	if r.Stats().Evictions != 1 {
		t.Fatal("eviction not counted")
	}
}

func TestNoLeaseNeverExpires(t *testing.T) {
	r, clk := newTestRegistry(t, Config{})
	in := inst("web", "static")
	in.TTL = 0
	r.Register(context.Background(), in)
	clk.Add(48 * time.Hour)
	if n := r.Sweep(); n != 0 {
		t.Fatalf("evicted an instance without a lease")
	}
}

func TestEvictionCap(t *testing.T) {
	r, clk := newTestRegistry(t, Config{EvictionMaxFraction: 0.25})
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		r.Register(context.Background(), inst("web", id))
	}
	clk.Add(time.Minute)
	if n := r.Sweep(); n != 2 {
		t.Fatalf("first sweep evicted %d, want 25%% of 8 = 2", n)
	}
}

func TestSelfPreservation(t *testing.T) {
	r, clk := newTestRegistry(t, Config{SelfPreservation: true, RenewalWindow: 10 * time.Second, EvictionMaxFraction: 1})
	ctx := context.Background()
	// 10 instances renewing every 1s (ttl 3s).
	var keys []InstanceKey
	for i := 0; i < 10; i++ {
		in := inst("web", string(rune('a'+i)))
		in.TTL, in.RenewInterval = Duration(3*time.Second), Duration(time.Second)
		r.Register(ctx, in)
		keys = append(keys, in.Key())
	}
	tick := func(renewing []InstanceKey) {
		clk.Add(time.Second)
		for _, k := range renewing {
			r.Renew(k)
		}
	}
	for i := 0; i < 10; i++ {
		tick(keys)
	}
	if r.Sweep(); r.SelfPreservationState().Active {
		t.Fatalf("self-preservation on with every instance renewing: %+v", r.SelfPreservationState())
	}
	// One of ten stops renewing: 90% of renewals still arrive, above 85%.
	for i := 0; i < 10; i++ {
		tick(keys[1:])
	}
	if n := r.Sweep(); n != 1 || r.SelfPreservationState().Active {
		t.Fatalf("one silent instance: evicted %d, state %+v", n, r.SelfPreservationState())
	}
	// Half stop (a partition): renewals drop to ~50%: evictions pause.
	for i := 0; i < 10; i++ {
		tick(keys[1:5])
	}
	if n := r.Sweep(); n != 0 || !r.SelfPreservationState().Active {
		t.Fatalf("partition: evicted %d, state %+v", n, r.SelfPreservationState())
	}
	if got, _ := r.Instances(Filter{}); len(got) != 9 {
		t.Fatalf("instances during self-preservation: %d, want 9", len(got))
	}
	// They come back: renewals recover, self-preservation ends.
	for i := 0; i < 10; i++ {
		tick(keys[1:])
	}
	if r.Sweep(); r.SelfPreservationState().Active {
		t.Fatalf("self-preservation still on after recovery: %+v", r.SelfPreservationState())
	}
}

// Fresh registrations are not yet due a renewal: a burst of them must not
// look like a collapse of renewals.
func TestSelfPreservationIgnoresFreshRegistrations(t *testing.T) {
	r, clk := newTestRegistry(t, Config{SelfPreservation: true, RenewalWindow: 10 * time.Second})
	for i := 0; i < 100; i++ {
		in := inst("web", fmt.Sprint("i", i))
		r.Register(context.Background(), in) // ttl 30s, renewInterval 10s
		clk.Add(50 * time.Millisecond)
	}
	if r.Sweep(); r.SelfPreservationState().Active {
		t.Fatalf("self-preservation on after a burst of registrations: %+v", r.SelfPreservationState())
	}
}

func TestRenewUnknown(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	if err := r.Renew(InstanceKey{"default", "web", "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestHealthTransitions(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	in := inst("web", "a")
	in.Check = &CheckSpec{Type: "tcp"}
	got, _, _ := r.Register(context.Background(), in)
	if got.Health != HealthUnknown || got.Healthy() {
		t.Fatalf("new checked instance: health %s healthy %v", got.Health, got.Healthy())
	}
	k := in.Key()
	rev := r.Revision()
	r.SetHealth(k, HealthPassing, "ok")
	r.SetHealth(k, HealthPassing, "ok again") // no change of verdict: no revision
	if r.Revision() != rev+1 {
		t.Fatalf("revision %d, want %d", r.Revision(), rev+1)
	}
	if hs, _ := r.Instances(Filter{HealthyOnly: true}); len(hs) != 1 {
		t.Fatal("passing instance not healthy")
	}
	r.SetHealth(k, HealthFailing, "refused")
	if hs, _ := r.Instances(Filter{HealthyOnly: true}); len(hs) != 0 {
		t.Fatal("failing instance listed as healthy")
	}
	got, _, _ = r.Instance(k)
	if got.Status != StatusUp || got.Health != HealthFailing {
		t.Fatal("health and status are not separate")
	}
}
