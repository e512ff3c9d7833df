// Package proxy is Cairn's L7 data plane: listener → router → policy chain
// (timeouts, retries, circuit breaking, outlier detection) → balancer →
// upstream pool. It knows nothing of where its configuration comes from:
// a source (a file, the local registry, a remote server's watch stream)
// hands Update a Snapshot, which is compiled into an immutable config and
// swapped in atomically. Requests in flight finish on the config they
// started with; connections, latency averages and ejections carry over,
// because upstreams are kept by address across configs.
//
// The hot path reads the config through one atomic pointer and allocates
// nothing for routing or balancing; HTTP/1.1 backends are reached through
// a pooled client of this package (h1.go), TLS and HTTP/2 backends (gRPC)
// through net/http's transport.
package proxy

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/proxy/balancer"
	"github.com/cairnhq/cairn/internal/proxy/resilience"
	"github.com/cairnhq/cairn/internal/proxy/router"
)

// ServiceKey names a registry service.
type ServiceKey struct{ Namespace, Name string }

// Instance is a healthy backend instance of a registry service, as a
// source reports it.
type Instance struct {
	ID       string
	Host     string
	Ports    map[string]int // by port name; the registry's ports
	Zone     string
	Weight   int
	Metadata map[string]string
}

// Snapshot is everything a config is built from: the Route documents and
// the healthy instances of the services they may name.
type Snapshot struct {
	Revision int64
	Routes   []config.Document
	Services map[ServiceKey][]Instance
	// Lookup, when set, is used instead of Services: a source that holds
	// many services converts only those the routes name.
	Lookup func(ServiceKey) []Instance
}

func (s *Snapshot) instances(k ServiceKey) []Instance {
	if s.Lookup != nil {
		return s.Lookup(k)
	}
	return s.Services[k]
}

// Options configure an Engine.
type Options struct {
	Zone      string       // the proxy's zone, preferred by the balancers
	Logger    *slog.Logger // errors and config changes
	AccessLog *AccessLog   // nil: none
	Metrics   *Metrics     // nil: none
	// Static: backends may only be addresses (a gateway running from a
	// file with no registry to follow).
	Static bool
	// MapAddress, when set, gives the address to connect to for a
	// backend's host:port. Tests use it to reach local listeners for
	// addresses only a cluster network has (EndpointSlices refuse
	// loopback addresses).
	MapAddress func(addr string) string
}

// Updater takes new configs; Engine is one.
type Updater interface {
	Update(*Snapshot) error
}

// Engine serves requests with the current config.
type Engine struct {
	opts Options
	log  *slog.Logger
	cur  atomic.Pointer[state]

	mu        sync.Mutex // builds
	upstreams map[string]*upstream
	budgets   map[string]*resilience.Budget // by route key: retry budgets outlive config swaps
	limiters  map[string]*rateLimiter       // by route key: so do rate limits (ratelimit.go)
	uses      map[ServiceKey]bool           // the services the running config's routes name

	tunnels tunnels // upgraded (WebSocket) connections
}

// NewEngine returns an engine with an empty config (every request gets 404
// until the first Update).
func NewEngine(opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Engine{opts: opts, log: opts.Logger.With("component", "proxy"), upstreams: map[string]*upstream{}, budgets: map[string]*resilience.Budget{}}
	if opts.Metrics != nil {
		opts.Metrics.engine = e
	}
	t, _ := router.Compile(nil)
	e.cur.Store(&state{table: t})
	return e
}

// state is one compiled, immutable config.
type state struct {
	revision int64
	table    *router.Table
	routes   []*route
}

// route is a compiled Route document.
type route struct {
	name     string // namespace/name
	ns       string
	spec     *config.RouteSpec
	backends []*backend
	total    int // sum of backend weights

	connectTO, perTryTO, requestTO time.Duration
	retry                          config.RetryPolicy
	budget                         *resilience.Budget
	backoff                        resilience.Backoff
	hash                           *config.HashOn
	rewritePrefix                  *string
	prefixLen                      int // length of the matched prefix, for rewrite
	rewriteHost                    string

	metrics *routeMetrics
	limit   *rateLimiter // nil: no rate limit

	// plainH1: every backend speaks plain HTTP/1.1 (no TLS, no HTTP/2),
	// as the event loops' own connections do.
	plainH1 bool
}

// backend is one entry of a route's backends: a weighted set of instances
// behind one balancer.
type backend struct {
	name     string // service/ns or the address, for logs and metrics
	weight   int
	bal      *balancer.Balancer
	outliers *balancer.Outliers
	tls, h2  bool
	status   int             // a status backend: answer with it, forward nothing
	metrics  *backendMetrics // nil without metrics
}

