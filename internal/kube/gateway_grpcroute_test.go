package kube

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func grpcMethod(typ gatewayv1.GRPCMethodMatchType, service, method string) *gatewayv1.GRPCMethodMatch {
	m := &gatewayv1.GRPCMethodMatch{Type: ptrTo(typ)}
	if service != "" {
		m.Service = ptrTo(service)
	}
	if method != "" {
		m.Method = ptrTo(method)
	}
	return m
}

func TestGatewayGRPCRoutePaths(t *testing.T) {
	exact, regex := gatewayv1.GRPCMethodMatchExact, gatewayv1.GRPCMethodMatchRegularExpression
	cases := []struct {
		desc  string
		match *gatewayv1.GRPCMethodMatch
		typ   gatewayv1.PathMatchType
		value string // "" for no path match
	}{
		{"no method match: every call", nil, "", ""},
		{"service and method", grpcMethod(exact, "shop.Orders", "Get"), gatewayv1.PathMatchExact, "/shop.Orders/Get"},
		{"a service's methods", grpcMethod(exact, "shop.Orders", ""), gatewayv1.PathMatchPathPrefix, "/shop.Orders"},
		{"a method of any service", grpcMethod(exact, "", "Get"), gatewayv1.PathMatchRegularExpression, "/[^/]+/Get"},
		{"regular expressions", grpcMethod(regex, "shop\\..*", ""), gatewayv1.PathMatchRegularExpression, "/(?:shop\\..*)/(?:[^/]+)"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			p := grpcPath(c.match)
			switch {
			case c.value == "" && p != nil:
				t.Fatalf("path %+v, want none", p)
			case c.value != "" && (p == nil || *p.Type != c.typ || *p.Value != c.value):
				t.Fatalf("path %v, want %s %s", p, c.typ, c.value)
			}
		})
	}
	// Translated like an HTTPRoute, with HTTP/2 to the backends.
	const ctrl = "cairn.dev/test"
	gr := &gatewayv1.GRPCRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "orders"},
		Spec: gatewayv1.GRPCRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{gwParent("gw")}},
			Rules: []gatewayv1.GRPCRouteRule{{
				Matches:     []gatewayv1.GRPCRouteMatch{{Method: grpcMethod(exact, "shop.Orders", "Get")}},
				BackendRefs: []gatewayv1.GRPCBackendRef{{BackendRef: gwBackend("orders", 9000, 1).BackendRef}},
			}, {
				Filters:     []gatewayv1.GRPCRouteFilter{{Type: gatewayv1.GRPCRouteFilterRequestMirror}},
				BackendRefs: []gatewayv1.GRPCBackendRef{{BackendRef: gwBackend("orders", 9000, 1).BackendRef}},
			}}}}
	in := gatewayInput{
		classes:  []*gatewayv1.GatewayClass{gwClass("cairn", ctrl)},
		gateways: []*gatewayv1.Gateway{gwGateway("app", "gw", "cairn", gwListener("http", gatewayv1.HTTPProtocolType, 80, ""))},
		grpc:     []*gatewayv1.GRPCRoute{gr},
	}
	view := &fakeView{services: map[string]*corev1.Service{"app/orders": svcWithPorts("app", "orders", corev1.ServicePort{Name: "grpc", Port: 9000})}}
	res := translateGatewayAPI(in, view, ctrl)
	if len(res.routes) != 1 || len(res.routes[0].gens) != 2 {
		t.Fatalf("%+v", res.routes)
	}
	g := res.routes[0].gens[0]
	if b := g.spec.Backends[0]; !b.HTTP2 || b.Port != "grpc" || g.origin.Kind != kindGRPCRoute || !strings.HasPrefix(g.name, "gr-") {
		t.Fatalf("route %s from %v: backend %+v", g.name, g.origin, b)
	}
	if r := res.routes[0].rules[1]; !strings.Contains(r.invalid, "RequestMirror") {
		t.Fatalf("a gRPC filter Cairn cannot apply: %+v", r)
	}
}

// startGRPCHealth runs a gRPC server whose health service knows one
// service name, so a call says which backend answered.
func startGRPCHealth(t *testing.T, serving string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus(serving, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// A GRPCRoute routes real gRPC calls through the gateway (h2c in, HTTP/2
// to the backends) by method and header, and is Accepted.
func TestGatewayGRPCRoute(t *testing.T) {
	ns := testNamespace(t)
	class, controller := testClass(t, ns)
	ctx := context.Background()
	gw := gwClientset(t)
	reg := newRegistry(t)
	g := startTestGateway(t, reg)
	for _, name := range []string{"orders", "fallback"} {
		routesService(t, ns, name, map[string]int32{"grpc": 9000})
		g.register(ns, name, name, "grpc", startGRPCHealth(t, "shop."+name))
	}
	startController(t, Options{Namespaces: []string{ns}, Registry: reg, GatewayController: controller})
	if _, err := gw.GatewayV1().Gateways(ns).Create(ctx, gwGateway(ns, "gw", class, gwListener("http", gatewayv1.HTTPProtocolType, 80, "")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gr := &gatewayv1.GRPCRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "health"},
		Spec: gatewayv1.GRPCRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{gwParent("gw")}},
			Hostnames: []gatewayv1.Hostname{"grpc.example.com"},
			Rules: []gatewayv1.GRPCRouteRule{{
				Matches: []gatewayv1.GRPCRouteMatch{{Method: grpcMethod(gatewayv1.GRPCMethodMatchExact, "grpc.health.v1.Health", "Check"),
					Headers: []gatewayv1.GRPCHeaderMatch{{Name: "x-team", Value: "orders"}}}},
				BackendRefs: []gatewayv1.GRPCBackendRef{{BackendRef: gwBackend("orders", 9000, 1).BackendRef}},
			}, {
				BackendRefs: []gatewayv1.GRPCBackendRef{{BackendRef: gwBackend("fallback", 9000, 1).BackendRef}},
			}}}}
	if _, err := gw.GatewayV1().GRPCRoutes(ns).Create(ctx, gr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cc, err := grpc.NewClient(strings.TrimPrefix(g.url, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("grpc.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	check := func(service string, md ...string) (healthpb.HealthCheckResponse_ServingStatus, codes.Code) {
		cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, md...), 5*time.Second)
		defer cancel()
		resp, err := client.Check(cctx, &healthpb.HealthCheckRequest{Service: service})
		return resp.GetStatus(), status.Code(err)
	}
	eventually(t, 15*time.Second, "the method and header match reaches orders", func() (bool, string) {
		st, code := check("shop.orders", "x-team", "orders")
		return st == healthpb.HealthCheckResponse_SERVING, fmt.Sprintf("%v %v", st, code)
	})
	if st, code := check("shop.fallback"); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("a call without the header: %v %v, want the fallback to answer", st, code)
	}
	if _, code := check("shop.orders"); code != codes.NotFound {
		t.Fatalf("a call without the header reached orders (code %v)", code)
	}
	eventually(t, 15*time.Second, "GRPCRoute accepted", func() (bool, string) {
		got, err := gw.GatewayV1().GRPCRoutes(ns).Get(ctx, "health", metav1.GetOptions{})
		if err != nil || len(got.Status.Parents) != 1 {
			return false, fmt.Sprintf("%+v %v", got.Status, err)
		}
		p := got.Status.Parents[0]
		return string(p.ControllerName) == controller && meta.IsStatusConditionTrue(p.Conditions, "Accepted") &&
			meta.IsStatusConditionTrue(p.Conditions, "ResolvedRefs"), fmt.Sprintf("%+v", p)
	})
}
