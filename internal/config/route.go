package config

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// RouteSpec is the spec of a Route: which requests it takes (hosts and
// match) and where they go (backends), with the traffic policy for them.
//
//	spec:
//	  hosts: [shop.example.com, "*.shop.example.com"]
//	  match:
//	    path: {type: prefix, value: /orders}
//	    methods: [GET, POST]
//	    headers: [{name: x-canary, value: "1"}]
//	    cookies: [{name: canary, type: present}]
//	  backends:
//	    - {service: orders, port: http, weight: 90}
//	    - {service: orders, subset: {version: v2}, weight: 10}
//	    - {address: 127.0.0.1:9000}
//	  loadBalancer: {policy: ewma}
//	  timeouts: {connect: 1s, perTry: 2s, request: 10s}
//	  retries: {attempts: 2, on: [connect-failure, reset, "503"]}
//	  circuitBreaker: {maxRequests: 256}
//	  outlierDetection: {consecutiveFailures: 5}
//	  rateLimit: {requests: 100, period: 1s, burst: 200, perClient: true}
//
// Fields left out get the defaults documented on each type. Normalize
// keeps the spec as written, so `cairn get` shows what was applied.
type RouteSpec struct {
	Hosts            []string          `json:"hosts,omitempty"`
	Match            Match             `json:"match"`
	Backends         []Backend         `json:"backends"`
	Rewrite          *Rewrite          `json:"rewrite,omitempty"`
	LoadBalancer     *LoadBalancer     `json:"loadBalancer,omitempty"`
	Timeouts         *Timeouts         `json:"timeouts,omitempty"`
	Retries          *Retries          `json:"retries,omitempty"`
	CircuitBreaker   *CircuitBreaker   `json:"circuitBreaker,omitempty"`
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	RateLimit        *RateLimit        `json:"rateLimit,omitempty"`
}

// Match selects requests. Every condition given must hold; none given
// matches every request to the route's hosts.
type Match struct {
	Path    *PathMatch   `json:"path,omitempty"` // default prefix "/"
	Methods []string     `json:"methods,omitempty"`
	Headers []ValueMatch `json:"headers,omitempty"`
	Query   []ValueMatch `json:"query,omitempty"`
	Cookies []ValueMatch `json:"cookies,omitempty"`
}

// PathMatch matches the path: type prefix (element-wise: /api matches /api
// and /api/x, not /apix), exact, or regex (RE2, the whole path).
type PathMatch struct {
	Type  string `json:"type,omitempty"` // default prefix
	Value string `json:"value"`
}

// ValueMatch matches a header, query parameter or cookie: type exact
// (default), regex (RE2, the whole value) or present.
type ValueMatch struct {
	Name  string `json:"name"`
	Type  string `json:"type,omitempty"`
	Value string `json:"value,omitempty"`
}

// Backend is a registry service (its healthy instances, followed live), a
// static address, or a fixed error status. Weight splits traffic between
// backends (canary, blue/green); a weight of 0 takes none.
type Backend struct {
	Service   string            `json:"service,omitempty"`
	Namespace string            `json:"namespace,omitempty"` // default: the route's
	Port      PortRef           `json:"port,omitempty"`      // port name or number; default: "http", else the first port
	Subset    map[string]string `json:"subset,omitempty"`    // instance metadata that must match (version: v2)
	Address   string            `json:"address,omitempty"`   // host:port, instead of service
	Weight    *int              `json:"weight,omitempty"`    // default 1
	TLS       bool              `json:"tls,omitempty"`       // speak HTTPS to the backend
	HTTP2     bool              `json:"http2,omitempty"`     // speak HTTP/2 (h2c, or h2 with tls) to the backend
	// Status, instead of service or address, answers the backend's share
	// of requests with this error status (400-599) and forwards nothing:
	// what the Gateway API asks for references that do not resolve (500).
	Status int `json:"status,omitempty"`
}

// Rewrite changes the request before it goes upstream.
type Rewrite struct {
	Prefix *string `json:"prefix,omitempty"` // replaces the matched path prefix
	Host   string  `json:"host,omitempty"`   // replaces the Host header
}

// LoadBalancer picks an instance: round_robin (default), random,
// least_request, ewma (peak EWMA of latency, P2C) or ring_hash with hash.
type LoadBalancer struct {
	Policy string  `json:"policy,omitempty"`
	Hash   *HashOn `json:"hash,omitempty"`
}

