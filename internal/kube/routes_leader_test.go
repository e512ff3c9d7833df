package kube

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// A replica that does not lead writes routes into its registry but no
// status to Kubernetes; once it leads, it writes status.
func TestRoutesFollowerWritesNoStatus(t *testing.T) {
	ns := testNamespace(t)
	class, controller := testClass(t, ns)
	ctx := context.Background()
	gw := gwClientset(t)
	reg := newRegistry(t)
	routesService(t, ns, "web", map[string]int32{"http": 80})

	// Someone else holds the lease, for long.
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cairn-controller"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptrTo("another-replica"), LeaseDurationSeconds: ptrTo(int32(3600)), AcquireTime: &now, RenewTime: &now}}
	if _, err := env.Clientset().CoordinationV1().Leases(ns).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.GatewayV1().Gateways(ns).Create(ctx, gwGateway(ns, "gw", class, gwListener("http", gatewayv1.HTTPProtocolType, 80, "")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hr := gwRoute(ns, "web", []string{"web.example.com"}, []gatewayv1.ParentReference{gwParent("gw")}, gwRule(nil, gwBackend("web", 80, 1)))
	if _, err := gw.GatewayV1().HTTPRoutes(ns).Create(ctx, hr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ing := ingressObj(ns, "web", ingressClassFor(ns), ingressRule("ing.example.com", ingressPathTo(networkingv1.PathTypePrefix, "/", ingressSvc("web", 80, ""))))
	if _, err := env.Clientset().NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	c := startController(t, Options{Namespaces: []string{ns}, Registry: reg, GatewayController: controller,
		IngressClass: ingressClassFor(ns), StatusAddress: "192.0.2.20", Identity: "follower"})
	// In sync: the routes are in the registry.
	if len(routeDocs(reg, kindHTTPRoute, ns, "web")) != 1 || len(routeDocs(reg, kindIngress, ns, "web")) != 1 {
		t.Fatal("the follower did not write the routes into its registry")
	}
	noStatus := func() string {
		got, _ := gw.GatewayV1().HTTPRoutes(ns).Get(ctx, "web", metav1.GetOptions{})
		if len(got.Status.Parents) != 0 {
			return fmt.Sprintf("HTTPRoute status %+v", got.Status)
		}
		g, _ := gw.GatewayV1().Gateways(ns).Get(ctx, "gw", metav1.GetOptions{})
		if len(g.Status.Addresses) != 0 || len(g.Status.Listeners) != 0 {
			return fmt.Sprintf("Gateway status %+v", g.Status)
		}
		i, _ := env.Clientset().NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
		if len(i.Status.LoadBalancer.Ingress) != 0 {
			return fmt.Sprintf("Ingress status %+v", i.Status)
		}
		return ""
	}
	for range 10 {
		if c.Leading() {
			t.Fatal("the follower leads")
		}
		if s := noStatus(); s != "" {
			t.Fatalf("the follower wrote status: %s", s)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The lease is given up: this replica leads and writes status.
	if err := env.Clientset().CoordinationV1().Leases(ns).Delete(ctx, "cairn-controller", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the new leader writes status", func() (bool, string) {
		return c.Leading() && allStatus(t, ns), fmt.Sprintf("leading=%v", c.Leading())
	})
}

// allStatus reports whether the HTTPRoute, the Gateway and the Ingress of
// TestRoutesFollowerWritesNoStatus all have status.
func allStatus(t *testing.T, ns string) bool {
	ctx := context.Background()
	gw := gwClientset(t)
	hr, _ := gw.GatewayV1().HTTPRoutes(ns).Get(ctx, "web", metav1.GetOptions{})
	g, _ := gw.GatewayV1().Gateways(ns).Get(ctx, "gw", metav1.GetOptions{})
	i, _ := env.Clientset().NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
	return len(hr.Status.Parents) == 1 && len(g.Status.Listeners) == 1 && len(i.Status.LoadBalancer.Ingress) == 1
}
