package health

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

// TestHTTPThresholds flips a server between 200 and 503 and checks, from
// inside the handler, that the verdict does not move before the threshold
// is reached: while the server answers the n-th result of a streak, the
// checker has seen at most n-1 of them.
func TestHTTPThresholds(t *testing.T) {
	reg := newRegistry(t, registry.Config{})
	const threshold = 2
	// phases: the status answered and the verdict that must hold while
	// the first `threshold` answers of the phase are given.
	phases := []struct {
		code   int
		before registry.Health
	}{
		{http.StatusOK, registry.HealthUnknown},
		{http.StatusServiceUnavailable, registry.HealthPassing},
		{http.StatusOK, registry.HealthFailing},
	}
	var (
		mu     sync.Mutex
		phase  int
		streak int // answers given in this phase
		agents = map[string]bool{}
	)
	setPhase := func(p int) {
		mu.Lock()
		phase, streak = p, 0
		mu.Unlock()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		agents[r.UserAgent()] = true
		ph := phases[phase]
		streak++
		if streak <= threshold {
			if h, _ := healthOf(reg, "a"); h != ph.before {
				t.Errorf("phase %d: answering %d #%d, the verdict is already %s, want %s", phase, ph.code, streak, h, ph.before)
			}
		}
		w.WriteHeader(ph.code)
	}))
	defer srv.Close()

	c := New(reg, testLogger(t))
	runChecker(t, c)
	check := httpCheck("/healthz")
	check.HealthyThreshold, check.UnhealthyThreshold = threshold, threshold
	check.Interval = roomyInterval / 2
	register(t, reg, instance("a", check, registry.Port{Name: "http", Port: portOf(t, srv.Listener.Addr())}))

	if out := waitHealth(t, reg, "a", registry.HealthPassing); out != "HTTP 200" {
		t.Errorf("passing output = %q, want HTTP 200", out)
	}
	setPhase(1)
	if out := waitHealth(t, reg, "a", registry.HealthFailing); out != "HTTP 503" {
		t.Errorf("failing output = %q, want HTTP 503", out)
	}
	setPhase(2)
	waitHealth(t, reg, "a", registry.HealthPassing)

	st := c.Stats()
	if st.Probes != 1 || st.Checks < 3*threshold || st.Failures < threshold {
		t.Errorf("stats = %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if !agents[userAgent] || len(agents) != 1 {
		t.Errorf("user agents = %v, want only %q", agents, userAgent)
	}
}

// newTLSServer starts an https server with a self-signed certificate that
// does not log the handshake failures the tests provoke.
func newTLSServer(t *testing.T) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// checkNow runs one check of spec against addr without a registry; it
// ignores spec.Timeout.
func checkNow(t *testing.T, spec registry.CheckSpec, addr string) (string, error) {
	t.Helper()
	c := New(nil, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // roomy: a loaded machine
	defer cancel()
	return c.check(ctx, &target{spec: spec, addr: addr})
}

func TestHTTPRedirectNotFollowed(t *testing.T) {
	var followed atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/moved", http.RedirectHandler("/broken", http.StatusFound))
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		followed.Store(true)
		w.WriteHeader(http.StatusInternalServerError)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	out, err := checkNow(t, registry.CheckSpec{Type: "http", Path: "/moved"}, srv.Listener.Addr().String())
	if err != nil || out != "HTTP 302" {
		t.Fatalf("check = %q, %v; want a pass with HTTP 302", out, err)
	}
	if followed.Load() {
		t.Fatal("the redirect was followed")
	}
	if _, err := checkNow(t, registry.CheckSpec{Type: "http", Path: "/broken"}, srv.Listener.Addr().String()); err == nil || err.Error() != "HTTP 500" {
		t.Fatalf("check of a 500 = %v, want HTTP 500", err)
	}
}

func TestHTTPSSelfSigned(t *testing.T) {
	srv := newTLSServer(t)
	addr := srv.Listener.Addr().String()

	out, err := checkNow(t, registry.CheckSpec{Type: "https", Path: "/", TLSSkipVerify: true}, addr)
	if err != nil || out != "HTTP 200" {
		t.Fatalf("https with TLSSkipVerify = %q, %v; want a pass", out, err)
	}
	_, err = checkNow(t, registry.CheckSpec{Type: "https", Path: "/"}, addr)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("https with verification = %v, want a certificate error", err)
	}
	// Plain HTTP to a TLS port fails too.
	if _, err := checkNow(t, registry.CheckSpec{Type: "http", Path: "/"}, addr); err == nil {
		t.Fatal("http to a TLS server passed")
	}
}

// TestHTTPSThroughRegistry runs an https check end to end.
func TestHTTPSThroughRegistry(t *testing.T) {
	srv := newTLSServer(t)
	reg := newRegistry(t, registry.Config{})
	runChecker(t, New(reg, testLogger(t)))
	port := registry.Port{Name: "https", Port: portOf(t, srv.Listener.Addr()), Protocol: "https"}
	interval := roomyInterval // TLS handshakes are slow under the race detector
	register(t, reg, instance("ok", &registry.CheckSpec{Type: "https", Interval: interval, TLSSkipVerify: true}, port))
	register(t, reg, instance("strict", &registry.CheckSpec{Type: "https", Interval: interval, UnhealthyThreshold: 1}, port))
	waitHealth(t, reg, "ok", registry.HealthPassing)
	if out := waitHealth(t, reg, "strict", registry.HealthFailing); !strings.Contains(out, "certificate") {
		t.Errorf("strict output = %q, want a certificate error", out)
	}
}

func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for handlers

	reg := newRegistry(t, registry.Config{})
	runChecker(t, New(reg, testLogger(t)))
	check := httpCheck("/slow")
	check.Timeout = registry.Duration(30 * time.Millisecond)
	check.UnhealthyThreshold = 1
	register(t, reg, instance("slow", check, registry.Port{Name: "http", Port: portOf(t, srv.Listener.Addr())}))
	if out := waitHealth(t, reg, "slow", registry.HealthFailing); out != "timeout after 30ms" {
		t.Errorf("output = %q, want timeout after 30ms", out)
	}
}
