package kube

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// routeState is an HTTPRoute or GRPCRoute with at least one parentRef to
// a Gateway of Cairn's classes.
type routeState struct {
	obj     routeObject          // the object, for status
	hr      *gatewayv1.HTTPRoute // what is translated (a GRPCRoute is made one, see grpcAsHTTP)
	parents []parentState        // one per parentRef to a Gateway of Cairn's, in spec order
	refs    refsState
	rules   []ruleState
	gens    []genRoute
}

// parentState is how one parentRef attached.
type parentState struct {
	ref      gatewayv1.ParentReference
	attached bool // some listener took the route (Accepted, unless no rule can be served)
	reason   gatewayv1.RouteConditionReason
	message  string
}

// refsState is the route's ResolvedRefs condition.
type refsState struct {
	reason  gatewayv1.RouteConditionReason // ResolvedRefs when all resolve, else the first failure's
	message string
}

// ruleState says what became of one rule when it is not served as
// written: invalid rules answer their requests with an error (a filter
// Cairn cannot apply is never skipped), dropped ones make no route.
type ruleState struct {
	invalid string
	dropped string
}

// invalidBackend stands for backend references that do not resolve: it
// answers their share of the requests with 500, as the Gateway API asks.
func invalidBackend() config.Backend { return config.Backend{Status: http.StatusInternalServerError} }

// Cairn's weights go up to 10000; the Gateway API's up to 1000000.
const maxWeight = 10000

// translateRoute works out where a route attaches and what routes it
// makes; hr is the route as an HTTPRoute (a GRPCRoute converted).
func translateRoute(obj routeObject, hr *gatewayv1.HTTPRoute, gateways map[string]*gatewayState, v clusterView) *routeState {
	kind := obj.kind()
	rs := &routeState{obj: obj, hr: hr}
	hostSet := map[string]bool{}
	anyHost, attached := false, false
	for _, ref := range hr.Spec.ParentRefs {
		ps, hosts, everyHost, ours := attach(kind, hr, ref, gateways, v)
		if !ours {
			continue
		}
		rs.parents = append(rs.parents, ps)
		if !ps.attached {
			continue
		}
		attached = true
		anyHost = anyHost || everyHost
		for _, h := range hosts {
			hostSet[h] = true
		}
	}
	if len(rs.parents) == 0 {
		return nil
	}
	var hosts []string
	if !anyHost {
		for h := range hostSet {
			hosts = append(hosts, h)
		}
		slices.Sort(hosts)
	}
	origin := objectRef{Group: gatewayv1.GroupName, Kind: kind, Namespace: hr.Namespace, Name: hr.Name}
	rs.refs.reason = gatewayv1.RouteReasonResolvedRefs
	var refProblems []string
	for i, rule := range hr.Spec.Rules {
		out := translateRule(kind, hr.Namespace, rule, v)
		for _, p := range out.refProblems {
			if rs.refs.reason == gatewayv1.RouteReasonResolvedRefs {
				rs.refs.reason = p.reason
			}
			refProblems = append(refProblems, fmt.Sprintf("rules[%d].%s", i, p.message))
		}
		rs.rules = append(rs.rules, ruleState{invalid: out.invalid, dropped: out.dropped})
		if !attached || out.dropped != "" {
			continue
		}
		for j, m := range out.matches {
			rs.gens = append(rs.gens, genRoute{origin: origin, name: routeDocName(kind, hr.Name, hr.CreationTimestamp.Time, i, j),
				spec: out.spec(hosts, m), services: out.services, rule: i})
		}
	}
	if len(refProblems) > 0 {
		rs.refs.message = strings.Join(refProblems, "; ")
	} else {
		rs.refs.message = "every backendRef resolves"
	}
	return rs
}

