package health

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 10 * time.Second

// testInterval is the shortest check interval the registry accepts. Its
// timeout (as long) is short for a loaded machine running the race
// detector, so tests that assert the output of a failure use roomyInterval:
// a spurious timeout would replace the expected output.
const (
	testInterval  = registry.Duration(100 * time.Millisecond)
	roomyInterval = registry.Duration(500 * time.Millisecond)
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newRegistry(t *testing.T, cfg registry.Config) *registry.Registry {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	reg, err := registry.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

// runChecker starts c.Run and, at cleanup, stops it and checks that every
// probe goroutine has exited.
func runChecker(t *testing.T, c *Checker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return after cancel")
		}
		if n := c.Stats().Probes; n != 0 {
			t.Errorf("%d probes still running after Run returned", n)
		}
	})
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// instance returns an instance of service web on 127.0.0.1.
func instance(id string, check *registry.CheckSpec, ports ...registry.Port) registry.Instance {
	return registry.Instance{Namespace: "default", Service: "web", ID: id, Address: "127.0.0.1", Ports: ports, Check: check}
}

func key(id string) registry.InstanceKey {
	return registry.InstanceKey{Namespace: "default", Service: "web", ID: id}
}

func register(t *testing.T, reg *registry.Registry, in registry.Instance) {
	t.Helper()
	if _, _, err := reg.Register(context.Background(), in); err != nil {
		t.Fatalf("register %s: %v", in.ID, err)
	}
}

// healthOf returns the health and output the registry holds for id.
func healthOf(reg *registry.Registry, id string) (registry.Health, string) {
	in, _, err := reg.Instance(key(id))
	if err != nil {
		return "", err.Error()
	}
	return in.Health, in.HealthOutput
}

func waitHealth(t *testing.T, reg *registry.Registry, id string, want registry.Health) string {
	t.Helper()
	var out string
	waitFor(t, id+" "+string(want), func() bool {
		var h registry.Health
		h, out = healthOf(reg, id)
		return h == want
	})
	return out
}

// waitCaughtUp waits until the checker has read the feed up to its head.
func waitCaughtUp(t *testing.T, reg *registry.Registry) {
	t.Helper()
	waitFor(t, "the checker to catch up with the feed", func() bool {
		n, lag := reg.Feed().Subscribers()
		return n == 1 && lag == 0
	})
}

func portOf(t *testing.T, addr net.Addr) int {
	t.Helper()
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		t.Fatalf("not a TCP address: %v", addr)
	}
	return ta.Port
}

// pathServer is an HTTP server on 127.0.0.1 that answers 200 on every path
// and counts the requests per path.
type pathServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newPathServer(t *testing.T) *pathServer {
	s := &pathServer{hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *pathServer) Hits(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *pathServer) Port(t *testing.T) registry.Port {
	return registry.Port{Name: "http", Port: portOf(t, s.Listener.Addr())}
}

func httpCheck(path string) *registry.CheckSpec {
	return &registry.CheckSpec{Type: "http", Port: "http", Path: path, Interval: testInterval}
}
