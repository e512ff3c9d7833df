// Package dns answers DNS queries from the registry: A/AAAA records with
// every healthy instance of a service (as a Kubernetes headless Service
// does), SRV records per named port, subsets by zone and tag, and forwards
// other names to upstream resolvers or, by suffix, to other clusters' Cairn.
// Answers come from an immutable index that a follower of the change feed
// swaps in after each batch of changes; queries take no lock.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures the DNS server.
type Options struct {
	Registry *registry.Registry
	// Domains are the zones Cairn answers for (default "cairn" and
	// "cluster.local").
	Domains []string
	// TTL of answers (default 5s).
	TTL time.Duration
	// Upstreams receive names outside every zone and forward suffix
	// (host:port); none: such names are REFUSED.
	Upstreams []string
	// Forwards sends names under a suffix to other servers, such as
	// another cluster's Cairn ("cluster-b.local" -> ["10.0.0.2:8600"]).
	Forwards map[string][]string
	// CacheSize bounds the forwarding cache (entries; default 10,000; <0: off).
	CacheSize int
	Metrics   prometheus.Registerer
	Logger    *slog.Logger
}

// Server is the DNS server.
type Server struct {
	zones    []string // with trailing dots, longest first
	ttl      uint32
	follower *follower
	fwd      *forwarder
	log      *slog.Logger
	m        *metrics

	mu      sync.Mutex
	servers []*mdns.Server
}

// New returns a DNS server over reg; Serve starts it.
func New(o Options) (*Server, error) {
	if len(o.Domains) == 0 {
		o.Domains = []string{"cairn", "cluster.local"}
	}
	if o.TTL == 0 {
		o.TTL = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{ttl: uint32(math.Round(o.TTL.Seconds())), log: o.Logger.With("component", "dns")}
	for _, d := range o.Domains {
		z, err := zoneName(d)
		if err != nil {
			return nil, fmt.Errorf("domain %q: %w", d, err)
		}
		s.zones = append(s.zones, z)
	}
	slices.SortFunc(s.zones, func(a, b string) int { return len(b) - len(a) })
	fwd, err := newForwarder(o.Upstreams, o.Forwards, o.CacheSize)
	if err != nil {
		return nil, err
	}
	s.fwd = fwd
	s.m = newMetrics(o.Metrics)
	s.follower = newFollower(o.Registry, s.zones, s.ttl)
	return s, nil
}

// zoneName checks a domain and returns it lower-cased and fully qualified.
func zoneName(d string) (string, error) {
	d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	if d == "" {
		return "", errors.New("must not be empty")
	}
	for _, l := range strings.Split(d, ".") {
		if !isLabel(l) {
			return "", fmt.Errorf("%q is not a DNS label", l)
		}
	}
	return d + ".", nil
}

// Serve answers on addr over UDP and TCP until ctx ends. The listeners are
// open when Serve calls ready (if not nil) with their address.
func (s *Server) Serve(ctx context.Context, addr string, ready func(net.Addr)) error {
	pc, ln, err := listen(addr)
	if err != nil {
		return err
	}
	udp := &mdns.Server{PacketConn: pc, Handler: s, UDPSize: 65535}
	// MaxTCPQueries -1: no limit on queries per connection (miekg's default
	// of 128 closes the connection under pipelining clients, losing the
	// queries in flight; the DNS bench lost 483 of them per run).
	tcp := &mdns.Server{Listener: ln, Handler: s, ReadTimeout: 10 * time.Second, MaxTCPQueries: -1,
		IdleTimeout: func() time.Duration { return 10 * time.Second }}
	s.mu.Lock()
	s.servers = append(s.servers, udp, tcp)
	s.mu.Unlock()
	go s.follower.run(ctx)
	errc := make(chan error, 2)
	go func() { errc <- udp.ActivateAndServe() }()
	go func() { errc <- tcp.ActivateAndServe() }()
	if ready != nil {
		ready(pc.LocalAddr())
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	_ = udp.Shutdown()
	_ = tcp.Shutdown()
	return err
}

// listen opens UDP and TCP on the same port. When addr asks for any port
// (:0), the port UDP got may be taken for TCP by someone else: then it
// tries other ports.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || attempt == 9 {
			return nil, nil, err
		}
	}
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	start := time.Now()
	m := s.answer(w, req)
	qtype := "none"
	if len(req.Question) > 0 {
		qtype = typeLabel(req.Question[0].Qtype)
	}
	s.m.observe(qtype, m.Rcode, time.Since(start))
	_ = w.WriteMsg(m)
}