// attach works out one parentRef: ours is false when it does not name a
// Gateway of Cairn's classes (another controller's, or one not watched).
func attach(kind string, hr *gatewayv1.HTTPRoute, ref gatewayv1.ParentReference, gateways map[string]*gatewayState, v clusterView) (ps parentState, hosts []string, everyHost, ours bool) {
	group, parentKind := gatewayv1.GroupName, "Gateway"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		parentKind = string(*ref.Kind)
	}
	if group != gatewayv1.GroupName || parentKind != "Gateway" {
		return ps, nil, false, false
	}
	ns := hr.Namespace
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	gs := gateways[ns+"/"+string(ref.Name)]
	if gs == nil {
		return ps, nil, false, false
	}
	ps.ref = ref
	gwName := ns + "/" + string(ref.Name)
	var matched []*listenerState
	for _, ls := range gs.listeners {
		if ref.SectionName != nil && *ref.SectionName != "" && ls.l.Name != *ref.SectionName {
			continue
		}
		if ref.Port != nil && *ref.Port != 0 && ls.l.Port != *ref.Port {
			continue
		}
		matched = append(matched, ls)
	}
	if len(matched) == 0 {
		ps.reason, ps.message = gatewayv1.RouteReasonNoMatchingParent, fmt.Sprintf("Gateway %s has no listener%s", gwName, describeSection(ref))
		return ps, nil, false, true
	}
	var allowed []*listenerState
	if gs.accepted {
		for _, ls := range matched {
			if ls.allows(kind, hr.Namespace, gs.gw.Namespace, v) {
				allowed = append(allowed, ls)
			}
		}
	}
	if len(allowed) == 0 {
		ps.reason = gatewayv1.RouteReasonNotAllowedByListeners
		ps.message = fmt.Sprintf("no listener of Gateway %s%s takes %ss from namespace %s", gwName, describeSection(ref), kind, hr.Namespace)
		if !gs.accepted {
			ps.message = fmt.Sprintf("Gateway %s is not accepted: %s", gwName, gs.message)
		}
		return ps, nil, false, true
	}
	hostSet := map[string]bool{}
	for _, ls := range allowed {
		ls.attached++
		h, a, ok := intersectHosts(ls.l.Hostname, hr.Spec.Hostnames)
		if !ok {
			continue
		}
		ps.attached = true
		everyHost = everyHost || a
		for _, x := range h {
			hostSet[x] = true
		}
	}
	if !ps.attached {
		ps.reason, ps.message = gatewayv1.RouteReasonNoMatchingListenerHostname,
			fmt.Sprintf("no hostname of the route matches a listener of Gateway %s%s", gwName, describeSection(ref))
		return ps, nil, false, true
	}
	for h := range hostSet {
		hosts = append(hosts, h)
	}
	ps.reason, ps.message = gatewayv1.RouteReasonAccepted, "accepted by Cairn"
	return ps, hosts, everyHost, true
}

func describeSection(ref gatewayv1.ParentReference) string {
	s := ""
	if ref.SectionName != nil && *ref.SectionName != "" {
		s += fmt.Sprintf(" named %q", *ref.SectionName)
	}
	if ref.Port != nil && *ref.Port != 0 {
		s += fmt.Sprintf(" on port %d", *ref.Port)
	}
	return s
}

// ruleOut is a translated rule.
type ruleOut struct {
	matches     []config.Match
	backends    []config.Backend
	services    []registry.ServiceKey
	rewrite     *config.Rewrite
	timeouts    *config.Timeouts
	retries     *config.Retries
	invalid     string // set: every backend is the invalid one, and why
	dropped     string // set: no route is made, and why
	refProblems []refProblem
}

// spec is the RouteSpec of one of the rule's matches. It shares nothing
// with the other matches' specs: traffic policies are merged into each.
func (o *ruleOut) spec(hosts []string, m config.Match) config.RouteSpec {
	s := config.RouteSpec{Hosts: slices.Clone(hosts), Match: m, Backends: make([]config.Backend, len(o.backends))}
	for i, b := range o.backends {
		if b.Weight != nil {
			b.Weight = ptrTo(*b.Weight)
		}
		s.Backends[i] = b
	}
	if o.rewrite != nil {
		rw := *o.rewrite
		if rw.Prefix != nil {
			rw.Prefix = ptrTo(*rw.Prefix)
		}
		s.Rewrite = &rw
	}
	if o.timeouts != nil {
		s.Timeouts = ptrTo(*o.timeouts)
	}
	if o.retries != nil {
		rt := *o.retries
		rt.On = slices.Clone(rt.On)
		if rt.Attempts != nil {
			rt.Attempts = ptrTo(*rt.Attempts)
		}
		if rt.Backoff != nil {
			rt.Backoff = ptrTo(*rt.Backoff)
		}
		s.Retries = &rt
	}
	return s
}

type refProblem struct {
	reason  gatewayv1.RouteConditionReason
	message string
}

