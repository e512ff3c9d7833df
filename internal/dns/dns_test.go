package dns

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type testDNS struct {
	addr string // 127.0.0.1:port, UDP and TCP
	port string
	reg  *registry.Registry
	srv  *Server
}

func startDNS(t *testing.T, o Options) *testDNS {
	t.Helper()
	if o.Registry == nil {
		reg, err := registry.New(registry.Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		o.Registry = reg
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, "127.0.0.1:0", func(a net.Addr) { ready <- a }) }()
	var a net.Addr
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	_, port, _ := net.SplitHostPort(a.String())
	return &testDNS{addr: a.String(), port: port, reg: o.Registry, srv: s}
}

// register adds an instance and waits until DNS answers from its revision.
func (d *testDNS) register(t *testing.T, in registry.Instance) {
	t.Helper()
	_, rev, err := d.reg.Register(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	d.wait(t, rev)
}

func (d *testDNS) wait(t *testing.T, rev int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.srv.follower.waitRevision(ctx, rev); err != nil {
		t.Fatalf("DNS index did not reach revision %d: %v", rev, err)
	}
}

func inst(svc, id, addr string, mod ...func(*registry.Instance)) registry.Instance {
	in := registry.Instance{Namespace: "default", Service: svc, ID: id, Address: addr,
		Ports: []registry.Port{{Name: "http", Port: 8080, Protocol: "http"}}}
	for _, m := range mod {
		m(&in)
	}
	return in
}

// digResult is what the real dig printed.
type digResult struct {
	status string   // NOERROR, NXDOMAIN, ...
	flags  []string // qr aa tc rd ra
	answer []string // the answer section's records, normalized
	auth   []string
	extra  []string
	raw    string
}

func (r digResult) has(flag string) bool { return slices.Contains(r.flags, flag) }

// dig runs Debian's dig against the server.
func (d *testDNS) dig(t *testing.T, args ...string) digResult {
	t.Helper()
	path, err := exec.LookPath("dig")
	if err != nil {
		t.Fatal("dig is not installed: scripts/test.sh installs it (apt-get install dnsutils)")
	}
	all := append([]string{"@127.0.0.1", "-p", d.port, "+time=2", "+tries=1", "+norecurse"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, all...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", all, err, out)
	}
	r := digResult{raw: string(out)}
	section := ""
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			if i := strings.Index(line, "status: "); i >= 0 {
				r.status = strings.TrimSuffix(strings.Fields(line[i+8:])[0], ",")
			}
		case strings.HasPrefix(line, ";; flags: "):
			f := strings.TrimPrefix(line, ";; flags: ")
			f, _, _ = strings.Cut(f, ";")
			r.flags = strings.Fields(f)
		case strings.HasPrefix(line, ";; ANSWER SECTION"):
			section = "answer"
		case strings.HasPrefix(line, ";; AUTHORITY SECTION"):
			section = "auth"
		case strings.HasPrefix(line, ";; ADDITIONAL SECTION"):
			section = "extra"
		case line == "" || strings.HasPrefix(line, ";"):
			if line == "" {
				section = ""
			}
		default:
			rr := strings.Join(strings.Fields(line), " ")
			switch section {
			case "answer":
				r.answer = append(r.answer, rr)
			case "auth":
				r.auth = append(r.auth, rr)
			case "extra":
				r.extra = append(r.extra, rr)
			}
		}
	}
	if r.status == "" {
		t.Fatalf("dig printed no header:\n%s", out)
	}
	return r
}

// values returns the last field of each record (the address, the target).
func values(rrs []string) []string {
	var out []string
	for _, rr := range rrs {
		f := strings.Fields(rr)
		out = append(out, f[len(f)-1])
	}
	sort.Strings(out)
	return out
}

// resolver is Go's net.Resolver talking to the server.
func (d *testDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, network, d.addr)
	}}
}

