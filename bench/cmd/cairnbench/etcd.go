package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/cairnhq/cairn/bench/internal/cairnhttp"
	"github.com/cairnhq/cairn/bench/internal/etcdload"
	"github.com/cairnhq/cairn/bench/internal/loadgen"
	"github.com/cairnhq/cairn/bench/internal/prop"
	"github.com/cairnhq/cairn/bench/internal/results"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdBench is one etcd suite: the same writes as the Cairn suite, as puts.
type etcdBench struct {
	common
	endpoint string
	cli      *clientv3.Client
	keys     []string
	values   []string
}

func runEtcd(ctx context.Context, args []string) error {
	b := &etcdBench{}
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	b.common.register(fs)
	fs.StringVar(&b.endpoint, "endpoint", "", "client URL of the etcd member (http://127.0.0.1:PORT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := b.check(); err != nil {
		return err
	}
	if b.endpoint == "" {
		return fmt.Errorf("-endpoint is required")
	}
	cli, err := etcdload.Dial(ctx, b.endpoint)
	if err != nil {
		return err
	}
	defer cli.Close()
	b.cli = cli
	services := max(1, b.n/100)
	b.keys = make([]string, b.n)
	b.values = make([]string, b.n)
	for i := range b.n {
		b.keys[i] = fmt.Sprintf("/bench/inst/svc-%04d/i-%06d", i%services, i)
		b.values[i] = string(cairnhttp.InstanceBody(i, "1.0.0", ttl)) // the same bytes Cairn gets
	}
	s := &results.Suite{System: "etcd", Instances: b.n, Concurrency: b.concurrency, Settle: b.settle}
	if s.Version, err = etcdload.Version(ctx, cli, b.endpoint); err != nil {
		return err
	}
	if err := b.run(ctx, s); err != nil {
		return err
	}
	return results.Write(b.out, s)
}

// run measures, in order: puts, memory, propagation (idle, under puts).
func (b *etcdBench) run(ctx context.Context, s *results.Suite) error {
	logf("etcd %s: putting %d keys, %d clients", s.Version, b.n, b.concurrency)
	s.Writes = measured(b.pid, func() loadgen.Result {
		return loadgen.Closed(ctx, b.concurrency, int64(b.n), maxRegister, func(ctx context.Context, i int) error {
			_, err := b.cli.Put(ctx, b.keys[i], b.values[i])
			return err
		})
	})
	logThroughput("etcd puts", s.Writes)
	mem, err := settle(ctx, b.pid, b.settle)
	if err != nil {
		return err
	}
	s.Memory = mem
	logf("etcd: memory after %v: RSS %.1f MiB (peak %.1f MiB)", b.settle, float64(mem.RSS)/(1<<20), float64(mem.HWM)/(1<<20))

	for _, load := range []string{"idle", "puts"} {
		p, err := b.propagation(ctx, load)
		if err != nil {
			return fmt.Errorf("propagation (%s): %w", load, err)
		}
		s.Propagation = append(s.Propagation, p)
	}
	return nil
}

// propagation measures Put -> Watch latency on a fresh prefix, with or
// without background puts that overwrite the existing keys.
func (b *etcdBench) propagation(ctx context.Context, load string) (results.Propagation, error) {
	var p results.Propagation
	var bg loadgen.Op
	if load == "puts" {
		bg = func(ctx context.Context, i int) error {
			_, err := b.cli.Put(ctx, b.keys[i%b.n], string(cairnhttp.InstanceBody(i%b.n, fmt.Sprintf("2.%d.0", i/b.n), ttl)))
			return err
		}
	}
	prefix := "/bench/probe-" + load + "/"
	key := func(i int) string { return prefix + probeID(i) }
	write := func(ctx context.Context, i int) error {
		_, err := b.cli.Put(ctx, key(i), string(cairnhttp.InstanceBody(i, "1.0.0", ttl)))
		return err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	seen, err := etcdload.WatchCreated(wctx, b.cli, prefix, b.propN+16)
	if err != nil {
		return p, err
	}
	p, err = withBackground(ctx, b.pid, bg, b.bgRate, b.concurrency, func() (prop.Result, error) {
		return prop.Run(ctx, b.propN, b.propTimeout, key, write, seen)
	})
	return finishProp("etcd", b.raw, load, p, err)
}