// HashOn is the key of ring_hash: one of a header, a cookie or the
// client's IP.
type HashOn struct {
	Header   string `json:"header,omitempty"`
	Cookie   string `json:"cookie,omitempty"`
	SourceIP bool   `json:"sourceIP,omitempty"`
}

// Timeouts bound each stage; "0s" turns a bound off.
type Timeouts struct {
	Connect string `json:"connect,omitempty"` // default 2s
	PerTry  string `json:"perTry,omitempty"`  // default none: the request timeout
	Request string `json:"request,omitempty"` // default 30s, all tries and backoff included
}

// Retries retries a failed try on another instance.
type Retries struct {
	Attempts      *int     `json:"attempts,omitempty"`      // retries after the first try; default 2
	On            []string `json:"on,omitempty"`            // default connect-failure, reset, 502, 503, 504
	NonIdempotent bool     `json:"nonIdempotent,omitempty"` // also retry POST, PATCH (default: idempotent methods only)
	Backoff       *Backoff `json:"backoff,omitempty"`
	Budget        *Budget  `json:"budget,omitempty"`
}

// Backoff is exponential with full jitter.
type Backoff struct {
	Base string `json:"base,omitempty"` // default 25ms
	Max  string `json:"max,omitempty"`  // default 250ms
}

// Budget caps retries at a share of requests (plus a trickle), so retries
// never more than double the load on a struggling backend.
type Budget struct {
	Percent      *int `json:"percent,omitempty"`      // default 20, at most 100
	MinPerSecond *int `json:"minPerSecond,omitempty"` // default 10
}

// CircuitBreaker limits each backend instance; a request over a limit gets
// a fast 503. 0 means the default.
type CircuitBreaker struct {
	MaxConnections int `json:"maxConnections,omitempty"` // default 1024
	MaxPending     int `json:"maxPending,omitempty"`     // waiting for a connection; default 1024
	MaxRequests    int `json:"maxRequests,omitempty"`    // in flight; default 1024
}

// OutlierDetection ejects an instance after consecutive failures (5xx,
// connect failures, resets) for a period that grows with each ejection.
type OutlierDetection struct {
	ConsecutiveFailures *int   `json:"consecutiveFailures,omitempty"` // default 5; 0 turns it off
	BaseEjection        string `json:"baseEjection,omitempty"`        // default 30s
	MaxEjection         string `json:"maxEjection,omitempty"`         // default 300s
	MaxEjectedPercent   *int   `json:"maxEjectedPercent,omitempty"`   // default 10; one instance may always go
}

// RateLimit caps the requests a route takes in each gateway process (a
// local limit, as Envoy's local_ratelimit): a token bucket of burst tokens
// that refills at requests per period, smoothly. With perClient every
// client IP address has a bucket of its own. A request finding its bucket
// empty gets 429 with Retry-After.
type RateLimit struct {
	Requests  int    `json:"requests"`            // tokens per period; required, 1 to 1048576
	Period    string `json:"period,omitempty"`    // default 1s; 1ms to 1h
	Burst     int    `json:"burst,omitempty"`     // bucket size; default (0): requests
	PerClient bool   `json:"perClient,omitempty"` // a bucket per client IP address instead of one for the route
}

// Retry conditions.
const (
	RetryConnectFailure = "connect-failure"
	RetryReset          = "reset"
	RetryTimeout        = "timeout" // a per-try timeout
)

// Limits on one route.
const (
	maxHosts    = 64
	maxBackends = 64
	maxMatches  = 32
	maxAttempts = 10
	maxLimit    = 1 << 20

	minRatePeriod = time.Millisecond
	maxRatePeriod = time.Hour // burst × period / requests stays far inside an int64 of nanoseconds
)

var (
	policies    = []string{"round_robin", "random", "least_request", "ewma", "ring_hash"}
	headerName  = regexp.MustCompile(`^[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+$`)
	validMethod = headerName
)

// DecodeRoute reads and checks a Route spec; ns is the route's namespace,
// the default for backends.
func DecodeRoute(spec []byte, ns string) (*RouteSpec, *FieldError) {
	var r RouteSpec
	if fe := strictJSON(spec, &r); fe != nil {
		return nil, fe
	}
	if fe := r.validate(ns); fe != nil {
		return nil, fe
	}
	return &r, nil
}

