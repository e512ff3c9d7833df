package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ---- Constructors.

func ingressObj(ns, name, class string, rules ...networkingv1.IngressRule) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: networkingv1.IngressSpec{Rules: rules}}
	if class != "" {
		ing.Spec.IngressClassName = ptrTo(class)
	}
	return ing
}

func ingressRule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
}

func ingressPathTo(typ networkingv1.PathType, path string, backend networkingv1.IngressBackend) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: path, PathType: ptrTo(typ), Backend: backend}
}

func ingressSvc(name string, number int32, portName string) networkingv1.IngressBackend {
	return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name,
		Port: networkingv1.ServiceBackendPort{Number: number, Name: portName}}}
}

// ---- Pure tests.

func TestIngressClassSelection(t *testing.T) {
	withAnnotation := func(ing *networkingv1.Ingress, v string) *networkingv1.Ingress {
		ing.Annotations = map[string]string{annotationIngressClass: v}
		return ing
	}
	ours := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "edge"}, Spec: networkingv1.IngressClassSpec{Controller: IngressController}}
	theirs := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx"}, Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}}
	defaultOurs := ours.DeepCopy()
	defaultOurs.Annotations = map[string]string{annotationDefaultClass: "true"}
	cases := []struct {
		desc    string
		ing     *networkingv1.Ingress
		classes []*networkingv1.IngressClass
		want    bool
	}{
		{"ingressClassName is Cairn's class", ingressObj("a", "i", "cairn"), nil, true},
		{"another class", ingressObj("a", "i", "nginx"), []*networkingv1.IngressClass{theirs}, false},
		{"an IngressClass with Cairn's controller", ingressObj("a", "i", "edge"), []*networkingv1.IngressClass{ours}, true},
		{"the legacy annotation", withAnnotation(ingressObj("a", "i", ""), "cairn"), nil, true},
		{"the legacy annotation naming another class", withAnnotation(ingressObj("a", "i", ""), "nginx"), []*networkingv1.IngressClass{defaultOurs}, false},
		{"no class, Cairn's class is the default", ingressObj("a", "i", ""), []*networkingv1.IngressClass{theirs, defaultOurs}, true},
		{"no class, no default", ingressObj("a", "i", ""), []*networkingv1.IngressClass{theirs, ours}, false},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if got := servesIngress(c.ing, "cairn", c.classes); got != c.want {
				t.Fatalf("served = %v, want %v", got, c.want)
			}
		})
	}
}

func TestIngressPortMapping(t *testing.T) {
	view := &fakeView{services: map[string]*corev1.Service{
		"app/named":   svcWithPorts("app", "named", corev1.ServicePort{Name: "web", Port: 80}, corev1.ServicePort{Name: "admin", Port: 9000}),
		"app/unnamed": svcWithPorts("app", "unnamed", corev1.ServicePort{Port: 80}),
	}}
	cases := []struct {
		desc    string
		backend networkingv1.IngressBackend
		want    config.PortRef
	}{
		{"a number is the Service port's name", ingressSvc("named", 9000, ""), "admin"},
		{"a name is kept", ingressSvc("named", 0, "web"), "web"},
		{"the unnamed port of a one-port Service: the instance's port", ingressSvc("unnamed", 80, ""), ""},
		{"a Service not known yet: the number", ingressSvc("later", 8080, ""), "8080"},
		{"a number the Service does not have: the number", ingressSvc("named", 81, ""), "81"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			be, key, err := ingressBackend("app", c.backend, view)
			if err != nil {
				t.Fatal(err)
			}
			if be.Port != c.want || be.Namespace != "app" || key.Name != c.backend.Service.Name {
				t.Fatalf("backend %+v (%v), want port %q", be, key, c.want)
			}
		})
	}
	if _, _, err := ingressBackend("app", networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{Kind: "Bucket", Name: "b"}}, view); err == nil {
		t.Fatal("a resource backend was accepted")
	}
}

