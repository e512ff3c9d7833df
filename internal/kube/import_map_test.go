package kube

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testSlice builds an EndpointSlice of service svc; eps are endpoints.
func testSlice(ns, name, svc string, typ discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: typ,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func testPort(name string, port int32, appProtocol string) discoveryv1.EndpointPort {
	p := discoveryv1.EndpointPort{Name: syncPtr(name), Port: syncPtr(port), Protocol: syncPtr(corev1.ProtocolTCP)}
	if appProtocol != "" {
		p.AppProtocol = syncPtr(appProtocol)
	}
	return p
}

// testEndpoint is an endpoint at addr of Pod pod ("" for none); ready nil
// leaves the condition unset.
func testEndpoint(addr, pod string, ready *bool) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	if pod != "" {
		ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod}
	}
	return ep
}

func TestImportMapEndpointConditions(t *testing.T) {
	yes, no := syncPtr(true), syncPtr(false)
	terminating := testEndpoint("10.0.0.4", "d", nil)
	terminating.Conditions.Terminating = yes
	terminating.Conditions.Serving = yes
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}}
	got := mapService(svc, []*discoveryv1.EndpointSlice{testSlice("ns", "web-1", "web", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{testPort("http", 8080, "")},
		testEndpoint("10.0.0.1", "a", yes),
		testEndpoint("10.0.0.2", "b", nil), // nil counts as ready
		testEndpoint("10.0.0.3", "c", no),
		terminating,
	)})
	if ids := slices.Sorted(maps.Keys(got.instances)); !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("instances = %v, want a and b (ready and unset; not not-ready, not terminating)", ids)
	}
	a := got.instances["a"]
	if a.Source != Source || a.TTL != 0 || a.Status != registry.StatusUp || a.Address != "10.0.0.1" {
		t.Errorf("instance a = %+v", a)
	}
	if a.Metadata[importMetaPod] != "a" {
		t.Errorf("pod metadata = %q", a.Metadata[importMetaPod])
	}
}

func TestImportMapPortsAndProtocols(t *testing.T) {
	cases := []struct {
		desc, name, app string
		proto           corev1.Protocol
		want            string
	}{
		{"appProtocol http", "web", "http", corev1.ProtocolTCP, "http"},
		{"appProtocol h2c", "web", "kubernetes.io/h2c", corev1.ProtocolTCP, "http2"},
		{"appProtocol grpc", "api", "grpc", corev1.ProtocolTCP, "grpc"},
		{"appProtocol https", "tls", "HTTPS", corev1.ProtocolTCP, "https"},
		{"appProtocol wins over the name", "http", "mysql", corev1.ProtocolTCP, "tcp"},
		{"name http", "http", "", corev1.ProtocolTCP, "http"},
		{"name prefix grpc-", "grpc-api", "", corev1.ProtocolTCP, "grpc"},
		{"name https", "https", "", corev1.ProtocolTCP, "https"},
		{"name h2c", "h2c", "", corev1.ProtocolTCP, "http2"},
		{"no hint", "db", "", corev1.ProtocolTCP, "tcp"},
		{"not a prefix", "httpx", "", corev1.ProtocolTCP, "tcp"},
		{"udp", "dns", "", corev1.ProtocolUDP, "udp"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			var app *string
			if c.app != "" {
				app = &c.app
			}
			if got := importProtocol(c.name, c.proto, app); got != c.want {
				t.Errorf("importProtocol(%q, %s, %q) = %s, want %s", c.name, c.proto, c.app, got, c.want)
			}
		})
	}

	// An unnamed port is "default"; SCTP and a port without a number are
	// left out and said so.
	s := testSlice("ns", "s", "svc", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{
		{Port: syncPtr(int32(80))},
		{Name: syncPtr("sctp"), Port: syncPtr(int32(99)), Protocol: syncPtr(corev1.ProtocolSCTP)},
		{Name: syncPtr("all")},
	})
	var dropped []string
	ports := importPorts(s, &dropped)
	if len(ports) != 1 || ports[0] != (registry.Port{Name: "default", Port: 80, Protocol: "tcp"}) {
		t.Errorf("ports = %+v", ports)
	}
	if len(dropped) != 2 {
		t.Errorf("dropped = %q, want the SCTP port and the one without a number", dropped)
	}
}

// An address in two slices merges its ports; the IPv6 address of a
// dual-stack Pod gets an id apart from its IPv4 one; endpoints without a
// Pod are named by their address.
func TestImportMapMergeAndIDs(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "api"}}
	http := []discoveryv1.EndpointPort{testPort("http", 8080, "")}
	grpc := []discoveryv1.EndpointPort{testPort("grpc", 9090, "")}
	got := mapService(svc, []*discoveryv1.EndpointSlice{
		testSlice("ns", "api-b", "api", discoveryv1.AddressTypeIPv4, grpc, testEndpoint("10.0.0.1", "p1", nil)),
		testSlice("ns", "api-a", "api", discoveryv1.AddressTypeIPv4, http, testEndpoint("10.0.0.1", "p1", nil), testEndpoint("10.0.0.9", "", nil)),
		testSlice("ns", "api-v6", "api", discoveryv1.AddressTypeIPv6, http, testEndpoint("fd00::0001", "p1", nil)),
	})
	ids := slices.Sorted(maps.Keys(got.instances))
	if want := []string{"10.0.0.9", "p1", "p1@fd00::1"}; !slices.Equal(ids, want) {
		t.Fatalf("ids = %v, want %v", ids, want)
	}
	p1 := got.instances["p1"]
	want := []registry.Port{{Name: "grpc", Port: 9090, Protocol: "grpc"}, {Name: "http", Port: 8080, Protocol: "http"}}
	if !slices.Equal(p1.Ports, want) {
		t.Errorf("merged ports = %+v, want %+v", p1.Ports, want)
	}
	if a := got.instances["p1@fd00::1"].Address; a != "fd00::1" {
		t.Errorf("IPv6 address = %q, want the canonical fd00::1", a)
	}
}