func TestHeadlessAnswers(t *testing.T) {
	d := startDNS(t, Options{TTL: 7 * time.Second})
	ctx := context.Background()
	d.register(t, inst("web", "web-1", "10.0.0.1", func(in *registry.Instance) { in.Zone = "z1"; in.Tags = []string{"canary"} }))
	d.register(t, inst("web", "web-2", "10.0.0.2", func(in *registry.Instance) { in.Zone = "z2" }))
	d.register(t, inst("web", "web-3", "fd00::3", func(in *registry.Instance) { in.Zone = "z1" }))
	d.register(t, inst("web", "web-down", "10.0.0.9", func(in *registry.Instance) { in.Status = registry.StatusDown }))
	d.register(t, inst("web", "web-oos", "10.0.0.8", func(in *registry.Instance) { in.StatusOverride = registry.StatusOutOfService }))
	d.register(t, inst("web", "web-sick", "10.0.0.7", func(in *registry.Instance) { in.Check = &registry.CheckSpec{Type: "tcp"} }))
	sick := registry.InstanceKey{Namespace: "default", Service: "web", ID: "web-sick"}
	if err := d.reg.SetHealth(sick, registry.HealthFailing, "refused"); err != nil {
		t.Fatal(err)
	}
	d.wait(t, d.reg.Revision())

	// A: every healthy IPv4 instance, never the down, out-of-service or failing ones.
	for _, name := range []string{"web.default.svc.cairn.", "web.default.svc.cluster.local.", "WeB.DeFaUlT.SvC.CaIrN."} {
		r := d.dig(t, name, "A")
		if r.status != "NOERROR" || !r.has("aa") || fmt.Sprint(values(r.answer)) != "[10.0.0.1 10.0.0.2]" {
			t.Fatalf("A %s: %s %v %v\n%s", name, r.status, r.flags, r.answer, r.raw)
		}
		if f := strings.Fields(r.answer[0]); f[1] != "7" || !strings.EqualFold(f[0], name) {
			t.Fatalf("TTL or owner name: %v", f)
		}
	}
	r := d.dig(t, "web.default.svc.cairn", "AAAA")
	if fmt.Sprint(values(r.answer)) != "[fd00::3]" {
		t.Fatalf("AAAA: %v", r.answer)
	}
	// Go's resolver sees the same.
	addrs, err := d.resolver().LookupHost(ctx, "web.default.svc.cairn")
	sort.Strings(addrs)
	if err != nil || fmt.Sprint(addrs) != "[10.0.0.1 10.0.0.2 fd00::3]" {
		t.Fatalf("net.Resolver LookupHost: %v %v", addrs, err)
	}

	// Subsets by zone and by tag.
	if r := d.dig(t, "z1.zone.web.default.svc.cairn", "A"); fmt.Sprint(values(r.answer)) != "[10.0.0.1]" {
		t.Fatalf("zone subset: %v", r.answer)
	}
	if r := d.dig(t, "canary.tag.web.default.svc.cairn", "A"); fmt.Sprint(values(r.answer)) != "[10.0.0.1]" {
		t.Fatalf("tag subset: %v", r.answer)
	}
	// An empty subset of a known service: NODATA.
	if r := d.dig(t, "z9.zone.web.default.svc.cairn", "A"); r.status != "NOERROR" || len(r.answer) != 0 || len(r.auth) != 1 {
		t.Fatalf("empty subset: %s %v %v", r.status, r.answer, r.auth)
	}
}

