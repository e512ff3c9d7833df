package client

import (
	"context"
	"regexp"
	"sync"
	"testing"
	"time"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// events collects RegistrationEvents.
type events struct {
	mu  sync.Mutex
	evs []RegistrationEvent
}

func (e *events) add(ev RegistrationEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) has(action string, ok bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.evs {
		if ev.Action == action && (ev.Err == nil) == ok {
			return true
		}
	}
	return false
}

var web = Instance{Service: "web", Address: "10.0.0.1", Ports: []Port{{Name: "http", Port: 8080}}}

func TestRegistrationRenewsAndDeregisters(t *testing.T) {
	f, c := newFakeRegistry(t)
	r, err := KeepRegistered(context.Background(), c, web, RegistrationOptions{RenewInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	k := r.Key()
	if !regexp.MustCompile(`^web-[0-9a-f]{12}$`).MatchString(k.ID) || k.Namespace != "default" {
		t.Fatalf("generated key %v", k)
	}
	if _, ok := f.get(k.String()); !ok || r.State() != StateRegistered || r.Instance() == nil || r.Err() != nil {
		t.Fatalf("not registered: state %v err %v", r.State(), r.Err())
	}
	eventually(t, 5*time.Second, "three renewals", func() bool { return f.count("renew") >= 3 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.get(k.String()); ok || r.State() != StateStopped {
		t.Fatalf("still registered after Stop (state %v)", r.State())
	}
	renews := f.count("renew")
	time.Sleep(50 * time.Millisecond)
	if f.count("renew") != renews || r.Stop() != nil {
		t.Fatal("renewed after Stop, or a second Stop failed")
	}
}

func TestRegistrationDefaultInterval(t *testing.T) {
	_, c := newFakeRegistry(t)
	inst := web
	inst.TTL = 30 * time.Millisecond
	r, err := KeepRegistered(context.Background(), c, inst, RegistrationOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if got := r.currentInterval(); got != 10*time.Millisecond {
		t.Fatalf("interval %v, want ttl/3", got)
	}
}

func TestRegistrationReregistersAfter404(t *testing.T) {
	f, c := newFakeRegistry(t)
	var evs events
	inst := web
	inst.ID = "web-1"
	r, err := KeepRegistered(context.Background(), c, inst, RegistrationOptions{RenewInterval: 10 * time.Millisecond, OnEvent: evs.add})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	f.forget() // the server restarted
	eventually(t, 5*time.Second, "re-registration", func() bool {
		_, ok := f.get("default/web/web-1")
		return ok && evs.has("reregister", true)
	})
	if r.State() != StateRegistered || r.Key().ID != "web-1" {
		t.Fatalf("state %v key %v", r.State(), r.Key())
	}
}

func TestRegistrationRetriesWithBackoff(t *testing.T) {
	f, c := newFakeRegistry(t)
	var evs events
	r, err := KeepRegistered(context.Background(), c, web, RegistrationOptions{
		RenewInterval: 20 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, OnEvent: evs.add})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	f.set(func(f *fakeRegistry) { f.fail = 5 })
	eventually(t, 5*time.Second, "a failing renewal", func() bool { return evs.has("renew", false) })
	eventually(t, 5*time.Second, "recovery", func() bool { return r.State() == StateRegistered && r.Err() == nil })
	if f.count("register") != 1 {
		t.Fatalf("registered %d times; renewals that failed with 503 must not re-register", f.count("register"))
	}
}

func TestRegistrationFirstAttempt(t *testing.T) {
	t.Run("rejected input is returned", func(t *testing.T) {
		f, c := newFakeRegistry(t)
		f.set(func(f *fakeRegistry) { f.reject = true })
		r, err := KeepRegistered(context.Background(), c, web, RegistrationOptions{})
		if err == nil || r != nil || StatusCode(err) != 400 {
			t.Fatalf("got %v, %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
		if f.count("register") != 1 {
			t.Fatalf("retried a rejected registration")
		}
	})
	t.Run("unavailable server is retried in the background", func(t *testing.T) {
		f, c := newFakeRegistry(t)
		f.set(func(f *fakeRegistry) { f.fail = 3 })
		r, err := KeepRegistered(context.Background(), c, web, RegistrationOptions{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		if r.State() != StatePending || r.Err() == nil || r.Instance() != nil {
			t.Fatalf("state %v err %v", r.State(), r.Err())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.WaitRegistered(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := f.get(r.Key().String()); !ok {
			t.Fatal("not registered")
		}
	})
}

func TestRegistrationStopsWithContext(t *testing.T) {
	f, c := newFakeRegistry(t)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := KeepRegistered(ctx, c, web, RegistrationOptions{RenewInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-r.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not stopped")
	}
	if _, ok := f.get(r.Key().String()); ok {
		t.Fatal("not deregistered")
	}
}

func TestRegistrationDeregisterIsBounded(t *testing.T) {
	f, c := newFakeRegistry(t)
	hang := make(chan struct{})
	defer close(hang)
	r, err := KeepRegistered(context.Background(), c, web, RegistrationOptions{RenewInterval: time.Hour, DeregisterTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fakeRegistry) { f.hang = hang })
	start := time.Now()
	if err := r.Stop(); err == nil {
		t.Fatal("a deregistration that timed out reported success")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Stop took %v", d)
	}
}

func TestRegistrationSetStatusSurvivesReregistration(t *testing.T) {
	f, c := newFakeRegistry(t)
	r, err := KeepRegistered(context.Background(), c, web, RegistrationOptions{RenewInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if err := r.SetStatus(context.Background(), StatusDown); err != nil {
		t.Fatal(err)
	}
	if r.Instance().Status != StatusDown {
		t.Fatalf("instance status %v", r.Instance().Status)
	}
	f.forget()
	eventually(t, 5*time.Second, "re-registration as DOWN", func() bool {
		in, ok := f.get(r.Key().String())
		return ok && in.Status == StatusDown
	})
}