// translateRule maps one rule of a route of a kind (HTTPRoute, or a
// GRPCRoute made one): one Match per match, and the backends, rewrite,
// timeouts and retries they share. gRPC backends are spoken to in
// HTTP/2 (h2c).
func translateRule(kind, ns string, rule gatewayv1.HTTPRouteRule, v clusterView) ruleOut {
	var out ruleOut
	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gatewayv1.HTTPRouteMatch{{}} // prefix "/"
	}
	for j, m := range matches {
		cm, err := translateMatch(m)
		if err != nil {
			// The rule makes no route; its backendRefs are still
			// checked, for ResolvedRefs.
			out.dropped = fmt.Sprintf("matches[%d]: %v", j, err)
			break
		}
		out.matches = append(out.matches, cm)
	}
	errWeight := 0
	var weights []int
	for k, br := range rule.BackendRefs {
		w := 1
		if br.Weight != nil {
			w = int(*br.Weight)
		}
		be, key, p := resolveBackendRef(kind, ns, br.BackendObjectReference, v)
		if p != nil {
			p.message = fmt.Sprintf("backendRefs[%d]: %s", k, p.message)
			out.refProblems = append(out.refProblems, *p)
			errWeight += w
			continue
		}
		be.HTTP2 = kind == kindGRPCRoute
		if len(br.Filters) > 0 && out.invalid == "" {
			out.invalid = fmt.Sprintf("backendRefs[%d]: filters on a backendRef are not supported", k)
		}
		out.backends = append(out.backends, be)
		weights = append(weights, w)
		if !slices.Contains(out.services, key) {
			out.services = append(out.services, key)
		}
	}
	if errWeight > 0 {
		out.backends = append(out.backends, invalidBackend())
		weights = append(weights, errWeight)
	}
	scaleWeights(out.backends, weights)
	var err error
	if out.rewrite, err = translateFilters(rule.Filters, matches); err != nil && out.invalid == "" {
		out.invalid = err.Error()
	}
	if out.timeouts, err = translateTimeouts(rule.Timeouts); err != nil && out.invalid == "" {
		out.invalid = err.Error()
	}
	if out.retries, err = translateRetry(rule.Retry); err != nil && out.invalid == "" {
		out.invalid = err.Error()
	}
	if rule.SessionPersistence != nil && out.invalid == "" {
		out.invalid = "sessionPersistence is not supported"
	}
	total := 0
	for _, b := range out.backends {
		total += b.EffectiveWeight()
	}
	if out.invalid != "" || total == 0 {
		// No backend can take the rule's requests (none given, all of
		// weight 0, or a filter Cairn cannot apply): they get an error.
		out.backends = []config.Backend{invalidBackend()}
		out.services = nil
		out.rewrite, out.retries = nil, nil
	}
	return out
}

// scaleWeights sets each backend's weight, scaled down proportionally
// when the largest is over Cairn's limit (a weight that is not 0 stays at
// least 1).
func scaleWeights(bs []config.Backend, ws []int) {
	top := 0
	for _, w := range ws {
		top = max(top, w)
	}
	for i := range bs {
		w := ws[i]
		if top > maxWeight && w > 0 {
			w = max(1, (w*maxWeight+top/2)/top)
		}
		bs[i].Weight = ptrTo(w)
	}
}

// translateMatch maps one HTTPRouteMatch. Headers and query parameters
// named twice keep the first, as the API says.
func translateMatch(m gatewayv1.HTTPRouteMatch) (config.Match, error) {
	var cm config.Match
	typ, value := gatewayv1.PathMatchPathPrefix, "/"
	if p := m.Path; p != nil {
		if p.Type != nil {
			typ = *p.Type
		}
		if p.Value != nil {
			value = *p.Value
		}
	}
	switch typ {
	case gatewayv1.PathMatchPathPrefix:
		cm.Path = &config.PathMatch{Type: "prefix", Value: value}
	case gatewayv1.PathMatchExact:
		cm.Path = &config.PathMatch{Type: "exact", Value: value}
	case gatewayv1.PathMatchRegularExpression:
		if _, err := regexp.Compile(value); err != nil {
			return cm, fmt.Errorf("path %q is not an RE2 regular expression: %v", value, err)
		}
		cm.Path = &config.PathMatch{Type: "regex", Value: value}
	default:
		return cm, fmt.Errorf("path type %q is not supported", typ)
	}
	seen := map[string]bool{}
	for _, h := range m.Headers {
		name := strings.ToLower(string(h.Name))
		if seen[name] {
			continue
		}
		seen[name] = true
		vm, err := valueMatch(string(h.Name), h.Type, h.Value)
		if err != nil {
			return cm, fmt.Errorf("header %s: %v", h.Name, err)
		}
		cm.Headers = append(cm.Headers, vm)
	}
	clear(seen)
	for _, q := range m.QueryParams {
		if seen[string(q.Name)] {
			continue
		}
		seen[string(q.Name)] = true
		vm, err := valueMatch(string(q.Name), (*gatewayv1.HeaderMatchType)(q.Type), q.Value)
		if err != nil {
			return cm, fmt.Errorf("query parameter %s: %v", q.Name, err)
		}
		cm.Query = append(cm.Query, vm)
	}
	if m.Method != nil {
		cm.Methods = []string{string(*m.Method)}
	}
	return cm, nil
}

func valueMatch(name string, typ *gatewayv1.HeaderMatchType, value string) (config.ValueMatch, error) {
	t := gatewayv1.HeaderMatchExact
	if typ != nil {
		t = *typ
	}
	switch t {
	case gatewayv1.HeaderMatchExact:
		return config.ValueMatch{Name: name, Type: "exact", Value: value}, nil
	case gatewayv1.HeaderMatchRegularExpression:
		if _, err := regexp.Compile(value); err != nil {
			return config.ValueMatch{}, fmt.Errorf("%q is not an RE2 regular expression: %v", value, err)
		}
		return config.ValueMatch{Name: name, Type: "regex", Value: value}, nil
	}
	return config.ValueMatch{}, fmt.Errorf("match type %q is not supported", t)
}