func (s *Server) answer(w mdns.ResponseWriter, req *mdns.Msg) *mdns.Msg {
	m := new(mdns.Msg)
	if req.Opcode != mdns.OpcodeQuery || len(req.Question) != 1 {
		m.SetRcode(req, mdns.RcodeNotImplemented)
		if len(req.Question) != 1 {
			m.SetRcode(req, mdns.RcodeFormatError)
		}
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	var zone string
	var pq query
	for _, z := range s.zones {
		if p, ok := parseName(name, z); ok {
			zone, pq = z, p
			break
		}
	}
	if zone == "" {
		if r := s.fwd.forward(req, s.m); r != nil {
			r.RecursionAvailable = true // Cairn resolved it for the client
			s.fit(w, req, r)
			return r
		}
		m.SetRcode(req, mdns.RcodeRefused)
		return m
	}
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = s.fwd.recursive()
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		m.SetRcode(req, mdns.RcodeRefused)
		return m
	}
	s.fill(m, q, pq)
	if len(m.Answer) == 0 {
		m.Ns = []mdns.RR{s.soa(zone)}
	}
	s.fit(w, req, m)
	return m
}

// fill puts the answer to q into m, or sets NXDOMAIN.
func (s *Server) fill(m *mdns.Msg, q mdns.Question, pq query) {
	ix := s.follower.load()
	switch pq.kind {
	case kindApex:
		switch q.Qtype {
		case mdns.TypeSOA, mdns.TypeANY:
			m.Answer = append(m.Answer, s.soa(pq.zone))
		case mdns.TypeNS:
			m.Answer = append(m.Answer, &mdns.NS{Hdr: s.hdr(q.Name, mdns.TypeNS), Ns: "ns." + pq.zone})
		}
		return
	case kindEmpty:
		if pq.namespace != "" && ix.namespaces[pq.namespace] == 0 {
			m.Rcode = mdns.RcodeNameError
		}
		return
	case kindNone:
		m.Rcode = mdns.RcodeNameError
		return
	}
	node := ix.services[registry.ServiceKey{Namespace: pq.namespace, Name: pq.service}]
	if node == nil {
		m.Rcode = mdns.RcodeNameError
		return
	}
	base := pq.service + "." + pq.namespace + ".svc." + pq.zone
	if pq.kind == kindInstance {
		t := node.byLabel(pq.instance)
		if t == nil {
			m.Rcode = mdns.RcodeNameError
			return
		}
		m.Answer = s.addrs(m.Answer, q.Name, q.Qtype, []*target{t})
		return
	}
	ts := subset(node, pq)
	if pq.port != "" {
		if !serviceHasPort(node, pq.port, pq.proto) { // a subset without the port is NODATA, not NXDOMAIN
			m.Rcode = mdns.RcodeNameError
			return
		}
		if q.Qtype == mdns.TypeSRV || q.Qtype == mdns.TypeANY {
			s.srv(m, q.Name, base, ts, pq.port, pq.proto)
		}
		return
	}
	switch q.Qtype {
	case mdns.TypeA, mdns.TypeAAAA, mdns.TypeANY:
		if pq.subset == "" && q.Name == base {
			m.Answer = shared(ts, slices.Index(s.zones, pq.zone), q.Qtype)
		} else {
			m.Answer = s.addrs(m.Answer, q.Name, q.Qtype, ts)
		}
	case mdns.TypeSRV:
		s.srv(m, q.Name, base, ts, "", "")
	}
}

// subset keeps the targets of a zone or tag subset, shuffled by weight.
func subset(node *svcNode, pq query) []*target {
	out := make([]*target, 0, len(node.insts))
	for i := range node.insts {
		t := &node.insts[i]
		switch pq.subset {
		case "zone":
			if !strings.EqualFold(t.in.Zone, pq.value) {
				continue
			}
		case "tag":
			if !slices.ContainsFunc(t.in.Tags, func(tag string) bool { return strings.EqualFold(tag, pq.value) }) {
				continue
			}
		}
		out = append(out, t)
	}
	shuffle(out)
	return out
}

// shuffle orders targets at random, heavier instances first more often
// (a weighted random permutation: sort by u^(1/weight)).
func shuffle(ts []*target) {
	if len(ts) < 2 {
		return
	}
	same := true
	for _, t := range ts[1:] {
		if t.in.Weight != ts[0].in.Weight {
			same = false
			break
		}
	}
	if same {
		rand.Shuffle(len(ts), func(i, j int) { ts[i], ts[j] = ts[j], ts[i] })
		return
	}
	keys := make(map[*target]float64, len(ts))
	for _, t := range ts {
		keys[t] = math.Pow(rand.Float64(), 1/float64(max(t.in.Weight, 1)))
	}
	slices.SortFunc(ts, func(a, b *target) int {
		switch ka, kb := keys[a], keys[b]; {
		case ka > kb:
			return -1
		case ka < kb:
			return 1
		}
		return 0
	})
}

