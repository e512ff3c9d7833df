package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairnhq/cairn/bench/internal/cairnhttp"
	"github.com/cairnhq/cairn/bench/internal/dnsdata"
	"github.com/cairnhq/cairn/bench/internal/dnsperf"
	"github.com/cairnhq/cairn/bench/internal/dnsprobe"
	"github.com/cairnhq/cairn/bench/internal/etcdload"
	"github.com/cairnhq/cairn/bench/internal/loadgen"
	"github.com/cairnhq/cairn/bench/internal/proc"
	"github.com/cairnhq/cairn/bench/internal/results"
	"github.com/cairnhq/cairn/bench/internal/visible"
	"github.com/miekg/dns"
)

// dnsBench measures Cairn's DNS server (issue 4) next to CoreDNS serving
// the same records from a zone file (dnsperf), and registration -> visible
// in an answer next to CoreDNS's etcd plugin reading etcd.
type dnsBench struct {
	url, dnsAddr, corednsAddr, corednsVersion string
	pid, corednsPid                           int
	etcdEndpoint, corednsEtcdAddr             string
	etcdPid, corednsEtcdPid                   int

	set                  dnsdata.Set
	dnsperfBin, dpVer    string
	clients, outstanding int
	perfFor              time.Duration
	paced                float64
	queries              int
	scenarios            []string
	visN, digN           int
	visGap, visTimeout   time.Duration
	workdir, out, raw    string

	cl *cairnhttp.Client
}

