package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/bench/internal/cairnhttp"
	"github.com/cairnhq/cairn/bench/internal/etcdload"
	"github.com/cairnhq/cairn/bench/internal/loadgen"
	"github.com/cairnhq/cairn/bench/internal/pollprop"
	"github.com/cairnhq/cairn/bench/internal/proc"
	"github.com/cairnhq/cairn/bench/internal/results"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// eurekaBench measures Cairn's Eureka API (issue 3) next to its peers in
// one run: nginx serving the same /apps bytes as static files, etcd for
// propagation to a poller and for renewals, and Cairn's native renewals.
type eurekaBench struct {
	url, nginxURL, nginxRoot, nginxVersion, etcdEndpoint string
	pid, nginxPid, etcdPid                               int

	n, apps, concurrency, leaseSecs int
	getFor                          time.Duration
	getConns                        []int
	churnRates                      []float64
	churnConns                      int
	deltaN                          int
	deltaEvery, deltaTimeout        time.Duration
	deltaWindow                     time.Duration
	deltaIntervals                  []time.Duration
	renewFor                        time.Duration
	out, raw                        string

	cl     *cairnhttp.Client
	ids    []string // instanceId of instance i
	bodies [][]byte
	probes int // delta probe instances registered so far (ids n, n+1, ...)
}

