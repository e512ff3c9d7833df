package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// The CRD's schema (deploy/helm/cairn/crds/cairn.dev_trafficpolicies.yaml),
// against the real API server, which TestMain gave the chart's CRDs.

const policySvcTarget = "targetRefs: [{kind: Service, name: web}]\n"

// The API server accepts TrafficPolicies that use every field.
func TestTrafficPolicyCRDAccepts(t *testing.T) {
	ns := testNamespace(t)
	for i, spec := range []string{
		`targetRefs:
  - {kind: Service, name: web}
  - {group: "", kind: Service, name: api}
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}
  - {group: networking.k8s.io, kind: Ingress, name: legacy}
  - {group: gateway.networking.k8s.io, kind: GRPCRoute, name: rpc}
timeouts: {connect: 500ms, perTry: 1.5s, request: 1m30s}
retries:
  attempts: 3
  "on": [connect-failure, reset, timeout, "503"]
  nonIdempotent: true
  backoff: {base: 10ms, max: 1s}
  budget: {percent: 50, minPerSecond: 5}
circuitBreaker: {maxConnections: 100, maxPending: 10, maxRequests: 0}
outlierDetection: {consecutiveFailures: 0, baseEjection: 10s, maxEjection: 10s, maxEjectedPercent: 100}
rateLimit: {requests: 100, period: 1m, burst: 200, perClient: true}
loadBalancer: {policy: ring_hash, hash: {header: x-user}}`,
		policySvcTarget + `rateLimit: {requests: 1}`,
		policySvcTarget + `loadBalancer: {policy: ring_hash, hash: {cookie: session}}`,
		policySvcTarget + `loadBalancer: {policy: ring_hash, hash: {sourceIP: true}}`,
		policySvcTarget + `loadBalancer: {policy: ewma}`,
		policySvcTarget + `timeouts: {connect: "0"}`,
		policySvcTarget + `retries: {backoff: {base: 1s}}`,
	} {
		name := fmt.Sprintf("ok-%d", i)
		got, err := policyClient(ns).Create(context.Background(), policyObject(t, ns, name, spec), metav1.CreateOptions{FieldValidation: "Strict"})
		if err != nil {
			t.Fatalf("%s refused:\n%s\n%v", name, spec, err)
		}
		if i == 0 {
			refs, _, _ := unstructured.NestedSlice(got.Object, "spec", "targetRefs")
			if g := refs[0].(map[string]any)["group"]; g != "" {
				t.Fatalf("group of a Service target defaults to %v, want \"\"", g)
			}
		}
	}
}