func TestSRV(t *testing.T) {
	d := startDNS(t, Options{})
	two := func(in *registry.Instance) {
		in.Ports = []registry.Port{{Name: "http", Port: 8080, Protocol: "http"}, {Name: "dns", Port: 5353, Protocol: "udp"}}
	}
	d.register(t, inst("api", "api-1", "10.0.1.1", two, func(in *registry.Instance) { in.Weight = 3 }))
	d.register(t, inst("api", "10.0.1.2:api:8080", "10.0.1.2", two)) // a Eureka-style id: not a DNS label
	d.register(t, inst("api", "api-host", "backend.example.com"))

	r := d.dig(t, "_http._tcp.api.default.svc.cairn", "SRV")
	if r.status != "NOERROR" || len(r.answer) != 3 {
		t.Fatalf("SRV: %s %v\n%s", r.status, r.answer, r.raw)
	}
	got := fmt.Sprint(values(r.answer))
	want := "[10-0-1-2.api.default.svc.cairn. api-1.api.default.svc.cairn. backend.example.com.]"
	if got != want {
		t.Fatalf("SRV targets %s, want %s", got, want)
	}
	for _, rr := range r.answer {
		if f := strings.Fields(rr); f[6] != "8080" || (strings.HasPrefix(f[7], "api-1.") && f[5] != "3") {
			t.Fatalf("SRV record %q: port 8080 and weight 3 for api-1", rr)
		}
	}
	// The targets' addresses come along, and each target name resolves.
	if fmt.Sprint(values(r.extra)) != "[10.0.1.1 10.0.1.2]" {
		t.Fatalf("additional: %v", r.extra)
	}
	if r := d.dig(t, "10-0-1-2.api.default.svc.cairn", "A"); fmt.Sprint(values(r.answer)) != "[10.0.1.2]" {
		t.Fatalf("target name: %v", r.answer)
	}
	// UDP ports under _udp; an SRV query of the service lists every port.
	if r := d.dig(t, "_dns._udp.api.default.svc.cairn", "SRV"); len(r.answer) != 2 {
		t.Fatalf("_dns._udp: %v", r.answer)
	}
	if r := d.dig(t, "api.default.svc.cairn", "SRV"); len(r.answer) != 5 {
		t.Fatalf("SRV of the service: %v", r.answer)
	}
	// Unknown port: NXDOMAIN; known name, no SRV for A: NODATA.
	if r := d.dig(t, "_grpc._tcp.api.default.svc.cairn", "SRV"); r.status != "NXDOMAIN" {
		t.Fatalf("unknown port: %s", r.status)
	}
	// Go's resolver.
	cname, srvs, err := d.resolver().LookupSRV(context.Background(), "http", "tcp", "api.default.svc.cairn")
	if err != nil || len(srvs) != 3 || cname != "_http._tcp.api.default.svc.cairn." {
		t.Fatalf("net.Resolver LookupSRV: %q %v %v", cname, srvs, err)
	}
}

func TestNXDOMAINAndNODATA(t *testing.T) {
	d := startDNS(t, Options{})
	d.register(t, inst("web", "web-1", "10.0.0.1"))
	d.register(t, inst("empty", "e-1", "10.0.0.2", func(in *registry.Instance) { in.Status = registry.StatusDown }))
	for _, tc := range []struct {
		name, qtype, status string
		answers             int
	}{
		{"nope.default.svc.cairn", "A", "NXDOMAIN", 0},
		{"web.nope.svc.cairn", "A", "NXDOMAIN", 0},
		{"x.y.web.default.svc.cairn", "A", "NXDOMAIN", 0},
		{"web.default.cairn", "A", "NXDOMAIN", 0},
		{"nope.web.default.svc.cairn", "A", "NXDOMAIN", 0},
		{"web.default.svc.cairn", "TXT", "NOERROR", 0},     // known name, no such type
		{"web.default.svc.cairn", "AAAA", "NOERROR", 0},    // no IPv6 instance
		{"empty.default.svc.cairn", "A", "NOERROR", 0},     // known service, none healthy
		{"default.svc.cairn", "A", "NOERROR", 0},           // an empty non-terminal
		{"svc.cairn", "A", "NOERROR", 0},                   // an empty non-terminal
		{"cairn", "SOA", "NOERROR", 1},                     // the apex
		{"cluster.local", "NS", "NOERROR", 1},              // the apex
		{"web-1.web.default.svc.cairn", "A", "NOERROR", 1}, // an instance's own name
	} {
		r := d.dig(t, tc.name, tc.qtype)
		if r.status != tc.status || len(r.answer) != tc.answers {
			t.Fatalf("%s %s: %s %v, want %s with %d answers\n%s", tc.name, tc.qtype, r.status, r.answer, tc.status, tc.answers, r.raw)
		}
		if tc.answers == 0 && (len(r.auth) != 1 || !strings.Contains(r.auth[0], "SOA")) {
			t.Fatalf("%s %s: no SOA in the authority section: %v", tc.name, tc.qtype, r.auth)
		}
	}
	// Names outside Cairn's zones with no upstream: REFUSED.
	if r := d.dig(t, "example.org", "A"); r.status != "REFUSED" {
		t.Fatalf("outside the zones: %s", r.status)
	}
}