func (r *RouteSpec) validate(ns string) *FieldError {
	if len(r.Hosts) > maxHosts {
		return fieldErr("hosts", "at most %d hosts", maxHosts)
	}
	for i, h := range r.Hosts {
		h = strings.ToLower(h)
		r.Hosts[i] = h
		if fe := checkHost(h); fe != nil {
			return fe.under(fmt.Sprintf("hosts[%d]", i))
		}
	}
	if fe := r.Match.validate(); fe != nil {
		return fe.under("match")
	}
	if len(r.Backends) == 0 {
		return fieldErr("backends", "at least one backend is required")
	}
	if len(r.Backends) > maxBackends {
		return fieldErr("backends", "at most %d backends", maxBackends)
	}
	total := 0
	for i := range r.Backends {
		b := &r.Backends[i]
		if fe := b.validate(ns); fe != nil {
			return fe.under(fmt.Sprintf("backends[%d]", i))
		}
		total += b.EffectiveWeight()
	}
	if total == 0 {
		return fieldErr("backends", "the weights add up to 0: no backend would take traffic")
	}
	if rw := r.Rewrite; rw != nil {
		if rw.Prefix != nil {
			if !strings.HasPrefix(*rw.Prefix, "/") {
				return fieldErr("rewrite.prefix", "must start with '/'")
			}
			if !validEscapedPath(*rw.Prefix) {
				return fieldErr("rewrite.prefix", "%q is not a path as sent on the wire: no spaces, control characters, '?' or '#', and '%%' only in %%XX escapes", *rw.Prefix)
			}
			if p := r.Match.Path; p != nil && p.Type == "regex" {
				return fieldErr("rewrite.prefix", "needs a prefix or exact path match, not regex")
			}
		}
		if rw.Host != "" {
			if fe := checkHost(strings.ToLower(rw.Host)); fe != nil || strings.HasPrefix(rw.Host, "*") {
				return fieldErr("rewrite.host", "%q is not a host name", rw.Host)
			}
		}
	}
	if lb := r.LoadBalancer; lb != nil {
		if lb.Policy != "" && !contains(policies, lb.Policy) {
			return fieldErr("loadBalancer.policy", "unknown policy %q (one of %s)", lb.Policy, strings.Join(policies, ", "))
		}
		if h := lb.Hash; h != nil {
			n := 0
			if h.Header != "" {
				n++
				if !headerName.MatchString(h.Header) {
					return fieldErr("loadBalancer.hash.header", "%q is not a header name", h.Header)
				}
			}
			if h.Cookie != "" {
				n++
			}
			if h.SourceIP {
				n++
			}
			if n != 1 {
				return fieldErr("loadBalancer.hash", "set exactly one of header, cookie and sourceIP")
			}
			if lb.Policy != "ring_hash" {
				return fieldErr("loadBalancer.hash", "only for policy ring_hash")
			}
		} else if lb.Policy == "ring_hash" {
			return fieldErr("loadBalancer.hash", "ring_hash needs a key: header, cookie or sourceIP")
		}
	}
	if t := r.Timeouts; t != nil {
		for _, f := range []struct{ name, v string }{{"connect", t.Connect}, {"perTry", t.PerTry}, {"request", t.Request}} {
			if _, fe := parseDuration("timeouts."+f.name, f.v); fe != nil {
				return fe
			}
		}
	}
	if rt := r.Retries; rt != nil {
		if a := rt.Attempts; a != nil && (*a < 0 || *a > maxAttempts) {
			return fieldErr("retries.attempts", "must be between 0 and %d", maxAttempts)
		}
		for i, on := range rt.On {
			if _, fe := retryCondition(on); fe != nil {
				return fe.under(fmt.Sprintf("retries.on[%d]", i))
			}
		}
		if b := rt.Backoff; b != nil {
			base, fe := parseDuration("retries.backoff.base", b.Base)
			if fe != nil {
				return fe
			}
			mx, fe := parseDuration("retries.backoff.max", b.Max)
			if fe != nil {
				return fe
			}
			if b.Max != "" && b.Base != "" && mx < base {
				return fieldErr("retries.backoff.max", "must be at least base (%s)", base)
			}
		}
		if b := rt.Budget; b != nil {
			if p := b.Percent; p != nil && (*p < 0 || *p > 100) {
				return fieldErr("retries.budget.percent", "must be between 0 and 100")
			}
			if m := b.MinPerSecond; m != nil && (*m < 0 || *m > maxLimit) {
				return fieldErr("retries.budget.minPerSecond", "must be between 0 and %d", maxLimit)
			}
		}
	}
	if cb := r.CircuitBreaker; cb != nil {
		for _, f := range []struct {
			name string
			v    int
		}{{"maxConnections", cb.MaxConnections}, {"maxPending", cb.MaxPending}, {"maxRequests", cb.MaxRequests}} {
			if f.v < 0 || f.v > maxLimit {
				return fieldErr("circuitBreaker."+f.name, "must be between 0 (default) and %d", maxLimit)
			}
		}
	}
	if od := r.OutlierDetection; od != nil {
		if c := od.ConsecutiveFailures; c != nil && (*c < 0 || *c > 1000) {
			return fieldErr("outlierDetection.consecutiveFailures", "must be between 0 (off) and 1000")
		}
		base, fe := parseDuration("outlierDetection.baseEjection", od.BaseEjection)
		if fe != nil {
			return fe
		}
		mx, fe := parseDuration("outlierDetection.maxEjection", od.MaxEjection)
		if fe != nil {
			return fe
		}
		if od.BaseEjection != "" && od.MaxEjection != "" && mx < base {
			return fieldErr("outlierDetection.maxEjection", "must be at least baseEjection (%s)", base)
		}
		if p := od.MaxEjectedPercent; p != nil && (*p < 0 || *p > 100) {
			return fieldErr("outlierDetection.maxEjectedPercent", "must be between 0 and 100")
		}
	}
	if rl := r.RateLimit; rl != nil {
		if fe := rl.validate(); fe != nil {
			return fe.under("rateLimit")
		}
	}
	return nil
}