// Labels and annotations become metadata, within the registry's limits,
// without kubectl's last-applied copy; the facts cannot be hidden by a
// label of the same key.
func TestImportMapMetadata(t *testing.T) {
	labels := map[string]string{"app": "orders", importMetaSource: "spoofed"}
	annotations := map[string]string{
		"note":                                  "hello",
		"app":                                   "annotation loses to the label",
		lastAppliedAnnotation:                   `{"apiVersion":"v1"}`,
		"big":                                   strings.Repeat("x", importMaxMetaValue+1),
		strings.Repeat("k", importMaxMetaKey+1): "long key",
	}
	for i := range 100 {
		annotations["zz-extra."+string(rune('a'+i%26))+strings.Repeat("z", i/26)] = "v"
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "orders", Labels: labels, Annotations: annotations}}
	node := "node-1"
	ep := testEndpoint("10.0.0.1", "orders-1", nil)
	ep.NodeName = &node
	ep.Zone = syncPtr("zone-a")
	got := mapService(svc, []*discoveryv1.EndpointSlice{testSlice("ns", "s", "orders", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{testPort("http", 80, "")}, ep)})
	in, ok := got.instances["orders-1"]
	if !ok {
		t.Fatalf("instances = %v", got.instances)
	}
	if err := registry.NormalizeInstance(&in); err != nil {
		t.Fatalf("the registry rejects the instance: %v", err)
	}
	m := in.Metadata
	if m["app"] != "orders" || m["note"] != "hello" || m[importMetaNode] != "node-1" || m[importMetaPod] != "orders-1" {
		t.Errorf("metadata = %v", m)
	}
	if _, ok := m[lastAppliedAnnotation]; ok {
		t.Error("the last-applied-configuration annotation was imported")
	}
	if _, ok := m["big"]; ok {
		t.Error("a value over the registry's limit was imported")
	}
	if len(m) > importMaxMeta {
		t.Errorf("%d metadata entries, the registry holds %d", len(m), importMaxMeta)
	}
	if in.Zone != "zone-a" {
		t.Errorf("zone = %q", in.Zone)
	}
	if got.meta[importMetaSource] != Source || got.meta[importMetaServiceType] != "ClusterIP" || got.meta["app"] != "orders" {
		t.Errorf("service metadata = %v", got.meta)
	}
	s := registry.Service{Namespace: "ns", Name: "orders", Metadata: got.meta}
	if err := registry.NormalizeService(&s); err != nil {
		t.Errorf("the registry rejects the service metadata: %v", err)
	}
}

func TestImportMapSkips(t *testing.T) {
	cases := []struct {
		desc string
		svc  corev1.Service
		skip bool
	}{
		{"plain", corev1.Service{}, false},
		{"exported by Cairn", corev1.Service{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{config.LabelManagedBy: ManagedByCairn}}}, true},
		{"managed by someone else", corev1.Service{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{config.LabelManagedBy: "Helm"}}}, false},
		{"ExternalName", corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName}}, true},
		{"opted out", corev1.Service{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{importAnnotation: "false"}}}, true},
	}
	for _, c := range cases {
		if got := importSkipReason(&c.svc) != ""; got != c.skip {
			t.Errorf("%s: skipped = %v, want %v", c.desc, got, c.skip)
		}
	}
	// Cairn's own slices are not read back either.
	s := testSlice("ns", "s", "svc", discoveryv1.AddressTypeIPv4, nil, testEndpoint("10.0.0.1", "", nil))
	s.Labels[discoveryv1.LabelManagedBy] = exportSliceController
	if got := mapService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc"}}, []*discoveryv1.EndpointSlice{s}); len(got.instances) != 0 {
		t.Errorf("imported Cairn's own slice: %v", got.instances)
	}
}

// FuzzImportMap feeds arbitrary endpoint and port values through the
// mapping: it must not panic, and whatever it produces must pass the
// registry's validation.
func FuzzImportMap(f *testing.F) {
	f.Add("10.0.0.1", "pod-a", "http", int32(8080), "http", "zone-a", "IPv4", "app", "v")
	f.Add("fd00::1", "", "", int32(0), "", "", "IPv6", "", "")
	f.Add("db.example.com.", "x/y", "UPPER", int32(70000), "kubernetes.io/h2c", "bad zone", "FQDN", "k=v", "")
	f.Fuzz(func(t *testing.T, addr, pod, port string, num int32, app, zone, typ, lk, lv string) {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc", Labels: map[string]string{lk: lv}}}
		ep := testEndpoint(addr, pod, nil)
		ep.Zone = &zone
		s := testSlice("ns", "s", "svc", discoveryv1.AddressType(typ), []discoveryv1.EndpointPort{testPort(port, num, app)}, ep)
		got := mapService(svc, []*discoveryv1.EndpointSlice{s})
		for id, in := range got.instances {
			if in.ID != id {
				t.Fatalf("instance under id %q has id %q", id, in.ID)
			}
			if err := registry.NormalizeInstance(&in); err != nil {
				t.Fatalf("mapped instance rejected by the registry: %v (%+v)", err, in)
			}
		}
		rs := registry.Service{Namespace: "ns", Name: "svc", Metadata: got.meta}
		if err := registry.NormalizeService(&rs); err != nil {
			t.Fatalf("service metadata rejected by the registry: %v", err)
		}
	})
}
