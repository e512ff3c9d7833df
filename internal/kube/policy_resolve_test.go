package kube

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

func policyRouteSpec(t *testing.T, js string) *config.RouteSpec {
	t.Helper()
	var s config.RouteSpec
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestPolicyMerge(t *testing.T) {
	cases := []struct {
		desc, dst, src, want string
		took                 bool
	}{
		{"empty policy takes nothing", `{}`, `{}`, `{"match":{},"backends":null}`, false},
		{"fills an empty route", `{}`, `{"timeouts":{"connect":"1s"},"rateLimit":{"requests":5}}`,
			`{"match":{},"backends":null,"timeouts":{"connect":"1s"},"rateLimit":{"requests":5}}`, true},
		{"timeouts merge one by one", `{"timeouts":{"request":"5s"}}`, `{"timeouts":{"connect":"1s","request":"9s"}}`,
			`{"match":{},"backends":null,"timeouts":{"connect":"1s","request":"5s"}}`, true},
		{"a timeout set takes nothing", `{"timeouts":{"request":"5s"}}`, `{"timeouts":{"request":"9s"}}`,
			`{"match":{},"backends":null,"timeouts":{"request":"5s"}}`, false},
		{"circuit limits merge one by one", `{"circuitBreaker":{"maxRequests":3}}`, `{"circuitBreaker":{"maxRequests":9,"maxPending":4}}`,
			`{"match":{},"backends":null,"circuitBreaker":{"maxPending":4,"maxRequests":3}}`, true},
		{"retries whole", `{"retries":{"attempts":1}}`, `{"retries":{"on":["reset"],"backoff":{"base":"1s"}}}`,
			`{"match":{},"backends":null,"retries":{"attempts":1}}`, false},
		{"load balancer whole: no ring_hash without its hash", `{"loadBalancer":{"policy":"random"}}`,
			`{"loadBalancer":{"policy":"ring_hash","hash":{"sourceIP":true}}}`, `{"match":{},"backends":null,"loadBalancer":{"policy":"random"}}`, false},
		{"outlier detection whole", `{}`, `{"outlierDetection":{"baseEjection":"1s","maxEjection":"2s"}}`,
			`{"match":{},"backends":null,"outlierDetection":{"baseEjection":"1s","maxEjection":"2s"}}`, true},
		{"rate limit whole", `{"rateLimit":{"requests":1}}`, `{"rateLimit":{"requests":2,"perClient":true}}`,
			`{"match":{},"backends":null,"rateLimit":{"requests":1}}`, false},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			dst, src := policyRouteSpec(t, c.dst), policyRouteSpec(t, c.src)
			before := policyJSON(src)
			took := mergePolicy(dst, src)
			if got := policyJSON(dst); got != c.want || took != c.took {
				t.Fatalf("got %s (took %v)\nwant %s (took %v)", got, took, c.want, c.took)
			}
			if policyJSON(src) != before {
				t.Fatalf("the policy changed: %s", policyJSON(src))
			}
		})
	}
}

func policyFixture(name string, created int, invalid string, targets ...policyTarget) *trafficPolicy {
	return &trafficPolicy{ns: "ns", name: name, uid: types.UID("uid-" + name), generation: 1, created: time.Unix(int64(created), 0),
		targets: targets, invalid: invalid, spec: &config.RouteSpec{}}
}

func TestPolicyResolve(t *testing.T) {
	web := policyTarget{Kind: "Service", Namespace: "ns", Name: "web"}
	api := policyTarget{Kind: "Service", Namespace: "ns", Name: "api"}
	gone := policyTarget{Kind: "HTTPRoute", Namespace: "ns", Name: "gone"}
	exists := func(t policyTarget) (bool, string) {
		if t == gone {
			return false, "the Gateway API is not installed"
		}
		return true, ""
	}
	broken := policyFixture("broken", 1, "spec.timeouts.connect: bad", web)
	old := policyFixture("old", 2, "", web, gone)
	mid := policyFixture("mid", 3, "", web, api)
	young := policyFixture("young", 4, "", web)
	res := resolvePolicies([]*trafficPolicy{broken, old, mid, young}, exists)
	want := map[*trafficPolicy]policyVerdict{
		broken: {metav1.ConditionFalse, PolicyReasonInvalid, "spec.timeouts.connect: bad"},
		old:    {metav1.ConditionFalse, PolicyReasonTargetNotFound, "HTTPRoute gone not found (the Gateway API is not installed); applies to Service web"},
		mid:    {metav1.ConditionFalse, PolicyReasonConflicted, "Service web has the older policy old; applies to Service api"},
		young:  {metav1.ConditionFalse, PolicyReasonConflicted, "Service web has the older policy old; applies nowhere"},
	}
	for pol, v := range want {
		if got := res.verdicts[pol]; got != v {
			t.Errorf("%s: %+v, want %+v", pol.name, got, v)
		}
	}
	if res.index.byTarget[web] != old || res.index.byTarget[api] != mid || len(res.index.byTarget) != 2 {
		t.Fatalf("index %v", res.index.byTarget)
	}
	if !res.targeted[gone] || !res.targeted[web] || !res.targeted[api] {
		t.Fatalf("targeted %v", res.targeted)
	}
	// The same policies resolve to the same signature; a new generation
	// of one that applies changes it, of one that does not, not.
	again := resolvePolicies([]*trafficPolicy{broken, old, mid, young}, exists)
	if again.index.sig != res.index.sig {
		t.Fatal("signature not stable")
	}
	young.generation++
	if resolvePolicies([]*trafficPolicy{broken, old, mid, young}, exists).index.sig != res.index.sig {
		t.Fatal("a conflicted policy's change changed the signature")
	}
	old.generation++
	if resolvePolicies([]*trafficPolicy{broken, old, mid, young}, exists).index.sig == res.index.sig {
		t.Fatal("an applied policy's change kept the signature")
	}
}