func (rl *RateLimit) validate() *FieldError {
	if rl.Requests < 1 || rl.Requests > maxLimit {
		return fieldErr("requests", "must be between 1 and %d", maxLimit)
	}
	p, fe := parseDuration("period", rl.Period)
	if fe != nil {
		return fe
	}
	if rl.Period != "" && (p < minRatePeriod || p > maxRatePeriod) {
		return fieldErr("period", "must be between %s and %s", minRatePeriod, maxRatePeriod)
	}
	if rl.Burst < 0 || rl.Burst > maxLimit {
		return fieldErr("burst", "must be between 0 (default: requests) and %d", maxLimit)
	}
	return nil
}

func (m *Match) validate() *FieldError {
	if p := m.Path; p != nil {
		switch p.Type {
		case "":
			p.Type = "prefix"
		case "prefix", "exact", "regex":
		default:
			return fieldErr("path.type", "unknown type %q (prefix, exact or regex)", p.Type)
		}
		switch {
		case p.Value == "":
			return fieldErr("path.value", "is required")
		case p.Type == "regex":
			if _, err := regexp.Compile(p.Value); err != nil {
				return fieldErr("path.value", "not a valid RE2 regular expression: %v", err)
			}
		case !strings.HasPrefix(p.Value, "/"):
			return fieldErr("path.value", "must start with '/'")
		case strings.ContainsAny(p.Value, "?#"):
			return fieldErr("path.value", "is a path: no query or fragment")
		}
	}
	if len(m.Methods) > maxMatches {
		return fieldErr("methods", "at most %d methods", maxMatches)
	}
	for i, meth := range m.Methods {
		m.Methods[i] = strings.ToUpper(meth)
		if !validMethod.MatchString(meth) {
			return fieldErr(fmt.Sprintf("methods[%d]", i), "%q is not an HTTP method", meth)
		}
	}
	for _, list := range []struct {
		name string
		vs   []ValueMatch
	}{{"headers", m.Headers}, {"query", m.Query}, {"cookies", m.Cookies}} {
		if len(list.vs) > maxMatches {
			return fieldErr(list.name, "at most %d matches", maxMatches)
		}
		for i := range list.vs {
			if fe := list.vs[i].validate(list.name == "headers"); fe != nil {
				return fe.under(fmt.Sprintf("%s[%d]", list.name, i))
			}
		}
	}
	return nil
}

func (v *ValueMatch) validate(header bool) *FieldError {
	if v.Name == "" {
		return fieldErr("name", "is required")
	}
	if header && !headerName.MatchString(v.Name) {
		return fieldErr("name", "%q is not a header name", v.Name)
	}
	switch v.Type {
	case "", "exact":
	case "present":
		if v.Value != "" {
			return fieldErr("value", "must be empty for type present")
		}
	case "regex":
		if _, err := regexp.Compile(v.Value); err != nil {
			return fieldErr("value", "not a valid RE2 regular expression: %v", err)
		}
	default:
		return fieldErr("type", "unknown type %q (exact, regex or present)", v.Type)
	}
	return nil
}

