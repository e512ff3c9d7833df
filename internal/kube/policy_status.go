package kube

import (
	"context"
	"encoding/json"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// maxConditionMessage bounds a condition's message (the CRD allows 32768
// characters; a policy with 16 targets says far less).
const maxConditionMessage = 4096

// writtenStatus is a status written over a version of a policy.
type writtenStatus struct {
	over       string // the resourceVersion the informer had
	generation int64
	verdict    policyVerdict
}

// policyWriteTimeout bounds one status write.
const policyWriteTimeout = 10 * time.Second

// writeStatus gives pol the Accepted condition v, unless it has it
// already for its current generation: a pass that changes nothing writes
// nothing. The last transition time moves only when the status does.
func (p *policyController) writeStatus(ctx context.Context, pol *trafficPolicy, v policyVerdict) error {
	if len(v.message) > maxConditionMessage {
		v.message = v.message[:maxConditionMessage-3] + "..."
	}
	if c := pol.accepted; c != nil && pol.observed == pol.generation && c.ObservedGeneration == pol.generation &&
		c.Status == v.status && c.Reason == v.reason && c.Message == v.message {
		return nil
	}
	mine := writtenStatus{over: pol.resourceVersion, generation: pol.generation, verdict: v}
	if p.written[pol.uid] == mine {
		return nil // written, and not back through the informer yet
	}
	since := metav1.NewTime(time.Now().Truncate(time.Second))
	if c := pol.accepted; c != nil && c.Status == v.status && !c.LastTransitionTime.IsZero() {
		since = c.LastTransitionTime
	}
	cond := metav1.Condition{Type: PolicyConditionAccepted, Status: v.status, ObservedGeneration: pol.generation,
		LastTransitionTime: since, Reason: v.reason, Message: v.message}
	// A merge patch of the status, on the version this pass read: if the
	// policy changed since (or was replaced under the same name), the API
	// server refuses it, and the informer brings the news and a new pass.
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": pol.resourceVersion},
		"status":   map[string]any{"observedGeneration": pol.generation, "conditions": []metav1.Condition{cond}},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, policyWriteTimeout)
	defer cancel()
	_, err = p.c.dyn.Resource(PolicyGroupVersion.WithResource(PolicyResource)).Namespace(pol.ns).
		Patch(ctx, pol.name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // deleted or changed: the informer brings the news and another pass
	}
	if err == nil {
		p.written[pol.uid] = mine
		p.log.Info("traffic policy status", "policy", pol.key(), "accepted", v.status, "reason", v.reason, "message", v.message)
	}
	return err
}
