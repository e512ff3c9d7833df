package kube

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/proxy"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
)

// ---- Constructors of Gateway API objects.

func gwClass(name, controller string) *gatewayv1.GatewayClass {
	return &gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gatewayv1.GatewayClassSpec{ControllerName: gatewayv1.GatewayController(controller)}}
}

func gwGateway(ns, name, class string, listeners ...gatewayv1.Listener) *gatewayv1.Gateway {
	return &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gatewayv1.GatewaySpec{GatewayClassName: gatewayv1.ObjectName(class), Listeners: listeners}}
}

func gwListener(name string, protocol gatewayv1.ProtocolType, port int32, hostname string) gatewayv1.Listener {
	l := gatewayv1.Listener{Name: gatewayv1.SectionName(name), Protocol: protocol, Port: gatewayv1.PortNumber(port)}
	if hostname != "" {
		l.Hostname = ptrTo(gatewayv1.Hostname(hostname))
	}
	return l
}

func gwRoute(ns, name string, hostnames []string, parents []gatewayv1.ParentReference, rules ...gatewayv1.HTTPRouteRule) *gatewayv1.HTTPRoute {
	hr := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: parents}, Rules: rules}}
	for _, h := range hostnames {
		hr.Spec.Hostnames = append(hr.Spec.Hostnames, gatewayv1.Hostname(h))
	}
	return hr
}

func gwParent(name string) gatewayv1.ParentReference {
	return gatewayv1.ParentReference{Name: gatewayv1.ObjectName(name)}
}

func gwRule(matches []gatewayv1.HTTPRouteMatch, backends ...gatewayv1.HTTPBackendRef) gatewayv1.HTTPRouteRule {
	return gatewayv1.HTTPRouteRule{Matches: matches, BackendRefs: backends}
}

func gwPath(typ gatewayv1.PathMatchType, value string) gatewayv1.HTTPRouteMatch {
	return gatewayv1.HTTPRouteMatch{Path: &gatewayv1.HTTPPathMatch{Type: ptrTo(typ), Value: ptrTo(value)}}
}

func gwBackend(name string, port int32, weight int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{Weight: ptrTo(weight),
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptrTo(gatewayv1.PortNumber(port))}}}
}

func httpPortSvc(ns, name string) *corev1.Service {
	return svcWithPorts(ns, name, corev1.ServicePort{Name: "http", Port: 80})
}

// ---- Pure translation tests.

func TestGatewayAttachment(t *testing.T) {
	const ctrl = "cairn.dev/test"
	view := &fakeView{services: map[string]*corev1.Service{"app/web": httpPortSvc("app", "web")},
		nsLabels: map[string]map[string]string{"app": {"team": "shop"}, "other": {"team": "ops"}}}
	all, sel := gatewayv1.NamespacesFromAll, gatewayv1.NamespacesFromSelector
	open := gwListener("open", gatewayv1.HTTPProtocolType, 80, "*.example.com")
	open.AllowedRoutes = &gatewayv1.AllowedRoutes{Namespaces: &gatewayv1.RouteNamespaces{From: &all}}
	same := gwListener("same", gatewayv1.HTTPProtocolType, 8080, "")
	shop := gwListener("shop", gatewayv1.HTTPProtocolType, 9090, "")
	shop.AllowedRoutes = &gatewayv1.AllowedRoutes{Namespaces: &gatewayv1.RouteNamespaces{From: &sel,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}}}
	tcp := gwListener("tcp", gatewayv1.TCPProtocolType, 9000, "")
	in := gatewayInput{
		classes:  []*gatewayv1.GatewayClass{gwClass("cairn", ctrl), gwClass("theirs", "example.com/other")},
		gateways: []*gatewayv1.Gateway{gwGateway("infra", "gw", "cairn", open, same, shop, tcp), gwGateway("infra", "foreign", "theirs", same)},
	}
	rule := gwRule(nil, gwBackend("web", 80, 1))
	section := func(name string) gatewayv1.ParentReference {
		p := gwParent("gw")
		p.Namespace = ptrTo(gatewayv1.Namespace("infra"))
		p.SectionName = ptrTo(gatewayv1.SectionName(name))
		return p
	}
	cases := []struct {
		desc   string
		hosts  []string
		parent gatewayv1.ParentReference
		reason gatewayv1.RouteConditionReason
		want   []string // hosts of the documents
	}{
		{"a listener taking all namespaces, its hostname", []string{"shop.example.com", "shop.example.net"}, section("open"), gatewayv1.RouteReasonAccepted, []string{"shop.example.com"}},
		{"no matching listener hostname", []string{"shop.example.net"}, section("open"), gatewayv1.RouteReasonNoMatchingListenerHostname, nil},
		{"a listener taking its own namespace only", nil, section("same"), gatewayv1.RouteReasonNotAllowedByListeners, nil},
		{"a listener selecting namespaces by label", nil, section("shop"), gatewayv1.RouteReasonAccepted, nil},
		{"a TCP listener takes no HTTPRoute", nil, section("tcp"), gatewayv1.RouteReasonNotAllowedByListeners, nil},
		{"no listener of that name", nil, section("nope"), gatewayv1.RouteReasonNoMatchingParent, nil},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			in := in
			in.routes = []*gatewayv1.HTTPRoute{gwRoute("app", "r", c.hosts, []gatewayv1.ParentReference{c.parent}, rule)}
			res := translateGatewayAPI(in, view, ctrl)
			if len(res.routes) != 1 || len(res.routes[0].parents) != 1 {
				t.Fatalf("want one route with one parent of Cairn's, got %+v", res.routes)
			}
			rs := res.routes[0]
			if p := rs.parents[0]; p.reason != c.reason {
				t.Fatalf("reason %s (%s), want %s", p.reason, p.message, c.reason)
			}
			if c.reason != gatewayv1.RouteReasonAccepted {
				if len(rs.gens) != 0 {
					t.Fatalf("a route not accepted made %d routes", len(rs.gens))
				}
				return
			}
			if len(rs.gens) != 1 || strings.Join(rs.gens[0].spec.Hosts, ",") != strings.Join(c.want, ",") {
				t.Fatalf("routes %+v, want one with hosts %v", rs.gens, c.want)
			}
		})
	}
	// A parent of another controller's class is not Cairn's to report on.
	in.routes = []*gatewayv1.HTTPRoute{gwRoute("infra", "r", nil, []gatewayv1.ParentReference{gwParent("foreign")}, rule)}
	if res := translateGatewayAPI(in, view, ctrl); len(res.routes) != 0 || len(res.unowned) != 1 {
		t.Fatalf("a route of another controller's Gateway: %+v", res.routes)
	}
	// attachedRoutes counts a route allowed by a listener, whatever its
	// hostnames.
	in.routes = []*gatewayv1.HTTPRoute{
		gwRoute("app", "a", []string{"x.example.net"}, []gatewayv1.ParentReference{section("open")}, rule),
		gwRoute("app", "b", nil, []gatewayv1.ParentReference{section("open")}, rule),
	}
	res := translateGatewayAPI(in, view, ctrl)
	for _, gs := range res.gateways {
		if gs.gw.Name == "gw" && gs.listeners[0].attached != 2 {
			t.Fatalf("listener open: %d routes attached, want 2", gs.listeners[0].attached)
		}
		if gs.gw.Name == "gw" && (gs.listeners[3].supported || !gs.accepted || gs.reason != gatewayv1.GatewayReasonListenersNotValid) {
			t.Fatalf("gateway with a TCP listener: accepted=%v reason=%s, tcp supported=%v", gs.accepted, gs.reason, gs.listeners[3].supported)
		}
	}
}

