package source

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/proxy"
	"github.com/cairnhq/cairn/internal/registry"
)

// sink records the snapshots a source pushes and answers Uses like an
// engine whose routes name the services of the last snapshot's routes.
type sink struct {
	mu    sync.Mutex
	snaps []*proxy.Snapshot
	uses  map[proxy.ServiceKey]bool
	ch    chan struct{}
}

func newSink() *sink { return &sink{uses: map[proxy.ServiceKey]bool{}, ch: make(chan struct{}, 64)} }

func (s *sink) Update(snap *proxy.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snaps = append(s.snaps, snap)
	clear(s.uses)
	for _, d := range snap.Routes {
		r, fe := config.DecodeRoute(d.Spec, d.Metadata.Namespace)
		if fe != nil {
			return fe
		}
		for _, b := range r.Backends {
			if b.Service != "" {
				s.uses[proxy.ServiceKey{Namespace: b.EffectiveNamespace(d.Metadata.Namespace), Name: b.Service}] = true
			}
		}
	}
	s.ch <- struct{}{}
	return nil
}

func (s *sink) Uses(k proxy.ServiceKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uses[k]
}

func (s *sink) wait(t *testing.T, what string) *proxy.Snapshot {
	t.Helper()
	select {
	case <-s.ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no push: %s", what)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snaps[len(s.snaps)-1]
}

func (s *sink) quiet(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.ch:
		t.Fatalf("unexpected push: %s", what)
	case <-time.After(200 * time.Millisecond):
	}
}

// The registry follower pushes a snapshot for route changes and for
// instances of services the routes name, and none for other services.
func TestFollowRegistryPushesWhatRoutesDependOn(t *testing.T) {
	reg, err := registry.New(registry.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newSink()
	ready := make(chan struct{})
	go FollowRegistry(ctx, reg, s, ready, slog.New(slog.NewTextHandler(io.Discard, nil)))
	<-ready
	if snap := s.wait(t, "first"); len(snap.Routes) != 0 {
		t.Fatalf("first snapshot has %d routes", len(snap.Routes))
	}

	docs, err := config.Parse([]byte("kind: Route\nmetadata: {name: r}\nspec:\n  backends: [{service: web}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.ApplyConfig(ctx, docs, nil, false); err != nil {
		t.Fatal(err)
	}
	if snap := s.wait(t, "route applied"); len(snap.Routes) != 1 || len(snap.Lookup(proxy.ServiceKey{Namespace: "default", Name: "web"})) != 0 {
		t.Fatalf("after apply: %+v", snap)
	}

	reg.Register(ctx, registry.Instance{Namespace: "default", Service: "other", ID: "o1", Address: "10.0.0.1"})
	s.quiet(t, "an instance of a service no route names")

	reg.Register(ctx, registry.Instance{Namespace: "default", Service: "web", ID: "w1", Address: "10.0.0.2",
		Ports: []registry.Port{{Name: "http", Port: 8080}}, Metadata: map[string]string{"version": "v1"}})
	snap := s.wait(t, "an instance of web")
	got := snap.Lookup(proxy.ServiceKey{Namespace: "default", Name: "web"})
	if len(got) != 1 || got[0].Host != "10.0.0.2" || got[0].Ports["http"] != 8080 || got[0].Metadata["version"] != "v1" {
		t.Fatalf("web instances: %+v", got)
	}

	// Out of service: it leaves the snapshot (it takes no traffic).
	if _, _, err := reg.SetOverride(ctx, registry.InstanceKey{Namespace: "default", Service: "web", ID: "w1"}, registry.StatusOutOfService); err != nil {
		t.Fatal(err)
	}
	if got := s.wait(t, "override").Lookup(proxy.ServiceKey{Namespace: "default", Name: "web"}); len(got) != 0 {
		t.Fatalf("an out-of-service instance is still a backend: %+v", got)
	}
}
