package kube

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// syncWait bounds how long a change may take to go through the sync.
const syncWait = 5 * time.Second

// createService creates a Service with a selector (as a Deployment's
// would have) and the given ports.
func createService(t *testing.T, ns, name string, labels, annotations map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: ports},
	}
	out, err := env.Clientset().CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func createSlice(t *testing.T, s *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	t.Helper()
	out, err := env.Clientset().DiscoveryV1().EndpointSlices(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// registryView describes the instances of a registry service as
// "id address ports zone" lines, sorted, and whether the service exists.
func registryView(reg *registry.Registry, ns, name string) (string, bool) {
	insts, _ := reg.Instances(registry.Filter{Namespace: ns, Service: name})
	var lines []string
	for _, in := range insts {
		var ports []string
		for _, p := range in.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d/%s", p.Name, p.Port, p.Protocol))
		}
		lines = append(lines, fmt.Sprintf("%s %s %s %s %s", in.ID, in.Address, strings.Join(ports, ","), in.Zone, in.Source))
	}
	_, _, err := reg.Service(registry.ServiceKey{Namespace: ns, Name: name})
	return strings.Join(lines, "\n"), err == nil
}

// waitRegistry waits until the registry's view of a service is want.
func waitRegistry(t *testing.T, reg *registry.Registry, ns, name, want string) {
	t.Helper()
	eventually(t, syncWait, "registry service "+ns+"/"+name, func() (bool, string) {
		got, _ := registryView(reg, ns, name)
		return got == want, "\n" + got + "\nwant\n" + want
	})
}

// The Service of a Deployment with two EndpointSlices (as the
// EndpointSlice controller splits them) becomes a registry service with
// one instance per ready address.
func TestImportServiceWithSlices(t *testing.T) {
	ns := testNamespace(t)
	reg := newRegistry(t)
	startController(t, Options{Namespaces: []string{ns}, Registry: reg})

	createService(t, ns, "orders",
		map[string]string{"app": "orders", "team": "shop"},
		map[string]string{"note": "hello", lastAppliedAnnotation: `{"kind":"Service"}`},
		corev1.ServicePort{Name: "http", Port: 80, AppProtocol: syncPtr("http")},
		corev1.ServicePort{Name: "grpc", Port: 9090})
	node, zone := "node-1", "zone-a"
	a := testEndpoint("10.1.0.1", "orders-a", syncPtr(true))
	a.NodeName, a.Zone = &node, &zone
	createSlice(t, testSlice(ns, "orders-1", "orders", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{testPort("http", 8080, "http")},
		a,
		testEndpoint("10.1.0.2", "orders-b", nil),
		testEndpoint("10.1.0.3", "orders-c", syncPtr(false))))
	createSlice(t, testSlice(ns, "orders-2", "orders", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{testPort("grpc", 9090, "")},
		a))

	waitRegistry(t, reg, ns, "orders", strings.Join([]string{
		"orders-a 10.1.0.1 grpc:9090/grpc,http:8080/http zone-a kubernetes",
		"orders-b 10.1.0.2 http:8080/http  kubernetes",
	}, "\n"))
	in, _, err := reg.Instance(registry.InstanceKey{Namespace: ns, Service: "orders", ID: "orders-a"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"app": "orders", "team": "shop", "note": "hello", importMetaPod: "orders-a", importMetaNode: "node-1"}
	if !maps.Equal(in.Metadata, want) {
		t.Errorf("metadata = %v, want %v", in.Metadata, want)
	}
	if in.TTL != 0 || in.Status != registry.StatusUp || !in.Healthy() {
		t.Errorf("instance = %+v, want no lease, UP, healthy", in)
	}
	svc, _, err := reg.Service(registry.ServiceKey{Namespace: ns, Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if !svc.Explicit || svc.Metadata["team"] != "shop" || svc.Metadata[importMetaSource] != Source {
		t.Errorf("registry service = %+v", svc)
	}
}

// An endpoint turning not-ready (or terminating) leaves the registry; a
// deleted slice takes its addresses (and ports) with it; the Service
// deleted removes everything, the explicit registry service included.
func TestImportFollowsChanges(t *testing.T) {
	ns := testNamespace(t)
	reg := newRegistry(t)
	startController(t, Options{Namespaces: []string{ns}, Registry: reg})
	cs := env.Clientset()
	ctx := context.Background()

	createService(t, ns, "cart", nil, nil, corev1.ServicePort{Name: "http", Port: 80}, corev1.ServicePort{Name: "admin", Port: 81})
	s1 := createSlice(t, testSlice(ns, "cart-1", "cart", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{testPort("http", 8080, "")},
		testEndpoint("10.2.0.1", "cart-a", nil), testEndpoint("10.2.0.2", "cart-b", nil), testEndpoint("10.2.0.3", "cart-c", nil)))
	createSlice(t, testSlice(ns, "cart-2", "cart", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{testPort("admin", 8081, "")},
		testEndpoint("10.2.0.1", "cart-a", nil), testEndpoint("10.2.0.9", "cart-z", nil)))
	waitRegistry(t, reg, ns, "cart", strings.Join([]string{
		"cart-a 10.2.0.1 admin:8081/tcp,http:8080/http  kubernetes",
		"cart-b 10.2.0.2 http:8080/http  kubernetes",
		"cart-c 10.2.0.3 http:8080/http  kubernetes",
		"cart-z 10.2.0.9 admin:8081/tcp  kubernetes",
	}, "\n"))

	// cart-b turns not-ready; cart-c starts terminating.
	s1.Endpoints[1].Conditions.Ready = syncPtr(false)
	s1.Endpoints[2].Conditions = discoveryv1.EndpointConditions{Ready: syncPtr(false), Serving: syncPtr(true), Terminating: syncPtr(true)}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, s1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRegistry(t, reg, ns, "cart", strings.Join([]string{
		"cart-a 10.2.0.1 admin:8081/tcp,http:8080/http  kubernetes",
		"cart-z 10.2.0.9 admin:8081/tcp  kubernetes",
	}, "\n"))

	// The second slice goes: cart-z with it, and cart-a's admin port.
	if err := cs.DiscoveryV1().EndpointSlices(ns).Delete(ctx, "cart-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRegistry(t, reg, ns, "cart", "cart-a 10.2.0.1 http:8080/http  kubernetes")

	// The Service goes (its slices stay: nothing garbage-collects them
	// here), and so does everything imported from it.
	if err := cs.CoreV1().Services(ns).Delete(ctx, "cart", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, syncWait, "registry service removed", func() (bool, string) {
		got, exists := registryView(reg, ns, "cart")
		return !exists && got == "", fmt.Sprintf("exists=%v instances=%q", exists, got)
	})
}

// Services Cairn wrote itself, ExternalName Services and those opted out
// are not imported; a Service with no ready endpoint still exists in the
// registry.
func TestImportSkips(t *testing.T) {
	ns := testNamespace(t)
	reg := newRegistry(t)
	startController(t, Options{Namespaces: []string{ns}, Registry: reg})
	port := corev1.ServicePort{Name: "http", Port: 80}
	ep := testEndpoint("10.3.0.1", "", nil)

	createService(t, ns, "mirror", map[string]string{config.LabelManagedBy: ManagedByCairn}, nil, port)
	createSlice(t, testSlice(ns, "mirror-1", "mirror", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{testPort("http", 80, "")}, ep))
	createService(t, ns, "private", nil, map[string]string{importAnnotation: "false"}, port)
	createSlice(t, testSlice(ns, "private-1", "private", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{testPort("http", 80, "")}, ep))
	_, err := env.Clientset().CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alias"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	createService(t, ns, "empty", nil, nil, port)
	// A Service processed after the others shows they have been seen.
	createService(t, ns, "zlast", nil, nil, port)
	createSlice(t, testSlice(ns, "zlast-1", "zlast", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{testPort("http", 80, "")}, ep))
	waitRegistry(t, reg, ns, "zlast", "10.3.0.1 10.3.0.1 http:80/http  kubernetes")

	for _, name := range []string{"mirror", "private", "alias"} {
		if got, exists := registryView(reg, ns, name); exists || got != "" {
			t.Errorf("%s imported: %q", name, got)
		}
	}
	eventually(t, syncWait, "the Service without endpoints", func() (bool, string) {
		_, exists := registryView(reg, ns, "empty")
		return exists, "not in the registry"
	})
}

// What a persisted registry kept from before a restart but Kubernetes no
// longer has is gone by the time the controller says it is ready; other
// sources, and namespaces not watched, are left alone.
func TestImportFirstPassRemovesStale(t *testing.T) {
	ns := testNamespace(t)
	reg := newRegistry(t)
	ctx := context.Background()
	put := func(ns, svc, id, addr, source string) {
		t.Helper()
		_, _, _, err := reg.Upsert(ctx, registry.Instance{Namespace: ns, Service: svc, ID: id, Address: addr, Source: source,
			Ports: []registry.Port{{Name: "http", Port: 80}}, TTL: 0})
		if err != nil {
			t.Fatal(err)
		}
	}
	put(ns, "gone", "gone-a", "10.4.0.1", Source)                                   // its Service no longer exists
	put(ns, "kept", "kept-old", "10.4.0.2", Source)                                 // its Service exists, this endpoint no longer
	put(ns, "kept", "vm-1", "10.4.0.3", "eureka")                                   // another source, same service
	put(ns, "legacy", "vm-2", "10.4.0.4", "api")                                    // another source only
	put("elsewhere", "other", "o-1", "10.4.0.5", Source)                            // a namespace not watched
	_, _, err := reg.PutService(ctx, registry.Service{Namespace: ns, Name: "ghost", // an explicit service the importer made
		Metadata: map[string]string{importMetaSource: Source}})
	if err != nil {
		t.Fatal(err)
	}

	createService(t, ns, "kept", nil, nil, corev1.ServicePort{Name: "http", Port: 80})
	createSlice(t, testSlice(ns, "kept-1", "kept", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{testPort("http", 8080, "")}, testEndpoint("10.4.0.9", "kept-new", nil)))

	startController(t, Options{Namespaces: []string{ns}, Registry: reg})
	// No waiting: Ready means the first pass is done.
	check := func(ns, name, want string, wantExists bool) {
		t.Helper()
		got, exists := registryView(reg, ns, name)
		if got != want || exists != wantExists {
			t.Errorf("%s/%s: exists=%v instances\n%s\nwant exists=%v\n%s", ns, name, exists, got, wantExists, want)
		}
	}
	check(ns, "gone", "", false)
	check(ns, "ghost", "", false)
	check(ns, "kept", "kept-new 10.4.0.9 http:8080/http  kubernetes\nvm-1 10.4.0.3 http:80/tcp  eureka", true)
	check(ns, "legacy", "vm-2 10.4.0.4 http:80/tcp  api", true)
	check("elsewhere", "other", "o-1 10.4.0.5 http:80/tcp  kubernetes", true)
}

// Instances of other sources in a service that is also a Kubernetes
// Service stay when the Service goes, and keep the registry service.
func TestImportKeepsOtherSources(t *testing.T) {
	ns := testNamespace(t)
	reg := newRegistry(t)
	c := startController(t, Options{Namespaces: []string{ns}, Registry: reg})
	ctx := context.Background()
	createService(t, ns, "mixed", nil, nil, corev1.ServicePort{Name: "http", Port: 80})
	createSlice(t, testSlice(ns, "mixed-1", "mixed", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{testPort("http", 8080, "")}, testEndpoint("10.5.0.1", "mixed-a", nil)))
	waitRegistry(t, reg, ns, "mixed", "mixed-a 10.5.0.1 http:8080/http  kubernetes")
	if _, _, _, err := reg.Upsert(ctx, registry.Instance{Namespace: ns, Service: "mixed", ID: "vm-1", Address: "192.168.0.1",
		Source: "eureka", Ports: []registry.Port{{Name: "http", Port: 8080}}}); err != nil {
		t.Fatal(err)
	}
	if err := env.Clientset().CoreV1().Services(ns).Delete(ctx, "mixed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRegistry(t, reg, ns, "mixed", "vm-1 192.168.0.1 http:8080/tcp  eureka")
	svc, _, err := reg.Service(registry.ServiceKey{Namespace: ns, Name: "mixed"})
	if err != nil {
		t.Fatal(err)
	}
	if keys := slices.Collect(maps.Keys(svc.Metadata)); len(keys) != 1 || keys[0] != importMetaSource {
		t.Errorf("service metadata after the Service went = %v, want only the marker", svc.Metadata)
	}
	// When the last instance of the other source goes, the service goes
	// at the importer's next look (forced here rather than waiting a minute).
	if _, err := reg.Deregister(ctx, registry.InstanceKey{Namespace: ns, Service: "mixed", ID: "vm-1"}); err != nil {
		t.Fatal(err)
	}
	importerOf(c).queue.Add(registry.ServiceKey{Namespace: ns, Name: "mixed"})
	eventually(t, syncWait, "the registry service released", func() (bool, string) {
		_, exists := registryView(reg, ns, "mixed")
		return !exists, "still there"
	})
}