// translateFilters maps a rule's filters: URLRewrite is Cairn's rewrite
// (ReplacePrefixMatch with PathPrefix matches, ReplaceFullPath with Exact
// ones, hostname); every other filter type is an error.
func translateFilters(fs []gatewayv1.HTTPRouteFilter, matches []gatewayv1.HTTPRouteMatch) (*config.Rewrite, error) {
	var rw *config.Rewrite
	for i, f := range fs {
		if f.Type != gatewayv1.HTTPRouteFilterURLRewrite || f.URLRewrite == nil {
			return nil, fmt.Errorf("filters[%d]: filter type %s is not supported", i, f.Type)
		}
		if rw != nil {
			return nil, fmt.Errorf("filters[%d]: at most one URLRewrite filter", i)
		}
		rw = &config.Rewrite{}
		if h := f.URLRewrite.Hostname; h != nil {
			rw.Host = strings.ToLower(string(*h))
		}
		p := f.URLRewrite.Path
		if p == nil {
			continue
		}
		switch p.Type {
		case gatewayv1.PrefixMatchHTTPPathModifier:
			if !allPathType(matches, gatewayv1.PathMatchPathPrefix) {
				return nil, fmt.Errorf("filters[%d]: ReplacePrefixMatch needs PathPrefix matches", i)
			}
			prefix := "/"
			if v := p.ReplacePrefixMatch; v != nil && *v != "" {
				prefix = *v
			}
			rw.Prefix = &prefix
		case gatewayv1.FullPathHTTPPathModifier:
			// Replacing the whole of an exact path is replacing its prefix.
			if !allPathType(matches, gatewayv1.PathMatchExact) || p.ReplaceFullPath == nil {
				return nil, fmt.Errorf("filters[%d]: ReplaceFullPath is supported only with Exact path matches", i)
			}
			full := *p.ReplaceFullPath
			rw.Prefix = &full
		default:
			return nil, fmt.Errorf("filters[%d]: path modifier %q is not supported", i, p.Type)
		}
	}
	return rw, nil
}

func allPathType(ms []gatewayv1.HTTPRouteMatch, t gatewayv1.PathMatchType) bool {
	for _, m := range ms {
		typ := gatewayv1.PathMatchPathPrefix
		if m.Path != nil && m.Path.Type != nil {
			typ = *m.Path.Type
		}
		if typ != t {
			return false
		}
	}
	return true
}

// translateTimeouts maps request to Cairn's request timeout (all tries)
// and backendRequest to its per-try timeout; "0s" turns either off in
// both APIs.
func translateTimeouts(t *gatewayv1.HTTPRouteTimeouts) (*config.Timeouts, error) {
	if t == nil || (t.Request == nil && t.BackendRequest == nil) {
		return nil, nil
	}
	out := &config.Timeouts{}
	for _, f := range []struct {
		name string
		in   *gatewayv1.Duration
		out  *string
	}{{"request", t.Request, &out.Request}, {"backendRequest", t.BackendRequest, &out.PerTry}} {
		if f.in == nil {
			continue
		}
		if d, err := time.ParseDuration(string(*f.in)); err != nil || d < 0 {
			return nil, fmt.Errorf("timeouts.%s: %q is not a duration", f.name, *f.in)
		}
		*f.out = string(*f.in)
	}
	return out, nil
}

// translateRetry maps the (experimental) retry stanza: connection errors
// and the codes given are retried.
func translateRetry(r *gatewayv1.HTTPRouteRetry) (*config.Retries, error) {
	if r == nil {
		return nil, nil
	}
	out := &config.Retries{On: []string{config.RetryConnectFailure, config.RetryReset, config.RetryTimeout}}
	for _, c := range r.Codes {
		if c < 500 || c > 599 {
			return nil, fmt.Errorf("retry.codes: %d is not supported (Cairn retries 5xx codes only)", c)
		}
		out.On = append(out.On, strconv.Itoa(int(c)))
	}
	if a := r.Attempts; a != nil {
		if *a < 0 || *a > 10 {
			return nil, fmt.Errorf("retry.attempts: %d is more than Cairn's limit of 10", *a)
		}
		out.Attempts = ptrTo(*a)
	}
	if b := r.Backoff; b != nil {
		if d, err := time.ParseDuration(string(*b)); err != nil || d < 0 {
			return nil, fmt.Errorf("retry.backoff: %q is not a duration", *b)
		}
		out.Backoff = &config.Backoff{Base: string(*b)}
	}
	return out, nil
}
