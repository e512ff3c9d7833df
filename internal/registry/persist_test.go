package registry

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/store"
)

func openReg(t *testing.T, dir string, cfg Config) *Registry {
	t.Helper()
	w, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRestoreAfterRestartAndCompaction(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r := openReg(t, dir, Config{})
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := r.Register(ctx, inst("web", id)); err != nil {
			t.Fatal(err)
		}
	}
	r.PutService(ctx, Service{Namespace: "default", Name: "web", Tags: []string{"t"}})
	if err := r.Compact(); err != nil {
		t.Fatal(err)
	}
	r.Deregister(ctx, InstanceKey{"default", "web", "b"})
	r.SetOverride(ctx, InstanceKey{"default", "web", "c"}, StatusOutOfService)
	rev := r.Revision()
	r.Close()

	r2 := openReg(t, dir, Config{})
	defer r2.Close()
	if r2.Revision() != rev {
		t.Fatalf("restored revision %d, want %d", r2.Revision(), rev)
	}
	got, _ := r2.Instances(Filter{})
	if len(got) != 2 || got[0].ID != "a" || got[1].ID != "c" || got[1].StatusOverride != StatusOutOfService {
		t.Fatalf("restored instances: %+v", got)
	}
	svc, _, err := r2.Service(ServiceKey{"default", "web"})
	if err != nil || !svc.Explicit || svc.Tags[0] != "t" {
		t.Fatalf("restored service: %+v %v", svc, err)
	}
	// Revisions continue after the restored one.
	_, rev2, _ := r2.Register(ctx, inst("web", "d"))
	if rev2 != rev+1 {
		t.Fatalf("next revision %d, want %d", rev2, rev+1)
	}
}

func TestRestoreGraceDefersEviction(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	r := openReg(t, dir, Config{Now: clk.Now, RestoreGrace: time.Minute, EvictionMaxFraction: 1})
	r.Register(context.Background(), inst("web", "a")) // ttl 30s
	r.Close()

	clk.Add(10 * time.Minute) // down for ten minutes: the lease is long past
	r2 := openReg(t, dir, Config{Now: clk.Now, RestoreGrace: time.Minute, EvictionMaxFraction: 1})
	defer r2.Close()
	clk.Add(45 * time.Second) // past the ttl but inside the grace period
	if n := r2.Sweep(); n != 0 {
		t.Fatalf("evicted %d inside the restore grace period", n)
	}
	if err := r2.Renew(InstanceKey{"default", "web", "a"}); err != nil {
		t.Fatalf("restored instance cannot renew: %v", err)
	}
	clk.Add(2 * time.Minute) // grace over, and no renewal for 2m
	if n := r2.Sweep(); n != 1 {
		t.Fatalf("evicted %d after the grace period, want 1", n)
	}
}

// The log compacts itself once it outgrows CompactBytes, and what it
// compacted restores.
func TestAutomaticCompaction(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r := openReg(t, dir, Config{CompactBytes: 4 << 10})
	for i := 0; i < 200; i++ {
		if _, _, err := r.Register(ctx, inst("web", fmt.Sprint("i", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.lastSnapBytes.Load() == 0 || r.compacting.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the log never compacted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "snap-*.dat"))
	if len(snaps) != 1 {
		t.Fatalf("snapshots on disk: %v", snaps)
	}
	rev := r.Revision()
	r.Close()
	r2 := openReg(t, dir, Config{})
	defer r2.Close()
	if got, _ := r2.Instances(Filter{}); len(got) != 200 || r2.Revision() != rev {
		t.Fatalf("restored %d instances at revision %d, want 200 at %d", len(got), r2.Revision(), rev)
	}
}
