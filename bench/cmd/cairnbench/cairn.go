package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/cairnhq/cairn/bench/internal/cairnhttp"
	"github.com/cairnhq/cairn/bench/internal/loadgen"
	"github.com/cairnhq/cairn/bench/internal/proc"
	"github.com/cairnhq/cairn/bench/internal/prop"
	"github.com/cairnhq/cairn/bench/internal/results"
)

const (
	// maxRenewOps bounds a renewal run in operations (-renew-for bounds it in time).
	maxRenewOps = 100_000_000
	namespace   = "default"
	// hotInstances is the set the churn run re-registers over and over.
	hotInstances = 1000
)

// cairnBench is one Cairn suite: its flags, client and instance set.
type cairnBench struct {
	common
	url      string
	services int
	renewFor time.Duration
	churn    int

	cl     *cairnhttp.Client
	paths  []string // instance paths, index i is instance i
	bodies [][]byte // registration bodies, built up front to keep the generator light
}

func runCairn(ctx context.Context, args []string) error {
	b := &cairnBench{}
	fs := flag.NewFlagSet("cairn", flag.ContinueOnError)
	b.common.register(fs)
	fs.StringVar(&b.url, "url", "", "base URL of the Cairn server (http://127.0.0.1:PORT)")
	fs.IntVar(&b.services, "services", 0, "services to spread the instances over (default n/100, at least 1)")
	fs.DurationVar(&b.renewFor, "renew-for", 10*time.Second, "duration of the renewal run")
	fs.IntVar(&b.churn, "churn", 1<<16, "re-registrations of a hot set of instances before the last memory reading (the server's default feed capacity; 0: skip)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := b.check(); err != nil {
		return err
	}
	if b.url == "" {
		return fmt.Errorf("-url is required")
	}
	if b.services <= 0 {
		b.services = max(1, b.n/100)
	}
	b.cl = cairnhttp.New(b.url, 2*b.concurrency)
	b.paths = make([]string, b.n)
	b.bodies = make([][]byte, b.n)
	for i := range b.n {
		b.paths[i] = cairnhttp.InstancePath(namespace, fmt.Sprintf("svc-%04d", i%b.services), fmt.Sprintf("i-%06d", i))
		b.bodies[i] = cairnhttp.InstanceBody(i, "1.0.0", ttl)
	}
	s := &results.Suite{System: "cairn", Instances: b.n, Services: b.services, Concurrency: b.concurrency, Settle: b.settle}
	if err := b.run(ctx, s); err != nil {
		return err
	}
	return results.Write(b.out, s)
}

// run measures, in order: registrations, renewals, memory, propagation (idle,
// under renewals, under writes), then churn and the memory after it.
func (b *cairnBench) run(ctx context.Context, s *results.Suite) error {
	logf("cairn: registering %d instances over %d services, %d clients", b.n, b.services, b.concurrency)
	s.Writes = measured(b.pid, func() loadgen.Result {
		return loadgen.Closed(ctx, b.concurrency, int64(b.n), maxRegister, func(ctx context.Context, i int) error {
			return b.cl.Register(ctx, b.paths[i], b.bodies[i])
		})
	})
	logThroughput("cairn registrations", s.Writes)
	if err := b.checkCount(ctx); err != nil {
		return err
	}

	logf("cairn: renewing all instances round robin for %v, %d clients", b.renewFor, b.concurrency)
	r := measured(b.pid, func() loadgen.Result {
		return loadgen.Closed(ctx, b.concurrency, maxRenewOps, b.renewFor, func(ctx context.Context, i int) error {
			return b.cl.Renew(ctx, b.paths[i%b.n])
		})
	})
	s.Renewals = &r
	logThroughput("cairn renewals", r)

	mem, err := b.memory(ctx, "after registrations and renewals")
	if err != nil {
		return err
	}
	s.Memory, s.GoMem = mem.Memory, mem.GoMem

	for _, load := range []string{"idle", "renewals", "writes"} {
		p, err := b.propagation(ctx, load)
		if err != nil {
			return fmt.Errorf("propagation (%s): %w", load, err)
		}
		s.Propagation = append(s.Propagation, p)
	}
	if b.churn > 0 {
		hot := min(b.n, hotInstances)
		logf("cairn: churn: %d re-registrations that change one of %d hot instances each, %d clients", b.churn, hot, b.concurrency)
		ch := measured(b.pid, func() loadgen.Result {
			return loadgen.Closed(ctx, b.concurrency, int64(b.churn), maxRegister, func(ctx context.Context, i int) error {
				return b.cl.Register(ctx, b.paths[i%hot], cairnhttp.InstanceBody(i%hot, fmt.Sprintf("3.%d.0", i/hot), ttl))
			})
		})
		logThroughput("cairn churn", ch)
		s.Churn = &ch
		// The change feed now holds mostly replaced versions of the hot
		// instances, and keeps them alive until they leave its ring.
		if mem, err = b.memory(ctx, "after churn"); err != nil {
			return err
		}
		s.AfterChurn = &mem
	}
	return nil
}