func TestTruncationAndTCP(t *testing.T) {
	d := startDNS(t, Options{})
	for i := 0; i < 100; i++ {
		_, _, err := d.reg.Register(context.Background(), inst("big", fmt.Sprintf("b-%03d", i), fmt.Sprintf("10.2.%d.%d", i/250, i%250+1)))
		if err != nil {
			t.Fatal(err)
		}
	}
	d.wait(t, d.reg.Revision())
	// Plain UDP, no EDNS0: 512 bytes, TC set, and dig told not to retry.
	r := d.dig(t, "+noedns", "+ignore", "big.default.svc.cairn", "A")
	if !r.has("tc") || len(r.answer) >= 100 {
		t.Fatalf("UDP 512: flags %v, %d answers", r.flags, len(r.answer))
	}
	// EDNS0 4096: more fits.
	r2 := d.dig(t, "+bufsize=4096", "+ignore", "big.default.svc.cairn", "A")
	if len(r2.answer) <= len(r.answer) || !strings.Contains(r2.raw, "EDNS: version: 0") {
		t.Fatalf("EDNS0: %d answers (UDP 512 had %d)\n%s", len(r2.answer), len(r.answer), r2.raw)
	}
	// dig retries a truncated answer over TCP and gets all of it; +tcp too.
	for _, args := range [][]string{{"+noedns"}, {"+tcp"}} {
		r := d.dig(t, append(args, "big.default.svc.cairn", "A")...)
		if r.has("tc") || len(r.answer) != 100 {
			t.Fatalf("%v: flags %v, %d answers", args, r.flags, len(r.answer))
		}
	}
	addrs, err := d.resolver().LookupHost(context.Background(), "big.default.svc.cairn")
	if err != nil || len(addrs) != 100 {
		t.Fatalf("net.Resolver over a truncated answer: %d %v", len(addrs), err)
	}
}

func TestShuffledOrder(t *testing.T) {
	d := startDNS(t, Options{})
	for i := 1; i <= 8; i++ {
		d.register(t, inst("s", fmt.Sprint("s-", i), fmt.Sprint("10.3.0.", i)))
	}
	firsts := map[string]bool{}
	for i := 0; i < 20; i++ {
		r := d.dig(t, "s.default.svc.cairn", "A")
		firsts[strings.Fields(r.answer[0])[4]] = true
	}
	if len(firsts) < 3 {
		t.Fatalf("20 answers began with only %d different addresses", len(firsts))
	}
}

// TestChangesFollowTheFeed: a registration, a failing health check and a
// deregistration change the answers at once.
func TestChangesFollowTheFeed(t *testing.T) {
	d := startDNS(t, Options{})
	ctx := context.Background()
	d.register(t, inst("live", "l-1", "10.4.0.1", func(in *registry.Instance) { in.Check = &registry.CheckSpec{Type: "tcp"} }))
	k := registry.InstanceKey{Namespace: "default", Service: "live", ID: "l-1"}
	answer := func() string { return fmt.Sprint(values(d.dig(t, "live.default.svc.cairn", "A").answer)) }
	if a := answer(); a != "[]" {
		t.Fatalf("before its first check passed: %s", a)
	}
	d.reg.SetHealth(k, registry.HealthPassing, "")
	d.wait(t, d.reg.Revision())
	if a := answer(); a != "[10.4.0.1]" {
		t.Fatalf("after passing: %s", a)
	}
	d.reg.SetHealth(k, registry.HealthFailing, "timeout")
	d.wait(t, d.reg.Revision())
	if a := answer(); a != "[]" {
		t.Fatalf("after failing: %s", a)
	}
	rev, _ := d.reg.Deregister(ctx, k)
	d.wait(t, rev)
	if r := d.dig(t, "live.default.svc.cairn", "A"); r.status != "NXDOMAIN" {
		t.Fatalf("after the last instance left: %s", r.status)
	}
}