// Update compiles a snapshot and swaps it in. A snapshot with an error is
// rejected whole, naming the route and field, and the running config stays.
func (e *Engine) Update(s *Snapshot) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, used, err := e.build(s)
	if err != nil {
		if e.opts.Metrics != nil {
			e.opts.Metrics.Rejected()
		}
		return err
	}
	e.cur.Store(st)
	e.keepLimiters(st)
	for key, u := range e.upstreams {
		if !used[key] {
			u.retire()
			delete(e.upstreams, key)
		}
	}
	live := make(map[string]bool, len(st.routes))
	for _, r := range st.routes {
		live[r.name] = true
	}
	for key := range e.budgets {
		if !live[key] {
			delete(e.budgets, key)
		}
	}
	if e.opts.Metrics != nil {
		e.opts.Metrics.configApplied(st)
	}
	return nil
}

// Uses reports whether the running config's routes name a service: a
// source need not rebuild the config for changes to other services.
func (e *Engine) Uses(k ServiceKey) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.uses[k]
}

// Revision returns the revision of the running config.
func (e *Engine) Revision() int64 { return e.cur.Load().revision }

// Routes returns the names of the running config's routes.
func (e *Engine) Routes() []string {
	st := e.cur.Load()
	out := make([]string, len(st.routes))
	for i, r := range st.routes {
		out[i] = r.name
	}
	return out
}

// RouteError is a route the engine cannot run.
type RouteError struct {
	Route string // namespace/name
	Field string
	Err   string
}

func (e *RouteError) Error() string {
	return fmt.Sprintf("route %s: %s: %s", e.Route, e.Field, e.Err)
}

func (e *Engine) build(s *Snapshot) (*state, map[string]bool, error) {
	docs := append([]config.Document(nil), s.Routes...)
	sort.Slice(docs, func(i, j int) bool { return docs[i].Key().String() < docs[j].Key().String() })
	st := &state{revision: s.Revision}
	used := map[string]bool{}
	uses := map[ServiceKey]bool{}
	var rrs []router.Route
	type limits struct{ conns, pending, reqs int64 }
	lim := map[string]limits{}
	connectTO := map[string]time.Duration{}
	for _, d := range docs {
		if d.Kind != config.KindRoute {
			continue
		}
		name := d.Metadata.Namespace + "/" + d.Metadata.Name
		spec, fe := config.DecodeRoute(d.Spec, d.Metadata.Namespace)
		if fe != nil {
			return nil, nil, &RouteError{name, "spec." + fe.Field, fe.Message}
		}
		r := &route{name: name, ns: d.Metadata.Namespace, spec: spec}
		r.connectTO, r.perTryTO, r.requestTO = spec.TimeoutsOrDefault()
		r.retry = spec.RetryOrDefault()
		r.backoff = resilience.Backoff{Base: r.retry.BackoffBase, Max: r.retry.BackoffMax}
		if b := e.budgets[name]; b != nil && b.Ratio() == float64(r.retry.BudgetPercent)/100 && b.MinPerSecond() == r.retry.BudgetMin {
			r.budget = b
		} else {
			r.budget = resilience.NewBudget(float64(r.retry.BudgetPercent)/100, r.retry.BudgetMin)
			e.budgets[name] = r.budget
		}
		r.limit = e.limiterFor(name, spec)
		if lb := spec.LoadBalancer; lb != nil {
			r.hash = lb.Hash
		}
		if rw := spec.Rewrite; rw != nil {
			r.rewritePrefix = rw.Prefix
			r.rewriteHost = rw.Host
		}
		conns, pending, reqs := spec.Limits()
		consecutive, base, maxEj, maxPct := spec.Outlier()
		policy := balancer.Policy(spec.Policy())
		for i, b := range spec.Backends {
			field := fmt.Sprintf("spec.backends[%d]", i)
			be := &backend{weight: b.EffectiveWeight(), tls: b.TLS, h2: b.HTTP2, status: b.Status}
			var targets []target
			if b.Status != 0 {
				be.name = "status-" + strconv.Itoa(b.Status)
			} else if b.Address != "" {
				be.name = b.Address
				targets = []target{{addr: b.Address, weight: 1}}
			} else {
				if e.opts.Static {
					return nil, nil, &RouteError{name, field + ".service", "service backends need a registry to follow (run with --server), or use address"}
				}
				ns := b.EffectiveNamespace(d.Metadata.Namespace)
				be.name = b.Service + "." + ns
				sk := ServiceKey{ns, b.Service}
				uses[sk] = true
				targets = resolve(s.instances(sk), string(b.Port), b.Subset)
			}
			eps := make([]*balancer.Endpoint, 0, len(targets))
			for _, t := range targets {
				key := t.addr
				if b.TLS {
					key += "|tls"
				}
				if b.HTTP2 {
					key += "|h2"
				}
				u := e.upstreams[key]
				if u == nil {
					addr := t.addr
					if e.opts.MapAddress != nil {
						addr = e.opts.MapAddress(addr)
					}
					u = newUpstream(key, addr, b.TLS, b.HTTP2, t.zone, t.weight)
					e.upstreams[key] = u
				} else {
					u.unretire()
					if u.ep.Weight != max(t.weight, 1) || u.ep.Zone != t.zone {
						// Weight and zone are read by balancers without a lock:
						// a changed one gets a fresh endpoint, keeping the pool.
						u.ep = balancer.NewEndpoint(t.addr, t.weight, t.zone)
						u.ep.Owner = u
					}
				}
				used[key] = true
				l, seen := lim[key]
				if !seen {
					l = limits{int64(conns), int64(pending), int64(reqs)}
				} else {
					l = limits{min(l.conns, int64(conns)), min(l.pending, int64(pending)), min(l.reqs, int64(reqs))}
				}
				lim[key] = l
				if c, ok := connectTO[key]; !ok || (r.connectTO > 0 && r.connectTO < c) {
					connectTO[key] = r.connectTO
				}
				eps = append(eps, u.ep)
			}
			bal, err := balancer.New(policy, eps, e.opts.Zone)
			if err != nil {
				return nil, nil, &RouteError{name, "spec.loadBalancer.policy", err.Error()}
			}
			be.bal = bal
			if consecutive > 0 {
				be.outliers = balancer.NewOutliers(balancer.OutlierConfig{Consecutive: consecutive, BaseEjection: base, MaxEjection: maxEj, MaxEjectedPercent: maxPct}, eps)
			}
			r.backends = append(r.backends, be)
			r.total += be.weight
		}
		r.plainH1 = true
		for _, be := range r.backends {
			r.plainH1 = r.plainH1 && !be.tls && !be.h2
		}
		if e.opts.Metrics != nil {
			r.metrics = e.opts.Metrics.forRoute(name, r.backends)
		}
		rr := router.Route{Name: name, Hosts: spec.Hosts, Methods: spec.Match.Methods, Target: r}
		if p := spec.Match.Path; p != nil {
			rr.Path = router.PathMatch{Type: router.PathType(p.Type), Value: p.Value}
			if p.Type == "prefix" || p.Type == "exact" {
				r.prefixLen = len(p.Value)
				if p.Type == "prefix" && len(p.Value) > 1 && p.Value[len(p.Value)-1] == '/' {
					r.prefixLen--
				}
			}
		}
		rr.Headers = valueMatches(spec.Match.Headers)
		rr.Query = valueMatches(spec.Match.Query)
		rr.Cookies = valueMatches(spec.Match.Cookies)
		rrs = append(rrs, rr)
		st.routes = append(st.routes, r)
	}
	t, err := router.Compile(rrs)
	if err != nil {
		if fe, ok := err.(*router.FieldError); ok {
			return nil, nil, &RouteError{routeOfField(rrs, fe.Field), fe.Field, fe.Message}
		}
		return nil, nil, err
	}
	st.table = t
	e.uses = uses
	for key, l := range lim {
		u := e.upstreams[key]
		u.maxConns.Store(l.conns)
		u.maxPending.Store(l.pending)
		u.maxRequests.Store(l.reqs)
		if to := connectTO[key]; to > 0 {
			u.connectTO.Store(int64(to))
		}
	}
	return st, used, nil
}

