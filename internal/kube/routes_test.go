package kube

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/proxy"
	"github.com/cairnhq/cairn/internal/proxy/source"
	"github.com/cairnhq/cairn/internal/registry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// ---- Harness: a real gateway following the registry the controller writes.

// testGateway is Cairn's gateway (engine + server on 127.0.0.1) fed by
// FollowRegistry, with backends: in-process servers that answer
// "<name> <path>", reached through addresses only a cluster would have
// (10.1.2.x:8080, as EndpointSlices hold) by MapAddress.
type testGateway struct {
	t      *testing.T
	reg    *registry.Registry
	url    string
	client *http.Client

	mu    sync.Mutex
	addrs map[string]string // cluster address -> local listener
	next  int
}

func startTestGateway(t *testing.T, reg *registry.Registry) *testGateway {
	t.Helper()
	g := &testGateway{t: t, reg: reg, addrs: map[string]string{}}
	e := proxy.NewEngine(proxy.Options{Logger: testLogger(t), MapAddress: func(a string) string {
		g.mu.Lock()
		defer g.mu.Unlock()
		if m, ok := g.addrs[a]; ok {
			return m
		}
		return a
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.NewServer(e, proxy.ServerOptions{Listen: ln, Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	followed := make(chan struct{})
	go func() {
		source.FollowRegistry(ctx, reg, e, ready, testLogger(t))
		close(followed)
	}()
	<-ready
	srv.Start()
	t.Cleanup(func() {
		cancel()
		<-followed
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer dcancel()
		srv.Drain(dctx)
	})
	g.url = "http://" + ln.Addr().String()
	g.client = &http.Client{Timeout: 5 * time.Second}
	return g
}

// backend starts a backend named name and registers it as an instance of
// the registry service namespace/service, at a 10.1.2.x address with port
// portName. The instances' source is not "kubernetes": the importer,
// running in the same controller, owns those and would remove them.
func (g *testGateway) backend(namespace, service, name, portName string) {
	g.t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	g.t.Cleanup(srv.Close)
	g.register(namespace, service, name, portName, srv.Listener.Addr().String())
}

// register makes a local listener an instance (id) of a registry service,
// at the next 10.1.2.x:8080 address.
func (g *testGateway) register(namespace, service, id, portName, local string) {
	g.t.Helper()
	g.mu.Lock()
	g.next++
	addr := fmt.Sprintf("10.1.2.%d", g.next)
	g.addrs[addr+":8080"] = local
	g.mu.Unlock()
	in := registry.Instance{ID: id, Namespace: namespace, Service: service, Address: addr,
		Ports: []registry.Port{{Name: portName, Port: 8080}}, Source: "test"}
	if _, _, _, err := g.reg.Upsert(context.Background(), in); err != nil {
		g.t.Fatal(err)
	}
}

// get sends GET host+path through the gateway and returns the status and
// body.
func (g *testGateway) get(host, path string, header ...string) (int, string) {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.url+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// expect waits until GET host+path answers status with a body starting
// with prefix.
func (g *testGateway) expect(host, path string, status int, prefix string, header ...string) {
	g.t.Helper()
	eventually(g.t, 15*time.Second, fmt.Sprintf("GET %s%s answers %d %q", host, path, status, prefix), func() (bool, string) {
		code, body := g.get(host, path, header...)
		return code == status && strings.HasPrefix(body, prefix), fmt.Sprintf("%d %s", code, body)
	})
}

// routesService creates a Service with one port per name:port pair
// ("" for an unnamed port), each targeting 8080.
func routesService(t *testing.T, ns, name string, ports map[string]int32) {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for n, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: n, Port: p, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP})
	}
	if _, err := env.Clientset().CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// routeDocs lists the registry's Route documents made from one object.
func routeDocs(reg *registry.Registry, kind, ns, name string) []*config.Document {
	docs, _ := reg.ConfigDocs(config.KindRoute, "")
	var out []*config.Document
	for _, d := range docs {
		l := d.Metadata.Labels
		if l[LabelOriginKind] == kind && l[LabelOriginNamespace] == ns && l[LabelOriginName] == name {
			out = append(out, d)
		}
	}
	return out
}

// ---- A view for pure translation tests.

type fakeView struct {
	services  map[string]*corev1.Service // "namespace/name"
	unwatched map[string]bool            // namespaces
	nsLabels  map[string]map[string]string
	grants    map[string][]*gatewayv1beta1.ReferenceGrant
}

func (v *fakeView) service(ns, name string) (*corev1.Service, bool) {
	if v.unwatched[ns] {
		return nil, false
	}
	return v.services[ns+"/"+name], true
}

func (v *fakeView) namespaceLabels(ns string) (map[string]string, bool) {
	l, ok := v.nsLabels[ns]
	return l, ok
}

func (v *fakeView) referenceGrants(ns string) []*gatewayv1beta1.ReferenceGrant { return v.grants[ns] }

func svcWithPorts(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: ports}}
}

// ---- Pure unit tests.

func TestRoutesDocNames(t *testing.T) {
	long := strings.Repeat("very-long-name-", 16) + "end"
	cases := []struct {
		desc string
		got  string
		want string // "" when only validity is checked
	}{
		{"a short name is kept", docName("ing", "web", "00-01"), "ing-web-00-01"},
		{"an Ingress default backend", ingressDefaultDocName("web", false), "ing-web-d0"},
		{"a dotted name is hashed", docName("ing", "web.v1", "00-00"), ""},
		{"a long name is cut and hashed", docName("ing", long, "00-00"), ""},
		{"an HTTPRoute name starts with its creation time", routeDocName(kindHTTPRoute, "orders", time.Unix(1700000000, 0), 3, 12), "hr-" + creationKey(time.Unix(1700000000, 0)) + "-orders-03-12"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if len(c.got) > maxNameLen || !config.IsLabel(c.got) {
				t.Fatalf("%q is not a DNS label of at most 63 characters", c.got)
			}
			if c.want != "" && c.got != c.want {
				t.Fatalf("got %q, want %q", c.got, c.want)
			}
		})
	}
	distinct := map[string]string{}
	for _, n := range []string{"web.v1", "web-v1", long, long + "x", strings.Repeat("a", 253), strings.Repeat("a", 252) + "b"} {
		d := docName("ing", n, "00-00")
		if other, dup := distinct[d]; dup {
			t.Fatalf("%q and %q share the document name %q", n, other, d)
		}
		distinct[d] = n
	}
	// Names sort oldest first, whatever the routes are called, then by
	// name, then by rule: the Gateway API's order of ties.
	older := routeDocName(kindHTTPRoute, "zzz", time.Unix(1700000000, 0), 0, 0)
	newer := routeDocName(kindHTTPRoute, "aaa", time.Unix(1700000001, 0), 0, 0)
	if older >= newer {
		t.Fatalf("%q should sort before %q", older, newer)
	}
	if a, b := routeDocName(kindHTTPRoute, "r", time.Unix(5, 0), 2, 0), routeDocName(kindHTTPRoute, "r", time.Unix(5, 0), 10, 0); a >= b {
		t.Fatalf("rule 2 (%q) should sort before rule 10 (%q)", a, b)
	}
}

func FuzzRoutesDocName(f *testing.F) {
	for _, s := range []string{"web", "a.b.c", strings.Repeat("x", 300), "-", "...", "UPPER", "ünïcode"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, suffix := range []string{"00-00", "d1"} {
			d := docName("hr-0000000", name, suffix)
			if len(d) > maxNameLen || !config.IsLabel(d) {
				t.Fatalf("docName(%q) = %q: not a DNS label of at most 63 characters", name, d)
			}
		}
	})
}

