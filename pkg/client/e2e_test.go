package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/api"
	"github.com/cairnhq/cairn/internal/registry"
	"github.com/cairnhq/cairn/pkg/client"
)

// The end-to-end tests run the SDK against the real API server over
// 127.0.0.1, with an in-memory registry.

const deadline = 10 * time.Second

// server is a real API server on a fixed 127.0.0.1 address, so that it can
// be stopped and started again where clients expect it.
type server struct {
	t    *testing.T
	addr string
	reg  *registry.Registry
	srv  *http.Server
	done chan struct{}
}

func startServer(t *testing.T, addr string, cfg registry.Config, prepare ...func(*registry.Registry)) *server {
	t.Helper()
	var ln net.Listener
	var err error
	for try := 0; ; try++ { // the old server's port may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil || try == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prepare {
		p(reg)
	}
	s := &server{t: t, addr: ln.Addr().String(), reg: reg, done: make(chan struct{})}
	var h http.Handler = api.New(api.Options{Registry: reg})
	s.srv = &http.Server{Handler: h}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	t.Cleanup(s.stop)
	return s
}

// stop closes the listener and every connection (watch streams included).
func (s *server) stop() {
	_ = s.srv.Close()
	<-s.done
	_ = s.reg.Close()
}

func newClient(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.New(addr, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", deadline, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func idsOf(ins []client.Instance) []string {
	out := []string{}
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

func webInstance(id string) client.Instance {
	return client.Instance{ID: id, Service: "web", Address: "10.0.0.5",
		Ports: []client.Port{{Name: "http", Port: 8080, Protocol: "http"}}, Zone: "eu-1a",
		Metadata: map[string]string{"version": "1.2.0"}, Tags: []string{"canary"}}
}

func TestE2ERegisterCacheDeregister(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", registry.Config{})
	c := newClient(t, s.addr)
	ctx := ctxFor(t)
	cache := client.NewCache(c, client.CacheOptions{Service: "web", MinBackoff: 10 * time.Millisecond})
	defer cache.Close()
	if err := cache.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	updates, cancel := cache.Subscribe()
	defer cancel()

	got, err := c.Register(ctx, webInstance("web-1"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Health != client.HealthNone || got.TTL != 90*time.Second || got.RenewInterval != 30*time.Second ||
		got.Weight != 1 || got.Source != "api" || got.Ports[0].Protocol != "http" {
		t.Fatalf("registered %+v", got)
	}
	eventually(t, "the instance in the cache", func() bool {
		return slices.Equal(idsOf(cache.Instances("web", true)), []string{"web-1"})
	})
	select {
	case u := <-updates:
		if u.Revision == 0 {
			t.Fatalf("update %+v", u)
		}
	case <-time.After(deadline):
		t.Fatal("no update")
	}

	// Reads and filters.
	for _, tt := range []struct {
		name string
		q    client.Query
		want []string
	}{
		{"service", client.Query{Namespace: "default", Service: "web"}, []string{"web-1"}},
		{"healthy", client.Query{Healthy: true}, []string{"web-1"}},
		{"meta", client.Query{Meta: map[string]string{"version": "1.2.0"}}, []string{"web-1"}},
		{"meta mismatch", client.Query{Meta: map[string]string{"version": "2"}}, []string{}},
		{"tag", client.Query{Tag: "canary"}, []string{"web-1"}},
		{"zone mismatch", client.Query{Zone: "us-1a"}, []string{}},
		{"status", client.Query{Status: client.StatusUp, Source: "api"}, []string{"web-1"}},
	} {
		ins, rev, err := c.Instances(ctx, tt.q)
		if err != nil || rev == 0 || !slices.Equal(idsOf(ins), tt.want) {
			t.Errorf("%s: %v rev %d err %v", tt.name, idsOf(ins), rev, err)
		}
	}
	svcs, _, err := c.Services(ctx, client.ServicesQuery{})
	if err != nil || len(svcs) != 1 || svcs[0].Name != "web" || svcs[0].Instances != 1 || svcs[0].Healthy != 1 {
		t.Fatalf("services %+v %v", svcs, err)
	}
	svc, ins, err := c.Service(ctx, "default", "web")
	if err != nil || svc.Name != "web" || len(ins) != 1 {
		t.Fatalf("service %+v %v %v", svc, ins, err)
	}

	// An override makes it unhealthy everywhere, clearing it heals it.
	if in, err := c.SetOverride(ctx, got.Key(), client.StatusOutOfService); err != nil || in.EffectiveStatus() != client.StatusOutOfService {
		t.Fatalf("override: %v %v", in, err)
	}
	eventually(t, "the override in the cache", func() bool { return len(cache.Instances("web", true)) == 0 })
	if _, err := c.ClearOverride(ctx, got.Key()); err != nil {
		t.Fatal(err)
	}
	if in, err := c.SetStatus(ctx, got.Key(), client.StatusStarting); err != nil || in.Status != client.StatusStarting {
		t.Fatalf("status: %v %v", in, err)
	}
	if err := c.Renew(ctx, got.Key()); err != nil {
		t.Fatal(err)
	}

	if _, err := c.Deregister(ctx, got.Key()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the instance gone from the cache", func() bool { return len(cache.Instances("web", false)) == 0 })
	if err := c.Renew(ctx, got.Key()); !client.IsNotFound(err) {
		t.Fatalf("renew after deregister: %v", err)
	}
}

func TestE2EErrors(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", registry.Config{})
	c := newClient(t, s.addr)
	ctx := ctxFor(t)
	bad := webInstance("web-1")
	bad.Ports[0].Port = 70000
	_, err := c.Register(ctx, bad)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Field != "ports[0].port" || err.Error() != "ports[0].port: must be between 1 and 65535" {
		t.Fatalf("invalid port: %v", err)
	}
	if _, err := c.Instance(ctx, client.Key{Service: "web", ID: "nope"}); !client.IsNotFound(err) {
		t.Fatalf("unknown instance: %v", err)
	}
	if _, err := c.Register(ctx, webInstance("web-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteService(ctx, "default", "web", false); client.StatusCode(err) != 409 {
		t.Fatalf("delete with instances: %v", err)
	}
	if _, err := c.DeleteService(ctx, "default", "web", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Instances(ctx, client.Query{Namespace: "Not_A_Label"}); client.StatusCode(err) != 400 {
		t.Fatalf("bad namespace: %v", err)
	}
}

func TestE2EPutServiceAndBlockingQuery(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", registry.Config{})
	c := newClient(t, s.addr)
	ctx := ctxFor(t)
	svc, err := c.PutService(ctx, client.Service{Name: "db", Tags: []string{"storage"}, Metadata: map[string]string{"team": "core"}})
	if err != nil || !svc.Explicit || svc.Namespace != "default" {
		t.Fatalf("put service: %+v %v", svc, err)
	}
	_, rev, err := c.Instances(ctx, client.Query{Service: "db"})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		ins []client.Instance
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		ins, _, err := c.Instances(ctx, client.Query{Service: "db", Index: rev, Wait: 5 * time.Second})
		ch <- answer{ins, err}
	}()
	time.Sleep(50 * time.Millisecond)
	in := client.Instance{Service: "db", Address: "10.0.0.9", TTL: client.NoLease}
	if _, err := c.Register(ctx, in); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-ch:
		if a.err != nil || len(a.ins) != 1 || a.ins[0].TTL != client.NoLease {
			t.Fatalf("blocking query: %+v", a)
		}
	case <-time.After(deadline):
		t.Fatal("the blocking query did not return")
	}
	svcs, _, err := c.Services(ctx, client.ServicesQuery{Tag: "storage"})
	if err != nil || len(svcs) != 1 || svcs[0].Metadata["team"] != "core" {
		t.Fatalf("services by tag: %+v %v", svcs, err)
	}
}

func TestE2EWatchResume(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", registry.Config{FeedCapacity: 16})
	c := newClient(t, s.addr)
	ctx := ctxFor(t)
	if _, err := c.PutService(ctx, client.Service{Namespace: "other", Name: "db"}); err != nil {
		t.Fatal(err) // revision 1, so that resuming before revision 2 is not a fresh start
	}
	st, err := c.Watch(ctx, client.WatchOptions{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := st.Next()
	if err != nil || ev.Type != client.WatchSnapshot || ev.Snapshot.Resync {
		t.Fatalf("first event %+v %v", ev, err)
	}
	if _, err := c.Register(ctx, webInstance("web-1")); err != nil {
		t.Fatal(err)
	}
	// The registration creates the service too: two events, one revision.
	var kinds []client.Kind
	for len(kinds) < 2 {
		ev, err := st.Next()
		if err != nil || ev.Type != client.WatchChange {
			t.Fatalf("change: %+v %v", ev, err)
		}
		kinds = append(kinds, ev.Change.Kind)
	}
	if !slices.Equal(kinds, []client.Kind{client.KindService, client.KindInstance}) {
		t.Fatalf("kinds %v", kinds)
	}
	resume := st.ResumeFrom()
	st.Close()

	// Resuming just before the last revision gets all of it again, then more.
	if _, err := c.Register(ctx, webInstance("web-2")); err != nil {
		t.Fatal(err)
	}
	st, err = c.Watch(ctx, client.WatchOptions{Namespace: "default", From: resume})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 3 {
		ev, err := st.Next()
		if err != nil || ev.Type != client.WatchChange {
			t.Fatalf("resumed: %+v %v", ev, err)
		}
		if ev.Change.Instance != nil {
			seen = append(seen, ev.Change.Instance.ID)
		} else {
			seen = append(seen, "service")
		}
	}
	if !slices.Equal(seen, []string{"service", "web-1", "web-2"}) {
		t.Fatalf("resumed stream %v", seen)
	}
	st.Close()

	// Resuming from a revision the feed no longer holds gets a resync.
	for i := range 20 {
		if _, err := c.SetStatus(ctx, client.Key{Service: "web", ID: "web-1"}, []client.Status{client.StatusDown, client.StatusUp}[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	st, err = c.Watch(ctx, client.WatchOptions{Namespace: "default", From: resume})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ev, err = st.Next()
	if err != nil || ev.Type != client.WatchSnapshot || !ev.Snapshot.Resync || len(ev.Snapshot.Instances) != 2 {
		t.Fatalf("resync: %+v %v", ev, err)
	}
}

// A registration survives a server restart: the renewal after it gets 404
// and registers again; a cache reconnects, resyncs, and sees it again.
func TestE2EKeepRegisteredSurvivesRestart(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", registry.Config{})
	addr := s.addr
	c := newClient(t, addr)
	ctx := ctxFor(t)

	// Some history, so that the cache's revision is ahead of the new server's.
	for i := range 10 {
		if _, err := c.Register(ctx, client.Instance{ID: fmt.Sprint("old-", i), Service: "old", Address: "10.0.1.1"}); err != nil {
			t.Fatal(err)
		}
	}
	cache := client.NewCache(c, client.CacheOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	defer cache.Close()
	if err := cache.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var actions []string
	reg, err := client.KeepRegistered(ctx, c, webInstance(""), client.RegistrationOptions{
		RenewInterval: 30 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnEvent: func(ev client.RegistrationEvent) {
			mu.Lock()
			defer mu.Unlock()
			if ev.Err == nil {
				actions = append(actions, ev.Action)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	key := reg.Key()
	eventually(t, "the registration in the cache", func() bool { _, ok := cache.Instance("web", key.ID); return ok })
	if len(cache.Instances("old", false)) != 10 {
		t.Fatal("the cache lacks the old instances")
	}

	s.stop()
	s2 := startServer(t, addr, registry.Config{})
	eventually(t, "re-registration on the new server", func() bool {
		_, err := c.Instance(ctx, key)
		return err == nil
	})
	eventually(t, "the re-registration to be reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(actions, "reregister")
	})
	eventually(t, "the cache to resync with the new server", func() bool {
		_, ok := cache.Instance("web", key.ID)
		return ok && len(cache.Instances("old", false)) == 0 && cache.Revision() == s2.reg.Revision()
	})

	if err := reg.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Instance(ctx, key); !client.IsNotFound(err) {
		t.Fatalf("after Stop: %v", err)
	}
	eventually(t, "the cache to see the deregistration", func() bool { return len(cache.Instances("web", false)) == 0 })
}

// A server that lost its data and already holds more revisions than the
// cache (another history, same numbers) is told apart by its epoch: the
// cache resyncs instead of applying changes on top of a foreign state.
func TestE2ECacheResyncsOnNewEpoch(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", registry.Config{})
	addr := s.addr
	c := newClient(t, addr)
	ctx := ctxFor(t)
	if _, err := c.Register(ctx, client.Instance{ID: "gone", Service: "old", Address: "10.0.1.1"}); err != nil {
		t.Fatal(err)
	}
	cache := client.NewCache(c, client.CacheOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	defer cache.Close()
	if err := cache.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	s.stop()
	// The new server is ahead in revisions before the cache can reconnect.
	s2 := startServer(t, addr, registry.Config{}, func(reg *registry.Registry) {
		for i := range 20 {
			reg.Register(context.Background(), registry.Instance{ID: fmt.Sprint("n-", i), Service: "new", Address: "10.0.2.1", TTL: registry.Duration(time.Minute)})
		}
	})
	eventually(t, "the cache to resync with the new server's history", func() bool {
		return len(cache.Instances("old", false)) == 0 && len(cache.Instances("new", false)) == 20 && cache.Revision() == s2.reg.Revision()
	})
}
