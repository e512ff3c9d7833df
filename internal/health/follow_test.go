package health

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

// assertStopped checks that path gets no more requests: once a probe's
// goroutine has exited nothing can send one, so a few intervals suffice.
func assertStopped(t *testing.T, srv *pathServer, path string) {
	t.Helper()
	n := srv.Hits(path)
	time.Sleep(3 * testInterval.D())
	if m := srv.Hits(path); m != n {
		t.Errorf("%s got %d more requests after its probe stopped", path, m-n)
	}
}

func TestFollowRegisterDeregister(t *testing.T) {
	srv := newPathServer(t)
	reg := newRegistry(t, registry.Config{})
	c := New(reg, testLogger(t))
	runChecker(t, c)
	waitCaughtUp(t, reg)

	register(t, reg, instance("plain", nil, srv.Port(t))) // no check: no probe
	register(t, reg, instance("a", httpCheck("/a"), srv.Port(t)))
	waitHealth(t, reg, "a", registry.HealthPassing)
	waitCaughtUp(t, reg)
	if st := c.Stats(); st.Probes != 1 {
		t.Fatalf("probes = %d, want 1", st.Probes)
	}
	if h, _ := healthOf(reg, "plain"); h != registry.HealthNone {
		t.Errorf("instance without a check has health %s", h)
	}

	if _, err := reg.Deregister(context.Background(), key("a")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the probe to stop", func() bool { return c.Stats().Probes == 0 })
	assertStopped(t, srv, "/a")
}

func TestFollowRestarts(t *testing.T) {
	srv := newPathServer(t)
	alt := newPathServer(t)
	reg := newRegistry(t, registry.Config{})
	c := New(reg, testLogger(t))
	runChecker(t, c)
	ctx := context.Background()
	// A fresh slice per registration: NormalizeInstance writes into the
	// caller's Ports, which the registry keeps and hands to readers, so a
	// shared slice would race with the checker.
	portList := func() []registry.Port {
		return []registry.Port{srv.Port(t), {Name: "alt", Port: alt.Port(t).Port}}
	}

	register(t, reg, instance("a", httpCheck("/a"), portList()...))
	waitHealth(t, reg, "a", registry.HealthPassing)
	waitCaughtUp(t, reg) // including the checker's own health event

	// Changes that leave the check target alone do not restart the probe.
	if _, _, err := reg.SetOverride(ctx, key("a"), registry.StatusOutOfService); err != nil {
		t.Fatal(err)
	}
	in := instance("a", httpCheck("/a"), portList()...)
	in.Metadata = map[string]string{"version": "2"}
	register(t, reg, in)
	waitCaughtUp(t, reg)
	if n := c.started.Load(); n != 1 {
		t.Fatalf("probe started %d times, want 1: health, override and metadata changes must not restart it", n)
	}
	if h, _ := healthOf(reg, "a"); h != registry.HealthPassing {
		t.Fatalf("health = %s after an unrelated change, want it kept", h)
	}

	// A new path restarts it.
	register(t, reg, instance("a", httpCheck("/b"), portList()...))
	waitFor(t, "checks of /b", func() bool { return srv.Hits("/b") > 0 })
	waitHealth(t, reg, "a", registry.HealthPassing)
	if n := c.started.Load(); n != 2 {
		t.Fatalf("probe started %d times, want 2", n)
	}
	assertStopped(t, srv, "/a")

	// So does another port.
	check := httpCheck("/b")
	check.Port = "alt"
	register(t, reg, instance("a", check, portList()...))
	waitFor(t, "checks of the alt port", func() bool { return alt.Hits("/b") > 0 })
	waitCaughtUp(t, reg)
	if n, p := c.started.Load(), c.Stats().Probes; n != 3 || p != 1 {
		t.Fatalf("probe started %d times with %d running, want 3 and 1", n, p)
	}
	assertStopped(t, srv, "/b")

	// Dropping the check stops it.
	register(t, reg, instance("a", nil, portList()...))
	waitFor(t, "the probe to stop", func() bool { return c.Stats().Probes == 0 })
	assertStopped(t, alt, "/b")
}

// TestFollowResyncAfterCompaction holds the checker right after its first
// snapshot while more changes than the feed holds happen, so that it must
// resync from a new snapshot.
func TestFollowResyncAfterCompaction(t *testing.T) {
	srv := newPathServer(t)
	reg := newRegistry(t, registry.Config{FeedCapacity: 16})
	ctx := context.Background()
	register(t, reg, instance("gone", httpCheck("/gone"), srv.Port(t)))
	register(t, reg, instance("changed", httpCheck("/before"), srv.Port(t)))
	register(t, reg, instance("kept", httpCheck("/kept"), srv.Port(t)))

	c := New(reg, testLogger(t))
	synced, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.afterSync = func() {
		once.Do(func() {
			close(synced)
			<-release
		})
	}
	runChecker(t, c)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before runChecker's cleanup, even after a failure
	select {
	case <-synced:
	case <-time.After(waitTimeout):
		t.Fatal("no snapshot taken")
	}
	if p := c.Stats().Probes; p != 3 {
		t.Fatalf("probes after the first snapshot = %d, want 3", p)
	}
	before := reg.Revision()
	if _, err := reg.Deregister(ctx, key("gone")); err != nil {
		t.Fatal(err)
	}
	register(t, reg, instance("changed", httpCheck("/after"), srv.Port(t)))
	register(t, reg, instance("new", httpCheck("/new"), srv.Port(t)))
	for i := range 20 {
		in := instance("churn", nil, srv.Port(t))
		in.Metadata = map[string]string{"i": strconv.Itoa(i)}
		register(t, reg, in)
	}
	if oldest := reg.Feed().Oldest(); oldest <= before+1 {
		t.Fatalf("feed still holds revision %d (oldest %d): no compaction to test", before+1, oldest)
	}
	unblock()

	waitFor(t, "a resync", func() bool { return c.resyncs.Load() >= 2 })
	waitFor(t, "checks of /after and /new", func() bool { return srv.Hits("/after") > 0 && srv.Hits("/new") > 0 })
	waitHealth(t, reg, "new", registry.HealthPassing)
	waitHealth(t, reg, "changed", registry.HealthPassing)
	waitCaughtUp(t, reg)
	// gone, changed, kept, then changed again and new: 5 starts, kept untouched.
	if n, p := c.started.Load(), c.Stats().Probes; n != 5 || p != 3 {
		t.Fatalf("probes started %d, running %d; want 5 and 3", n, p)
	}
	assertStopped(t, srv, "/gone")
	assertStopped(t, srv, "/before")
}

// TestRunStopsEverything cancels Run with probes of every type running and
// checks that no goroutine is left behind.
func TestRunStopsEverything(t *testing.T) {
	srv := newPathServer(t)
	_, gln := startGRPC(t) // serves "" as SERVING
	reg := newRegistry(t, registry.Config{})
	register(t, reg, instance("http", httpCheck("/"), srv.Port(t)))
	register(t, reg, instance("tcp", &registry.CheckSpec{Type: "tcp", Interval: testInterval}, srv.Port(t)))
	register(t, reg, instance("grpc", &registry.CheckSpec{Type: "grpc", Interval: testInterval},
		registry.Port{Name: "grpc", Port: portOf(t, gln.Addr())}))
	baseline := runtime.NumGoroutine()

	c := New(reg, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() { // on an early failure too: no logging after the test
		cancel()
		<-done
	})
	for _, id := range []string{"http", "tcp", "grpc"} {
		waitHealth(t, reg, id, registry.HealthPassing)
	}
	if st := c.Stats(); st.Probes != 3 || st.Checks < 3 {
		t.Fatalf("stats = %+v", st)
	}

	// A second Run is refused rather than doubling the probes.
	c.Run(ctx)
	if p := c.Stats().Probes; p != 3 {
		t.Fatalf("probes = %d after a second Run, want 3", p)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
	}
	if p := c.Stats().Probes; p != 0 {
		t.Fatalf("probes = %d after Run returned", p)
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= baseline })
}