func runEureka(ctx context.Context, args []string) error {
	b := &eurekaBench{}
	fs := flag.NewFlagSet("eureka", flag.ContinueOnError)
	fs.StringVar(&b.url, "url", "", "base URL of the Cairn server (required)")
	fs.IntVar(&b.pid, "pid", 0, "process id of the Cairn server (required)")
	fs.StringVar(&b.nginxURL, "nginx-url", "", "base URL of the nginx peer serving -nginx-root (required)")
	fs.IntVar(&b.nginxPid, "nginx-pid", 0, "process id of the nginx master (its workers' CPU is measured)")
	fs.StringVar(&b.nginxRoot, "nginx-root", "", "directory nginx serves; the /apps documents are written there (required)")
	fs.StringVar(&b.nginxVersion, "nginx-version", "", "nginx version, for the report")
	fs.StringVar(&b.etcdEndpoint, "etcd", "", "client URL of the etcd member (required)")
	fs.IntVar(&b.etcdPid, "etcd-pid", 0, "process id of etcd (required)")
	fs.IntVar(&b.n, "n", 10_000, "instances")
	fs.IntVar(&b.apps, "apps", 100, "Eureka apps the instances are spread over")
	fs.IntVar(&b.concurrency, "c", 64, "clients of the registration and renewal runs")
	fs.IntVar(&b.leaseSecs, "lease", 900, "leaseInfo.durationInSecs of the instances (long enough that none expires during the run)")
	fs.DurationVar(&b.getFor, "get-for", 5*time.Second, "duration of each GET /apps run")
	conns := fs.String("get-conns", "4,16", "keep-alive connections of the GET /apps runs, comma-separated")
	rates := fs.String("churn-rates", "10,100", "changes/s of the churn runs, comma-separated")
	fs.IntVar(&b.churnConns, "churn-conns", 16, "connections of the GET /apps runs under churn")
	fs.IntVar(&b.deltaN, "delta-n", 400, "registrations per propagation run")
	fs.DurationVar(&b.deltaEvery, "delta-every", 20*time.Millisecond, "time between two registrations of a propagation run")
	intervals := fs.String("delta-intervals", "0,100ms", "poll intervals of the propagation runs (0: back to back), comma-separated")
	fs.DurationVar(&b.deltaWindow, "delta-window", 3*time.Minute, "the server's --eureka-delta-window: the delta runs start once the setup's registrations left it")
	fs.DurationVar(&b.deltaTimeout, "delta-timeout", 10*time.Second, "how long a registration may take to show in a poll")
	fs.DurationVar(&b.renewFor, "renew-for", 10*time.Second, "duration of each renewal run")
	fs.StringVar(&b.out, "out", "", "file to write the JSON results to (required)")
	fs.StringVar(&b.raw, "raw", "", "if set, write every propagation sample to RAW-<system>-delta-<interval>.csv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if b.getConns, err = parseList(*conns, strconv.Atoi); err != nil {
		return fmt.Errorf("-get-conns: %w", err)
	}
	if b.churnRates, err = parseList(*rates, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }); err != nil {
		return fmt.Errorf("-churn-rates: %w", err)
	}
	if b.deltaIntervals, err = parseList(*intervals, time.ParseDuration); err != nil {
		return fmt.Errorf("-delta-intervals: %w", err)
	}
	switch {
	case b.url == "" || b.pid <= 0 || b.nginxURL == "" || b.nginxRoot == "" || b.etcdEndpoint == "" || b.etcdPid <= 0:
		return fmt.Errorf("-url, -pid, -nginx-url, -nginx-root, -etcd and -etcd-pid are required")
	case b.out == "":
		return fmt.Errorf("-out is required")
	case b.n <= 0 || b.apps <= 0 || b.concurrency <= 0 || b.churnConns <= 0 || b.deltaN < 0:
		return fmt.Errorf("-n, -apps, -c and -churn-conns must be positive")
	}
	b.cl = cairnhttp.New(b.url, 2*b.concurrency)
	b.ids = make([]string, b.n)
	b.bodies = make([][]byte, b.n)
	for i := range b.n {
		b.ids[i] = cairnhttp.EurekaID(i, i%b.apps)
		b.bodies[i] = cairnhttp.EurekaBody(i, i%b.apps, b.leaseSecs)
	}
	cli, err := etcdload.Dial(ctx, b.etcdEndpoint)
	if err != nil {
		return err
	}
	defer cli.Close()

	s := &results.EurekaSuite{Kind: "eureka", Instances: b.n, Apps: b.apps, NginxVersion: b.nginxVersion, RenewClients: b.concurrency}
	if s.EtcdVersion, err = etcdload.Version(ctx, cli, b.etcdEndpoint); err != nil {
		return err
	}
	// Cairn's delta runs wait until the registrations of the setup have
	// left the delta window, so that /apps/delta holds the new instances
	// only, as in a registry that is not starting up: the etcd runs go
	// first to use the time.
	if err := b.register(ctx, s); err != nil {
		return err
	}
	registered := time.Now()
	if err := b.getApps(ctx, s); err != nil {
		return err
	}
	b.renewCairn(ctx, s)
	if err := b.runEtcd(ctx, cli, s); err != nil {
		return err
	}
	if wait := time.Until(registered.Add(b.deltaWindow + time.Second)); wait > 0 {
		logf("eureka: waiting %v for the registrations to leave the %v delta window", wait.Round(time.Second), b.deltaWindow)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	if err := b.deltaCairn(ctx, s); err != nil {
		return err
	}
	if err := b.churn(ctx, s); err != nil { // last: it leaves instances with status overrides
		return err
	}
	return results.WriteEureka(b.out, s)
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (b *eurekaBench) app(i int) string { return cairnhttp.EurekaApp(i % b.apps) }

// register registers the n instances through the Eureka API.
func (b *eurekaBench) register(ctx context.Context, s *results.EurekaSuite) error {
	logf("eureka: registering %d instances over %d apps through POST /eureka/apps/{APP}, %d clients", b.n, b.apps, b.concurrency)
	s.Register = measured(b.pid, func() loadgen.Result {
		return loadgen.Closed(ctx, b.concurrency, int64(b.n), maxRegister, func(ctx context.Context, i int) error {
			return b.cl.EurekaRegister(ctx, b.app(i), b.bodies[i])
		})
	})
	logThroughput("eureka registrations", s.Register)
	if s.Register.Errors > 0 {
		return fmt.Errorf("registrations failed: %s", s.Register.FirstErr)
	}
	return nil
}

// deltaCairn runs the propagation measurements, then cancels the
// instances they registered.
func (b *eurekaBench) deltaCairn(ctx context.Context, s *results.EurekaSuite) error {
	for _, iv := range b.deltaIntervals {
		d, err := b.cairnDelta(ctx, iv)
		if err != nil {
			return err
		}
		s.Delta = append(s.Delta, d)
	}
	if b.probes > 0 {
		// Back to n instances for what follows.
		r := loadgen.Closed(ctx, b.concurrency, int64(b.probes), maxRegister, func(ctx context.Context, k int) error {
			return b.cl.EurekaCancel(ctx, b.app(b.n+k), cairnhttp.EurekaID(b.n+k, (b.n+k)%b.apps))
		})
		if r.Errors > 0 {
			return fmt.Errorf("cancelling the probe instances: %v", r.FirstErr)
		}
	}
	return nil
}

// renewCairn renews the instances through the Eureka API, then the same
// instances through the native API.
func (b *eurekaBench) renewCairn(ctx context.Context, s *results.EurekaSuite) {
	logf("eureka: renewing through the Eureka API for %v, %d clients", b.renewFor, b.concurrency)
	eu := measured(b.pid, func() loadgen.Result {
		return loadgen.Closed(ctx, b.concurrency, maxRenewOps, b.renewFor, func(ctx context.Context, i int) error {
			return b.cl.EurekaRenew(ctx, b.app(i%b.n), b.ids[i%b.n], cairnhttp.EurekaDirty)
		})
	})
	logThroughput("eureka renewals", eu)
	logf("eureka: renewing the same instances through the native API for %v, %d clients", b.renewFor, b.concurrency)
	na := measured(b.pid, func() loadgen.Result {
		return loadgen.Closed(ctx, b.concurrency, maxRenewOps, b.renewFor, func(ctx context.Context, i int) error {
			return b.cl.Renew(ctx, cairnhttp.InstancePath(namespace, strings.ToLower(b.app(i%b.n)), b.ids[i%b.n]))
		})
	})
	logThroughput("native renewals", na)
	s.Renewals = append(s.Renewals, results.RenewRun{Path: "eureka", Throughput: eu}, results.RenewRun{Path: "native", Throughput: na})
}

// docs are the GET /apps variants: what a client asks Cairn for, and the
// file nginx serves the same bytes from.
var docs = []struct {
	name, file string
	doc        cairnhttp.Doc
	gzip       bool
}{
	{"JSON", "apps.json", cairnhttp.Doc{Path: "/eureka/apps/", Accept: "application/json"}, false},
	{"JSON gzip", "apps.json.gz", cairnhttp.Doc{Path: "/eureka/apps/", Accept: "application/json", AcceptEncoding: "gzip"}, true},
	{"XML", "apps.xml", cairnhttp.Doc{Path: "/eureka/apps/"}, false},
	{"XML gzip", "apps.xml.gz", cairnhttp.Doc{Path: "/eureka/apps/", AcceptEncoding: "gzip"}, true},
}

// getApps fetches each document from Cairn once, writes it where nginx
// serves it, checks nginx answers the identical bytes, then runs the same
// closed-loop GETs against both, Cairn first, per connection count and
// document.
func (b *eurekaBench) getApps(ctx context.Context, s *results.EurekaSuite) error {
	peer := cairnhttp.New(b.nginxURL, 4)
	sizes := map[string]int{}
	for _, d := range docs {
		body, enc, err := b.cl.Fetch(ctx, d.doc)
		if err != nil {
			return err
		}
		if (enc == "gzip") != d.gzip {
			return fmt.Errorf("GET /apps %s: Content-Encoding %q", d.name, enc)
		}
		if err := os.WriteFile(filepath.Join(b.nginxRoot, d.file), body, 0o644); err != nil {
			return err
		}
		pd := d.doc
		pd.Path = "/" + d.file
		got, penc, err := peer.Fetch(ctx, pd)
		if err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		if !bytes.Equal(got, body) || penc != enc {
			return fmt.Errorf("nginx serves %d bytes (%q) for %s, Cairn %d (%q)", len(got), penc, d.file, len(body), enc)
		}
		sizes[d.name] = len(body)
		logf("eureka: GET /apps %s: %d bytes", d.name, len(body))
	}
	for _, c := range b.getConns {
		cairn := cairnhttp.New(b.url, c)
		nginx := cairnhttp.New(b.nginxURL, c)
		for _, d := range docs {
			r := results.GetRun{Doc: d.name, Conns: c, Bytes: sizes[d.name]}
			r.Cairn = getLoad(ctx, cairn, d.doc, c, b.getFor, b.pid)
			logGet("cairn GET /apps "+d.name, c, r.Cairn)
			pd := d.doc
			pd.Path = "/" + d.file
			r.Peer = getLoad(ctx, nginx, pd, c, b.getFor, append([]int{b.nginxPid}, proc.Children(b.nginxPid)...)...)
			logGet("nginx GET /apps "+d.name, c, r.Peer)
			s.Get = append(s.Get, r)
		}
	}
	return nil
}

// readBufs are the GET runs' read buffers.
var readBufs = sync.Pool{New: func() any { return make([]byte, 256<<10) }}

// getLoad runs closed-loop GETs of d on conns workers for dur, metering
// the CPU of the server processes pids.
func getLoad(ctx context.Context, cl *cairnhttp.Client, d cairnhttp.Doc, conns int, dur time.Duration, pids ...int) results.GetLoad {
	var total atomic.Int64
	t := measuredPids(pids, func() loadgen.Result {
		return loadgen.Closed(ctx, conns, maxRenewOps, dur, func(ctx context.Context, _ int) error {
			buf := readBufs.Get().([]byte)
			defer readBufs.Put(buf)
			n, err := cl.Read(ctx, d, buf)
			if err == nil {
				total.Add(n)
			}
			return err
		})
	})
	return results.GetLoad{Throughput: t, BodyBytes: total.Load()}
}

// measuredPids is measured for a server made of several processes (an
// nginx master and its workers): ServerCores is their sum.
func measuredPids(pids []int, fn func() loadgen.Result) results.Throughput {
	m := proc.StartCPU(append(pids, os.Getpid())...)
	r := fn()
	cores, machine := m.Cores()
	t := results.FromLoad(r)
	for _, c := range cores[:len(pids)] {
		if c > 0 {
			t.ServerCores += c
		}
	}
	t.ClientCores = cores[len(pids)]
	t.OtherCores = machine - t.ServerCores - t.ClientCores
	return t
}

func logGet(what string, conns int, g results.GetLoad) {
	logf("%s, %d conns: %d ok, %d errors in %v: %.1f/s, %.0f MB/s (cores used: server %.2f, generator %.2f, rest of the machine %.2f)",
		what, conns, g.Ops, g.Errors, g.Elapsed.Round(time.Millisecond), g.Rate, g.MBps(), g.ServerCores, g.ClientCores, g.OtherCores)
	if g.FirstErr != "" {
		logf("%s: first error: %s", what, g.FirstErr)
	}
}

const encodedJSON = `cairn_eureka_documents_encoded_total{document="apps",format="json"}`

// encodes reads how many /apps JSON documents the server has encoded (-1: unknown).
func (b *eurekaBench) encodes(ctx context.Context) float64 {
	page, err := b.cl.Get(ctx, "/metrics")
	if err != nil {
		return -1
	}
	v, ok := proc.Metrics(page, encodedJSON)[encodedJSON]
	if !ok {
		return -1
	}
	return v
}

// churn measures GET /apps JSON (plain and gzip) on Cairn with no writer,
// then while a paced writer sets a status override on one instance after
// another at each of -churn-rates (a new revision each).
func (b *eurekaBench) churn(ctx context.Context, s *results.EurekaSuite) error {
	get := cairnhttp.New(b.url, b.churnConns)
	var flips atomic.Int64 // across runs, so that every flip changes an instance
	flip := func(ctx context.Context, _ int) error {
		i := int(flips.Add(1) - 1)
		j := i % b.n
		if (i/b.n)%2 == 0 {
			return b.cl.EurekaSetStatus(ctx, b.app(j), b.ids[j], "OUT_OF_SERVICE")
		}
		return b.cl.EurekaClearStatus(ctx, b.app(j), b.ids[j])
	}
	for _, rate := range append([]float64{0}, b.churnRates...) {
		var done chan results.Throughput
		stop := func() {}
		if rate > 0 {
			logf("eureka: churn: %.0f status-override changes/s in the background", rate)
			bctx, cancel := context.WithCancel(ctx)
			stop = cancel
			done = make(chan results.Throughput, 1)
			go func() {
				done <- measured(b.pid, func() loadgen.Result { return loadgen.Paced(bctx, rate, 4, 10*time.Minute, flip) })
			}()
			time.Sleep(time.Second)
		}
		var runs []results.ChurnRun
		for _, d := range docs[:2] { // JSON, JSON gzip
			before := b.encodes(ctx)
			g := getLoad(ctx, get, d.doc, b.churnConns, b.getFor, b.pid)
			after := b.encodes(ctx)
			enc := -1.0
			if before >= 0 && after >= 0 {
				enc = after - before
			}
			logGet(fmt.Sprintf("cairn GET /apps %s, %.0f changes/s", d.name, rate), b.churnConns, g)
			runs = append(runs, results.ChurnRun{TargetRate: rate, Doc: d.name, Conns: b.churnConns, Get: g, Encodes: enc})
		}
		stop()
		if done != nil {
			t := <-done
			logThroughput("eureka churn background", t)
			if t.Errors > 0 {
				return fmt.Errorf("churn writes failed: %s", t.FirstErr)
			}
			for i := range runs {
				runs[i].Background = &t
			}
		}
		s.Churn = append(s.Churn, runs...)
	}
	return nil
}

// cairnDelta registers new instances every -delta-every while one client
// polls GET /eureka/apps/delta (JSON, as Spring asks), back to back or
// every interval.
func (b *eurekaBench) cairnDelta(ctx context.Context, interval time.Duration) (results.DeltaRun, error) {
	first := b.n + b.probes
	b.probes += b.deltaN
	id := func(k int) string { i := first + k; return cairnhttp.EurekaID(i, i%b.apps) }
	write := func(ctx context.Context, k int) error {
		i := first + k
		return b.cl.EurekaRegister(ctx, b.app(i), cairnhttp.EurekaBody(i, i%b.apps, b.leaseSecs))
	}
	poller := cairnhttp.New(b.url, 1)
	delta := cairnhttp.Doc{Path: "/eureka/apps/delta", Accept: "application/json"}
	poll := func(ctx context.Context) (func(string) bool, int, error) {
		body, _, err := poller.Fetch(ctx, delta)
		if err != nil {
			return nil, 0, err
		}
		return func(id string) bool { return bytes.Contains(body, []byte(`"instanceId":"`+id+`"`)) }, len(body), nil
	}
	return b.delta(ctx, "cairn", b.pid, interval, id, write, poll)
}

// delta runs one propagation measurement and logs it.
func (b *eurekaBench) delta(ctx context.Context, system string, pid int, interval time.Duration,
	id func(int) string, write func(context.Context, int) error, poll pollprop.Poll) (results.DeltaRun, error) {
	label := "back to back"
	if interval > 0 {
		label = "every " + interval.String()
	}
	logf("%s: propagation to a poller (%s): %d writes, one every %v", system, label, b.deltaN, b.deltaEvery)
	m := proc.StartCPU(pid, os.Getpid())
	r, err := pollprop.Run(ctx, pollprop.Config{N: b.deltaN, Every: b.deltaEvery, Interval: interval, Timeout: b.deltaTimeout}, id, write, poll)
	cores, machine := m.Cores()
	if err != nil {
		return results.DeltaRun{}, fmt.Errorf("%s propagation (%s): %w", system, label, err)
	}
	d := results.DeltaRun{System: system, Interval: interval, Every: b.deltaEvery, OtherCores: machine - cores[0] - cores[1], Result: r}
	if err := writeRaw(b.raw, system+"-delta-"+interval.String(), r.Samples); err != nil {
		return d, err
	}
	logf("%s propagation to a poller (%s): n=%d p50=%v p99=%v max=%v timeouts=%d; %.0f polls/s, mean answer %.0f bytes, %d poll errors (rest of the machine used %.2f cores)",
		system, label, r.Count, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.Timeouts,
		r.PollRate(), r.MeanBytes, r.PollErrors, d.OtherCores)
	return d, nil
}

// runEtcd: the same n instances as keys, each with its own lease; then
// propagation to a poller and renewals (KeepAliveOnce, and puts).
func (b *eurekaBench) runEtcd(ctx context.Context, cli *clientv3.Client, s *results.EurekaSuite) error {
	key := func(i int) string { return "/bench/eureka/apps/" + b.app(i) + "/" + b.ids[i] }
	leases := make([]clientv3.LeaseID, b.n)
	logf("etcd: granting %d leases and putting %d keys (the registration bodies), %d clients", b.n, b.n, b.concurrency)
	r := loadgen.Closed(ctx, b.concurrency, int64(b.n), maxRegister, func(ctx context.Context, i int) error {
		l, err := cli.Grant(ctx, int64(b.leaseSecs))
		if err != nil {
			return err
		}
		leases[i] = l.ID
		_, err = cli.Put(ctx, key(i), string(b.bodies[i]), clientv3.WithLease(l.ID))
		return err
	})
	if r.Errors > 0 {
		return fmt.Errorf("etcd setup: %v", r.FirstErr)
	}

	const newPrefix = "/bench/eureka/new/"
	for k, iv := range b.deltaIntervals {
		first := b.n + k*b.deltaN
		id := func(j int) string { i := first + j; return cairnhttp.EurekaID(i, i%b.apps) }
		write := func(ctx context.Context, j int) error {
			i := first + j
			_, err := cli.Put(ctx, newPrefix+id(j), string(cairnhttp.EurekaBody(i, i%b.apps, b.leaseSecs)))
			return err
		}
		// The poller asks for the keys under the prefix modified since the
		// revision of its previous answer: what changed since it last looked.
		st, err := cli.Get(ctx, newPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		last := st.Header.Revision
		poll := func(ctx context.Context) (func(string) bool, int, error) {
			resp, err := cli.Get(ctx, newPrefix, clientv3.WithPrefix(), clientv3.WithMinModRev(last+1))
			if err != nil {
				return nil, 0, err
			}
			last = resp.Header.Revision
			seen := make(map[string]bool, len(resp.Kvs))
			size := 0
			for _, kv := range resp.Kvs {
				seen[strings.TrimPrefix(string(kv.Key), newPrefix)] = true
				size += len(kv.Key) + len(kv.Value)
			}
			return func(id string) bool { return seen[id] }, size, nil
		}
		d, err := b.delta(ctx, "etcd", b.etcdPid, iv, id, write, poll)
		if err != nil {
			return err
		}
		s.Delta = append(s.Delta, d)
	}

	logf("etcd: renewing the %d leases with KeepAliveOnce for %v, %d clients", b.n, b.renewFor, b.concurrency)
	ka := measured(b.etcdPid, func() loadgen.Result {
		return loadgen.Closed(ctx, b.concurrency, maxRenewOps, b.renewFor, func(ctx context.Context, i int) error {
			_, err := cli.KeepAliveOnce(ctx, leases[i%b.n])
			return err
		})
	})
	logThroughput("etcd KeepAliveOnce", ka)
	logf("etcd: overwriting the %d keys with puts for %v, %d clients", b.n, b.renewFor, b.concurrency)
	pu := measured(b.etcdPid, func() loadgen.Result {
		return loadgen.Closed(ctx, b.concurrency, maxRenewOps, b.renewFor, func(ctx context.Context, i int) error {
			_, err := cli.Put(ctx, key(i%b.n), string(b.bodies[i%b.n]), clientv3.WithLease(leases[i%b.n]))
			return err
		})
	})
	logThroughput("etcd puts", pu)
	s.Renewals = append(s.Renewals, results.RenewRun{Path: "etcd-keepalive", Throughput: ka}, results.RenewRun{Path: "etcd-put", Throughput: pu})
	return nil
}

// runGet is a closed-loop GET of one URL, for trying a server by hand:
//
//	cairnbench get -url http://127.0.0.1:P/eureka/apps/ -accept application/json -gzip -c 16 -for 5s -pid PID
func runGet(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	url := fs.String("url", "", "URL to fetch (required)")
	accept := fs.String("accept", "", "Accept header (none if empty)")
	gz := fs.Bool("gzip", false, "send Accept-Encoding: gzip (bodies are read as sent, not decompressed)")
	conns := fs.Int("c", 4, "keep-alive connections")
	dur := fs.Duration("for", 5*time.Second, "duration")
	pid := fs.Int("pid", 0, "server process id (its children's CPU is added: an nginx master's workers)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, path, ok := strings.Cut(strings.TrimPrefix(*url, "http://"), "/")
	if *url == "" || !ok {
		return fmt.Errorf("-url http://host:port/path is required")
	}
	d := cairnhttp.Doc{Path: "/" + path, Accept: *accept}
	if *gz {
		d.AcceptEncoding = "gzip"
	}
	var pids []int
	if *pid > 0 {
		pids = append([]int{*pid}, proc.Children(*pid)...)
	}
	g := getLoad(ctx, cairnhttp.New("http://"+base, *conns), d, *conns, *dur, pids...)
	logGet("GET "+*url, *conns, g)
	return nil
}
