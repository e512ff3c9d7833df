package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/kube/kubetest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// kubeEnv is one real control plane (etcd + kube-apiserver) shared by this
// package's Kubernetes tests, started by the first that needs it.
var kubeEnv struct {
	once sync.Once
	env  *kubetest.Env
	err  error
}

func startKube(t *testing.T) *kubetest.Env {
	t.Helper()
	kubeEnv.once.Do(func() { kubeEnv.env, kubeEnv.err = kubetest.Start() })
	if kubeEnv.err != nil {
		t.Fatal(kubeEnv.err)
	}
	return kubeEnv.env
}

func stopKube() {
	if kubeEnv.env != nil {
		kubeEnv.env.Stop()
	}
}

var nsSeq atomic.Int64

// createNamespace creates a namespace named prefix-N, new for each call
// (tests may run more than once against the one control plane).
func createNamespace(t *testing.T, env *kubetest.Env, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, nsSeq.Add(1))
	_, err := env.Clientset().CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// endpoint is one address of an EndpointSlice and whether it is ready.
type endpoint struct {
	ip    string
	ready bool
}

func putSlice(t *testing.T, env *kubetest.Env, ns, svc string, eps ...endpoint) {
	t.Helper()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc + "-1", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for i, e := range eps {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready)},
			Zone:       ptr.To("zone-a"),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("%s-%d", svc, i)},
		})
	}
	ctx := context.Background()
	slices := env.Clientset().DiscoveryV1().EndpointSlices(ns)
	old, err := slices.Get(ctx, slice.Name, metav1.GetOptions{})
	if err == nil {
		slice.ResourceVersion = old.ResourceVersion
		_, err = slices.Update(ctx, slice, metav1.UpdateOptions{})
	} else {
		_, err = slices.Create(ctx, slice, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestKubernetesSync runs the real binary with --kubernetes against a real
// API server: a Service with an EndpointSlice shows in Cairn's API, in DNS
// (real dig) and in Eureka's GET /apps; an endpoint turning not-ready goes
// away; an app registered through the Eureka API becomes a selector-less
// Service with an EndpointSlice managed by Cairn, and is removed with it.
func TestKubernetesSync(t *testing.T) {
	env := startKube(t)
	ns := createNamespace(t, env, "e2e-sync")
	ctx := context.Background()
	cs := env.Clientset()
	_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}, Selector: map[string]string{"app": "web"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	putSlice(t, env, ns, "web", endpoint{"10.1.2.3", true}, endpoint{"10.1.2.4", true}, endpoint{"10.1.2.5", false})

	s := startCairn(t, "server", "--in-memory", "--log-level", "warn",
		"--kubernetes", "--kubeconfig", env.Kubeconfig, "--kube-namespaces", ns,
		"--kube-export-namespaces", ns, "--eureka-namespace", ns)

	// The native API.
	var got struct {
		Instances []struct {
			ID, Address, Zone, Source string
			Ports                     []struct {
				Name string
				Port int
			}
		}
	}
	eventually(t, 10*time.Second, "the API lists web's ready endpoints", func() (bool, string) {
		code, err := call("GET", s.URL+"/v1/services/"+ns+"/web/instances", nil, &got)
		var addrs []string
		for _, in := range got.Instances {
			addrs = append(addrs, in.Address)
		}
		slices.Sort(addrs)
		return code == 200 && slices.Equal(addrs, []string{"10.1.2.3", "10.1.2.4"}), fmt.Sprintf("%d %v %v", code, err, addrs)
	})
	in := got.Instances[0]
	if in.Source != "kubernetes" || in.Zone != "zone-a" || len(in.Ports) != 1 || in.Ports[0].Name != "http" || in.Ports[0].Port != 8080 {
		t.Fatalf("instance = %+v, want source kubernetes, zone zone-a, port http 8080", in)
	}

	// DNS, through Debian's dig.
	eventually(t, 5*time.Second, "dig answers web's A records", func() (bool, string) {
		a := digShort(t, s.DNS, "web."+ns+".svc.cairn", "A")
		return sortedLines(a) == "10.1.2.3\n10.1.2.4", a
	})
	if srv := digShort(t, s.DNS, "_http._tcp.web."+ns+".svc.cairn", "SRV"); !strings.Contains(srv, " 8080 ") {
		t.Fatalf("SRV answer %q has no port 8080", srv)
	}

	// Eureka's GET /apps (the Eureka namespace is the test's here).
	eventually(t, 5*time.Second, "Eureka lists WEB", func() (bool, string) {
		body := getEurekaApps(t, s.URL)
		return strings.Contains(body, `"WEB"`) && strings.Contains(body, "10.1.2.3") && strings.Contains(body, "10.1.2.4"), body
	})

	// An endpoint turning not-ready disappears.
	putSlice(t, env, ns, "web", endpoint{"10.1.2.3", true}, endpoint{"10.1.2.4", false})
	eventually(t, 5*time.Second, "dig stops answering the not-ready endpoint", func() (bool, string) {
		a := digShort(t, s.DNS, "web."+ns+".svc.cairn", "A")
		return a == "10.1.2.3", a
	})

	// Cairn → Kubernetes: an app registered by a Eureka client.
	reg := `{"instance":{"instanceId":"orders-1","hostName":"10.9.0.1","app":"ORDERS","ipAddr":"10.9.0.1",` +
		`"status":"UP","port":{"$":8081,"@enabled":"true"},"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"}}}`
	req, _ := http.NewRequest("POST", s.URL+"/eureka/apps/ORDERS", strings.NewReader(reg))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("Eureka register: %d", resp.StatusCode)
	}
	eventually(t, 10*time.Second, "a Service and an EndpointSlice for orders", func() (bool, string) {
		svc, err := cs.CoreV1().Services(ns).Get(ctx, "orders", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if svc.Spec.Selector != nil || svc.Labels["app.kubernetes.io/managed-by"] != "cairn" {
			return false, fmt.Sprintf("service %+v", svc.ObjectMeta.Labels)
		}
		list, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=orders"})
		if err != nil || len(list.Items) == 0 {
			return false, fmt.Sprintf("slices: %v", err)
		}
		var addrs []string
		for _, e := range list.Items[0].Endpoints {
			addrs = append(addrs, e.Addresses...)
		}
		return slices.Equal(addrs, []string{"10.9.0.1"}), fmt.Sprint(addrs)
	})
	// The exported service is not imported back as a second source.
	var orders struct{ Instances []struct{ Source string } }
	if code, err := call("GET", s.URL+"/v1/services/"+ns+"/orders/instances", nil, &orders); err != nil || code != 200 || len(orders.Instances) != 1 || orders.Instances[0].Source != "eureka" {
		t.Fatalf("orders instances = %d %v %+v, want one from eureka", code, err, orders.Instances)
	}

	req, _ = http.NewRequest("DELETE", s.URL+"/eureka/apps/ORDERS/orders-1", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eventually(t, 10*time.Second, "the orders Service is removed", func() (bool, string) {
		_, err := cs.CoreV1().Services(ns).Get(ctx, "orders", metav1.GetOptions{})
		return err != nil && strings.Contains(err.Error(), "not found"), fmt.Sprint(err)
	})
}

func getEurekaApps(t *testing.T, base string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/eureka/apps", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("GET /eureka/apps: %v: %s", err, b)
	}
	return string(b)
}

func sortedLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestKubernetesLeaderHandOver runs two replicas on one Lease and kills the
// leader with SIGKILL (no release): the other takes the Lease once it
// expires, and its writes (an exported service) reach Kubernetes.
func TestKubernetesLeaderHandOver(t *testing.T) {
	env := startKube(t)
	ns := createNamespace(t, env, "e2e-leader")
	ctx := context.Background()
	cs := env.Clientset()
	args := func(id string) []string {
		return []string{"--in-memory", "--log-level", "info", "--kubernetes", "--kubeconfig", env.Kubeconfig,
			"--kube-namespaces", ns, "--kube-export-namespaces", ns,
			"--kube-identity", id, "--kube-lease-duration", "3s"}
	}
	replicas := map[string]*server{
		"replica-a": startCairn(t, "server", args("replica-a")...),
		"replica-b": startCairn(t, "server", args("replica-b")...),
	}
	holder := func() string {
		l, err := cs.CoordinationV1().Leases(ns).Get(ctx, "cairn-controller", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	var leader string
	eventually(t, 10*time.Second, "a replica holds the lease", func() (bool, string) {
		leader = holder()
		return replicas[leader] != nil, leader
	})
	var survivor string
	for id := range replicas {
		if id != leader {
			survivor = id
		}
	}
	killed := time.Now()
	replicas[leader].kill()
	eventually(t, 15*time.Second, "the survivor takes the lease", func() (bool, string) {
		h := holder()
		return h == survivor, h
	})
	t.Logf("lease taken over %s after SIGKILL of the leader (lease duration 3s)", time.Since(killed).Round(10*time.Millisecond))

	// Only the leader writes to Kubernetes: the survivor now exports.
	code, err := call("PUT", replicas[survivor].URL+"/v1/services/"+ns+"/billing/instances/b-1",
		map[string]any{"address": "10.9.1.1", "ports": []map[string]any{{"name": "http", "port": 9000}}}, nil)
	if err != nil || code != 201 {
		t.Fatalf("register: %d %v", code, err)
	}
	eventually(t, 10*time.Second, "the survivor exports billing", func() (bool, string) {
		_, err := cs.CoreV1().Services(ns).Get(ctx, "billing", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	jsonLogsOnly(t, replicas[survivor])
}

// jsonLogsOnly checks that a server logged JSON lines only: client-go's
// own log lines (klog) go through Cairn's logger too.
func jsonLogsOnly(t *testing.T, s *server) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
		if line != "" && !json.Valid([]byte(line)) {
			t.Fatalf("a log line that is not JSON: %q", line)
		}
	}
}