func TestIngressTranslate(t *testing.T) {
	view := &fakeView{services: map[string]*corev1.Service{"app/web": svcWithPorts("app", "web", corev1.ServicePort{Name: "http", Port: 80})}}
	ing := ingressObj("app", "shop", "cairn",
		ingressRule("shop.example.com",
			ingressPathTo(networkingv1.PathTypeExact, "/health", ingressSvc("web", 80, "")),
			ingressPathTo(networkingv1.PathTypeImplementationSpecific, "/api", ingressSvc("web", 80, "")),
			networkingv1.HTTPIngressPath{Path: "/files", PathType: ptrTo(networkingv1.PathTypePrefix),
				Backend: networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{Kind: "Bucket", Name: "b"}}}),
		ingressRule("*.shop.example.com", ingressPathTo(networkingv1.PathTypePrefix, "/", ingressSvc("web", 80, ""))),
		networkingv1.IngressRule{Host: "static.example.com"})
	ing.Spec.DefaultBackend = ptrTo(ingressSvc("web", 80, ""))
	gens, problems := translateIngress(ing, view)
	if len(problems) != 1 || !strings.Contains(problems[0], "rules[0].http.paths[2]") {
		t.Fatalf("problems %v, want the resource backend's", problems)
	}
	want := map[string]string{ // name -> hosts and path
		"ing-shop-00-00": "shop.example.com exact /health",
		"ing-shop-00-01": "shop.example.com prefix /api",
		"ing-shop-01-00": "*.shop.example.com prefix /",
		"ing-shop-d0":    " <nil>",
		"ing-shop-d1":    "*.shop.example.com,shop.example.com,static.example.com <nil>",
	}
	if len(gens) != len(want) {
		t.Fatalf("%d routes, want %d", len(gens), len(want))
	}
	for _, g := range gens {
		got := strings.Join(g.spec.Hosts, ",") + " "
		if p := g.spec.Match.Path; p != nil {
			got += p.Type + " " + p.Value
		} else {
			got += "<nil>"
		}
		if want[g.name] != got {
			t.Errorf("%s: %q, want %q", g.name, got, want[g.name])
		}
		if b := g.spec.Backends[0]; b.Service != "web" || b.Port != "http" {
			t.Errorf("%s: backend %+v", g.name, b)
		}
		if _, err := makeDocument(&g); err != nil {
			t.Error(err)
		}
	}
}

// ---- Against the API server.

// ingressClassFor is a class name of one test's own, so that other
// tests' controllers leave its Ingresses alone.
func ingressClassFor(ns string) string { return "cairn-" + ns }

