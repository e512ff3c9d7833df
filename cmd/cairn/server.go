package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/internal/api"
	"github.com/cairnhq/cairn/internal/dns"
	"github.com/cairnhq/cairn/internal/eureka"
	"github.com/cairnhq/cairn/internal/health"
	"github.com/cairnhq/cairn/internal/registry"
	"github.com/cairnhq/cairn/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// serverConfig is what `cairn server` and `cairn dev` read from flags.
type serverConfig struct {
	httpAddr string
	dataDir  string
	inMemory bool
	logLevel string
	logJSON  bool
	reg      registry.Config
	demo     bool // dev: register Cairn itself as a service

	eurekaNamespace   string
	eurekaDeltaWindow time.Duration

	dnsAddr      string
	dnsDomains   string
	dnsTTL       time.Duration
	dnsUpstreams string
	dnsForwards  forwardFlags
	dnsCache     int

	gw gatewayFlags

	kube kubeFlags
}

// forwardFlags collects --dns-forward SUFFIX=ADDR[,ADDR...] flags.
type forwardFlags map[string][]string

func (f forwardFlags) String() string { return "" }

func (f forwardFlags) Set(v string) error {
	suffix, addrs, ok := strings.Cut(v, "=")
	if !ok || suffix == "" || addrs == "" {
		return errors.New("want SUFFIX=ADDR[,ADDR...], e.g. cluster-b.local=10.0.0.2:8600")
	}
	f[suffix] = append(f[suffix], splitList(addrs)...)
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func serverFlags(name string, stderr io.Writer, dev bool) (*flag.FlagSet, *serverConfig) {
	c := &serverConfig{demo: dev}
	fs := flag.NewFlagSet("cairn "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	defAddr, defData := ":8761", "/var/lib/cairn"
	if dev {
		defAddr, defData = "127.0.0.1:8761", ".cairn/data"
	}
	fs.StringVar(&c.httpAddr, "http-addr", defAddr, "address of the HTTP API (native API, /metrics, /health)")
	fs.StringVar(&c.dataDir, "data-dir", defData, "directory of the embedded store (write-ahead log and snapshots)")
	fs.BoolVar(&c.inMemory, "in-memory", false, "keep the registry in memory only (nothing survives a restart)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.logJSON, "log-json", !dev, "log JSON lines instead of text")
	fs.DurationVar(&c.reg.EvictionInterval, "eviction-interval", 5*time.Second, "period of the expired-lease sweep")
	fs.Float64Var(&c.reg.EvictionMaxFraction, "eviction-max-fraction", 0.15, "largest share of leased instances one sweep evicts")
	fs.BoolVar(&c.reg.SelfPreservation, "self-preservation", true, "pause evictions while renewals fall below --renewal-threshold of those expected")
	fs.Float64Var(&c.reg.RenewalThreshold, "renewal-threshold", 0.85, "self-preservation threshold: share of expected renewals")
	fs.DurationVar(&c.reg.RenewalWindow, "renewal-window", time.Minute, "window over which renewals are counted (at least 1s)")
	fs.DurationVar(&c.reg.RestoreGrace, "restore-grace", 90*time.Second, "after a restart, time restored instances get to renew before any eviction")
	fs.IntVar(&c.reg.FeedCapacity, "feed-capacity", 1<<14, "events the change feed keeps for readers that fall behind")
	fs.StringVar(&c.eurekaNamespace, "eureka-namespace", "default", "namespace of apps registered through the Eureka API (/eureka/, /eureka/v2/); other namespaces show as APP.NAMESPACE")
	fs.DurationVar(&c.eurekaDeltaWindow, "eureka-delta-window", 3*time.Minute, "how long a change stays in Eureka's /apps/delta")
	fs.StringVar(&c.dnsAddr, "dns-addr", "127.0.0.1:8600", "address of the DNS server, UDP and TCP (\"off\": none)")
	fs.StringVar(&c.dnsDomains, "dns-domain", "cairn,cluster.local", "zones the DNS server answers for, comma-separated (<svc>.<ns>.svc.ZONE)")
	fs.DurationVar(&c.dnsTTL, "dns-ttl", 5*time.Second, "TTL of DNS answers")
	fs.StringVar(&c.dnsUpstreams, "dns-upstream", "", "resolvers for names outside Cairn's zones, comma-separated IP[:port] (none: REFUSED)")
	c.dnsForwards = forwardFlags{}
	fs.Var(c.dnsForwards, "dns-forward", "forward names under SUFFIX to other servers, e.g. another cluster's Cairn: SUFFIX=IP:PORT[,IP:PORT] (repeatable)")
	fs.IntVar(&c.dnsCache, "dns-cache-size", 10000, "entries of the cache of forwarded answers (-1: off)")
	defGateway := "off"
	if dev {
		defGateway = "127.0.0.1:8080"
	}
	c.gw.register(fs, "gateway-", defGateway, "-")
	c.kube.register(fs)
	return fs, c
}

func (c *serverConfig) validate() error {
	switch {
	case c.reg.EvictionInterval < 10*time.Millisecond:
		return errors.New("--eviction-interval must be at least 10ms")
	case c.reg.EvictionMaxFraction <= 0 || c.reg.EvictionMaxFraction > 1:
		return errors.New("--eviction-max-fraction must be in (0, 1]")
	case c.reg.RenewalThreshold <= 0 || c.reg.RenewalThreshold > 1:
		return errors.New("--renewal-threshold must be in (0, 1]")
	case c.reg.RenewalWindow < time.Second:
		return errors.New("--renewal-window must be at least 1s")
	case c.reg.RestoreGrace < 0:
		return errors.New("--restore-grace must not be negative")
	case c.reg.FeedCapacity < 16:
		return errors.New("--feed-capacity must be at least 16")
	case !c.inMemory && c.dataDir == "":
		return errors.New("--data-dir is required (or --in-memory)")
	case c.eurekaDeltaWindow < time.Second:
		return errors.New("--eureka-delta-window must be at least 1s")
	case c.dnsTTL < 0 || c.dnsTTL > 24*time.Hour:
		return errors.New("--dns-ttl must be between 0s and 24h")
	case c.dnsCache < -1:
		return errors.New("--dns-cache-size must be -1 (off) or more")
	}
	if fe := registry.ValidateName("--eureka-namespace", c.eurekaNamespace); fe != nil {
		return fe
	}
	if err := c.kube.validate(); err != nil {
		return err
	}
	if c.reg.RestoreGrace == 0 {
		c.reg.RestoreGrace = time.Nanosecond // 0 means "default" to the registry; the flag means none
	}
	return nil
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serve(ctx, "server", args, stdout, stderr, false)
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serve(ctx, "dev", args, stdout, stderr, true)
}

func newLogger(w io.Writer, level string, asJSON bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// parseFlags parses a command's flags, which take no arguments after them.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func serve(ctx context.Context, name string, args []string, stdout, stderr io.Writer, dev bool) error {
	fs, c := serverFlags(name, stderr, dev)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	logger, err := newLogger(stderr, c.logLevel, c.logJSON)
	if err != nil {
		return err
	}
	c.reg.Logger = logger

	var wal *store.WAL
	if !c.inMemory {
		ensureTwoPs(logger)
		if wal, err = store.Open(c.dataDir); err != nil {
			return err
		}
	}
	reg, err := registry.New(c.reg, wal)
	if err != nil {
		if wal != nil {
			wal.Close()
		}
		return err
	}
	defer reg.Close()

	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	checker := health.New(reg, logger)
	pr := api.NewMetricsRegistry()
	registerHealthMetrics(pr, checker)
	var dnsSrv *dns.Server
	if c.dnsAddr != "off" && c.dnsAddr != "" {
		dnsSrv, err = dns.New(dns.Options{Registry: reg, Domains: splitList(c.dnsDomains), TTL: c.dnsTTL,
			Upstreams: splitList(c.dnsUpstreams), Forwards: c.dnsForwards, CacheSize: c.dnsCache, Metrics: pr, Logger: logger})
		if err != nil {
			ln.Close()
			return fmt.Errorf("--dns-*: %w", err)
		}
	}
	eu := eureka.New(eureka.Options{Registry: reg, Namespace: c.eurekaNamespace, DeltaWindow: c.eurekaDeltaWindow, Logger: logger, Metrics: pr})
	handler := api.New(api.Options{Registry: reg, Logger: logger, Metrics: pr, Mount: eu.Mount})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx }, // ends watches on shutdown
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go reg.Run(ctx)
	go checker.Run(ctx)
	go eu.Run(ctx)

	url := "http://" + ln.Addr().String()
	where := "in memory"
	if !c.inMemory {
		where = "in " + c.dataDir
	}
	fmt.Fprintf(stdout, "cairn %s: HTTP API on %s (registry %s, revision %d)\n", name, url, where, reg.Revision())
	fmt.Fprintf(stdout, "cairn %s: Eureka API on %s/eureka/ and %s/eureka/v2/\n", name, url, url)
	if c.demo {
		if err := registerSelf(ctx, reg, ln.Addr()); err != nil {
			logger.Warn("could not register cairn itself", "err", err)
		}
	}

	errc := make(chan error, 3)
	if dnsSrv != nil {
		dnsReady := make(chan net.Addr, 1)
		go func() {
			if err := dnsSrv.Serve(ctx, c.dnsAddr, func(a net.Addr) { dnsReady <- a }); err != nil {
				errc <- fmt.Errorf("--dns-addr: %w", err)
			}
		}()
		select {
		case a := <-dnsReady:
			fmt.Fprintf(stdout, "cairn %s: DNS on %s (zones %s)\n", name, a, c.dnsDomains)
		case err := <-errc:
			return err
		}
	}
	if c.gw.enabled() {
		gw, err := startLocalGateway(ctx, &c.gw, reg, pr, logger, stdout)
		if err != nil {
			return fmt.Errorf("--gateway-*: %w", err)
		}
		defer gw.stop(logger)
		fmt.Fprintf(stdout, "cairn %s: gateway on %s (routes: cairn apply -f FILE)\n", name, gw.describe())
		go func() {
			if err := <-gw.srv.Err(); err != nil {
				errc <- fmt.Errorf("gateway: %w", err)
			}
		}()
	}
	if c.kube.enabled {
		kc, err := c.kube.start(ctx, reg, pr, logger, errc)
		if err != nil {
			return fmt.Errorf("--kubernetes: %w", err)
		}
		fmt.Fprintf(stdout, "cairn %s: following Kubernetes at %s (%s)\n", name, kc.Host, c.kube.describe())
	}
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	return reg.Close()
}

// ensureTwoPs keeps at least two Go schedulers (Ps) when the write-ahead
// log is on. Its fdatasync is a blocking system call that keeps its P until
// the runtime's monitor takes it back (up to ~10 ms on a busy process); with
// GOMAXPROCS=1, which Go picks in a one-CPU container, every HTTP handler
// stalls for that long and registrations fell from ~6,400/s to ~1,700/s on
// one core (bench/RESULTS.md). A second P keeps handlers running meanwhile;
// it adds no CPU, since the extra P only runs while the first is blocked.
func ensureTwoPs(logger *slog.Logger) {
	if n := runtime.GOMAXPROCS(0); n < 2 {
		runtime.GOMAXPROCS(2)
		logger.Info("raised GOMAXPROCS to 2 so log fsyncs do not stall request handling", "was", n)
	}
}

// registerSelf makes `cairn dev` list itself (demo content): service
// cairn in namespace cairn-system, checked over HTTP, scraped by Prometheus SD.
func registerSelf(ctx context.Context, reg *registry.Registry, addr net.Addr) error {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return err
	}
	p, _ := strconv.Atoi(port)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	host = strings.Trim(host, "[]")
	_, _, err = reg.Register(ctx, registry.Instance{
		Namespace: "cairn-system", Service: "cairn", ID: "cairn-" + port, Address: host,
		Ports:    []registry.Port{{Name: "http", Port: p, Protocol: "http"}, {Name: "metrics", Port: p, Protocol: "http"}},
		Metadata: map[string]string{"version": version, "role": "server"},
		Source:   "self",
		Check:    &registry.CheckSpec{Type: "http", Port: "http", Path: "/health", Interval: registry.Duration(10 * time.Second)},
	})
	return err
}

// registerHealthMetrics exports the health checker's counters.
func registerHealthMetrics(pr *prometheus.Registry, c *health.Checker) {
	pr.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_health_probes", Help: "Active health check probes."},
			func() float64 { return float64(c.Stats().Probes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_health_checks_total", Help: "Health checks run."},
			func() float64 { return float64(c.Stats().Checks) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_health_check_failures_total", Help: "Health checks that failed."},
			func() float64 { return float64(c.Stats().Failures) }),
	)
}
