package eureka

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

func newTestRegistry(t *testing.T, cfg registry.Config) *registry.Registry {
	t.Helper()
	reg, err := registry.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

func viewDoc(t *testing.T, p parts) euApps {
	t.Helper()
	b := p.bytes()
	var a euApps
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return a
}

// TestViewWindowHoldsOneChangePerInstance: a busy instance does not grow
// the delta window; it keeps only its latest change.
func TestViewWindowHoldsOneChangePerInstance(t *testing.T) {
	reg := newTestRegistry(t, registry.Config{})
	ctx := context.Background()
	v := newView(reg, "default", time.Minute)
	k := registry.InstanceKey{Namespace: "default", Service: "busy", ID: "b-1"}
	if _, _, err := reg.Register(ctx, registry.Instance{Namespace: k.Namespace, Service: k.Service, ID: k.ID, Address: "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5000; i++ {
		s := registry.StatusOutOfService
		if i%2 == 1 {
			s = registry.StatusUnknown // clears
		}
		if _, _, err := reg.SetOverride(ctx, k, s); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			v.delta(formatJSON, false) // the view follows as clients poll
		}
	}
	d := viewDoc(t, v.delta(formatJSON, false))
	if d.count() != 1 || d.Applications.Application[0].Instance[0].ActionType != "MODIFIED" {
		t.Fatalf("delta after churn: %+v", d)
	}
	v.mu.Lock()
	n := len(v.recent)
	v.mu.Unlock()
	if n > 2100 {
		t.Fatalf("the window holds %d entries for one instance", n)
	}
}

// TestViewRebuildsAfterFeedCompaction: a view that fell behind the feed's
// ring loads a snapshot and is right again; its delta starts empty, so
// clients see a hash mismatch and fetch in full.
func TestViewRebuildsAfterFeedCompaction(t *testing.T) {
	reg := newTestRegistry(t, registry.Config{FeedCapacity: 16})
	ctx := context.Background()
	v := newView(reg, "default", time.Minute)
	for i := 0; i < 100; i++ {
		if _, _, err := reg.Register(ctx, registry.Instance{Namespace: "default", Service: "s", ID: fmt.Sprint(i), Address: "10.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	before := v.rebuilds
	full := viewDoc(t, v.full(formatJSON, false))
	if v.rebuilds != before+1 || full.count() != 100 || full.Applications.Hash != "UP_100_" {
		t.Fatalf("after compaction: rebuilds %d, %d instances, hash %s", v.rebuilds-before, full.count(), full.Applications.Hash)
	}
	if d := viewDoc(t, v.delta(formatJSON, false)); d.count() != 0 || d.Applications.Hash != "UP_100_" {
		t.Fatalf("delta after a rebuild: %+v", d)
	}
}