// upstream is a second DNS server, the "real" resolver Cairn forwards to.
func upstream(t *testing.T, answers map[string]string) (string, *atomic.Int64) {
	t.Helper()
	count := new(atomic.Int64)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		count.Add(1)
		m := new(mdns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		if ip, ok := answers[strings.ToLower(q.Name)]; ok && q.Qtype == mdns.TypeA {
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.ParseIP(ip)})
		} else {
			m.Rcode = mdns.RcodeNameError
			m.Ns = append(m.Ns, &mdns.SOA{Hdr: mdns.RR_Header{Name: "org.", Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: 60},
				Ns: "ns.org.", Mbox: "h.org.", Serial: 1, Minttl: 30})
		}
		_ = w.WriteMsg(m)
	})
	srv := &mdns.Server{PacketConn: pc, Handler: h}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String(), count
}

func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	total := 0.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		total += d.GetCounter().GetValue()
	}
	return total
}

func TestForwardingToUpstream(t *testing.T) {
	up, count := upstream(t, map[string]string{"example.org.": "93.184.216.34"})
	d := startDNS(t, Options{Upstreams: []string{up}})
	r := d.dig(t, "+recurse", "example.org", "A")
	if r.status != "NOERROR" || fmt.Sprint(values(r.answer)) != "[93.184.216.34]" || !r.has("ra") {
		t.Fatalf("forwarded: %s %v %v\n%s", r.status, r.flags, r.answer, r.raw)
	}
	// Cached: the upstream is not asked again, and the TTL counts down from 60.
	r = d.dig(t, "+recurse", "EXAMPLE.org", "A")
	if count.Load() != 1 || counter(t, d.srv.m.cacheHits) != 1 {
		t.Fatalf("second query: upstream asked %d times, cache hits %v", count.Load(), counter(t, d.srv.m.cacheHits))
	}
	if ttl := strings.Fields(r.answer[0])[1]; ttl > "60" || ttl == "0" {
		t.Fatalf("cached TTL %s", ttl)
	}
	// Negative answers are forwarded and cached too.
	if r := d.dig(t, "+recurse", "nothing.org", "A"); r.status != "NXDOMAIN" {
		t.Fatalf("forwarded NXDOMAIN: %s", r.status)
	}
	d.dig(t, "+recurse", "nothing.org", "A")
	if count.Load() != 2 {
		t.Fatalf("negative answer not cached: upstream asked %d times", count.Load())
	}
	// Cairn's own names never leave.
	d.dig(t, "web.default.svc.cairn", "A")
	if count.Load() != 2 {
		t.Fatal("a Cairn name was forwarded")
	}
	// An upstream that does not answer: SERVFAIL, not a hang.
	dead := startDNS(t, Options{Upstreams: []string{"127.0.0.1:9"}})
	if r := dead.dig(t, "+time=5", "+recurse", "example.org", "A"); r.status != "SERVFAIL" {
		t.Fatalf("dead upstream: %s", r.status)
	}
}