func runDNS(ctx context.Context, args []string) error {
	b := &dnsBench{}
	fs := flag.NewFlagSet("dns", flag.ContinueOnError)
	fs.StringVar(&b.url, "url", "", "base URL of the Cairn server's HTTP API (required)")
	fs.IntVar(&b.pid, "pid", 0, "process id of the Cairn server (required)")
	fs.StringVar(&b.dnsAddr, "dns", "", "Cairn's DNS address, host:port (required)")
	fs.StringVar(&b.corednsAddr, "coredns", "", "address of CoreDNS serving the zone file of dns-zone, host:port (required)")
	fs.IntVar(&b.corednsPid, "coredns-pid", 0, "process id of that CoreDNS (required)")
	fs.StringVar(&b.corednsVersion, "coredns-version", "", "CoreDNS version, for the report")
	fs.StringVar(&b.etcdEndpoint, "etcd", "", "client URL of the etcd that -coredns-etcd reads (empty: no etcd peer for the propagation runs)")
	fs.IntVar(&b.etcdPid, "etcd-pid", 0, "process id of etcd")
	fs.StringVar(&b.corednsEtcdAddr, "coredns-etcd", "", "address of CoreDNS serving svc.cairn. from etcd (etcd plugin, path /skydns), host:port")
	fs.IntVar(&b.corednsEtcdPid, "coredns-etcd-pid", 0, "process id of that CoreDNS")
	fs.IntVar(&b.set.Services, "services", 1000, "small services")
	fs.IntVar(&b.set.Instances, "instances", 3, "instances per small service")
	fs.IntVar(&b.set.Big, "big", 100, "instances of the big service")
	fs.IntVar(&b.set.TTL, "ttl", 5, "answer TTL in seconds (Cairn's --dns-ttl; the zone file's $TTL)")
	fs.StringVar(&b.dnsperfBin, "dnsperf", "dnsperf", "dnsperf binary")
	fs.StringVar(&b.dpVer, "dnsperf-version", "", "dnsperf version, for the report")
	fs.IntVar(&b.clients, "c", 4, "dnsperf -c: clients")
	fs.IntVar(&b.outstanding, "q", 0, "dnsperf -q: queries in flight at most (0: its default, 100)")
	fs.DurationVar(&b.perfFor, "for", 10*time.Second, "dnsperf -l: duration of each run")
	fs.Float64Var(&b.paced, "paced", 50, "paced runs offer this percentage of the slower server's max QPS (0: no paced runs)")
	fs.IntVar(&b.queries, "queries", 100_000, "lines of the random query files")
	sc := fs.String("scenarios", "a,big-udp,big-edns,big-tcp,nx", "query sets to run, comma-separated (a, big-udp, big-edns, big-tcp, nx)")
	fs.IntVar(&b.visN, "vis-n", 200, "registrations per propagation run polled with miekg/dns")
	fs.IntVar(&b.digN, "dig-n", 50, "registrations per propagation run polled with dig (0: none)")
	fs.DurationVar(&b.visGap, "vis-gap", 20*time.Millisecond, "random pause of up to this long between two registrations")
	fs.DurationVar(&b.visTimeout, "vis-timeout", 5*time.Second, "how long a registration may take to show in an answer")
	fs.StringVar(&b.workdir, "workdir", "", "directory for the query files (required)")
	fs.StringVar(&b.out, "out", "", "file to write the JSON results to (required)")
	fs.StringVar(&b.raw, "raw", "", "if set, write every propagation sample to RAW-<system>-<poller>-{added,removed}.csv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b.scenarios = strings.Split(*sc, ",")
	for _, s := range b.scenarios {
		if results.DNSScenarios[s] == "" {
			return fmt.Errorf("-scenarios: unknown %q", s)
		}
	}
	switch {
	case b.url == "" || b.pid <= 0 || b.dnsAddr == "" || b.corednsAddr == "" || b.corednsPid <= 0:
		return fmt.Errorf("-url, -pid, -dns, -coredns and -coredns-pid are required")
	case b.out == "" || b.workdir == "":
		return fmt.Errorf("-out and -workdir are required")
	case (b.etcdEndpoint == "") != (b.corednsEtcdAddr == ""):
		return fmt.Errorf("-etcd and -coredns-etcd go together")
	case b.set.Services <= 0 || b.set.Instances <= 0 || b.set.Big < 0 || b.clients <= 0 || b.queries <= 0:
		return fmt.Errorf("-services, -instances, -c and -queries must be positive")
	}
	b.cl = cairnhttp.New(b.url, 32)

	s := &results.DNSSuite{Kind: "dns", CoreDNSVersion: b.corednsVersion, DnsperfVersion: b.dpVer,
		Services: b.set.Services, Instances: b.set.Instances, Big: b.set.Big, TTL: b.set.TTL,
		Clients: b.clients, Outstanding: b.outstanding, Duration: b.perfFor, PacedPercent: b.paced}
	if err := b.register(ctx, s); err != nil {
		return err
	}
	if err := b.check(ctx, s); err != nil {
		return err
	}
	if err := b.perf(ctx, s); err != nil {
		return err
	}
	if err := b.visible(ctx, s); err != nil {
		return err
	}
	return results.WriteDNS(b.out, s)
}

// probeBase are the instances the probe service has before the
// propagation runs add and remove one at a time.
const probeBase = 3

func probeBaseAddr(k int) netip.Addr { return netip.AddrFrom4([4]byte{10, 3, 0, byte(k + 1)}) }

// register registers the record set (and the probe service's base
// instances) in Cairn and waits until its DNS answers for the last one.
func (b *dnsBench) register(ctx context.Context, s *results.DNSSuite) error {
	ins := b.set.All()
	for k := range probeBase {
		ins = append(ins, dnsdata.Instance{Service: dnsdata.ProbeService, ID: fmt.Sprintf("base-%d", k), Addr: probeBaseAddr(k)})
	}
	logf("dns: registering %d instances in Cairn (%d services x %d, %s with %d, %s with %d), 32 clients",
		len(ins), b.set.Services, b.set.Instances, dnsdata.BigService, b.set.Big, dnsdata.ProbeService, probeBase)
	s.Register = measured(b.pid, func() loadgen.Result {
		return loadgen.Closed(ctx, 32, int64(len(ins)), maxRegister, func(ctx context.Context, i int) error {
			in := ins[i]
			return b.cl.Register(ctx, cairnhttp.InstancePath(dnsdata.Namespace, in.Service, in.ID), dnsdata.Body(in.Addr))
		})
	})
	logThroughput("dns registrations", s.Register)
	if s.Register.Errors > 0 {
		return fmt.Errorf("registrations failed: %s", s.Register.FirstErr)
	}
	last := ins[b.set.Services*b.set.Instances-1]
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, err := dnsprobe.Ask(ctx, b.dnsAddr, dnsdata.Name(last.Service), dns.TypeA, dnsprobe.UDP)
		if err == nil && slices.Contains(a.A, last.Addr.String()) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Cairn's DNS does not answer %s with %s after 10s (last answer %+v, %v)", dnsdata.Name(last.Service), last.Addr, a, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// check asks both servers the same questions and compares the answers:
// a difference in rcode or in the A records of an existing name fails the
// run (the load runs would compare different work); others are reported.
func (b *dnsBench) check(ctx context.Context, s *results.DNSSuite) error {
	ask := func(what string, names []string, qtype uint16, t dnsprobe.Transport, fatal bool,
		same func(c, d dnsprobe.Answer) bool) error {
		c := results.DNSCheck{What: what, Count: len(names), Transport: t}
		for i, name := range names {
			ca, err := dnsprobe.Ask(ctx, b.dnsAddr, name, qtype, t)
			if err != nil {
				return fmt.Errorf("Cairn: %w", err)
			}
			da, err := dnsprobe.Ask(ctx, b.corednsAddr, name, qtype, t)
			if err != nil {
				return fmt.Errorf("CoreDNS: %w", err)
			}
			if i == 0 {
				c.Cairn, c.CoreDNS = ca, da
			}
			if !same(ca, da) {
				if c.Differ == 0 {
					logf("dns: %s: %s over %s: Cairn %+v, CoreDNS %+v", what, name, t, ca, da)
					c.Cairn, c.CoreDNS = ca, da
				}
				c.Differ++
			}
		}
		logf("dns: check %s over %s: %d names, %d differ; Cairn %+v; CoreDNS %+v", what, t, len(names), c.Differ, c.Cairn, c.CoreDNS)
		s.Checks = append(s.Checks, c)
		if fatal && c.Differ > 0 {
			return fmt.Errorf("%s over %s: %d of %d names answered differently (see above)", what, t, c.Differ, len(names))
		}
		return nil
	}
	sameA := func(c, d dnsprobe.Answer) bool { return c.Rcode == d.Rcode && slices.Equal(c.A, d.A) }
	sameRcode := func(c, d dnsprobe.Answer) bool { return c.Rcode == d.Rcode }
	var small []string
	for sv := range b.set.Services {
		small = append(small, dnsdata.Name(dnsdata.ServiceName(sv)))
	}
	if err := ask("A of every small service", small, dns.TypeA, dnsprobe.UDP, true, sameA); err != nil {
		return err
	}
	if b.set.Big > 0 {
		big := []string{dnsdata.Name(dnsdata.BigService)}
		// Without EDNS0 both truncate; which records a truncated answer
		// keeps depends on their order (Cairn shuffles), so compared on
		// rcode, TC and count, and reported only.
		if err := ask("A of "+dnsdata.BigService, big, dns.TypeA, dnsprobe.UDP, false, func(c, d dnsprobe.Answer) bool {
			return c.Rcode == d.Rcode && c.TC == d.TC && len(c.A) == len(d.A)
		}); err != nil {
			return err
		}
		if err := ask("A of "+dnsdata.BigService, big, dns.TypeA, dnsprobe.UDPEDNS, true, sameA); err != nil {
			return err
		}
		if err := ask("A of "+dnsdata.BigService, big, dns.TypeA, dnsprobe.TCP, true, sameA); err != nil {
			return err
		}
	}
	// SRV is not measured under load: a difference is reported only.
	if err := ask("SRV _http._tcp of "+dnsdata.ServiceName(0), []string{dnsdata.SRVName(dnsdata.ServiceName(0))}, dns.TypeSRV, dnsprobe.UDP, false,
		func(c, d dnsprobe.Answer) bool { return c.Rcode == d.Rcode && slices.Equal(c.SRV, d.SRV) }); err != nil {
		return err
	}
	missing := dnsdata.Missing(100)
	names := make([]string, len(missing))
	for i, q := range missing {
		names[i] = q.Name
	}
	return ask("A of names that do not exist", names, dns.TypeA, dnsprobe.UDP, true, sameRcode)
}

// queryFile writes a scenario's queries and returns the file and the
// dnsperf settings that go with it.
func (b *dnsBench) queryFile(scenario string) (string, dnsperf.Config, error) {
	var qs []dnsdata.Query
	cfg := dnsperf.Config{Bin: b.dnsperfBin, Clients: b.clients, Outstanding: b.outstanding, Duration: b.perfFor, Timeout: 2 * time.Second, Verbose: true}
	big := dnsdata.Query{Name: dnsdata.Name(dnsdata.BigService), Type: "A"}
	switch scenario {
	case "a":
		qs = b.set.RandomA(b.queries)
	case "big-udp":
		qs = []dnsdata.Query{big}
	case "big-edns":
		qs, cfg.EDNS = []dnsdata.Query{big}, true
	case "big-tcp":
		qs, cfg.TCP = []dnsdata.Query{big}, true
	case "nx":
		qs = dnsdata.Missing(b.queries)
	}
	path := filepath.Join(b.workdir, "queries-"+scenario+".txt")
	f, err := os.Create(path)
	if err != nil {
		return "", cfg, err
	}
	if err := dnsdata.WriteQueries(f, qs); err != nil {
		f.Close()
		return "", cfg, err
	}
	cfg.Queries = path
	return path, cfg, f.Close()
}

// perf runs each scenario's query file with dnsperf against Cairn, then
// CoreDNS, as fast as they answer; then both again paced at the same
// offered load.
func (b *dnsBench) perf(ctx context.Context, s *results.DNSSuite) error {
	for _, sc := range b.scenarios {
		if strings.HasPrefix(sc, "big") && b.set.Big == 0 {
			continue
		}
		_, cfg, err := b.queryFile(sc)
		if err != nil {
			return err
		}
		r := results.DNSRun{Scenario: sc, Mode: "max"}
		if r.Cairn, r.CoreDNS, err = b.perfPair(ctx, sc, cfg); err != nil {
			return err
		}
		s.Runs = append(s.Runs, r)
		if b.paced <= 0 {
			continue
		}
		slower := min(r.Cairn.QPS, r.CoreDNS.QPS)
		cfg.QPS = float64(int(slower*b.paced/100/100+0.5) * 100) // rounded to 100/s
		if cfg.QPS < 100 {
			continue
		}
		p := results.DNSRun{Scenario: sc, Mode: "paced", QPS: cfg.QPS}
		if p.Cairn, p.CoreDNS, err = b.perfPair(ctx, sc, cfg); err != nil {
			return err
		}
		s.Runs = append(s.Runs, p)
	}
	return nil
}

func (b *dnsBench) perfPair(ctx context.Context, sc string, cfg dnsperf.Config) (cairn, coredns dnsperf.Result, err error) {
	run := func(system, addr string, pid int) (dnsperf.Result, error) {
		host, port, err := splitHostPort(addr)
		if err != nil {
			return dnsperf.Result{}, err
		}
		c := cfg
		c.Server, c.Port = host, port
		r, err := dnsperf.Run(ctx, c, pid)
		if err != nil {
			return r, fmt.Errorf("%s %s: %w", system, sc, err)
		}
		mode := "max"
		if c.QPS > 0 {
			mode = fmt.Sprintf("paced %.0f/s", c.QPS)
		}
		logf("dnsperf %s %s (%s): %.0f QPS, %d lost, rcodes %v, response %d B; latency p50 %v p99 %v p99.9 %v max %v (dnsperf avg %v); cores: server %.2f, dnsperf %.2f, rest %.2f",
			system, sc, mode, r.QPS, r.Lost, r.RCodes, r.ResponseBytes, r.Latency.P50, r.Latency.P99, r.P999, r.Latency.Max,
			r.AvgLatency, r.ServerCores, r.ClientCores, r.OtherCores)
		return r, nil
	}
	if cairn, err = run("cairn", b.dnsAddr, b.pid); err != nil {
		return
	}
	coredns, err = run("coredns", b.corednsAddr, b.corednsPid)
	return
}

func splitHostPort(addr string) (string, int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: want ip:port: %w", addr, err)
	}
	return ap.Addr().String(), int(ap.Port()), nil
}

// visible measures registration -> visible in an answer for Cairn, and
// for CoreDNS's etcd plugin with etcd puts, polled with miekg/dns and
// then with dig.
func (b *dnsBench) visible(ctx context.Context, s *results.DNSSuite) error {
	name := dnsdata.Name(dnsdata.ProbeService)
	path := func(i int) string {
		return cairnhttp.InstancePath(dnsdata.Namespace, dnsdata.ProbeService, fmt.Sprintf("p-%06d", i))
	}
	type system struct {
		name, addr  string
		pids        []int
		add, remove func(context.Context, int) error
	}
	first := 0 // probe index of the next run's first registration, so every run uses new addresses
	systems := []system{{
		name: "cairn", addr: b.dnsAddr, pids: []int{b.pid},
		add: func(ctx context.Context, i int) error {
			return b.cl.Register(ctx, path(i), dnsdata.Body(dnsdata.ProbeAddr(i)))
		},
		remove: func(ctx context.Context, i int) error { return b.cl.Deregister(ctx, path(i)) },
	}}
	if b.etcdEndpoint != "" {
		cli, err := etcdload.Dial(ctx, b.etcdEndpoint)
		if err != nil {
			return err
		}
		defer cli.Close()
		if s.EtcdVersion, err = etcdload.Version(ctx, cli, b.etcdEndpoint); err != nil {
			return err
		}
		// SkyDNS layout: the records of probe.default.svc.cairn. are the
		// keys under /skydns/cairn/svc/default/probe/.
		prefix := "/skydns/" + strings.Join(reverse(strings.Split(strings.TrimSuffix(name, "."), ".")), "/") + "/"
		value := func(a netip.Addr) string {
			v, _ := json.Marshal(map[string]any{"host": a.String(), "port": dnsdata.Port, "ttl": b.set.TTL})
			return string(v)
		}
		for k := range probeBase {
			if _, err := cli.Put(ctx, fmt.Sprintf("%sbase-%d", prefix, k), value(probeBaseAddr(k))); err != nil {
				return err
			}
		}
		key := func(i int) string { return fmt.Sprintf("%sp-%06d", prefix, i) }
		systems = append(systems, system{
			name: "coredns-etcd", addr: b.corednsEtcdAddr, pids: []int{b.corednsEtcdPid, b.etcdPid},
			add: func(ctx context.Context, i int) error {
				_, err := cli.Put(ctx, key(i), value(dnsdata.ProbeAddr(i)))
				return err
			},
			remove: func(ctx context.Context, i int) error {
				_, err := cli.Delete(ctx, key(i))
				return err
			},
		})
	}
	// Both answer the base instances before anything is measured.
	for _, sys := range systems {
		a, err := dnsprobe.Ask(ctx, sys.addr, name, dns.TypeA, dnsprobe.UDPEDNS)
		if err != nil {
			return fmt.Errorf("%s: %w", sys.name, err)
		}
		if len(a.A) != probeBase {
			return fmt.Errorf("%s answers %s with %v, want the %d base instances", sys.name, name, a.A, probeBase)
		}
	}
	for _, poller := range []string{"miekg", "dig"} {
		n := b.visN
		if poller == "dig" {
			n = b.digN
		}
		if n <= 0 {
			continue
		}
		for _, sys := range systems {
			var poll visible.Poll
			if poller == "miekg" {
				p, err := dnsprobe.NewPoller(sys.addr, name)
				if err != nil {
					return err
				}
				defer p.Close()
				poll = p.A
			} else {
				poll = func(ctx context.Context) ([]netip.Addr, error) { return dnsprobe.Dig(ctx, sys.addr, name) }
			}
			base := first
			first += n
			addr := func(i int) netip.Addr { return dnsdata.ProbeAddr(base + i) }
			add := func(ctx context.Context, i int) error { return sys.add(ctx, base+i) }
			remove := func(ctx context.Context, i int) error { return sys.remove(ctx, base+i) }
			logf("dns: %s: registration -> visible, %d registrations, polled with %s", sys.name, n, poller)
			m := proc.StartCPU(append(slices.Clone(sys.pids), os.Getpid())...)
			r, err := visible.Run(ctx, visible.Config{N: n, Gap: b.visGap, Timeout: b.visTimeout}, addr, add, remove, poll)
			cores, machine := m.Cores()
			if err != nil {
				return fmt.Errorf("%s, %s: %w", sys.name, poller, err)
			}
			other := machine
			for _, c := range cores {
				other -= c
			}
			v := results.VisibleRun{System: sys.name, Poller: poller, OtherCores: other, Result: r}
			logf("dns: %s (%s): added p50 %v p99 %v max %v, removed p50 %v p99 %v max %v, timeouts %d/%d; %d polls (%v each), %d poll errors %s",
				sys.name, poller, r.Added.P50, r.Added.P99, r.Added.Max, r.Removed.P50, r.Removed.P99, r.Removed.Max,
				r.Added.Timeouts, r.Removed.Timeouts, r.Polls, r.MeanPoll(), r.PollErrors, r.FirstErr)
			if err := writeRaw(b.raw, sys.name+"-"+poller+"-added", r.Added.Samples); err != nil {
				return err
			}
			if err := writeRaw(b.raw, sys.name+"-"+poller+"-removed", r.Removed.Samples); err != nil {
				return err
			}
			s.Visible = append(s.Visible, v)
		}
	}
	return nil
}

func reverse(s []string) []string {
	slices.Reverse(s)
	return s
}

// runDNSZone writes the benchmark's record set as a zone file for svc.cairn.
func runDNSZone(args []string) error {
	var set dnsdata.Set
	fs := flag.NewFlagSet("dns-zone", flag.ContinueOnError)
	fs.IntVar(&set.Services, "services", 1000, "small services")
	fs.IntVar(&set.Instances, "instances", 3, "instances per small service")
	fs.IntVar(&set.Big, "big", 100, "instances of the big service")
	fs.IntVar(&set.TTL, "ttl", 5, "TTL in seconds")
	out := fs.String("out", "", "zone file to write (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("-out is required")
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := set.WriteZone(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runDNSReport prints the summary tables of a DNS benchmark result.
func runDNSReport(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want one result file")
	}
	s, err := results.ReadDNS(args[0])
	if err != nil {
		return err
	}
	results.DNSReport(os.Stdout, s)
	return nil
}

// waitDNS asks server for name until it answers (any rcode) or timeout passes.
func waitDNS(ctx context.Context, server, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if _, err := dnsprobe.Ask(ctx, server, name, dns.TypeSOA, dnsprobe.UDP); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("DNS %s not answering after %v", server, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
