package kube

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The whole Kubernetes path to a request: a Service and its EndpointSlice
// are imported, an Ingress routes to the Service, and a real gateway
// following the registry sends requests to the endpoints, following them
// when the slice changes and stopping when they turn not-ready.
func TestEndpointSlicesDriveTheGateway(t *testing.T) {
	ns := testNamespace(t)
	reg := newRegistry(t)
	g := startTestGateway(t, reg)
	for i, name := range []string{"pod-a", "pod-b"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) }))
		t.Cleanup(srv.Close)
		g.mu.Lock()
		g.addrs[fmt.Sprintf("10.1.3.%d:8080", i+1)] = srv.Listener.Addr().String()
		g.mu.Unlock()
	}
	class := ingressClassFor(ns)
	startController(t, Options{Namespaces: []string{ns}, Registry: reg, IngressClass: class})

	createService(t, ns, "web", nil, nil, corev1.ServicePort{Name: "http", Port: 80})
	slice := func(ready ...bool) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
		}
		for i, r := range ready {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.1.3.%d", i+1)},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(r)}})
		}
		return s
	}
	cur := createSlice(t, slice(true, false))
	update := func(s *discoveryv1.EndpointSlice) {
		t.Helper()
		s.ResourceVersion = cur.ResourceVersion
		var err error
		if cur, err = env.Clientset().DiscoveryV1().EndpointSlices(ns).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ing := ingressObj(ns, "web", class, ingressRule("web.example.com",
		ingressPathTo(networkingv1.PathTypePrefix, "/", ingressSvc("web", 80, ""))))
	if _, err := env.Clientset().NetworkingV1().Ingresses(ns).Create(context.Background(), ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	g.expect("web.example.com", "/", 200, "pod-a")
	update(slice(false, true)) // a rollout: pod-a goes, pod-b is ready
	g.expect("web.example.com", "/", 200, "pod-b")
	for range 20 {
		if code, body := g.get("web.example.com", "/"); code != 200 || body != "pod-b" {
			t.Fatalf("after the rollout: %d %s", code, body)
		}
	}
	update(slice(false, false))
	g.expect("web.example.com", "/", 503, "")
}
