package eureka

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/api"
	"github.com/cairnhq/cairn/internal/registry"
	"github.com/cairnhq/cairn/internal/store"
)

type testOptions struct {
	Addr    string // "" = 127.0.0.1:0; a previous server's Addr restarts on the same port
	DataDir string // "" = in-memory registry
	// DeltaWindow overrides the delta window (default 3m).
	DeltaWindow time.Duration
	// Registry configures the registry (eviction, self-preservation).
	Registry registry.Config
}

// testServer is Cairn's HTTP API with the Eureka routes, on 127.0.0.1.
type testServer struct {
	URL    string
	Addr   string
	Reg    *registry.Registry
	Eureka *Server

	stopOnce sync.Once
	stop     func()
}

func startTestServer(t testing.TB, o testOptions) *testServer {
	t.Helper()
	var wal *store.WAL
	if o.DataDir != "" {
		var err error
		if wal, err = store.Open(o.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := o.Registry
	cfg.Logger = logger
	reg, err := registry.New(cfg, wal)
	if err != nil {
		t.Fatal(err)
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the previous server's port may take a moment to free
	}
	if err != nil {
		reg.Close()
		t.Fatal(err)
	}
	es := New(Options{Registry: reg, Logger: logger, DeltaWindow: o.DeltaWindow})
	h := api.New(api.Options{Registry: reg, Logger: logger, Mount: es.Mount})
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	go reg.Run(ctx)
	go es.Run(ctx)
	ts := &testServer{URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), Reg: reg, Eureka: es}
	ts.stop = func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		srv.Close()
		<-done
		reg.Close()
	}
	t.Cleanup(ts.Stop)
	return ts
}

// Stop stops the listener and closes the registry; it is idempotent.
func (s *testServer) Stop() { s.stopOnce.Do(s.stop) }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
