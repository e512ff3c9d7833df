package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// register puts an instance of source eureka (unless in says otherwise)
// into the registry, as the Eureka API would.
func register(t *testing.T, reg *registry.Registry, in registry.Instance) {
	t.Helper()
	if in.Source == "" {
		in.Source = "eureka"
	}
	if _, _, _, err := reg.Upsert(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

func deregister(t *testing.T, reg *registry.Registry, ns, svc, id string) {
	t.Helper()
	if _, err := reg.Deregister(context.Background(), registry.InstanceKey{Namespace: ns, Service: svc, ID: id}); err != nil {
		t.Fatal(err)
	}
}

func httpPort(port int) []registry.Port {
	return []registry.Port{{Name: "http", Port: port, Protocol: "http"}}
}

// kubeView describes what Kubernetes has for a service: the Service's
// ports, selector and managed-by label, and the endpoints of its slices
// Cairn manages as "address ports ready zone" lines; "" when there is no
// Service and no such slice.
func kubeView(t *testing.T, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	cs := env.Clientset()
	var b strings.Builder
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		svc = nil
	case err != nil:
		t.Fatal(err)
	default:
		fmt.Fprintf(&b, "service managed-by=%s type=%s selector=%v ports=", svc.Labels[config.LabelManagedBy], svc.Spec.Type, svc.Spec.Selector)
		for _, p := range svc.Spec.Ports {
			app := ""
			if p.AppProtocol != nil {
				app = "/" + *p.AppProtocol
			}
			fmt.Fprintf(&b, "%s:%d/%s%s,", p.Name, p.Port, p.Protocol, app)
		}
		b.WriteString("\n")
	}
	list, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + name + "," + discoveryv1.LabelManagedBy + "=" + exportSliceController})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, s := range list.Items {
		if s.Labels[config.LabelManagedBy] != ManagedByCairn {
			lines = append(lines, "slice without the managed-by label: "+s.Name)
		}
		if len(s.OwnerReferences) != 1 || svc == nil || s.OwnerReferences[0].UID != svc.UID {
			lines = append(lines, "slice not owned by the Service: "+s.Name)
		}
		var ports []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d", *p.Name, *p.Port))
		}
		for _, ep := range s.Endpoints {
			zone := ""
			if ep.Zone != nil {
				zone = *ep.Zone
			}
			lines = append(lines, fmt.Sprintf("%s %s %s ready=%v %s", s.AddressType, ep.Addresses[0], strings.Join(ports, ","), *ep.Conditions.Ready, zone))
		}
	}
	slices.Sort(lines)
	b.WriteString(strings.Join(lines, "\n"))
	return strings.TrimSpace(b.String())
}

func waitKube(t *testing.T, ns, name, want string) {
	t.Helper()
	eventually(t, syncWait, "Kubernetes objects of "+ns+"/"+name, func() (bool, string) {
		got := kubeView(t, ns, name)
		return got == want, "\n" + got + "\nwant\n" + want
	})
}

func waitLeading(t *testing.T, c *Controller) {
	t.Helper()
	eventually(t, syncWait, "the controller leads", func() (bool, string) { return c.Leading(), "not leading" })
}

// A service registered through Eureka in an exported namespace appears as
// a selector-less Service with an EndpointSlice, follows its instances,
// is put back when someone edits or deletes it, and goes with its last
// instance. Imported instances and host names are not written.
func TestExportEurekaService(t *testing.T) {
	ns := testNamespace(t)
	reg := newRegistry(t)
	c := startController(t, Options{Namespaces: []string{ns}, Registry: reg, Export: ExportRule{Namespaces: []string{ns}}})
	waitLeading(t, c)
	ctx := context.Background()
	cs := env.Clientset()

	register(t, reg, registry.Instance{Namespace: ns, Service: "billing", ID: "vm-1", Address: "10.20.0.1", Ports: httpPort(8080), Zone: "dc-1"})
	register(t, reg, registry.Instance{Namespace: ns, Service: "billing", ID: "pod-x", Address: "10.20.0.99", Ports: httpPort(8080), Source: Source})
	register(t, reg, registry.Instance{Namespace: ns, Service: "billing", ID: "named", Address: "billing.example.com", Ports: httpPort(8080)})
	svcLine := "service managed-by=cairn type=ClusterIP selector=map[] ports=http:8080/TCP/http,"
	waitKube(t, ns, "billing", svcLine+"\nIPv4 10.20.0.1 http:8080 ready=true dc-1")

	// A second instance, DOWN: an endpoint that is not ready.
	register(t, reg, registry.Instance{Namespace: ns, Service: "billing", ID: "vm-2", Address: "10.20.0.2", Ports: httpPort(8080), Status: registry.StatusDown})
	waitKube(t, ns, "billing", svcLine+"\nIPv4 10.20.0.1 http:8080 ready=true dc-1\nIPv4 10.20.0.2 http:8080 ready=false")

	// Someone edits the Service and deletes the slice: both come back.
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "billing", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Selector = map[string]string{"app": "billing"}
	svc.Spec.Ports[0].Port = 9999
	if _, err := cs.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = cs.DiscoveryV1().EndpointSlices(ns).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: discoveryv1.LabelManagedBy + "=" + exportSliceController})
	if err != nil {
		t.Fatal(err)
	}
	waitKube(t, ns, "billing", svcLine+"\nIPv4 10.20.0.1 http:8080 ready=true dc-1\nIPv4 10.20.0.2 http:8080 ready=false")

	// Once in step, nothing more is written.
	before := kubeVersions(t, ns)
	time.Sleep(500 * time.Millisecond)
	if after := kubeVersions(t, ns); after != before {
		t.Errorf("objects keep being rewritten: %s then %s", before, after)
	}

	deregister(t, reg, ns, "billing", "vm-1")
	waitKube(t, ns, "billing", svcLine+"\nIPv4 10.20.0.2 http:8080 ready=false")
	// The last exportable instance goes: the Service and slices go,
	// although the imported and host-name instances remain.
	deregister(t, reg, ns, "billing", "vm-2")
	waitKube(t, ns, "billing", "")
}