func TestHTTPRouteTranslateRules(t *testing.T) {
	view := &fakeView{services: map[string]*corev1.Service{
		"app/web":   httpPortSvc("app", "web"),
		"app/plain": svcWithPorts("app", "plain", corev1.ServicePort{Port: 80}),
	}}
	rewrite := func(typ gatewayv1.HTTPPathModifierType, v string) gatewayv1.HTTPRouteFilter {
		p := &gatewayv1.HTTPPathModifier{Type: typ}
		if typ == gatewayv1.PrefixMatchHTTPPathModifier {
			p.ReplacePrefixMatch = &v
		} else {
			p.ReplaceFullPath = &v
		}
		return gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: &gatewayv1.HTTPURLRewriteFilter{Path: p}}
	}
	withFilters := func(r gatewayv1.HTTPRouteRule, fs ...gatewayv1.HTTPRouteFilter) gatewayv1.HTTPRouteRule {
		r.Filters = fs
		return r
	}
	hdr := func(name, value string) gatewayv1.HTTPHeaderMatch {
		return gatewayv1.HTTPHeaderMatch{Name: gatewayv1.HTTPHeaderName(name), Value: value}
	}
	prefix := gwPath(gatewayv1.PathMatchPathPrefix, "/api")
	exact := gwPath(gatewayv1.PathMatchExact, "/old")
	dupHeaders := gwPath(gatewayv1.PathMatchPathPrefix, "/")
	dupHeaders.Headers = []gatewayv1.HTTPHeaderMatch{hdr("X-Canary", "1"), hdr("x-canary", "2")}
	cases := []struct {
		desc    string
		rule    gatewayv1.HTTPRouteRule
		check   func(ruleOut) string
		invalid bool
		dropped bool
	}{
		{"weights over Cairn's limit are scaled", gwRule(nil, gwBackend("web", 80, 1000000), gwBackend("plain", 80, 1)), func(o ruleOut) string {
			if w0, w1 := *o.backends[0].Weight, *o.backends[1].Weight; w0 != 10000 || w1 != 1 {
				return fmt.Sprintf("weights %d, %d", w0, w1)
			}
			if o.backends[0].Port != "http" || o.backends[1].Port != "" {
				return fmt.Sprintf("ports %q %q, want the named port and none for the unnamed one", o.backends[0].Port, o.backends[1].Port)
			}
			return ""
		}, false, false},
		{"an invalid backend keeps its share of the weight", gwRule(nil, gwBackend("web", 80, 3), gwBackend("missing", 80, 1)), func(o ruleOut) string {
			if len(o.backends) != 2 || o.backends[1].Status != 500 || *o.backends[1].Weight != 1 || *o.backends[0].Weight != 3 {
				return fmt.Sprintf("backends %+v", o.backends)
			}
			if len(o.refProblems) != 1 || o.refProblems[0].reason != gatewayv1.RouteReasonBackendNotFound {
				return fmt.Sprintf("problems %+v", o.refProblems)
			}
			return ""
		}, false, false},
		{"weights of 0 only: every request gets an error", gwRule(nil, gwBackend("web", 80, 0)), func(o ruleOut) string {
			if len(o.backends) != 1 || o.backends[0].Status != 500 {
				return fmt.Sprintf("backends %+v", o.backends)
			}
			return ""
		}, false, false},
		{"no backendRefs: every request gets an error", gwRule(nil), func(o ruleOut) string {
			if len(o.backends) != 1 || o.backends[0].Status != 500 {
				return fmt.Sprintf("backends %+v", o.backends)
			}
			return ""
		}, false, false},
		{"ReplacePrefixMatch with a prefix match", withFilters(gwRule([]gatewayv1.HTTPRouteMatch{prefix}, gwBackend("web", 80, 1)),
			rewrite(gatewayv1.PrefixMatchHTTPPathModifier, "")), func(o ruleOut) string {
			if o.rewrite == nil || *o.rewrite.Prefix != "/" {
				return fmt.Sprintf("rewrite %+v, want prefix /", o.rewrite)
			}
			return ""
		}, false, false},
		{"ReplacePrefixMatch with an exact match", withFilters(gwRule([]gatewayv1.HTTPRouteMatch{exact}, gwBackend("web", 80, 1)),
			rewrite(gatewayv1.PrefixMatchHTTPPathModifier, "/new")), nil, true, false},
		{"ReplaceFullPath with an exact match", withFilters(gwRule([]gatewayv1.HTTPRouteMatch{exact}, gwBackend("web", 80, 1)),
			rewrite(gatewayv1.FullPathHTTPPathModifier, "/new")), func(o ruleOut) string {
			if o.rewrite == nil || *o.rewrite.Prefix != "/new" {
				return fmt.Sprintf("rewrite %+v, want prefix /new", o.rewrite)
			}
			return ""
		}, false, false},
		{"a filter Cairn cannot apply makes the rule answer errors", withFilters(gwRule(nil, gwBackend("web", 80, 1)),
			gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gatewayv1.HTTPRequestRedirectFilter{}}), func(o ruleOut) string {
			if len(o.backends) != 1 || o.backends[0].Status != 500 || o.rewrite != nil {
				return fmt.Sprintf("backends %+v rewrite %+v", o.backends, o.rewrite)
			}
			return ""
		}, true, false},
		{"a header named twice keeps the first", gwRule([]gatewayv1.HTTPRouteMatch{dupHeaders}, gwBackend("web", 80, 1)), func(o ruleOut) string {
			if h := o.matches[0].Headers; len(h) != 1 || h[0].Value != "1" {
				return fmt.Sprintf("headers %+v", h)
			}
			return ""
		}, false, false},
		{"a bad regular expression drops the rule", gwRule([]gatewayv1.HTTPRouteMatch{gwPath(gatewayv1.PathMatchRegularExpression, "/(")}, gwBackend("web", 80, 1)), nil, false, true},
		{"timeouts", func() gatewayv1.HTTPRouteRule {
			r := gwRule(nil, gwBackend("web", 80, 1))
			r.Timeouts = &gatewayv1.HTTPRouteTimeouts{Request: ptrTo(gatewayv1.Duration("10s")), BackendRequest: ptrTo(gatewayv1.Duration("0s"))}
			return r
		}(), func(o ruleOut) string {
			if o.timeouts == nil || o.timeouts.Request != "10s" || o.timeouts.PerTry != "0s" {
				return fmt.Sprintf("timeouts %+v", o.timeouts)
			}
			return ""
		}, false, false},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			o := translateRule(kindHTTPRoute, "app", c.rule, view)
			if (o.invalid != "") != c.invalid || (o.dropped != "") != c.dropped {
				t.Fatalf("invalid=%q dropped=%q, want invalid=%v dropped=%v", o.invalid, o.dropped, c.invalid, c.dropped)
			}
			if c.check != nil {
				if msg := c.check(o); msg != "" {
					t.Fatal(msg)
				}
			}
			if o.dropped != "" {
				return
			}
			// What the rule makes passes the checks of `cairn apply`.
			for _, m := range o.matches {
				g := genRoute{origin: objectRef{Kind: kindHTTPRoute, Namespace: "app", Name: "r"}, name: "r", spec: o.spec(nil, m)}
				if _, err := makeDocument(&g); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestHTTPRouteBackendRefs(t *testing.T) {
	grant := func(from, to string, name string) *gatewayv1beta1.ReferenceGrant {
		g := &gatewayv1beta1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: to, Name: "g"},
			Spec: gatewayv1beta1.ReferenceGrantSpec{
				From: []gatewayv1beta1.ReferenceGrantFrom{{Group: gatewayv1.GroupName, Kind: kindHTTPRoute, Namespace: gatewayv1.Namespace(from)}},
				To:   []gatewayv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service"}}}}
		if name != "" {
			g.Spec.To[0].Name = ptrTo(gatewayv1.ObjectName(name))
		}
		return g
	}
	ext := httpPortSvc("app", "ext")
	ext.Spec.Type = corev1.ServiceTypeExternalName
	view := &fakeView{
		services: map[string]*corev1.Service{"app/web": httpPortSvc("app", "web"), "app/ext": ext,
			"shared/db": httpPortSvc("shared", "db"), "granted/api": httpPortSvc("granted", "api")},
		unwatched: map[string]bool{"far": true},
		grants: map[string][]*gatewayv1beta1.ReferenceGrant{
			"shared":  {grant("elsewhere", "shared", ""), grant("app", "shared", "other")},
			"granted": {grant("app", "granted", "")},
		},
	}
	ref := func(ns, name string, port int32) gatewayv1.BackendObjectReference {
		r := gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptrTo(gatewayv1.PortNumber(port))}
		if ns != "" {
			r.Namespace = ptrTo(gatewayv1.Namespace(ns))
		}
		return r
	}
	kind := ref("", "bucket", 0)
	kind.Group, kind.Kind, kind.Port = ptrTo(gatewayv1.Group("example.com")), ptrTo(gatewayv1.Kind("Bucket")), nil
	cases := []struct {
		desc   string
		ref    gatewayv1.BackendObjectReference
		reason gatewayv1.RouteConditionReason // "" when it resolves
		port   config.PortRef
	}{
		{"a Service port by number is its name", ref("", "web", 80), "", "http"},
		{"a missing Service", ref("", "nope", 80), gatewayv1.RouteReasonBackendNotFound, ""},
		{"a missing port", ref("", "web", 81), gatewayv1.RouteReasonBackendNotFound, ""},
		{"another kind", kind, gatewayv1.RouteReasonInvalidKind, ""},
		{"an ExternalName Service", ref("", "ext", 80), gatewayv1.RouteReasonInvalidKind, ""},
		{"another namespace without a grant for this one or this name", ref("shared", "db", 80), gatewayv1.RouteReasonRefNotPermitted, ""},
		{"not permitted comes before not found", ref("shared", "nope", 80), gatewayv1.RouteReasonRefNotPermitted, ""},
		{"another namespace with a grant", ref("granted", "api", 80), "", "http"},
		{"a namespace Cairn does not watch", ref("far", "x", 80), gatewayv1.RouteReasonRefNotPermitted, ""},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			be, _, p := resolveBackendRef(kindHTTPRoute, "app", c.ref, view)
			switch {
			case c.reason == "" && p != nil:
				t.Fatalf("%s: %s", p.reason, p.message)
			case c.reason != "" && (p == nil || p.reason != c.reason):
				t.Fatalf("got %+v, want reason %s", p, c.reason)
			case c.reason == "" && be.Port != c.port:
				t.Fatalf("port %q, want %q", be.Port, c.port)
			}
		})
	}
	view.grants["far"] = []*gatewayv1beta1.ReferenceGrant{grant("app", "far", "")}
	if _, _, p := resolveBackendRef(kindHTTPRoute, "app", ref("far", "x", 80), view); p == nil || p.reason != gatewayv1.RouteReasonBackendNotFound {
		t.Fatalf("a granted Service in a namespace Cairn does not watch: %+v, want BackendNotFound", p)
	}
}