// The API server refuses bad TrafficPolicies, naming the field.
func TestTrafficPolicyCRDRejects(t *testing.T) {
	ns := testNamespace(t)
	many := "targetRefs: ["
	for i := range 17 {
		many += fmt.Sprintf("{kind: Service, name: s%d},", i)
	}
	many += "]\nrateLimit: {requests: 1}"
	cases := []struct{ desc, spec, field string }{
		{"no targets", "rateLimit: {requests: 1}", "spec.targetRefs"},
		{"empty targets", "targetRefs: []\nrateLimit: {requests: 1}", "spec.targetRefs"},
		{"too many targets", many, "spec.targetRefs"},
		{"unknown kind", "targetRefs: [{kind: Deployment, name: web}]\nrateLimit: {requests: 1}", "spec.targetRefs[0].kind"},
		{"kind in the wrong group", "targetRefs: [{group: apps, kind: Service, name: web}]\nrateLimit: {requests: 1}", "spec.targetRefs[0]"},
		{"GRPCRoute in the core group", "targetRefs: [{group: \"\", kind: GRPCRoute, name: web}]\nrateLimit: {requests: 1}", "spec.targetRefs[0]"},
		{"HTTPRoute without its group", "targetRefs: [{kind: HTTPRoute, name: web}]\nrateLimit: {requests: 1}", "spec.targetRefs[0]"},
		{"target twice", "targetRefs: [{kind: Service, name: web}, {kind: Service, name: web}]\nrateLimit: {requests: 1}", "spec.targetRefs[1]"},
		{"bad target name", "targetRefs: [{kind: Service, name: Web_1}]\nrateLimit: {requests: 1}", "spec.targetRefs[0].name"},
		{"target without name", "targetRefs: [{kind: Service}]\nrateLimit: {requests: 1}", "spec.targetRefs[0].name"},
		{"no policy", policySvcTarget, "spec"},
		{"unknown field", policySvcTarget + "rateLimit: {requests: 1}\nretry: {attempts: 1}", "spec.retry"},
		{"bad duration", policySvcTarget + "timeouts: {connect: soon}", "spec.timeouts.connect"},
		{"negative duration", policySvcTarget + "timeouts: {request: -1s}", "spec.timeouts.request"},
		{"duration without unit", policySvcTarget + "timeouts: {perTry: \"10\"}", "spec.timeouts.perTry"},
		{"too many attempts", policySvcTarget + "retries: {attempts: 11}", "spec.retries.attempts"},
		{"attempts not a number", policySvcTarget + "retries: {attempts: two}", "spec.retries.attempts"},
		{"unknown retry condition", policySvcTarget + "retries: {\"on\": [reset, teapot]}", "spec.retries.on[1]"},
		{"retry on a 4xx", policySvcTarget + "retries: {\"on\": [\"429\"]}", "spec.retries.on[0]"},
		{"backoff max below base", policySvcTarget + "retries: {backoff: {base: 1s, max: 10ms}}", "spec.retries.backoff.max"},
		{"budget over 100%", policySvcTarget + "retries: {budget: {percent: 101}}", "spec.retries.budget.percent"},
		{"negative circuit limit", policySvcTarget + "circuitBreaker: {maxRequests: -1}", "spec.circuitBreaker.maxRequests"},
		{"huge circuit limit", policySvcTarget + "circuitBreaker: {maxConnections: 1048577}", "spec.circuitBreaker.maxConnections"},
		{"ejection max below base", policySvcTarget + "outlierDetection: {baseEjection: 1m, maxEjection: 1s}", "spec.outlierDetection.maxEjection"},
		{"ejected percent over 100", policySvcTarget + "outlierDetection: {maxEjectedPercent: 101}", "spec.outlierDetection.maxEjectedPercent"},
		{"consecutive failures too many", policySvcTarget + "outlierDetection: {consecutiveFailures: 1001}", "spec.outlierDetection.consecutiveFailures"},
		{"rate limit without requests", policySvcTarget + "rateLimit: {burst: 5}", "spec.rateLimit.requests"},
		{"rate limit of 0", policySvcTarget + "rateLimit: {requests: 0}", "spec.rateLimit.requests"},
		{"rate limit period too long", policySvcTarget + "rateLimit: {requests: 1, period: 2h}", "spec.rateLimit.period"},
		{"rate limit period too short", policySvcTarget + "rateLimit: {requests: 1, period: 500us}", "spec.rateLimit.period"},
		{"negative burst", policySvcTarget + "rateLimit: {requests: 1, burst: -1}", "spec.rateLimit.burst"},
		{"unknown balancer", policySvcTarget + "loadBalancer: {policy: magic}", "spec.loadBalancer.policy"},
		{"ring_hash without a key", policySvcTarget + "loadBalancer: {policy: ring_hash}", "spec.loadBalancer.hash"},
		{"hash without ring_hash", policySvcTarget + "loadBalancer: {policy: random, hash: {header: x-user}}", "spec.loadBalancer.hash"},
		{"hash on two keys", policySvcTarget + "loadBalancer: {policy: ring_hash, hash: {header: x-user, sourceIP: true}}", "spec.loadBalancer.hash"},
		{"hash on nothing", policySvcTarget + "loadBalancer: {policy: ring_hash, hash: {sourceIP: false}}", "spec.loadBalancer.hash"},
		{"bad header name", policySvcTarget + "loadBalancer: {policy: ring_hash, hash: {header: \"x user\"}}", "spec.loadBalancer.hash.header"},
	}
	for i, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			name := fmt.Sprintf("bad-%d", i)
			_, err := policyClient(ns).Create(context.Background(), policyObject(t, ns, name, c.spec), metav1.CreateOptions{FieldValidation: "Strict"})
			if err == nil {
				t.Fatalf("accepted:\n%s", c.spec)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Fatalf("not a validation error: %v", err)
			}
			if !policyErrNames(err, c.field) {
				t.Fatalf("the error does not name %s: %v", c.field, err)
			}
		})
	}
}

// policyErrNames reports whether an API error names field as the cause of a
// problem: in its causes (validation) or its message (strict decoding).
func policyErrNames(err error, field string) bool {
	var se *apierrors.StatusError
	if errors.As(err, &se) && se.ErrStatus.Details != nil {
		for _, c := range se.ErrStatus.Details.Causes {
			if c.Field == field {
				return true
			}
		}
	}
	return strings.Contains(err.Error(), field+":") || strings.Contains(err.Error(), `field "`+field+`"`) || strings.Contains(err.Error(), `unknown field "`+field+`"`)
}

// `kubectl get tp` shows the first target and the Accepted condition.
func TestTrafficPolicyCRDPrinterColumns(t *testing.T) {
	ns := testNamespace(t)
	policyCreate(t, ns, "pol", "targetRefs: [{kind: Service, name: web}, {group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}]\nrateLimit: {requests: 1}")
	status := `{"status":{"observedGeneration":1,"conditions":[{"type":"Accepted","status":"False","reason":"TargetNotFound",` +
		`"message":"Service web not found","lastTransitionTime":"2026-01-02T03:04:05Z","observedGeneration":1}]}}`
	if _, err := policyClient(ns).Patch(context.Background(), "pol", types.MergePatchType, []byte(status), metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("GET", env.Config.Host+"/apis/cairn.dev/v1alpha1/namespaces/"+ns+"/trafficpolicies", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var table metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range table.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	if got := strings.Join(cols, " "); got != "Name Kind Target Accepted Reason Age" {
		t.Fatalf("columns %q", got)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("%d rows", len(table.Rows))
	}
	if got := fmt.Sprint(table.Rows[0].Cells[:5]); got != "[pol Service web False TargetNotFound]" {
		t.Fatalf("row %s", got)
	}
}
