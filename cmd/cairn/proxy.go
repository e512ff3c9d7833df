package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairnhq/cairn/internal/proxy"
	gwsource "github.com/cairnhq/cairn/internal/proxy/source"
	"github.com/cairnhq/cairn/internal/registry"
	"github.com/cairnhq/cairn/pkg/client"
)

// gatewayFlags are the gateway's settings shared by `cairn proxy` and the
// gateway of `cairn dev`/`cairn server`.
type gatewayFlags struct {
	listen    string
	tlsListen string
	tlsCert   string
	tlsKey    string
	accessLog string
	zone      string
	drain     time.Duration
	goroutine bool
}

func (g *gatewayFlags) register(fs *flag.FlagSet, prefix, defListen, defAccessLog string) {
	name := prefix + "addr"
	if prefix == "" {
		name = "listen" // `cairn proxy --listen`, as Envoy and nginx users expect
	}
	fs.StringVar(&g.listen, name, defListen, "address the gateway serves plain HTTP on: HTTP/1.1 and h2c (\"off\": none)")
	fs.StringVar(&g.tlsListen, prefix+"tls-addr", "", "address the gateway serves TLS on: HTTP/2 and HTTP/1.1 by ALPN (needs the cert and key)")
	fs.StringVar(&g.tlsCert, prefix+"tls-cert", "", "TLS certificate `FILE` (PEM, chain included)")
	fs.StringVar(&g.tlsKey, prefix+"tls-key", "", "TLS private key `FILE` (PEM)")
	fs.StringVar(&g.accessLog, prefix+"access-log", defAccessLog, "JSON access log: \"-\" (stdout), a file `PATH`, or \"off\"")
	fs.StringVar(&g.zone, prefix+"zone", "", "the gateway's zone: backends in it are preferred")
	fs.DurationVar(&g.drain, prefix+"drain-timeout", 30*time.Second, "on SIGTERM, how long requests in flight get to finish")
	fs.BoolVar(&g.goroutine, prefix+"goroutine-per-conn", false, "serve plain HTTP/1.1 with a goroutine per connection instead of per-core event loops (Linux)")
}

func (g *gatewayFlags) enabled() bool {
	return g.listen != "off" && g.listen != "" || g.tlsListen != ""
}

// gateway is a running engine with its listeners.
type gateway struct {
	engine *proxy.Engine
	srv    *proxy.Server
	alog   *proxy.AccessLog
	plain  net.Addr
	tls    net.Addr
	drain  time.Duration
}

// startGateway builds an engine and binds its listeners; the source that
// feeds it is started by the caller.
func startGateway(g *gatewayFlags, static bool, pr prometheus.Registerer, logger *slog.Logger, stdout io.Writer) (*gateway, error) {
	if (g.tlsCert == "") != (g.tlsKey == "") || (g.tlsListen != "") != (g.tlsCert != "") {
		return nil, errors.New("TLS needs all of --tls-addr, --tls-cert and --tls-key")
	}
	if g.drain < 0 {
		return nil, errors.New("--drain-timeout must not be negative")
	}
	gw := &gateway{drain: g.drain}
	switch g.accessLog {
	case "off", "":
	case "-":
		gw.alog = proxy.NewAccessLog(stdout, nil)
	default:
		f, err := os.OpenFile(g.accessLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("access log: %w", err)
		}
		gw.alog = proxy.NewAccessLog(f, f)
	}
	gw.engine = proxy.NewEngine(proxy.Options{Zone: g.zone, Logger: logger, AccessLog: gw.alog, Metrics: proxy.NewMetrics(pr), Static: static})
	opts := proxy.ServerOptions{Logger: logger, NoEventLoop: g.goroutine}
	if g.listen != "off" && g.listen != "" {
		ln, err := net.Listen("tcp", g.listen)
		if err != nil {
			return nil, fmt.Errorf("gateway listen: %w", err)
		}
		opts.Listen, gw.plain = ln, ln.Addr()
	}
	if g.tlsListen != "" {
		cert, err := tls.LoadX509KeyPair(g.tlsCert, g.tlsKey)
		if err != nil {
			closeLn(opts.Listen)
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		ln, err := net.Listen("tcp", g.tlsListen)
		if err != nil {
			closeLn(opts.Listen)
			return nil, fmt.Errorf("gateway TLS listen: %w", err)
		}
		opts.TLSListen, gw.tls = ln, ln.Addr()
		opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	gw.srv = proxy.NewServer(gw.engine, opts)
	return gw, nil
}

func closeLn(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
}

func (gw *gateway) describe() string {
	var parts []string
	if gw.plain != nil {
		parts = append(parts, "http://"+gw.plain.String())
	}
	if gw.tls != nil {
		parts = append(parts, "https://"+gw.tls.String())
	}
	return strings.Join(parts, " and ")
}

// stop drains the gateway within its drain timeout.
func (gw *gateway) stop(logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), gw.drain)
	defer cancel()
	if err := gw.srv.Drain(ctx); err != nil {
		logger.Warn("gateway drain ended with requests still open", "err", err)
	}
	if gw.alog != nil {
		gw.alog.Close()
	}
}