func routeOfField(rrs []router.Route, field string) string {
	var i int
	if _, err := fmt.Sscanf(field, "routes[%d]", &i); err == nil && i >= 0 && i < len(rrs) {
		return rrs[i].Name
	}
	return ""
}

func valueMatches(vs []config.ValueMatch) []router.ValueMatch {
	if len(vs) == 0 {
		return nil
	}
	out := make([]router.ValueMatch, len(vs))
	for i, v := range vs {
		out[i] = router.ValueMatch{Name: v.Name, Type: router.ValueType(v.Type), Value: v.Value}
	}
	return out
}

// target is one address a backend resolves to.
type target struct {
	addr   string
	weight int
	zone   string
}

// resolve picks the instances of a service matching a subset and returns
// their addresses for a port: the port named, else "http", else the first.
func resolve(insts []Instance, port string, subset map[string]string) []target {
	out := make([]target, 0, len(insts))
	for _, in := range insts {
		ok := true
		for k, v := range subset {
			if in.Metadata[k] != v {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		p := pickPort(in.Ports, port)
		if p == 0 {
			continue
		}
		out = append(out, target{addr: net.JoinHostPort(in.Host, strconv.Itoa(p)), weight: in.Weight, zone: in.Zone})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].addr < out[j].addr })
	return out
}

func pickPort(ports map[string]int, want string) int {
	if want != "" {
		if p, ok := ports[want]; ok {
			return p
		}
		if n, err := strconv.Atoi(want); err == nil {
			for _, p := range ports {
				if p == n {
					return p
				}
			}
			if len(ports) == 0 {
				return 0
			}
			return n // a number not among the named ports: the instance's host at that port
		}
		return 0
	}
	if p, ok := ports["http"]; ok {
		return p
	}
	best, bestName := 0, ""
	for name, p := range ports {
		if best == 0 || name < bestName {
			best, bestName = p, name
		}
	}
	return best
}

// pickBackend chooses a route's backend by weight.
func (r *route) pickBackend() *backend {
	if len(r.backends) == 1 {
		return r.backends[0]
	}
	n := rand.IntN(r.total)
	for _, b := range r.backends {
		if n < b.weight {
			return b
		}
		n -= b.weight
	}
	return r.backends[len(r.backends)-1]
}
