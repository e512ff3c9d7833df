package kube

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// PolicyGroupVersion and PolicyResource name Cairn's TrafficPolicy CRD
// (deploy/helm/cairn/crds/cairn.dev_trafficpolicies.yaml; docs/kubernetes-policy.md).
var PolicyGroupVersion = schema.GroupVersion{Group: "cairn.dev", Version: "v1alpha1"}

const (
	PolicyResource = "trafficpolicies"
	PolicyKind     = "TrafficPolicy"
)

// The condition a TrafficPolicy's status carries, and its reasons.
const (
	PolicyConditionAccepted    = "Accepted"
	PolicyReasonAccepted       = "Accepted"
	PolicyReasonTargetNotFound = "TargetNotFound"
	PolicyReasonConflicted     = "Conflicted"
	PolicyReasonInvalid        = "Invalid"
)

// policyTargetGroups are the kinds a policy may target, with their API
// groups (the CRD's schema allows these pairs only).
var policyTargetGroups = map[string]string{
	"Service":   "",
	"HTTPRoute": gatewayv1.GroupName,
	"GRPCRoute": gatewayv1.GroupName,
	"Ingress":   networkingv1.GroupName,
}

// policyFields are the spec fields of a TrafficPolicy besides targetRefs:
// those of a Route document it sets, with the same names and meaning.
var policyFields = []string{"timeouts", "retries", "circuitBreaker", "outlierDetection", "rateLimit", "loadBalancer"}

// maxPolicyTargets bounds spec.targetRefs, as the CRD's schema does.
const maxPolicyTargets = 16

// policyTarget is an object a policy attaches to. Policies attach within
// their namespace only (GEP-713), and a kind has one group, so kind,
// namespace and name identify it.
type policyTarget struct {
	Kind, Namespace, Name string
}

func (t policyTarget) String() string { return t.Kind + " " + t.Name }

// trafficPolicy is a TrafficPolicy as the controller reads it.
type trafficPolicy struct {
	ns, name        string
	uid             types.UID
	generation      int64
	resourceVersion string
	created         time.Time
	targets         []policyTarget
	// spec holds the policy's fields, checked by Cairn's own Route
	// validation; nil when invalid says why Cairn cannot apply it.
	spec    *config.RouteSpec
	invalid string

	// The status it has now.
	observed int64
	accepted *metav1.Condition
}

func (p *trafficPolicy) key() string { return p.ns + "/" + p.name }

// decodePolicy reads a TrafficPolicy from the informer's object. The API
// server has checked it against the CRD's schema; it is checked again
// here with the rules the gateway applies, so a policy Cairn cannot run
// is reported (Invalid, naming the field) rather than half applied.
func decodePolicy(u *unstructured.Unstructured) *trafficPolicy {
	p := &trafficPolicy{ns: u.GetNamespace(), name: u.GetName(), uid: u.GetUID(), generation: u.GetGeneration(),
		resourceVersion: u.GetResourceVersion(), created: u.GetCreationTimestamp().Time}
	p.observed, _, _ = unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if conds, ok, _ := unstructured.NestedSlice(u.Object, "status", "conditions"); ok {
		for _, c := range conds {
			m, _ := c.(map[string]any)
			var cond metav1.Condition
			if m == nil || runtime.DefaultUnstructuredConverter.FromUnstructured(m, &cond) != nil {
				continue
			}
			if cond.Type == PolicyConditionAccepted {
				p.accepted = &cond
			}
		}
	}
	spec, ok := u.Object["spec"].(map[string]any)
	if !ok {
		p.invalid = "spec: is required"
		return p
	}
	targets, msg := decodeTargets(p.ns, spec["targetRefs"])
	if msg != "" {
		p.invalid = msg
		return p
	}
	p.targets = targets
	p.spec, p.invalid = decodePolicySpec(p.ns, spec)
	return p
}

func decodeTargets(ns string, v any) ([]policyTarget, string) {
	refs, ok := v.([]any)
	switch {
	case !ok || len(refs) == 0:
		return nil, "spec.targetRefs: at least one target is required"
	case len(refs) > maxPolicyTargets:
		return nil, fmt.Sprintf("spec.targetRefs: at most %d targets", maxPolicyTargets)
	}
	out := make([]policyTarget, 0, len(refs))
	seen := map[policyTarget]bool{}
	for i, r := range refs {
		field := fmt.Sprintf("spec.targetRefs[%d]", i)
		m, _ := r.(map[string]any)
		group, _ := m["group"].(string)
		kind, _ := m["kind"].(string)
		name, _ := m["name"].(string)
		want, known := policyTargetGroups[kind]
		switch {
		case !known:
			return nil, fmt.Sprintf("%s.kind: %q is not a kind a policy attaches to (Service, HTTPRoute, GRPCRoute, Ingress)", field, kind)
		case group != want:
			return nil, fmt.Sprintf("%s.group: %s is in group %q, not %q", field, kind, want, group)
		case name == "":
			return nil, field + ".name: is required"
		}
		t := policyTarget{Kind: kind, Namespace: ns, Name: name}
		if seen[t] {
			return nil, fmt.Sprintf("%s: %s is named twice", field, t)
		}
		seen[t] = true
		out = append(out, t)
	}
	return out, ""
}

// decodePolicySpec reads the policy's fields as the fields of a Route
// document (with a placeholder backend, which a route needs), so they
// pass the very validation `cairn apply` runs.
func decodePolicySpec(ns string, spec map[string]any) (*config.RouteSpec, string) {
	route := map[string]any{"backends": []any{map[string]any{"address": "policy.invalid:1"}}}
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k == "targetRefs":
		case slices.Contains(policyFields, k):
			route[k] = spec[k]
		default:
			return nil, "spec." + k + ": unknown field"
		}
	}
	if len(route) == 1 {
		return nil, "spec: set at least one of " + strings.Join(policyFields, ", ")
	}
	b, err := json.Marshal(route)
	if err != nil {
		return nil, "spec: " + err.Error()
	}
	rs, fe := config.DecodeRoute(b, ns)
	if fe != nil && fe.Field == "" {
		return nil, "spec: " + fe.Message
	}
	if fe != nil {
		return nil, "spec." + fe.Field + ": " + fe.Message
	}
	rs.Backends = nil
	return rs, ""
}
