// Package health actively checks registry instances that carry a
// registry.CheckSpec and records the verdict with Registry.SetHealth.
//
//	Registry ──snapshot + change feed──> Checker ──one goroutine per instance──> probes
//	   ^                                                                          │
//	   └──────────────────────── SetHealth (on a change of verdict) ─────────────┘
//
// Checks are http, https (GET, 2xx/3xx passes, redirects not followed), tcp
// (connect) and grpc (grpc.health.v1.Health/Check over unencrypted HTTP/2).
// Thresholds turn single results into a verdict: HealthyThreshold passes in
// a row make an instance passing, UnhealthyThreshold failures failing.
package health

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/cairnhq/cairn/internal/registry"
)

// userAgent is sent with http, https and grpc checks.
const userAgent = "cairn-health/1"

// Checker runs the health checks of every instance of a registry that has
// a check. Create it with New and start it with Run.
type Checker struct {
	reg *registry.Registry
	log *slog.Logger

	httpClient     *http.Client // http, and https with certificate verification
	insecureClient *http.Client // https with TLSSkipVerify
	grpcClient     *http.Client // h2c for grpc
	dialer         net.Dialer   // tcp

	running atomic.Bool
	wg      sync.WaitGroup // probe goroutines

	active   atomic.Int64 // probe goroutines running
	checks   atomic.Int64
	failures atomic.Int64
	started  atomic.Int64 // probes ever started (tests)
	resyncs  atomic.Int64 // snapshots taken (tests)

	// afterSync, when set (tests), is called by Run after every snapshot
	// has been applied, before the feed is read.
	afterSync func()
}

// Stats are the checker's counters, exported as metrics by the caller.
type Stats struct {
	Probes   int64 // probe goroutines running
	Checks   int64 // checks run
	Failures int64 // checks that failed
}

// New returns a checker of reg's instances. A nil logger means slog.Default().
func New(reg *registry.Registry, logger *slog.Logger) *Checker {
	if logger == nil {
		logger = slog.Default()
	}
	return &Checker{
		reg:            reg,
		log:            logger.With("component", "health"),
		httpClient:     newHTTPClient(false),
		insecureClient: newHTTPClient(true),
		grpcClient:     newGRPCClient(),
	}
}

// Stats returns the current counters.
func (c *Checker) Stats() Stats {
	return Stats{Probes: c.active.Load(), Checks: c.checks.Load(), Failures: c.failures.Load()}
}

// check runs one check of t. A nil error is a pass; the string is a short
// description of the result, the error's text that of a failure.
func (c *Checker) check(ctx context.Context, t *target) (string, error) {
	switch t.spec.Type {
	case "http", "https":
		return c.checkHTTP(ctx, t)
	case "tcp":
		return c.checkTCP(ctx, t)
	case "grpc":
		return c.checkGRPC(ctx, t)
	}
	return "", fmt.Errorf("unsupported check type %q", t.spec.Type)
}