// A rule that cannot be served as written makes the route PartiallyInvalid;
// when no rule can, the route is not Accepted.
func TestHTTPRouteRuleConditions(t *testing.T) {
	const ctrl = "cairn.dev/test"
	view := &fakeView{services: map[string]*corev1.Service{"app/web": httpPortSvc("app", "web")}}
	redirect := gwRule([]gatewayv1.HTTPRouteMatch{gwPath(gatewayv1.PathMatchPathPrefix, "/old")}, gwBackend("web", 80, 1))
	redirect.Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gatewayv1.HTTPRequestRedirectFilter{}}}
	in := gatewayInput{
		classes:  []*gatewayv1.GatewayClass{gwClass("cairn", ctrl)},
		gateways: []*gatewayv1.Gateway{gwGateway("app", "gw", "cairn", gwListener("http", gatewayv1.HTTPProtocolType, 80, ""))},
		routes:   []*gatewayv1.HTTPRoute{gwRoute("app", "r", nil, []gatewayv1.ParentReference{gwParent("gw")}, gwRule(nil, gwBackend("web", 80, 1)), redirect)},
	}
	rs := translateGatewayAPI(in, view, ctrl).routes[0]
	if len(rs.gens) != 2 || rs.gens[1].spec.Backends[0].Status != 500 {
		t.Fatalf("the redirect rule should answer errors: %+v", rs.gens)
	}
	cond := func(entries []parentEntry, typ string) *metav1.Condition {
		if len(entries) != 1 {
			t.Fatalf("%d parent entries", len(entries))
		}
		return meta.FindStatusCondition(entries[0].conds, typ)
	}
	entries := routeParents(rs, map[config.Key]dropNote{})
	if c := cond(entries, "Accepted"); c.Status != metav1.ConditionTrue {
		t.Fatalf("Accepted %+v", c)
	}
	if c := cond(entries, "PartiallyInvalid"); c == nil || c.Status != metav1.ConditionTrue || c.Reason != "UnsupportedValue" ||
		!strings.HasPrefix(c.Message, "Dropped Rule") || !strings.Contains(c.Message, "RequestRedirect") {
		t.Fatalf("PartiallyInvalid %+v", c)
	}
	// The other rule's document name is taken in Cairn: nothing is served
	// as written.
	entries = routeParents(rs, map[config.Key]dropNote{rs.gens[0].key(): {message: "taken", conflict: true}})
	if c := cond(entries, "Accepted"); c.Status != metav1.ConditionFalse || c.Reason != string(reasonRouteConflict) {
		t.Fatalf("Accepted %+v", c)
	}
	if c := cond(entries, "PartiallyInvalid"); c != nil {
		t.Fatalf("a route not accepted is not PartiallyInvalid: %+v", c)
	}
	if c := cond(entries, "ResolvedRefs"); c.Status != metav1.ConditionTrue {
		t.Fatalf("ResolvedRefs %+v", c)
	}
}