// An Ingress routes real requests through the gateway (paths, hosts, the
// default backend, a Service port given by number) and gets the gateway's
// address in its status; deleting it removes its routes.
func TestIngressRoutesAndStatus(t *testing.T) {
	ns := testNamespace(t)
	ctx := context.Background()
	reg := newRegistry(t)
	g := startTestGateway(t, reg)
	routesService(t, ns, "web", map[string]int32{"http": 80, "metrics": 9100})
	routesService(t, ns, "api", map[string]int32{"": 80})
	g.backend(ns, "web", "web", "http")
	g.backend(ns, "api", "api", "default") // the registry's name of an unnamed port

	class := ingressClassFor(ns)
	startController(t, Options{Namespaces: []string{ns}, Registry: reg, IngressClass: class, StatusAddress: "gateway.example.net"})
	ing := ingressObj(ns, "shop", class, ingressRule("shop.example.com",
		ingressPathTo(networkingv1.PathTypePrefix, "/api", ingressSvc("api", 80, "")),
		ingressPathTo(networkingv1.PathTypeExact, "/", ingressSvc("web", 80, ""))))
	ing.Spec.DefaultBackend = ptrTo(ingressSvc("web", 0, "http"))
	if _, err := env.Clientset().NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another class's Ingress is not served.
	if _, err := env.Clientset().NetworkingV1().Ingresses(ns).Create(ctx,
		ingressObj(ns, "theirs", "nginx", ingressRule("theirs.example.com", ingressPathTo(networkingv1.PathTypePrefix, "/", ingressSvc("web", 80, "")))),
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	g.expect("shop.example.com", "/api/orders", 200, "api /api/orders")
	g.expect("shop.example.com", "/", 200, "web /")
	g.expect("shop.example.com", "/about", 200, "web /about")       // no path: the default backend, for the rules' host too
	g.expect("other.example.com", "/x", 200, "web /x")              // and for any other host
	g.expect("theirs.example.com", "/nothing", 200, "web /nothing") // the catch-all, not their rule
	if docs := routeDocs(reg, kindIngress, ns, "theirs"); len(docs) != 0 {
		t.Fatalf("another class's Ingress made %d documents", len(docs))
	}
	docs := routeDocs(reg, kindIngress, ns, "shop")
	if len(docs) != 4 {
		t.Fatalf("%d documents, want 4 (two paths, the default backend for any host and for the rules' hosts)", len(docs))
	}
	for _, d := range docs {
		if d.Metadata.Labels[config.LabelManagedBy] != config.ManagedByKubernetes {
			t.Fatalf("document %s is not labelled as managed by Kubernetes: %v", d.Key(), d.Metadata.Labels)
		}
	}

	eventually(t, 15*time.Second, "the Ingress's load-balancer status", func() (bool, string) {
		got, err := env.Clientset().NetworkingV1().Ingresses(ns).Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		lb := got.Status.LoadBalancer.Ingress
		return len(lb) == 1 && lb[0].Hostname == "gateway.example.net" && lb[0].IP == "", fmt.Sprintf("%+v", lb)
	})
	theirs, _ := env.Clientset().NetworkingV1().Ingresses(ns).Get(ctx, "theirs", metav1.GetOptions{})
	if len(theirs.Status.LoadBalancer.Ingress) != 0 {
		t.Fatalf("another class's Ingress got status %+v", theirs.Status.LoadBalancer)
	}

	if err := env.Clientset().NetworkingV1().Ingresses(ns).Delete(ctx, "shop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the routes of a deleted Ingress are gone", func() (bool, string) {
		n := len(routeDocs(reg, kindIngress, ns, "shop"))
		return n == 0, fmt.Sprintf("%d documents", n)
	})
	g.expect("shop.example.com", "/api/orders", 404, "")
}

// A Route document of the same name that Kubernetes does not manage is
// never overwritten or deleted (its Ingress's other routes are written);
// a managed document whose origin is gone (left from before a restart) is
// deleted on the first pass.
func TestRoutesUnmanagedDocumentKept(t *testing.T) {
	ns := testNamespace(t)
	ctx := context.Background()
	reg := newRegistry(t)
	routesService(t, ns, "web", map[string]int32{"http": 80})
	mine := config.Document{Kind: config.KindRoute, Metadata: config.Metadata{Namespace: ns, Name: ingressDocName("shop", 0, 0)},
		Spec: []byte(`{"hosts":["mine.example.com"],"backends":[{"address":"127.0.0.1:9"}]}`)}
	stale := config.Document{Kind: config.KindRoute, Metadata: config.Metadata{Namespace: ns, Name: ingressDocName("gone", 0, 0),
		Labels: originLabels(objectRef{Kind: kindIngress, Namespace: ns, Name: "gone"})},
		Spec: []byte(`{"backends":[{"service":"web"}]}`)}
	if _, err := reg.ApplyConfig(ctx, []config.Document{mine, stale}, nil, false); err != nil {
		t.Fatal(err)
	}
	class := ingressClassFor(ns)
	ing := ingressObj(ns, "shop", class, ingressRule("shop.example.com",
		ingressPathTo(networkingv1.PathTypePrefix, "/", ingressSvc("web", 80, "")),
		ingressPathTo(networkingv1.PathTypePrefix, "/api", ingressSvc("web", 80, ""))))
	if _, err := env.Clientset().NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startController(t, Options{Namespaces: []string{ns}, Registry: reg, IngressClass: class})

	// In sync: the stale document is gone, the Ingress's second path is
	// written, the first is not.
	if _, _, err := reg.ConfigDoc(stale.Key()); err == nil {
		t.Fatal("the stale managed document is still there")
	}
	names := []string{}
	for _, d := range routeDocs(reg, kindIngress, ns, "shop") {
		names = append(names, d.Metadata.Name)
	}
	if !slices.Equal(names, []string{ingressDocName("shop", 0, 1)}) {
		t.Fatalf("documents of the Ingress: %v", names)
	}
	d, _, err := reg.ConfigDoc(mine.Key())
	if err != nil || d.Metadata.Labels != nil || !strings.Contains(string(d.Spec), "mine.example.com") {
		t.Fatalf("the unmanaged document changed: %+v %v", d, err)
	}
	// Deleting the Ingress leaves it too.
	if err := env.Clientset().NetworkingV1().Ingresses(ns).Delete(ctx, "shop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the Ingress's routes are gone", func() (bool, string) {
		n := len(routeDocs(reg, kindIngress, ns, "shop"))
		return n == 0, fmt.Sprintf("%d documents", n)
	})
	if _, _, err := reg.ConfigDoc(mine.Key()); err != nil {
		t.Fatalf("the unmanaged document was deleted: %v", err)
	}
}