func portProto(p registry.Port) string {
	if p.Protocol == "udp" {
		return "udp"
	}
	return "tcp"
}

func serviceHasPort(node *svcNode, port, proto string) bool {
	for i := range node.insts {
		if p, ok := node.insts[i].in.PortNamed(port); ok && portProto(p) == proto {
			return true
		}
	}
	return false
}

func (s *Server) hdr(name string, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: s.ttl}
}

// addrs appends the A and/or AAAA records of the targets. The records of
// one answer are allocated together (a 100-address answer is 2
// allocations, not 100).
func (s *Server) addrs(rrs []mdns.RR, name string, qtype uint16, ts []*target) []mdns.RR {
	var as []mdns.A
	var aaaas []mdns.AAAA
	for _, t := range ts {
		switch {
		case t.ip == nil:
		case t.v4 && (qtype == mdns.TypeA || qtype == mdns.TypeANY):
			if as == nil {
				as = make([]mdns.A, 0, len(ts))
			}
			as = append(as, mdns.A{Hdr: s.hdr(name, mdns.TypeA), A: t.ip})
			rrs = append(rrs, &as[len(as)-1])
		case !t.v4 && (qtype == mdns.TypeAAAA || qtype == mdns.TypeANY):
			if aaaas == nil {
				aaaas = make([]mdns.AAAA, 0, len(ts))
			}
			aaaas = append(aaaas, mdns.AAAA{Hdr: s.hdr(name, mdns.TypeAAAA), AAAA: t.ip})
			rrs = append(rrs, &aaaas[len(aaaas)-1])
		}
	}
	return rrs
}

// shared answers the service's own name with the records built with the
// index, in the targets' (shuffled) order.
func shared(ts []*target, zi int, qtype uint16) []mdns.RR {
	out := make([]mdns.RR, 0, len(ts))
	for _, t := range ts {
		rr := t.rr[zi]
		if rr == nil {
			continue
		}
		if rt := rr.Header().Rrtype; qtype == mdns.TypeANY || rt == qtype {
			out = append(out, rr)
		}
	}
	return out
}

// srv appends SRV records (one per instance and named port, or only the
// given port) and the targets' addresses as additional records.
func (s *Server) srv(m *mdns.Msg, name, base string, ts []*target, port, proto string) {
	for _, t := range ts {
		tname := t.label + "." + base
		if t.ip == nil {
			tname = mdns.Fqdn(t.in.Address) // a host name is its own target
		}
		added := false
		for _, p := range t.in.Ports {
			if port != "" && (p.Name != port || portProto(p) != proto) {
				continue
			}
			m.Answer = append(m.Answer, &mdns.SRV{Hdr: s.hdr(name, mdns.TypeSRV), Priority: 0,
				Weight: uint16(min(t.in.Weight, math.MaxUint16)), Port: uint16(p.Port), Target: tname})
			added = true
		}
		if added && t.ip != nil {
			m.Extra = s.addrs(m.Extra, tname, mdns.TypeANY, []*target{t})
		}
	}
}

func (s *Server) soa(zone string) mdns.RR {
	rev := s.follower.load().rev
	return &mdns.SOA{Hdr: s.hdr(zone, mdns.TypeSOA), Ns: "ns." + zone, Mbox: "hostmaster." + zone,
		Serial: uint32(rev), Refresh: 3600, Retry: 600, Expire: 86400, Minttl: s.ttl}
}

// fit sets EDNS0 on the reply when the query had it and truncates a UDP
// reply to what the client can take (512 bytes, or its EDNS0 size), with
// the TC bit so that it asks again over TCP.
func (s *Server) fit(w mdns.ResponseWriter, req, m *mdns.Msg) {
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = int(max(opt.UDPSize(), mdns.MinMsgSize))
		size = min(size, 4096)
		if have := m.IsEdns0(); have != nil {
			have.SetUDPSize(uint16(size))
		} else {
			m.SetEdns0(uint16(size), false)
		}
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); !udp {
		size = mdns.MaxMsgSize
	}
	m.Truncate(size)
	// Truncate leaves a message that fits uncompressed uncompressed; large
	// answers are compressed anyway (a 100-address answer: 3,750 bytes
	// plain, 1,667 compressed), keeping UDP datagrams small enough not to
	// fragment, as CoreDNS does.
	if len(m.Answer)+len(m.Extra) > 8 {
		m.Compress = true
	}
}

func typeLabel(t uint16) string {
	switch t {
	case mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypeSOA, mdns.TypeNS, mdns.TypeANY,
		mdns.TypePTR, mdns.TypeTXT, mdns.TypeMX, mdns.TypeCNAME, mdns.TypeHTTPS:
		return mdns.TypeToString[t]
	}
	return "other"
}
