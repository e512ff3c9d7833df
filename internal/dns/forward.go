package dns

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// forwarder sends names Cairn does not own to upstream resolvers, or by
// suffix to other servers (another cluster's Cairn), and caches answers
// for their TTL.
type forwarder struct {
	upstreams []string
	suffixes  []suffixRoute // longest suffix first
	client    *mdns.Client
	tcp       *mdns.Client

	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
	max   int
}

type suffixRoute struct {
	suffix  string // fully qualified, lower case
	servers []string
}

type cacheKey struct {
	name   string
	qtype  uint16
	qclass uint16
	do     bool
}

type cacheEntry struct {
	msg     *mdns.Msg
	expires time.Time
}

const maxCacheTTL = time.Hour

func newForwarder(upstreams []string, forwards map[string][]string, size int) (*forwarder, error) {
	f := &forwarder{
		client: &mdns.Client{Net: "udp", Timeout: 2 * time.Second, UDPSize: 4096},
		tcp:    &mdns.Client{Net: "tcp", Timeout: 2 * time.Second},
		cache:  map[cacheKey]cacheEntry{}, max: size,
	}
	if f.max == 0 {
		f.max = 10_000
	}
	for _, u := range upstreams {
		a, err := hostPort(u)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", u, err)
		}
		f.upstreams = append(f.upstreams, a)
	}
	for suffix, servers := range forwards {
		z, err := zoneName(suffix)
		if err != nil {
			return nil, fmt.Errorf("forward %q: %w", suffix, err)
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("forward %q: no servers", suffix)
		}
		r := suffixRoute{suffix: z}
		for _, s := range servers {
			a, err := hostPort(s)
			if err != nil {
				return nil, fmt.Errorf("forward %q: server %q: %w", suffix, s, err)
			}
			r.servers = append(r.servers, a)
		}
		f.suffixes = append(f.suffixes, r)
	}
	slices.SortFunc(f.suffixes, func(a, b suffixRoute) int { return len(b.suffix) - len(a.suffix) })
	return f, nil
}

// hostPort checks an IP:port, adding port 53 to a bare IP.
func hostPort(s string) (string, error) {
	if ip := net.ParseIP(s); ip != nil {
		return net.JoinHostPort(s, "53"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", err
	}
	if net.ParseIP(host) == nil {
		return "", errors.New("must be an IP address, with an optional port")
	}
	if _, err := net.LookupPort("udp", port); err != nil {
		return "", err
	}
	return s, nil
}

// recursive reports whether Cairn resolves names it does not own.
func (f *forwarder) recursive() bool { return len(f.upstreams) > 0 }

// servers returns where a name goes: a suffix route, else the upstreams.
func (f *forwarder) servers(name string) ([]string, string) {
	for _, r := range f.suffixes {
		if name == r.suffix || strings.HasSuffix(name, "."+r.suffix) {
			return r.servers, "cluster"
		}
	}
	return f.upstreams, "upstream"
}

// forward answers req from the cache or the servers for its name; nil when
// no server takes the name.
func (f *forwarder) forward(req *mdns.Msg, m *metrics) *mdns.Msg {
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	servers, kind := f.servers(name)
	if len(servers) == 0 {
		return nil
	}
	do := false
	if opt := req.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	key := cacheKey{name, q.Qtype, q.Qclass, do}
	if r := f.cached(key, req); r != nil {
		m.cacheHits.Inc()
		return r
	}
	m.cacheMisses.Inc()
	m.forwarded.WithLabelValues(kind).Inc()
	out := req.Copy()
	out.Id = mdns.Id()
	var resp *mdns.Msg
	var err error
	for _, s := range servers {
		resp, _, err = f.client.Exchange(out, s)
		if err == nil && resp.Truncated {
			resp, _, err = f.tcp.Exchange(out, s)
		}
		if err == nil {
			break
		}
	}
	if err != nil || resp == nil {
		m.forwardErrors.WithLabelValues(kind).Inc()
		r := new(mdns.Msg)
		r.SetRcode(req, mdns.RcodeServerFailure)
		return r
	}
	f.store(key, resp)
	resp.Id = req.Id
	return resp
}

func (f *forwarder) cached(key cacheKey, req *mdns.Msg) *mdns.Msg {
	if f.max < 0 {
		return nil
	}
	f.mu.Lock()
	e, ok := f.cache[key]
	f.mu.Unlock()
	now := time.Now()
	if !ok || now.After(e.expires) {
		return nil
	}
	r := e.msg.Copy()
	r.Id = req.Id
	left := uint32(e.expires.Sub(now) / time.Second)
	for _, sec := range [][]mdns.RR{r.Answer, r.Ns, r.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype != mdns.TypeOPT {
				rr.Header().Ttl = min(rr.Header().Ttl, left)
			}
		}
	}
	return r
}

// store keeps an answer for its smallest TTL (negative answers: the SOA's
// minimum); server failures are not kept.
func (f *forwarder) store(key cacheKey, resp *mdns.Msg) {
	if f.max < 0 || (resp.Rcode != mdns.RcodeSuccess && resp.Rcode != mdns.RcodeNameError) || resp.Truncated {
		return
	}
	ttl := maxCacheTTL
	seen := false
	for _, sec := range [][]mdns.RR{resp.Answer, resp.Ns} {
		for _, rr := range sec {
			t := time.Duration(rr.Header().Ttl) * time.Second
			if soa, ok := rr.(*mdns.SOA); ok && len(resp.Answer) == 0 {
				t = min(t, time.Duration(soa.Minttl)*time.Second)
			}
			ttl, seen = min(ttl, t), true
		}
	}
	if !seen || ttl <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cache) >= f.max {
		for k := range f.cache { // evict an arbitrary entry
			delete(f.cache, k)
			break
		}
	}
	f.cache[key] = cacheEntry{msg: resp.Copy(), expires: time.Now().Add(ttl)}
}
