package kube

import (
	"context"
	"fmt"
	"testing"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The whole path of a TrafficPolicy: attached to an HTTPRoute, it reaches
// the Route documents the route controller writes, and a real gateway
// following the registry enforces it; deleting it lifts the limit.
func TestTrafficPolicyReachesTheGateway(t *testing.T) {
	ns := testNamespace(t)
	class, controller := testClass(t, ns)
	ctx := context.Background()
	gw := gwClientset(t)
	reg := newRegistry(t)
	g := startTestGateway(t, reg)
	routesService(t, ns, "web", map[string]int32{"http": 80})
	g.backend(ns, "web", "web", "http")
	startController(t, Options{Namespaces: []string{ns}, Registry: reg, GatewayController: controller})

	if _, err := gw.GatewayV1().Gateways(ns).Create(ctx, gwGateway(ns, "gw", class, gwListener("http", gatewayv1.HTTPProtocolType, 80, "")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hr := gwRoute(ns, "limited", []string{"limited.example.com"}, []gatewayv1.ParentReference{gwParent("gw")}, gwRule(nil, gwBackend("web", 80, 1)))
	if _, err := gw.GatewayV1().HTTPRoutes(ns).Create(ctx, hr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	g.expect("limited.example.com", "/", 200, "web")

	policyCreate(t, ns, "slow-down", `
targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]
rateLimit: {requests: 3, period: 1m}
timeouts: {request: 5s}
`)
	waitPolicy(t, ns, "slow-down", metav1.ConditionTrue, "Accepted")
	eventually(t, 10*time.Second, "the gateway limits the route", func() (bool, string) {
		codes := map[int]int{}
		for range 5 {
			code, _ := g.get("limited.example.com", "/")
			codes[code]++
		}
		return codes[429] > 0, "statuses " + fmtCodes(codes)
	})
	// The limit is the route's, not the host's: other requests are counted
	// against the same bucket, and stay limited.
	if code, _ := g.get("limited.example.com", "/other"); code != 429 {
		t.Fatalf("after the burst: %d, want 429", code)
	}

	policyDelete(t, ns, "slow-down")
	eventually(t, 10*time.Second, "the limit is lifted", func() (bool, string) {
		code, _ := g.get("limited.example.com", "/")
		return code == 200, "status " + fmtCodes(map[int]int{code: 1})
	})
}

func fmtCodes(m map[int]int) string { return fmt.Sprint(m) }
