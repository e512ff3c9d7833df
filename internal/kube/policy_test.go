package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
)

// startPolicyController runs a controller watching ns whose resyncRoutes
// counts its calls (the route controller's own is replaced), until the
// test ends, and waits until it is in sync.
func startPolicyController(t *testing.T, ns string, resyncs *atomic.Int64) *Controller {
	t.Helper()
	c, err := New(Options{Registry: newRegistry(t), Config: env.Config, Logger: testLogger(t), Namespaces: []string{ns},
		LeaseNamespace: ns, LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.resyncRoutes = func() { resyncs.Add(1) }
	runController(t, c)
	if !c.hasPols {
		t.Fatal("the TrafficPolicy CRD is not served")
	}
	return c
}

var policyGVR = PolicyGroupVersion.WithResource(PolicyResource)

func policyClient(ns string) dynamic.ResourceInterface {
	return dynamic.NewForConfigOrDie(env.Config).Resource(policyGVR).Namespace(ns)
}

// policyObject makes a TrafficPolicy from the YAML of its spec.
func policyObject(t *testing.T, ns, name, spec string) *unstructured.Unstructured {
	t.Helper()
	var s map[string]any
	if err := yaml.Unmarshal([]byte(spec), &s); err != nil {
		t.Fatalf("spec of %s: %v", name, err)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": PolicyGroupVersion.String(), "kind": PolicyKind,
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     s,
	}}
}

func policyCreate(t *testing.T, ns, name, spec string) {
	t.Helper()
	if _, err := policyClient(ns).Create(context.Background(), policyObject(t, ns, name, spec), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create policy %s: %v", name, err)
	}
}

func policyUpdate(t *testing.T, ns, name, spec string) {
	t.Helper()
	cur, err := policyClient(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Object["spec"] = policyObject(t, ns, name, spec).Object["spec"]
	if _, err := policyClient(ns).Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update policy %s: %v", name, err)
	}
}

func policyDelete(t *testing.T, ns, name string) {
	t.Helper()
	if err := policyClient(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete policy %s: %v", name, err)
	}
}

// policyAccepted returns a policy's Accepted condition (nil: none yet)
// and its status.observedGeneration and metadata.generation.
func policyAccepted(t *testing.T, ns, name string) (cond *metav1.Condition, observed, generation int64) {
	t.Helper()
	u, err := policyClient(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := decodePolicy(u)
	return p.accepted, p.observed, u.GetGeneration()
}

// waitPolicy waits until a policy's current generation has the Accepted
// condition with status and reason, and returns its message.
func waitPolicy(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) string {
	t.Helper()
	var msg string
	eventually(t, 10*time.Second, "policy "+name+" Accepted="+string(status)+" "+reason, func() (bool, string) {
		c, observed, gen := policyAccepted(t, ns, name)
		if c == nil {
			return false, "no Accepted condition"
		}
		msg = c.Message
		state := fmt.Sprintf("%s %s %q observedGeneration %d/%d, generation %d", c.Status, c.Reason, c.Message, c.ObservedGeneration, observed, gen)
		return c.Status == status && c.Reason == reason && c.ObservedGeneration == gen && observed == gen, state
	})
	return msg
}

func policyTestService(t *testing.T, ns, name string) {
	t.Helper()
	_, err := env.Clientset().CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func policyTestHTTPRoute(t *testing.T, ns, name, service string) {
	t.Helper()
	gw, err := gatewayclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	port := gatewayv1.PortNumber(80)
	_, err = gw.GatewayV1().HTTPRoutes(ns).Create(context.Background(), &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: gatewayv1.HTTPRouteSpec{Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{
			BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(service), Port: &port}},
		}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func policyTestGRPCRoute(t *testing.T, ns, name, service string) {
	t.Helper()
	gw, err := gatewayclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	port := gatewayv1.PortNumber(80)
	_, err = gw.GatewayV1().GRPCRoutes(ns).Create(context.Background(), &gatewayv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: gatewayv1.GRPCRouteSpec{Rules: []gatewayv1.GRPCRouteRule{{BackendRefs: []gatewayv1.GRPCBackendRef{{
			BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(service), Port: &port}},
		}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func policyTestIngress(t *testing.T, ns, name, service string) {
	t.Helper()
	_, err := env.Clientset().NetworkingV1().Ingresses(ns).Create(context.Background(), &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.IngressSpec{DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: service, Port: networkingv1.ServiceBackendPort{Number: 80}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

var (
	policyRouteRef = func(ns, name string) objectRef {
		return objectRef{Group: gatewayv1.GroupName, Kind: "HTTPRoute", Namespace: ns, Name: name}
	}
	policyIngressRef = func(ns, name string) objectRef {
		return objectRef{Group: networkingv1.GroupName, Kind: "Ingress", Namespace: ns, Name: name}
	}
)

// policyApply runs the route controller's call: the policies for a
// route from origin to the Services named, merged into a route with one
// backend per Service and the given own fields.
func policyApply(c *Controller, origin objectRef, own config.RouteSpec, services ...string) (config.RouteSpec, []string) {
	spec := own
	var keys []registry.ServiceKey
	for _, s := range services {
		spec.Backends = append(spec.Backends, config.Backend{Service: s})
		keys = append(keys, registry.ServiceKey{Namespace: origin.Namespace, Name: s})
	}
	names := c.policies.apply(origin, keys, &spec)
	return spec, names
}

func policyJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Policies on a Service and on an HTTPRoute are accepted, and merged into
// the route's spec: what the route itself says first, then the route's
// policy, then the Service's, field by field.
func TestPolicyAppliesToServiceAndRoute(t *testing.T) {
	ns := testNamespace(t)
	policyTestService(t, ns, "web")
	policyTestService(t, ns, "api")
	policyTestHTTPRoute(t, ns, "shop", "web")
	policyTestIngress(t, ns, "legacy", "api")
	policyTestGRPCRoute(t, ns, "rpc", "api")
	var resyncs atomic.Int64
	c := startPolicyController(t, ns, &resyncs)

	policyCreate(t, ns, "svc-pol", `targetRefs: [{kind: Service, name: web}]
timeouts: {connect: 1s, request: 20s}
retries: {attempts: 5}
rateLimit: {requests: 100, perClient: true}
circuitBreaker: {maxRequests: 10}`)
	policyCreate(t, ns, "route-pol", `targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}]
timeouts: {perTry: 2s}
retries: {attempts: 1, "on": [reset], backoff: {base: 10ms, max: 20ms}}
loadBalancer: {policy: ring_hash, hash: {header: x-user}}`)
	policyCreate(t, ns, "ing-pol", `targetRefs: [{group: networking.k8s.io, kind: Ingress, name: legacy}]
outlierDetection: {consecutiveFailures: 0}`)
	policyCreate(t, ns, "rpc-pol", `targetRefs: [{group: gateway.networking.k8s.io, kind: GRPCRoute, name: rpc}]
timeouts: {request: 0s}`)
	if msg := waitPolicy(t, ns, "svc-pol", metav1.ConditionTrue, PolicyReasonAccepted); msg != "applies to Service web" {
		t.Fatalf("message %q", msg)
	}
	waitPolicy(t, ns, "route-pol", metav1.ConditionTrue, PolicyReasonAccepted)
	waitPolicy(t, ns, "ing-pol", metav1.ConditionTrue, PolicyReasonAccepted)
	waitPolicy(t, ns, "rpc-pol", metav1.ConditionTrue, PolicyReasonAccepted)
	if resyncs.Load() == 0 {
		t.Fatal("routes were not translated again after policies came")
	}

	spec, names := policyApply(c, policyRouteRef(ns, "shop"), config.RouteSpec{Timeouts: &config.Timeouts{Request: "5s"}}, "web")
	if want := []string{ns + "/route-pol", ns + "/svc-pol"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("applied %v, want %v", names, want)
	}
	want := `{"match":{},"backends":[{"service":"web"}],` +
		`"loadBalancer":{"policy":"ring_hash","hash":{"header":"x-user"}},` +
		`"timeouts":{"connect":"1s","perTry":"2s","request":"5s"},` +
		`"retries":{"attempts":1,"on":["reset"],"backoff":{"base":"10ms","max":"20ms"}},` +
		`"circuitBreaker":{"maxRequests":10},"rateLimit":{"requests":100,"perClient":true}}`
	if got := policyJSON(spec); got != want {
		t.Fatalf("merged spec\n got %s\nwant %s", got, want)
	}
	if _, fe := config.DecodeRoute([]byte(policyJSON(spec)), ns); fe != nil {
		t.Fatalf("the merged spec is not a valid route: %v", fe)
	}
	// The merged route owns its values: changing them changes no policy.
	spec.Retries.On[0] = "timeout"
	if again, _ := policyApply(c, policyRouteRef(ns, "shop"), config.RouteSpec{}, "web"); again.Retries.On[0] != "reset" {
		t.Fatal("a route's spec shares memory with the policy")
	}

	// An Ingress's policy, and the Service's behind it.
	spec, names = policyApply(c, policyIngressRef(ns, "legacy"), config.RouteSpec{}, "api", "web")
	if len(names) != 2 || names[0] != ns+"/ing-pol" || spec.OutlierDetection == nil || spec.RateLimit == nil {
		t.Fatalf("Ingress route: applied %v, spec %s", names, policyJSON(spec))
	}
	// A GRPCRoute's policy.
	rpc := objectRef{Group: gatewayv1.GroupName, Kind: "GRPCRoute", Namespace: ns, Name: "rpc"}
	if spec, names := policyApply(c, rpc, config.RouteSpec{}, "api"); len(names) != 1 || spec.Timeouts == nil || spec.Timeouts.Request != "0s" {
		t.Fatalf("GRPCRoute route: applied %v, spec %s", names, policyJSON(spec))
	}
	// A route that no policy names gets nothing.
	spec, names = policyApply(c, policyRouteRef(ns, "other"), config.RouteSpec{}, "api")
	if names != nil || policyJSON(spec) != `{"match":{},"backends":[{"service":"api"}]}` {
		t.Fatalf("unrelated route: applied %v, spec %s", names, policyJSON(spec))
	}

	// A changed policy is applied, and the routes translated again.
	before := resyncs.Load()
	policyUpdate(t, ns, "route-pol", `targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}]
retries: {attempts: 3}`)
	waitPolicy(t, ns, "route-pol", metav1.ConditionTrue, PolicyReasonAccepted)
	eventually(t, 5*time.Second, "the changed policy applies", func() (bool, string) {
		spec, _ := policyApply(c, policyRouteRef(ns, "shop"), config.RouteSpec{}, "web")
		return spec.Retries != nil && *spec.Retries.Attempts == 3 && resyncs.Load() > before && spec.LoadBalancer == nil, policyJSON(spec)
	})
	// A change of status alone (the controller's own writes) is no reason
	// to translate routes.
	settled := resyncs.Load()
	time.Sleep(300 * time.Millisecond)
	if n := resyncs.Load(); n != settled {
		t.Fatalf("%d translations without a change of policy", n-settled)
	}
}

// A policy whose target does not exist is not applied, and says so; when
// the target comes, it applies.
func TestPolicyTargetNotFound(t *testing.T) {
	ns := testNamespace(t)
	var resyncs atomic.Int64
	c := startPolicyController(t, ns, &resyncs)
	policyCreate(t, ns, "pol", `targetRefs: [{kind: Service, name: later}]
rateLimit: {requests: 7}`)
	msg := waitPolicy(t, ns, "pol", metav1.ConditionFalse, PolicyReasonTargetNotFound)
	if !strings.Contains(msg, "Service later not found") {
		t.Fatalf("message %q", msg)
	}
	if _, names := policyApply(c, policyRouteRef(ns, "r"), config.RouteSpec{}, "later"); names != nil {
		t.Fatalf("applied %v to a Service that does not exist", names)
	}
	before := resyncs.Load()
	policyTestService(t, ns, "later")
	waitPolicy(t, ns, "pol", metav1.ConditionTrue, PolicyReasonAccepted)
	spec, names := policyApply(c, policyRouteRef(ns, "r"), config.RouteSpec{}, "later")
	if len(names) != 1 || spec.RateLimit == nil || spec.RateLimit.Requests != 7 {
		t.Fatalf("applied %v: %s", names, policyJSON(spec))
	}
	if resyncs.Load() == before {
		t.Fatal("routes were not translated again when the target came")
	}
	if err := env.Clientset().CoreV1().Services(ns).Delete(context.Background(), "later", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPolicy(t, ns, "pol", metav1.ConditionFalse, PolicyReasonTargetNotFound)
	if _, names := policyApply(c, policyRouteRef(ns, "r"), config.RouteSpec{}, "later"); names != nil {
		t.Fatalf("applied %v after the Service went", names)
	}
	// A policy with one target there and one not applies where it can.
	policyTestService(t, ns, "here")
	policyCreate(t, ns, "half", `targetRefs: [{kind: Service, name: here}, {kind: Service, name: gone}]
loadBalancer: {policy: random}`)
	msg = waitPolicy(t, ns, "half", metav1.ConditionFalse, PolicyReasonTargetNotFound)
	if msg != "Service gone not found; applies to Service here" {
		t.Fatalf("message %q", msg)
	}
	if spec, _ := policyApply(c, policyRouteRef(ns, "r"), config.RouteSpec{}, "here"); spec.LoadBalancer == nil {
		t.Fatalf("not applied to the target that exists: %s", policyJSON(spec))
	}
}

// Of two policies on one target, the older applies and the other is
// Conflicted, naming it; when the older goes, the other takes over.
func TestPolicyConflict(t *testing.T) {
	ns := testNamespace(t)
	policyTestService(t, ns, "web")
	var resyncs atomic.Int64
	c := startPolicyController(t, ns, &resyncs)
	// Named so that alphabetical order (the tie-break) would pick the
	// newer one: the creation time decides.
	policyCreate(t, ns, "z-old", "targetRefs: [{kind: Service, name: web}]\nrateLimit: {requests: 1}")
	waitPolicy(t, ns, "z-old", metav1.ConditionTrue, PolicyReasonAccepted)
	time.Sleep(1100 * time.Millisecond) // creation times have seconds
	policyCreate(t, ns, "a-new", "targetRefs: [{kind: Service, name: web}]\nrateLimit: {requests: 2}")
	msg := waitPolicy(t, ns, "a-new", metav1.ConditionFalse, PolicyReasonConflicted)
	if msg != "Service web has the older policy z-old; applies nowhere" {
		t.Fatalf("message %q", msg)
	}
	if c, _, _ := policyAccepted(t, ns, "z-old"); c.Status != metav1.ConditionTrue {
		t.Fatalf("the older policy: %+v", c)
	}
	spec, names := policyApply(c, policyRouteRef(ns, "r"), config.RouteSpec{}, "web")
	if len(names) != 1 || names[0] != ns+"/z-old" || spec.RateLimit.Requests != 1 {
		t.Fatalf("applied %v: %s", names, policyJSON(spec))
	}
	policyDelete(t, ns, "z-old")
	waitPolicy(t, ns, "a-new", metav1.ConditionTrue, PolicyReasonAccepted)
	if spec, _ := policyApply(c, policyRouteRef(ns, "r"), config.RouteSpec{}, "web"); spec.RateLimit == nil || spec.RateLimit.Requests != 2 {
		t.Fatalf("after the older one went: %s", policyJSON(spec))
	}
}

// A policy the schema lets through but Cairn cannot run is Invalid, with
// a message naming the field, and is not applied; fixed, it applies. An
// invalid policy does not take its target from a valid newer one.
func TestPolicyInvalidForCairn(t *testing.T) {
	ns := testNamespace(t)
	policyTestService(t, ns, "web")
	var resyncs atomic.Int64
	c := startPolicyController(t, ns, &resyncs)
	// The pattern of a duration allows it; time.ParseDuration overflows.
	policyCreate(t, ns, "huge", "targetRefs: [{kind: Service, name: web}]\ntimeouts: {connect: 9999999999h}")
	msg := waitPolicy(t, ns, "huge", metav1.ConditionFalse, PolicyReasonInvalid)
	if !strings.HasPrefix(msg, "spec.timeouts.connect: ") {
		t.Fatalf("message %q", msg)
	}
	if _, names := policyApply(c, policyRouteRef(ns, "r"), config.RouteSpec{}, "web"); names != nil {
		t.Fatalf("an invalid policy applied: %v", names)
	}
	time.Sleep(1100 * time.Millisecond)
	policyCreate(t, ns, "good", "targetRefs: [{kind: Service, name: web}]\ntimeouts: {connect: 3s}")
	waitPolicy(t, ns, "good", metav1.ConditionTrue, PolicyReasonAccepted)
	policyDelete(t, ns, "good")
	policyUpdate(t, ns, "huge", "targetRefs: [{kind: Service, name: web}]\ntimeouts: {connect: 9s}")
	waitPolicy(t, ns, "huge", metav1.ConditionTrue, PolicyReasonAccepted)
	if spec, _ := policyApply(c, policyRouteRef(ns, "r"), config.RouteSpec{}, "web"); spec.Timeouts == nil || spec.Timeouts.Connect != "9s" {
		t.Fatalf("the fixed policy: %s", policyJSON(spec))
	}
}

// Only the leader writes status; a follower still applies policies (its
// own route controller asks), and writes once it leads.
func TestPolicyStatusLeaderOnly(t *testing.T) {
	ns := testNamespace(t)
	policyTestService(t, ns, "web")
	// Another replica holds the lease for a while.
	now := metav1.NewMicroTime(time.Now())
	holder, secs := "another-replica", int32(5)
	if _, err := env.Clientset().CoordinationV1().Leases(ns).Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "cairn-controller", Namespace: ns},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policyCreate(t, ns, "pol", "targetRefs: [{kind: Service, name: web}]\nretries: {attempts: 0}")
	var resyncs atomic.Int64
	c := startPolicyController(t, ns, &resyncs)
	eventually(t, 5*time.Second, "the follower applies the policy", func() (bool, string) {
		spec, _ := policyApply(c, policyRouteRef(ns, "r"), config.RouteSpec{}, "web")
		return spec.Retries != nil, policyJSON(spec)
	})
	if c.Leading() {
		t.Fatal("the controller leads while another replica holds the lease")
	}
	if cond, _, _ := policyAccepted(t, ns, "pol"); cond != nil {
		t.Fatalf("a follower wrote status: %+v", cond)
	}
	waitPolicy(t, ns, "pol", metav1.ConditionTrue, PolicyReasonAccepted)
	if !c.Leading() {
		t.Fatal("status written by a controller that does not lead")
	}
}