func (b *Backend) validate(ns string) *FieldError {
	if b.Status != 0 {
		switch {
		case b.Status < 400 || b.Status > 599:
			return fieldErr("status", "must be an error status, 400-599")
		case b.Service != "" || b.Address != "" || b.Namespace != "" || b.Port != "" || len(b.Subset) > 0 || b.TLS || b.HTTP2:
			return fieldErr("status", "a status backend takes only a weight: no service, address, namespace, port, subset, tls or http2")
		}
		if w := b.Weight; w != nil && (*w < 0 || *w > 10000) {
			return fieldErr("weight", "must be between 0 and 10000")
		}
		return nil
	}
	switch {
	case b.Service == "" && b.Address == "":
		return fieldErr("service", "set service (a registry service), address (host:port) or status")
	case b.Service != "" && b.Address != "":
		return fieldErr("address", "set either service or address, not both")
	}
	if b.Address != "" {
		host, port, err := net.SplitHostPort(b.Address)
		if err != nil || host == "" {
			return fieldErr("address", "%q must be host:port", b.Address)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fieldErr("address", "%q: port must be 1-65535", b.Address)
		}
		if b.Namespace != "" || b.Port != "" || len(b.Subset) > 0 {
			return fieldErr("address", "namespace, port and subset are for service backends")
		}
	} else {
		if fe := validName("service", b.Service); fe != nil {
			return fe
		}
		if b.Namespace != "" {
			if fe := validName("namespace", b.Namespace); fe != nil {
				return fe
			}
		}
		if b.Port != "" {
			if n, err := strconv.Atoi(string(b.Port)); err == nil {
				if n < 1 || n > 65535 {
					return fieldErr("port", "must be 1-65535 or a port name")
				}
			} else if fe := validName("port", string(b.Port)); fe != nil {
				return fe
			}
		}
		if len(b.Subset) > maxMatches {
			return fieldErr("subset", "at most %d entries", maxMatches)
		}
	}
	if w := b.Weight; w != nil && (*w < 0 || *w > 10000) {
		return fieldErr("weight", "must be between 0 and 10000")
	}
	return nil
}

// EffectiveWeight is the backend's weight, 1 when not given.
func (b *Backend) EffectiveWeight() int {
	if b.Weight == nil {
		return 1
	}
	return *b.Weight
}

// EffectiveNamespace is the backend service's namespace.
func (b *Backend) EffectiveNamespace(routeNS string) string {
	if b.Namespace != "" {
		return b.Namespace
	}
	return routeNS
}

func checkHost(h string) *FieldError {
	name := h
	if strings.HasPrefix(h, "*.") {
		name = h[2:]
	}
	if name == "" || len(name) > 253 || strings.Contains(name, "*") {
		return fieldErr("", "%q is not a host name or *.suffix", h)
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 {
			return fieldErr("", "%q is not a host name or *.suffix", h)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fieldErr("", "%q is not a host name or *.suffix", h)
			}
		}
	}
	return nil
}

