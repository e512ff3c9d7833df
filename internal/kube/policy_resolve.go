package kube

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/cairnhq/cairn/internal/config"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// policyIndex says which policy applies to each target. It is immutable
// once stored; apply reads it without a lock.
type policyIndex struct {
	byTarget map[policyTarget]*trafficPolicy
	// sig identifies what applies where (target, policy, generation), so
	// a pass that changes nothing does not make routes translate again.
	sig string
}

// policyVerdict is the Accepted condition a policy should have.
type policyVerdict struct {
	status  metav1.ConditionStatus
	reason  string
	message string
}

type policyResolution struct {
	index    *policyIndex
	verdicts map[*trafficPolicy]policyVerdict
	targeted map[policyTarget]bool
}

// resolvePolicies decides where each policy applies. pols come oldest
// first; a policy applies to a target that exists and that no older
// valid policy has (GEP-713: the oldest wins, the others are Conflicted).
func resolvePolicies(pols []*trafficPolicy, exists func(policyTarget) (bool, string)) policyResolution {
	res := policyResolution{
		index:    &policyIndex{byTarget: map[policyTarget]*trafficPolicy{}},
		verdicts: make(map[*trafficPolicy]policyVerdict, len(pols)),
		targeted: map[policyTarget]bool{},
	}
	for _, pol := range pols {
		for _, t := range pol.targets {
			res.targeted[t] = true
		}
		if pol.invalid != "" {
			res.verdicts[pol] = policyVerdict{metav1.ConditionFalse, PolicyReasonInvalid, pol.invalid}
			continue
		}
		var applied, missing, conflicts []string
		for _, t := range pol.targets {
			if ok, why := exists(t); !ok {
				msg := t.String() + " not found"
				if why != "" {
					msg += " (" + why + ")"
				}
				missing = append(missing, msg)
				continue
			}
			if older := res.index.byTarget[t]; older != nil {
				conflicts = append(conflicts, fmt.Sprintf("%s has the older policy %s", t, older.name))
				continue
			}
			res.index.byTarget[t] = pol
			applied = append(applied, t.String())
		}
		v := policyVerdict{metav1.ConditionTrue, PolicyReasonAccepted, "applies to " + strings.Join(applied, ", ")}
		if len(missing)+len(conflicts) > 0 {
			v = policyVerdict{metav1.ConditionFalse, PolicyReasonConflicted, ""}
			if len(missing) > 0 {
				v.reason = PolicyReasonTargetNotFound
			}
			parts := append(missing, conflicts...)
			if len(applied) > 0 {
				parts = append(parts, "applies to "+strings.Join(applied, ", "))
			} else {
				parts = append(parts, "applies nowhere")
			}
			v.message = strings.Join(parts, "; ")
		}
		res.verdicts[pol] = v
	}
	sigs := make([]string, 0, len(res.index.byTarget))
	for t, pol := range res.index.byTarget {
		sigs = append(sigs, fmt.Sprintf("%s/%s/%s=%s/%s/%d", t.Kind, t.Namespace, t.Name, pol.key(), pol.uid, pol.generation))
	}
	sort.Strings(sigs)
	res.index.sig = strings.Join(sigs, "\n")
	return res
}

// mergePolicy fills into dst what it leaves unset from the policy src,
// and reports whether it took anything. apply merges the route's own
// spec first (what the HTTPRoute or Ingress itself says wins), then the
// policy on the route, then the policies on its backends' Services in
// the backends' order. The unit of merging is a field whose parts do not
// depend on each other: each timeout and each circuit-breaking limit on
// its own; retries, outlierDetection, rateLimit and loadBalancer whole
// (their parts are checked together: backoff base ≤ max, hash only with
// ring_hash), so a merged spec is valid whenever its sources are.
func mergePolicy(dst, src *config.RouteSpec) bool {
	took := false
	if s := src.Timeouts; s != nil {
		var t config.Timeouts
		if dst.Timeouts != nil {
			t = *dst.Timeouts
		}
		took = fillString(&t.Connect, s.Connect) || took
		took = fillString(&t.PerTry, s.PerTry) || took
		took = fillString(&t.Request, s.Request) || took
		if t != (config.Timeouts{}) {
			dst.Timeouts = &t
		}
	}
	if s := src.CircuitBreaker; s != nil {
		var cb config.CircuitBreaker
		if dst.CircuitBreaker != nil {
			cb = *dst.CircuitBreaker
		}
		took = fillInt(&cb.MaxConnections, s.MaxConnections) || took
		took = fillInt(&cb.MaxPending, s.MaxPending) || took
		took = fillInt(&cb.MaxRequests, s.MaxRequests) || took
		if cb != (config.CircuitBreaker{}) {
			dst.CircuitBreaker = &cb
		}
	}
	took = fillWhole(&dst.Retries, src.Retries) || took
	took = fillWhole(&dst.OutlierDetection, src.OutlierDetection) || took
	took = fillWhole(&dst.RateLimit, src.RateLimit) || took
	took = fillWhole(&dst.LoadBalancer, src.LoadBalancer) || took
	return took
}

func fillString(dst *string, v string) bool {
	if *dst != "" || v == "" {
		return false
	}
	*dst = v
	return true
}

func fillInt(dst *int, v int) bool {
	if *dst != 0 || v == 0 {
		return false
	}
	*dst = v
	return true
}

// fillWhole sets *dst to a copy of src when dst is unset: the route gets
// values of its own, which nothing it does can change in the policy.
func fillWhole[T any](dst **T, src *T) bool {
	if *dst != nil || src == nil {
		return false
	}
	b, err := json.Marshal(src)
	if err != nil {
		return false
	}
	v := new(T)
	if json.Unmarshal(b, v) != nil {
		return false
	}
	*dst = v
	return true
}