// The routes made from HTTPRoutes keep the Gateway API's precedence when
// Cairn's router picks one: a real engine serves them.
func TestHTTPRoutePrecedence(t *testing.T) {
	const ctrl = "cairn.dev/test"
	svcs := map[string]*corev1.Service{}
	backends := map[string]string{} // service -> address
	for _, n := range []string{"exact", "regex", "prefix-long", "prefix", "old", "new", "method", "headers", "one-header", "query", "rule0", "rule1"} {
		svcs["app/"+n] = httpPortSvc("app", n)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, n) }))
		t.Cleanup(srv.Close)
		backends[n] = srv.Listener.Addr().String()
	}
	view := &fakeView{services: svcs}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	route := func(name string, age int, rules ...gatewayv1.HTTPRouteRule) *gatewayv1.HTTPRoute {
		hr := gwRoute("app", name, nil, []gatewayv1.ParentReference{gwParent("gw")}, rules...)
		hr.CreationTimestamp = metav1.NewTime(t0.Add(time.Duration(age) * time.Second))
		return hr
	}
	m := func(typ gatewayv1.PathMatchType, v string, f func(*gatewayv1.HTTPRouteMatch)) []gatewayv1.HTTPRouteMatch {
		x := gwPath(typ, v)
		if f != nil {
			f(&x)
		}
		return []gatewayv1.HTTPRouteMatch{x}
	}
	hdrs := func(names ...string) func(*gatewayv1.HTTPRouteMatch) {
		return func(x *gatewayv1.HTTPRouteMatch) {
			for _, n := range names {
				x.Headers = append(x.Headers, gatewayv1.HTTPHeaderMatch{Name: gatewayv1.HTTPHeaderName(n), Value: "1"})
			}
		}
	}
	to := func(n string) gatewayv1.HTTPBackendRef { return gwBackend(n, 80, 1) }
	prefix, exact, regex := gatewayv1.PathMatchPathPrefix, gatewayv1.PathMatchExact, gatewayv1.PathMatchRegularExpression
	in := gatewayInput{
		classes:  []*gatewayv1.GatewayClass{gwClass("cairn", ctrl)},
		gateways: []*gatewayv1.Gateway{gwGateway("app", "gw", "cairn", gwListener("http", gatewayv1.HTTPProtocolType, 80, ""))},
		routes: []*gatewayv1.HTTPRoute{
			// The older of two routes with equal matches wins, though its
			// name sorts after the newer one's.
			route("zz-old", 1, gwRule(m(prefix, "/", nil), to("old"))),
			route("aa-new", 2, gwRule(m(prefix, "/", nil), to("new"))),
			route("paths", 3,
				gwRule(m(prefix, "/api", nil), to("prefix")),
				gwRule(m(prefix, "/api/v1", nil), to("prefix-long")),
				gwRule(m(exact, "/api", nil), to("exact")),
				gwRule(m(regex, "/api/[0-9]+", nil), to("regex"))),
			route("conditions", 4,
				gwRule(m(prefix, "/c", hdrs("a", "b")), to("headers")),
				gwRule(m(prefix, "/c", func(x *gatewayv1.HTTPRouteMatch) { x.Method = ptrTo(gatewayv1.HTTPMethodGet) }), to("method")),
				gwRule(m(prefix, "/h", hdrs("a")), to("one-header")),
				gwRule(m(prefix, "/h", hdrs("a", "b")), to("headers")),
				gwRule(m(prefix, "/q", func(x *gatewayv1.HTTPRouteMatch) {
					x.QueryParams = []gatewayv1.HTTPQueryParamMatch{{Name: "q", Value: "1"}, {Name: "r", Value: "1"}}
				}), to("query")),
				gwRule(m(prefix, "/q", hdrs("a")), to("one-header")),
				// Equal matches within a route: the first rule wins.
				gwRule(m(prefix, "/r", nil), to("rule0")),
				gwRule(m(prefix, "/r", nil), to("rule1"))),
		},
	}
	res := translateGatewayAPI(in, view, ctrl)
	var docs []config.Document
	for _, g := range res.gens() {
		d, err := makeDocument(&g)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, *d)
	}
	e := proxy.NewEngine(proxy.Options{Logger: testLogger(t)})
	err := e.Update(&proxy.Snapshot{Revision: 1, Routes: docs, Lookup: func(k proxy.ServiceKey) []proxy.Instance {
		host, port, _ := net.SplitHostPort(backends[k.Name])
		var p int
		fmt.Sscan(port, &p)
		return []proxy.Instance{{ID: k.Name, Host: host, Ports: map[string]int{"http": p}}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path string
		headers      []string
		want         string
	}{
		{"GET", "/api", nil, "exact"},
		{"GET", "/api/7", nil, "regex"},
		{"GET", "/api/v1/x", nil, "prefix-long"},
		{"GET", "/api/x", nil, "prefix"},
		{"GET", "/other", nil, "old"},
		{"GET", "/c", []string{"a", "b"}, "method"},
		{"POST", "/c", []string{"a", "b"}, "headers"},
		{"GET", "/h", []string{"a", "b"}, "headers"},
		{"GET", "/h", []string{"a"}, "one-header"},
		{"GET", "/q?q=1&r=1", []string{"a"}, "one-header"},
		{"GET", "/q?q=1&r=1", nil, "query"},
		{"GET", "/r", nil, "rule0"},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "http://any.example.com"+c.path, nil)
		for _, h := range c.headers {
			req.Header.Set(h, "1")
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if got := rec.Body.String(); rec.Code != 200 || got != c.want {
			t.Errorf("%s %s %v: %d %q, want %q", c.method, c.path, c.headers, rec.Code, got, c.want)
		}
	}
}

// ---- Against the API server.

func gwClientset(t *testing.T) gatewayclient.Interface {
	t.Helper()
	cs, err := gatewayclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// testClass creates a GatewayClass for one test, with a controllerName of
// its own so that controllers of other tests leave it alone.
func testClass(t *testing.T, ns string) (class, controller string) {
	t.Helper()
	class, controller = "cairn-"+ns, "cairn.dev/"+ns
	gw := gwClientset(t)
	if _, err := gw.GatewayV1().GatewayClasses().Create(context.Background(), gwClass(class, controller), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.GatewayV1().GatewayClasses().Delete(context.Background(), class, metav1.DeleteOptions{}) })
	return class, controller
}

// routeCondition returns an HTTPRoute's condition of a type, for Cairn's
// parent entry of the Gateway named gateway.
func routeCondition(t *testing.T, gw gatewayclient.Interface, ns, name, controller, gateway, typ string) (*metav1.Condition, int64) {
	t.Helper()
	hr, err := gw.GatewayV1().HTTPRoutes(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range hr.Status.Parents {
		if string(p.ControllerName) == controller && string(p.ParentRef.Name) == gateway {
			return meta.FindStatusCondition(p.Conditions, typ), hr.Generation
		}
	}
	return nil, hr.Generation
}

// waitRouteCondition waits until an HTTPRoute's condition has a status
// and reason, for its current generation.
func waitRouteCondition(t *testing.T, gw gatewayclient.Interface, ns, name, controller, typ string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var got *metav1.Condition
	eventually(t, 15*time.Second, fmt.Sprintf("HTTPRoute %s: %s=%s (%s)", name, typ, status, reason), func() (bool, string) {
		c, gen := routeCondition(t, gw, ns, name, controller, "gw", typ)
		got = c
		if c == nil {
			return false, "no condition"
		}
		return c.Status == status && c.Reason == reason && c.ObservedGeneration == gen, fmt.Sprintf("%+v", *c)
	})
	return got
}

// An HTTPRoute with weights, header matches and bad backendRefs routes
// real requests through the gateway and gets the conditions the Gateway
// API defines; a ReferenceGrant turns RefNotPermitted into resolved; a
// deleted HTTPRoute takes its routes with it.
func TestHTTPRouteTrafficAndStatus(t *testing.T) {
	ns, other := testNamespace(t), testNamespace(t)
	class, controller := testClass(t, ns)
	ctx := context.Background()
	gw := gwClientset(t)
	reg := newRegistry(t)
	g := startTestGateway(t, reg)
	routesService(t, ns, "v1", map[string]int32{"http": 80})
	routesService(t, ns, "v2", map[string]int32{"http": 80})
	routesService(t, other, "shared", map[string]int32{"web": 8000})
	g.backend(ns, "v1", "v1", "http")
	g.backend(ns, "v2", "v2", "http")
	g.backend(other, "shared", "shared", "web")

	startController(t, Options{Namespaces: []string{ns, other}, Registry: reg, GatewayController: controller, StatusAddress: "192.0.2.10"})
	if _, err := gw.GatewayV1().Gateways(ns).Create(ctx, gwGateway(ns, "gw", class, gwListener("http", gatewayv1.HTTPProtocolType, 80, "")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	parents := []gatewayv1.ParentReference{gwParent("gw")}
	canary := gwPath(gatewayv1.PathMatchPathPrefix, "/")
	canary.Headers = []gatewayv1.HTTPHeaderMatch{{Name: "X-Canary", Value: "1"}}
	rewrite := gwRule([]gatewayv1.HTTPRouteMatch{gwPath(gatewayv1.PathMatchPathPrefix, "/old")}, gwBackend("v1", 80, 1))
	rewrite.Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: &gatewayv1.HTTPURLRewriteFilter{
		Path: &gatewayv1.HTTPPathModifier{Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptrTo("/new")}}}}
	cross := gwBackend("shared", 8000, 1)
	cross.Namespace = ptrTo(gatewayv1.Namespace(other))
	bucket := gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
		Group: ptrTo(gatewayv1.Group("example.com")), Kind: ptrTo(gatewayv1.Kind("Bucket")), Name: "photos"}}}
	for _, hr := range []*gatewayv1.HTTPRoute{
		gwRoute(ns, "split", []string{"split.example.com"}, parents,
			gwRule([]gatewayv1.HTTPRouteMatch{canary}, gwBackend("v2", 80, 1)),
			gwRule(nil, gwBackend("v1", 80, 80), gwBackend("v2", 80, 20)),
			rewrite),
		gwRoute(ns, "half", []string{"half.example.com"}, parents, gwRule(nil, gwBackend("v1", 80, 1), gwBackend("missing", 80, 1))),
		gwRoute(ns, "cross", []string{"cross.example.com"}, parents, gwRule(nil, cross)),
		gwRoute(ns, "kind", []string{"kind.example.com"}, parents, gwRule(nil, bucket)),
	} {
		if _, err := gw.GatewayV1().HTTPRoutes(ns).Create(ctx, hr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Header match: the canary takes requests with the header.
	g.expect("split.example.com", "/", 200, "v2", "X-Canary", "1")
	// The rewrite replaces the matched prefix.
	g.expect("split.example.com", "/old/x", 200, "v1 /new/x")
	// Weights: 80/20 over 400 requests.
	counts := map[string]int{}
	for range 400 {
		code, body := g.get("split.example.com", "/")
		if code != 200 {
			t.Fatalf("split: %d %s", code, body)
		}
		counts[strings.Fields(body)[0]]++
	}
	if v1 := counts["v1"]; v1 < 280 || v1 > 360 || counts["v1"]+counts["v2"] != 400 {
		t.Fatalf("80/20 split over 400 requests: %v", counts)
	}
	t.Logf("80/20 split: %v", counts)
	waitRouteCondition(t, gw, ns, "split", controller, "Accepted", metav1.ConditionTrue, "Accepted")
	waitRouteCondition(t, gw, ns, "split", controller, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs")

	// A missing Service keeps its share: about half the requests fail.
	c := waitRouteCondition(t, gw, ns, "half", controller, "ResolvedRefs", metav1.ConditionFalse, "BackendNotFound")
	if !strings.Contains(c.Message, "missing") {
		t.Errorf("BackendNotFound message %q does not name the Service", c.Message)
	}
	waitRouteCondition(t, gw, ns, "half", controller, "Accepted", metav1.ConditionTrue, "Accepted")
	failed := 0
	for range 200 {
		code, body := g.get("half.example.com", "/")
		switch {
		case code == 500:
			failed++
		case code != 200 || !strings.HasPrefix(body, "v1"):
			t.Fatalf("half: %d %s", code, body)
		}
	}
	if failed < 60 || failed > 140 {
		t.Fatalf("half: %d of 200 requests failed, want about 100", failed)
	}

	// Another kind: InvalidKind, and its requests fail.
	waitRouteCondition(t, gw, ns, "kind", controller, "ResolvedRefs", metav1.ConditionFalse, "InvalidKind")
	g.expect("kind.example.com", "/", 500, "")

	// Another namespace: not permitted until a ReferenceGrant there says so.
	waitRouteCondition(t, gw, ns, "cross", controller, "ResolvedRefs", metav1.ConditionFalse, "RefNotPermitted")
	g.expect("cross.example.com", "/", 500, "")
	grant := &gatewayv1beta1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "from-" + ns},
		Spec: gatewayv1beta1.ReferenceGrantSpec{
			From: []gatewayv1beta1.ReferenceGrantFrom{{Group: gatewayv1.GroupName, Kind: "HTTPRoute", Namespace: gatewayv1.Namespace(ns)}},
			To:   []gatewayv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service"}}}}
	if _, err := gw.GatewayV1beta1().ReferenceGrants(other).Create(ctx, grant, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRouteCondition(t, gw, ns, "cross", controller, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs")
	g.expect("cross.example.com", "/", 200, "shared")

	// Gateway and GatewayClass status.
	eventually(t, 15*time.Second, "Gateway status", func() (bool, string) {
		got, err := gw.GatewayV1().Gateways(ns).Get(ctx, "gw", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := got.Status
		ok := meta.IsStatusConditionTrue(st.Conditions, "Accepted") && meta.IsStatusConditionTrue(st.Conditions, "Programmed") &&
			len(st.Addresses) == 1 && st.Addresses[0].Value == "192.0.2.10" && *st.Addresses[0].Type == gatewayv1.IPAddressType &&
			len(st.Listeners) == 1 && st.Listeners[0].AttachedRoutes == 4 && len(st.Listeners[0].SupportedKinds) == 2 &&
			st.Listeners[0].SupportedKinds[0].Kind == "HTTPRoute" && st.Listeners[0].SupportedKinds[1].Kind == "GRPCRoute" && meta.IsStatusConditionTrue(st.Listeners[0].Conditions, "Programmed")
		return ok, fmt.Sprintf("%+v", st)
	})
	eventually(t, 15*time.Second, "GatewayClass accepted", func() (bool, string) {
		gc, err := gw.GatewayV1().GatewayClasses().Get(ctx, class, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(gc.Status.Conditions, "Accepted")
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == gc.Generation, fmt.Sprintf("%+v", gc.Status)
	})

	// A deleted HTTPRoute takes its routes away.
	if n := len(routeDocs(reg, kindHTTPRoute, ns, "split")); n != 3 {
		t.Fatalf("split should make 3 routes (one per rule and match): %d", n)
	}
	if err := gw.GatewayV1().HTTPRoutes(ns).Delete(ctx, "split", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the routes of a deleted HTTPRoute are gone", func() (bool, string) {
		n := len(routeDocs(reg, kindHTTPRoute, ns, "split"))
		return n == 0, fmt.Sprintf("%d documents", n)
	})
	g.expect("split.example.com", "/", 404, "")
	eventually(t, 15*time.Second, "the listener counts 3 routes", func() (bool, string) {
		got, _ := gw.GatewayV1().Gateways(ns).Get(ctx, "gw", metav1.GetOptions{})
		return len(got.Status.Listeners) == 1 && got.Status.Listeners[0].AttachedRoutes == 3, fmt.Sprintf("%+v", got.Status.Listeners)
	})

	// A Service made later resolves the reference that named it.
	routesService(t, ns, "missing", map[string]int32{"http": 80})
	waitRouteCondition(t, gw, ns, "half", controller, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs")
}

// A Gateway's listeners: an HTTP one is programmed; a TCP one is not
// accepted (UnsupportedProtocol); route kinds Cairn does not serve are
// InvalidRouteKinds.
func TestGatewayListenerStatus(t *testing.T) {
	ns := testNamespace(t)
	class, controller := testClass(t, ns)
	ctx := context.Background()
	gw := gwClientset(t)
	startController(t, Options{Namespaces: []string{ns}, GatewayController: controller})
	kinds := gwListener("kinds", gatewayv1.HTTPProtocolType, 8080, "")
	kinds.AllowedRoutes = &gatewayv1.AllowedRoutes{Kinds: []gatewayv1.RouteGroupKind{{Kind: "HTTPRoute"}, {Kind: "TCPRoute"}}}
	obj := gwGateway(ns, "gw", class, gwListener("http", gatewayv1.HTTPProtocolType, 80, "shop.example.com"),
		gwListener("tcp", gatewayv1.TCPProtocolType, 9000, ""), kinds)
	if _, err := gw.GatewayV1().Gateways(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "listener status", func() (bool, string) {
		got, err := gw.GatewayV1().Gateways(ns).Get(ctx, "gw", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := got.Status
		if len(st.Listeners) != 3 {
			return false, fmt.Sprintf("%+v", st)
		}
		accepted := meta.FindStatusCondition(st.Conditions, "Accepted")
		tcp := meta.FindStatusCondition(st.Listeners[1].Conditions, "Accepted")
		refs := meta.FindStatusCondition(st.Listeners[2].Conditions, "ResolvedRefs")
		ok := accepted != nil && accepted.Status == metav1.ConditionTrue && accepted.Reason == "ListenersNotValid" &&
			meta.IsStatusConditionTrue(st.Listeners[0].Conditions, "Programmed") &&
			tcp != nil && tcp.Status == metav1.ConditionFalse && tcp.Reason == "UnsupportedProtocol" && len(st.Listeners[1].SupportedKinds) == 0 &&
			refs != nil && refs.Status == metav1.ConditionFalse && refs.Reason == "InvalidRouteKinds" && len(st.Listeners[2].SupportedKinds) == 1 &&
			len(st.Addresses) == 0 && accepted.ObservedGeneration == got.Generation
		return ok, fmt.Sprintf("%+v", st)
	})
}

// A route whose hostnames no listener serves is not accepted
// (NoMatchingListenerHostname) and makes no routes; one naming a listener
// the Gateway does not have gets NoMatchingParent.
func TestHTTPRouteNotAccepted(t *testing.T) {
	ns := testNamespace(t)
	class, controller := testClass(t, ns)
	ctx := context.Background()
	gw := gwClientset(t)
	reg := newRegistry(t)
	routesService(t, ns, "web", map[string]int32{"http": 80})
	startController(t, Options{Namespaces: []string{ns}, Registry: reg, GatewayController: controller})
	if _, err := gw.GatewayV1().Gateways(ns).Create(ctx, gwGateway(ns, "gw", class, gwListener("http", gatewayv1.HTTPProtocolType, 80, "shop.example.com")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wrongSection := gwParent("gw")
	wrongSection.SectionName = ptrTo(gatewayv1.SectionName("https"))
	for _, hr := range []*gatewayv1.HTTPRoute{
		gwRoute(ns, "elsewhere", []string{"blog.example.com"}, []gatewayv1.ParentReference{gwParent("gw")}, gwRule(nil, gwBackend("web", 80, 1))),
		gwRoute(ns, "section", nil, []gatewayv1.ParentReference{wrongSection}, gwRule(nil, gwBackend("web", 80, 1))),
	} {
		if _, err := gw.GatewayV1().HTTPRoutes(ns).Create(ctx, hr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitRouteCondition(t, gw, ns, "elsewhere", controller, "Accepted", metav1.ConditionFalse, "NoMatchingListenerHostname")
	waitRouteCondition(t, gw, ns, "section", controller, "Accepted", metav1.ConditionFalse, "NoMatchingParent")
	if docs := routeDocs(reg, kindHTTPRoute, ns, "elsewhere"); len(docs) != 0 {
		t.Fatalf("a route not accepted made %d documents", len(docs))
	}
}