// validEscapedPath reports whether p can go into a request line as it
// is: the rewrite prefix is sent upstream without escaping.
func validEscapedPath(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c <= ' ' || c == 0x7f || c == '?' || c == '#':
			return false
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// retryCondition reads one entry of retries.on: a condition name or a
// status code 500-599.
func retryCondition(s string) (int, *FieldError) {
	switch s {
	case RetryConnectFailure, RetryReset, RetryTimeout:
		return 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 500 && n <= 599 {
		return n, nil
	}
	return 0, fieldErr("", "unknown condition %q (connect-failure, reset, timeout, or a status 500-599)", s)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Effective policy values, with the defaults filled in, for the engine.

// TimeoutsOrDefault returns connect, per-try and request timeouts (0: none).
func (r *RouteSpec) TimeoutsOrDefault() (connect, perTry, request time.Duration) {
	connect, request = 2*time.Second, 30*time.Second
	if t := r.Timeouts; t != nil {
		if t.Connect != "" {
			connect, _ = parseDuration("", t.Connect)
		}
		if t.PerTry != "" {
			perTry, _ = parseDuration("", t.PerTry)
		}
		if t.Request != "" {
			request, _ = parseDuration("", t.Request)
		}
	}
	return connect, perTry, request
}

// RetryPolicy is Retries with the defaults filled in.
type RetryPolicy struct {
	Attempts       int
	ConnectFailure bool
	Reset          bool
	Timeout        bool
	Statuses       [100]bool // 500-599
	NonIdempotent  bool
	BackoffBase    time.Duration
	BackoffMax     time.Duration
	BudgetPercent  int
	BudgetMin      int
}

// RetryOrDefault returns the route's retry policy.
func (r *RouteSpec) RetryOrDefault() RetryPolicy {
	p := RetryPolicy{Attempts: 2, BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond, BudgetPercent: 20, BudgetMin: 10}
	on := []string{RetryConnectFailure, RetryReset, "502", "503", "504"}
	if rt := r.Retries; rt != nil {
		if rt.Attempts != nil {
			p.Attempts = *rt.Attempts
		}
		if rt.On != nil {
			on = rt.On
		}
		p.NonIdempotent = rt.NonIdempotent
		if b := rt.Backoff; b != nil {
			if b.Base != "" {
				p.BackoffBase, _ = parseDuration("", b.Base)
				if b.Max == "" {
					p.BackoffMax = 10 * p.BackoffBase
				}
			}
			if b.Max != "" {
				p.BackoffMax, _ = parseDuration("", b.Max)
			}
		}
		if b := rt.Budget; b != nil {
			if b.Percent != nil {
				p.BudgetPercent = *b.Percent
			}
			if b.MinPerSecond != nil {
				p.BudgetMin = *b.MinPerSecond
			}
		}
	}
	for _, c := range on {
		switch c {
		case RetryConnectFailure:
			p.ConnectFailure = true
		case RetryReset:
			p.Reset = true
		case RetryTimeout:
			p.Timeout = true
		default:
			if n, fe := retryCondition(c); fe == nil {
				p.Statuses[n-500] = true
			}
		}
	}
	return p
}

// Limits returns the circuit-breaking limits per backend instance.
func (r *RouteSpec) Limits() (conns, pending, requests int) {
	conns, pending, requests = 1024, 1024, 1024
	if cb := r.CircuitBreaker; cb != nil {
		if cb.MaxConnections > 0 {
			conns = cb.MaxConnections
		}
		if cb.MaxPending > 0 {
			pending = cb.MaxPending
		}
		if cb.MaxRequests > 0 {
			requests = cb.MaxRequests
		}
	}
	return conns, pending, requests
}

// Outlier returns the outlier-detection settings; consecutive 0 is off.
func (r *RouteSpec) Outlier() (consecutive int, base, max time.Duration, maxPercent int) {
	consecutive, base, max, maxPercent = 5, 30*time.Second, 300*time.Second, 10
	if od := r.OutlierDetection; od != nil {
		if od.ConsecutiveFailures != nil {
			consecutive = *od.ConsecutiveFailures
		}
		if od.BaseEjection != "" {
			base, _ = parseDuration("", od.BaseEjection)
		}
		if od.MaxEjection != "" {
			max, _ = parseDuration("", od.MaxEjection)
		}
		if od.MaxEjectedPercent != nil {
			maxPercent = *od.MaxEjectedPercent
		}
	}
	return consecutive, base, max, maxPercent
}

// RateLimitPolicy is RateLimit with the defaults filled in.
type RateLimitPolicy struct {
	Requests  int
	Period    time.Duration
	Burst     int
	PerClient bool
}

// RateLimitOrDefault returns the route's rate limit; ok is false when the
// route has none.
func (r *RouteSpec) RateLimitOrDefault() (p RateLimitPolicy, ok bool) {
	rl := r.RateLimit
	if rl == nil {
		return p, false
	}
	p = RateLimitPolicy{Requests: rl.Requests, Period: time.Second, Burst: rl.Burst, PerClient: rl.PerClient}
	if rl.Period != "" {
		p.Period, _ = parseDuration("", rl.Period)
	}
	if p.Burst == 0 {
		p.Burst = p.Requests
	}
	return p, true
}

// Policy returns the load-balancing policy name.
func (r *RouteSpec) Policy() string {
	if r.LoadBalancer == nil || r.LoadBalancer.Policy == "" {
		return "round_robin"
	}
	return r.LoadBalancer.Policy
}

// IsIdempotent reports whether a method may be retried by default.
func IsIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