func policyUnstructured(t *testing.T, spec string) *unstructured.Unstructured {
	t.Helper()
	return policyObject(t, "ns", "p", spec)
}

// decodePolicy names the field of whatever Cairn cannot apply, even what
// the CRD's schema would have refused (the schema may be older or
// missing fields; the controller does not trust it).
func TestPolicyDecode(t *testing.T) {
	cases := []struct{ spec, invalid string }{
		{"targetRefs: [{kind: Service, name: web}]\nrateLimit: {requests: 1}", ""},
		{"targetRefs: [{kind: HTTPRoute, group: gateway.networking.k8s.io, name: r}]\nloadBalancer: {policy: ewma}", ""},
		{"rateLimit: {requests: 1}", "spec.targetRefs: at least one target is required"},
		{"targetRefs: []\nrateLimit: {requests: 1}", "spec.targetRefs: at least one target is required"},
		{"targetRefs: [{kind: Pod, name: web}]\nrateLimit: {requests: 1}", `spec.targetRefs[0].kind: "Pod" is not a kind a policy attaches to (Service, HTTPRoute, GRPCRoute, Ingress)`},
		{"targetRefs: [{kind: HTTPRoute, name: web}]\nrateLimit: {requests: 1}", `spec.targetRefs[0].group: HTTPRoute is in group "gateway.networking.k8s.io", not ""`},
		{"targetRefs: [{kind: Service}]\nrateLimit: {requests: 1}", "spec.targetRefs[0].name: is required"},
		{"targetRefs: [{kind: Service, name: a}, {kind: Service, name: a}]\nrateLimit: {requests: 1}", "spec.targetRefs[1]: Service a is named twice"},
		{"targetRefs: [{kind: Service, name: a}]", "spec: set at least one of timeouts, retries, circuitBreaker, outlierDetection, rateLimit, loadBalancer"},
		{"targetRefs: [{kind: Service, name: a}]\nbackends: [{address: 'x:1'}]", "spec.backends: unknown field"},
		{"targetRefs: [{kind: Service, name: a}]\nrateLimit: {requests: 0}", "spec.rateLimit.requests: must be between 1 and 1048576"},
		{"targetRefs: [{kind: Service, name: a}]\nretries: {\"on\": [teapot]}", `spec.retries.on[0]: unknown condition "teapot" (connect-failure, reset, timeout, or a status 500-599)`},
		{"targetRefs: [{kind: Service, name: a}]\nloadBalancer: {policy: ring_hash}", "spec.loadBalancer.hash: ring_hash needs a key: header, cookie or sourceIP"},
		{"targetRefs: [{kind: Service, name: a}]\ntimeouts: {connect: 1s, colour: red}", "spec.timeouts.colour: unknown field"},
	}
	for _, c := range cases {
		p := decodePolicy(policyUnstructured(t, c.spec))
		if p.invalid != c.invalid {
			t.Errorf("%q:\n got %q\nwant %q", c.spec, p.invalid, c.invalid)
		}
		if c.invalid == "" && (p.spec == nil || len(p.targets) == 0) {
			t.Errorf("%q: decoded %+v", c.spec, p)
		}
	}
	u := policyUnstructured(t, "targetRefs: [{kind: Service, name: a}]\nrateLimit: {requests: 1}")
	u.Object["spec"] = "not an object"
	if p := decodePolicy(u); p.invalid != "spec: is required" {
		t.Fatalf("spec a string: %q", p.invalid)
	}
}

// FuzzPolicyDecode feeds arbitrary specs to decodePolicy: it never
// panics, and a policy it accepts merges into a valid route.
func FuzzPolicyDecode(f *testing.F) {
	f.Add(`{"targetRefs":[{"kind":"Service","name":"web"}],"rateLimit":{"requests":5,"period":"1m"}}`)
	f.Add(`{"targetRefs":[{"kind":"Ingress","group":"networking.k8s.io","name":"i"}],"loadBalancer":{"policy":"ring_hash","hash":{"cookie":"s"}}}`)
	f.Add(`{"targetRefs":[{"kind":"Service","name":"web"}],"retries":{"attempts":2,"on":["503"],"backoff":{"base":"1s","max":"2s"}}}`)
	f.Add(`{"targetRefs":"web","timeouts":{"connect":7}}`)
	f.Add(`{"targetRefs":[{}],"circuitBreaker":{"maxRequests":-1}}`)
	f.Fuzz(func(t *testing.T, spec string) {
		var s any
		if json.Unmarshal([]byte(spec), &s) != nil {
			return
		}
		u := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "p", "namespace": "ns"}, "spec": s}}
		p := decodePolicy(u)
		if p.invalid != "" {
			if !strings.HasPrefix(p.invalid, "spec") {
				t.Fatalf("message %q names no field", p.invalid)
			}
			return
		}
		if len(p.targets) == 0 || p.spec == nil {
			t.Fatalf("accepted without targets or spec: %+v", p)
		}
		route := config.RouteSpec{Backends: []config.Backend{{Service: "web"}}}
		mergePolicy(&route, p.spec)
		b, err := json.Marshal(route)
		if err != nil {
			t.Fatal(err)
		}
		if _, fe := config.DecodeRoute(b, "ns"); fe != nil {
			t.Fatalf("accepted %s, but the route it makes is invalid: %v", spec, fe)
		}
	})
}