// runProxy is `cairn proxy`: a gateway that follows a server's registry
// (--server) or runs from a file of routes (--config).
func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cairn proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var g gatewayFlags
	g.register(fs, "", "127.0.0.1:8080", "-")
	server := fs.String("server", "", "Cairn server `URL` to follow for routes and backends")
	file := fs.String("config", "", "run from a `FILE` of Route documents instead (reloaded on change and on SIGHUP)")
	admin := fs.String("admin-addr", "127.0.0.1:9901", "address of the admin endpoints: /metrics, /ready, /config, /debug/pprof/ (\"off\": none)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", true, "log JSON lines instead of text")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cairn proxy (--server URL | --config FILE) [flags]\n\nRun the gateway: route HTTP/1.1, HTTP/2, gRPC and WebSocket traffic to registry services or static addresses.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*server == "") == (*file == "") {
		return errors.New("give exactly one of --server URL and --config FILE")
	}
	if !g.enabled() {
		return errors.New("nothing to listen on: set --listen or --tls-addr")
	}
	logger, err := newLogger(stderr, *logLevel, *logJSON)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// A gateway's live heap is small (routes, pools) and its garbage is
		// per request: at Go's default the collector runs every few
		// thousand requests. Four times the heap between collections costs
		// a few MB and saves most of that work. GOGC overrides.
		debug.SetGCPercent(400)
	}
	// Check the file before binding anything: a bad file is a one-line error.
	var snap *proxy.Snapshot
	var loaded []byte
	var cl *client.Client
	if *file != "" {
		if snap, loaded, err = gwsource.LoadFile(*file); err != nil {
			return err
		}
	} else if cl, err = client.New(*server); err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	pr := prometheus.NewRegistry()
	pr.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gw, err := startGateway(&g, *file != "", pr, logger, stdout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan struct{})
	if snap != nil {
		if err := gw.engine.Update(snap); err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		close(ready)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		reload := make(chan struct{}, 1)
		go func() {
			for range hup {
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}()
		go gwsource.FollowFile(ctx, *file, loaded, gw.engine, reload, time.Second, logger)
	} else {
		go gwsource.FollowServer(ctx, cl, gw.engine, ready, logger)
		// Serve once the first config is in (or after a while anyway: a
		// gateway with no registry yet answers 404s rather than nothing).
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			logger.Warn("no config from the server yet; serving without routes", "server", *server)
		case <-ctx.Done():
			return nil
		}
	}
	if *admin != "off" && *admin != "" {
		aln, err := net.Listen("tcp", *admin)
		if err != nil {
			return fmt.Errorf("--admin-addr: %w", err)
		}
		asrv := &http.Server{Handler: adminHandler(pr, gw.engine, ready), ReadHeaderTimeout: 10 * time.Second}
		go asrv.Serve(aln)
		defer asrv.Close()
		fmt.Fprintf(stdout, "cairn proxy: admin on http://%s (/metrics, /ready, /config, /debug/pprof/)\n", aln.Addr())
	}
	gw.srv.Start()
	from := "config " + *file
	if cl != nil {
		from = "following " + cl.Addr()
	}
	fmt.Fprintf(stdout, "cairn proxy: gateway on %s (%s, %d routes)\n", gw.describe(), from, len(gw.engine.Routes()))
	select {
	case err := <-gw.srv.Err():
		return err
	case <-ctx.Done():
	}
	logger.Info("draining", "timeout", gw.drain)
	gw.stop(logger)
	return nil
}

// adminHandler serves the gateway's admin endpoints.
func adminHandler(pr *prometheus.Registry, e *proxy.Engine, ready <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(pr, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ready:
			fmt.Fprintln(w, "ready")
		default:
			http.Error(w, "waiting for the first config", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"revision": e.Revision(), "routes": e.Routes()})
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// startLocalGateway runs the gateway of `cairn dev`/`cairn server` on the
// registry of the same process.
func startLocalGateway(ctx context.Context, g *gatewayFlags, reg *registry.Registry, pr prometheus.Registerer, logger *slog.Logger, stdout io.Writer) (*gateway, error) {
	gw, err := startGateway(g, false, pr, logger, stdout)
	if err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go gwsource.FollowRegistry(ctx, reg, gw.engine, ready, logger)
	<-ready
	gw.srv.Start()
	return gw, nil
}