// kubeVersions lists the resource versions of the Services and slices of
// a namespace.
func kubeVersions(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	svcs, err := env.Clientset().CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sls, err := env.Clientset().DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var v []string
	for _, s := range svcs.Items {
		v = append(v, s.Name+"@"+s.ResourceVersion)
	}
	for _, s := range sls.Items {
		v = append(v, s.Name+"@"+s.ResourceVersion)
	}
	return strings.Join(v, " ")
}

// A Service of the same name that Cairn does not manage is a conflict:
// left untouched, counted, and the export happens once it is gone.
func TestExportLeavesUnmanagedService(t *testing.T) {
	ns := testNamespace(t)
	reg := newRegistry(t)
	metrics := prometheus.NewRegistry()
	theirs := createService(t, ns, "legacy", map[string]string{"owner": "team-a"}, nil, corev1.ServicePort{Name: "web", Port: 80})
	c := startController(t, Options{Namespaces: []string{ns}, Registry: reg, Metrics: metrics, Export: ExportRule{Namespaces: []string{ns}}})
	waitLeading(t, c)

	register(t, reg, registry.Instance{Namespace: ns, Service: "legacy", ID: "vm-1", Address: "10.21.0.1", Ports: httpPort(8080)})
	eventually(t, syncWait, "the conflict counted", func() (bool, string) {
		n, err := gaugeValue(metrics, "cairn_kube_export_conflicts")
		return n == 1, fmt.Sprintf("cairn_kube_export_conflicts = %v (%v)", n, err)
	})
	got, err := env.Clientset().CoreV1().Services(ns).Get(context.Background(), "legacy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != theirs.ResourceVersion {
		t.Errorf("the unmanaged Service was written: %+v", got)
	}
	if view := kubeView(t, ns, "legacy"); strings.Contains(view, "IPv4") {
		t.Errorf("Cairn wrote slices for someone else's Service: %s", view)
	}

	if err := env.Clientset().CoreV1().Services(ns).Delete(context.Background(), "legacy", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKube(t, ns, "legacy", "service managed-by=cairn type=ClusterIP selector=map[] ports=http:8080/TCP/http,\nIPv4 10.21.0.1 http:8080 ready=true")
	if n, err := gaugeValue(metrics, "cairn_kube_export_conflicts"); n != 0 {
		t.Errorf("cairn_kube_export_conflicts = %v (%v) once resolved", n, err)
	}
	if n, err := gaugeValue(metrics, "cairn_kube_exported_services"); n != 1 {
		t.Errorf("cairn_kube_exported_services = %v (%v)", n, err)
	}
}

// The opt-in rule decides what is exported: a listed namespace, a name
// prefix, or the label on the service or an instance. Taking the label
// away removes the objects.
func TestExportOptInRule(t *testing.T) {
	nsA, nsB := testNamespace(t), testNamespace(t)
	reg := newRegistry(t)
	c := startController(t, Options{Namespaces: []string{nsA, nsB}, Registry: reg,
		Export: ExportRule{Namespaces: []string{nsA}, Prefixes: []string{"pay-"}}}) // Label defaults to cairn.dev/export
	waitLeading(t, c)
	ctx := context.Background()

	label := map[string]string{"cairn.dev/export": "true"}
	register(t, reg, registry.Instance{Namespace: nsA, Service: "by-namespace", ID: "a", Address: "10.22.0.1", Ports: httpPort(80)})
	register(t, reg, registry.Instance{Namespace: nsB, Service: "pay-api", ID: "b", Address: "10.22.0.2", Ports: httpPort(80)})
	register(t, reg, registry.Instance{Namespace: nsB, Service: "by-instance-label", ID: "c", Address: "10.22.0.3", Ports: httpPort(80), Metadata: label})
	register(t, reg, registry.Instance{Namespace: nsB, Service: "by-service-label", ID: "d", Address: "10.22.0.4", Ports: httpPort(80)})
	if _, _, err := reg.PutService(ctx, registry.Service{Namespace: nsB, Name: "by-service-label", Metadata: label}); err != nil {
		t.Fatal(err)
	}
	register(t, reg, registry.Instance{Namespace: nsB, Service: "plain", ID: "e", Address: "10.22.0.5", Ports: httpPort(80)})
	// A namespace that is not watched is skipped.
	register(t, reg, registry.Instance{Namespace: "not-watched", Service: "pay-elsewhere", ID: "f", Address: "10.22.0.6", Ports: httpPort(80)})

	svcLine := "service managed-by=cairn type=ClusterIP selector=map[] ports=http:80/TCP/http,\n"
	waitKube(t, nsA, "by-namespace", svcLine+"IPv4 10.22.0.1 http:80 ready=true")
	waitKube(t, nsB, "pay-api", svcLine+"IPv4 10.22.0.2 http:80 ready=true")
	waitKube(t, nsB, "by-instance-label", svcLine+"IPv4 10.22.0.3 http:80 ready=true")
	waitKube(t, nsB, "by-service-label", svcLine+"IPv4 10.22.0.4 http:80 ready=true")
	if got := kubeView(t, nsB, "plain"); got != "" {
		t.Errorf("a service the rule does not select was exported: %s", got)
	}
	ex := exporterOf(c)
	eventually(t, syncWait, "the namespace not watched reported", func() (bool, string) {
		ex.omu.Lock()
		defer ex.omu.Unlock()
		o := ex.outcomes[registry.ServiceKey{Namespace: "not-watched", Name: "pay-elsewhere"}]
		return strings.Contains(o.problem, "not watched"), fmt.Sprintf("%+v", o)
	})

	// The instance drops the label: its service is no longer exported.
	register(t, reg, registry.Instance{Namespace: nsB, Service: "by-instance-label", ID: "c", Address: "10.22.0.3", Ports: httpPort(80)})
	waitKube(t, nsB, "by-instance-label", "")
	if got := kubeView(t, nsB, "pay-api"); got == "" {
		t.Error("an unrelated export went away")
	}
}

// Only the leader writes: a second replica with services of its own to
// export writes nothing while the first holds the lease, and reconciles
// everything when it takes over (the first replica's exports, unknown to
// its registry, are removed: replicas normally share one registry).
func TestExportOnlyLeaderWrites(t *testing.T) {
	ns := testNamespace(t)
	rule := ExportRule{Namespaces: []string{ns}}
	start := func(id string, reg *registry.Registry) (*Controller, context.CancelFunc) {
		c, err := New(Options{Registry: reg, Config: env.Config, Logger: testLogger(t), Namespaces: []string{ns}, Identity: id,
			Export: rule, LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case <-c.Ready():
		case <-time.After(30 * time.Second):
			t.Fatal("controller not in sync within 30s")
		}
		return c, func() { cancel(); <-done }
	}
	regA, regB := newRegistry(t), newRegistry(t)
	register(t, regA, registry.Instance{Namespace: ns, Service: "from-a", ID: "a", Address: "10.23.0.1", Ports: httpPort(80)})
	a, stopA := start("replica-a", regA)
	waitLeading(t, a)
	svcLine := "service managed-by=cairn type=ClusterIP selector=map[] ports=http:80/TCP/http,\n"
	waitKube(t, ns, "from-a", svcLine+"IPv4 10.23.0.1 http:80 ready=true")

	register(t, regB, registry.Instance{Namespace: ns, Service: "from-b", ID: "b", Address: "10.23.0.2", Ports: httpPort(80)})
	b, _ := start("replica-b", regB)
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		if b.Leading() {
			t.Fatal("both replicas lead")
		}
		if got := kubeView(t, ns, "from-b"); got != "" {
			t.Fatalf("a replica that does not lead wrote: %s", got)
		}
	}

	stopA()
	waitLeading(t, b)
	waitKube(t, ns, "from-b", svcLine+"IPv4 10.23.0.2 http:80 ready=true")
	waitKube(t, ns, "from-a", "")
}

// exporterOf and importerOf return a controller's components.
func exporterOf(c *Controller) *exporter {
	for _, comp := range c.components {
		if ex, ok := comp.(*exporter); ok {
			return ex
		}
	}
	panic("no exporter")
}

func importerOf(c *Controller) *importer {
	for _, comp := range c.components {
		if im, ok := comp.(*importer); ok {
			return im
		}
	}
	panic("no importer")
}

// gaugeValue reads a gauge without labels from a Prometheus registry.
func gaugeValue(g prometheus.Gatherer, name string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no gauge %s", name)
}