func TestRoutesHostIntersection(t *testing.T) {
	h := func(s string) *gatewayv1.Hostname { return ptrTo(gatewayv1.Hostname(s)) }
	cases := []struct {
		desc      string
		listener  *gatewayv1.Hostname
		route     []string
		want      []string
		every, ok bool
	}{
		{"neither names a host", nil, nil, nil, true, true},
		{"only the listener", h("shop.example.com"), nil, []string{"shop.example.com"}, false, true},
		{"only the route", nil, []string{"a.example.com", "B.example.com"}, []string{"a.example.com", "b.example.com"}, false, true},
		{"a wildcard listener keeps the route's names under it", h("*.example.com"), []string{"a.example.com", "a.b.example.com", "example.com", "a.example.net"},
			[]string{"a.example.com", "a.b.example.com"}, false, true},
		{"a route wildcard narrows to the listener's name", h("shop.example.com"), []string{"*.example.com"}, []string{"shop.example.com"}, false, true},
		{"a narrower wildcard under a wider one", h("*.example.com"), []string{"*.shop.example.com"}, []string{"*.shop.example.com"}, false, true},
		{"nothing in common", h("shop.example.com"), []string{"other.example.com"}, nil, false, false},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			var route []gatewayv1.Hostname
			for _, r := range c.route {
				route = append(route, gatewayv1.Hostname(r))
			}
			got, every, ok := intersectHosts(c.listener, route)
			if !slices.Equal(got, c.want) || every != c.every || ok != c.ok {
				t.Fatalf("got %v every=%v ok=%v, want %v every=%v ok=%v", got, every, ok, c.want, c.every, c.ok)
			}
		})
	}
}