// TestClusterSuffixForwarding: cluster A's Cairn answers its own zone and
// forwards *.cluster-b.local to cluster B's Cairn.
func TestClusterSuffixForwarding(t *testing.T) {
	b := startDNS(t, Options{Domains: []string{"cluster-b.local"}})
	b.register(t, inst("orders", "o-1", "10.20.0.1"))
	a := startDNS(t, Options{Domains: []string{"cluster-a.local"}, Forwards: map[string][]string{"cluster-b.local": {b.addr}}})
	a.register(t, inst("web", "w-1", "10.10.0.1"))

	if r := a.dig(t, "web.default.svc.cluster-a.local", "A"); fmt.Sprint(values(r.answer)) != "[10.10.0.1]" {
		t.Fatalf("local zone: %v", r.answer)
	}
	r := a.dig(t, "orders.default.svc.cluster-b.local", "A")
	if r.status != "NOERROR" || fmt.Sprint(values(r.answer)) != "[10.20.0.1]" {
		t.Fatalf("forwarded to cluster B: %s %v\n%s", r.status, r.answer, r.raw)
	}
	if r := a.dig(t, "nope.default.svc.cluster-b.local", "A"); r.status != "NXDOMAIN" {
		t.Fatalf("unknown in cluster B: %s", r.status)
	}
	// Not under any zone or suffix, and no upstream: refused.
	if r := a.dig(t, "orders.default.svc.cluster-c.local", "A"); r.status != "REFUSED" {
		t.Fatalf("cluster C: %s", r.status)
	}
	if got := counter(t, a.srv.m.forwarded); got != 2 {
		t.Fatalf("forwarded %v queries, want 2", got)
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, o := range []Options{
		{Domains: []string{"bad_domain"}},
		{Upstreams: []string{"not-an-ip:53"}},
		{Forwards: map[string][]string{"b.local": {}}},
		{Forwards: map[string][]string{"b.local": {"1.2.3.4:x"}}},
	} {
		reg, _ := registry.New(registry.Config{}, nil)
		if _, err := New(Options{Registry: reg, Domains: o.Domains, Upstreams: o.Upstreams, Forwards: o.Forwards}); err == nil {
			t.Errorf("%+v accepted", o)
		}
		reg.Close()
	}
}

// TestManyQueriesOnOneTCPConnection: a client may send any number of
// queries on one TCP connection (miekg's default closes it after 128).
func TestManyQueriesOnOneTCPConnection(t *testing.T) {
	d := startDNS(t, Options{})
	d.register(t, inst("web", "web-1", "10.0.0.1"))
	c := &mdns.Client{Net: "tcp", Timeout: 2 * time.Second}
	conn, err := c.Dial(d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 300; i++ {
		req := new(mdns.Msg)
		req.SetQuestion("web.default.svc.cairn.", mdns.TypeA)
		resp, _, err := c.ExchangeWithConn(req, conn)
		if err != nil || len(resp.Answer) != 1 {
			t.Fatalf("query %d on one connection: %v %v", i, resp, err)
		}
	}
}

// TestLargeAnswersCompressed: a 100-address answer over EDNS0 is
// compressed (as from CoreDNS), less than half its plain size.
func TestLargeAnswersCompressed(t *testing.T) {
	d := startDNS(t, Options{})
	for i := 0; i < 100; i++ {
		if _, _, err := d.reg.Register(context.Background(), inst("big", fmt.Sprintf("b-%03d", i), fmt.Sprintf("10.2.0.%d", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	d.wait(t, d.reg.Revision())
	req := new(mdns.Msg)
	req.SetQuestion("big.default.svc.cairn.", mdns.TypeA)
	req.SetEdns0(4096, false)
	// Raw UDP, to see the datagram's size on the wire.
	conn, err := net.Dial("udp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wire, _ := req.Pack()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(wire); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	resp := new(mdns.Msg)
	if err := resp.Unpack(buf[:n]); err != nil || len(resp.Answer) != 100 || resp.Truncated {
		t.Fatalf("EDNS0 answer: %d records, tc %v, %v", len(resp.Answer), resp.Truncated, err)
	}
	if n > 1700 { // 16 bytes a record with the owner name compressed; 3,750 without
		t.Fatalf("a 100-address answer of %d bytes: not compressed", n)
	}
}