// memory waits -settle and reads the server's RSS and Go memory statistics.
func (b *cairnBench) memory(ctx context.Context, when string) (results.MemorySample, error) {
	mem, err := settle(ctx, b.pid, b.settle)
	if err != nil {
		return results.MemorySample{}, err
	}
	m := results.MemorySample{Memory: mem}
	if page, err := b.cl.Get(ctx, "/metrics"); err == nil {
		m.GoMem = proc.Metrics(page, "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes",
			"go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_sys_bytes", "go_goroutines")
	}
	logf("cairn: memory %s, %v later: RSS %.1f MiB (peak %.1f MiB), Go heap in use %.1f MiB", when,
		b.settle, float64(mem.RSS)/(1<<20), float64(mem.HWM)/(1<<20), m.GoMem["go_memstats_heap_inuse_bytes"]/(1<<20))
	return m, nil
}

// checkCount makes sure the server holds every instance registered.
func (b *cairnBench) checkCount(ctx context.Context) error {
	body, err := b.cl.Get(ctx, "/v1/status")
	if err != nil {
		return err
	}
	var st struct {
		Instances int `json:"instances"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("/v1/status: %w", err)
	}
	if st.Instances < b.n {
		return fmt.Errorf("server holds %d instances, want %d", st.Instances, b.n)
	}
	return nil
}

// propagation measures register -> SSE ADDED latency on a fresh service
// probe-<load>, with the given background running.
func (b *cairnBench) propagation(ctx context.Context, load string) (results.Propagation, error) {
	var p results.Propagation
	var bg loadgen.Op
	switch load {
	case "renewals":
		bg = func(ctx context.Context, i int) error { return b.cl.Renew(ctx, b.paths[i%b.n]) }
	case "writes":
		// Re-registering with a new version changes the instance: a logged
		// write and a MODIFIED event, like an etcd put overwriting a key.
		bg = func(ctx context.Context, i int) error {
			return b.cl.Register(ctx, b.paths[i%b.n], cairnhttp.InstanceBody(i%b.n, fmt.Sprintf("2.%d.0", i/b.n), ttl))
		}
	}
	svc := "probe-" + load
	write := func(ctx context.Context, i int) error {
		return b.cl.Register(ctx, cairnhttp.InstancePath(namespace, svc, probeID(i)), cairnhttp.InstanceBody(i, "1.0.0", ttl))
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	seen, err := b.cl.WatchAdded(wctx, namespace, svc, b.propN+16)
	if err != nil {
		return p, err
	}
	p, err = withBackground(ctx, b.pid, bg, b.bgRate, b.concurrency, func() (prop.Result, error) {
		return prop.Run(ctx, b.propN, b.propTimeout, probeID, write, seen)
	})
	return finishProp("cairn", b.raw, load, p, err)
}
