package kube

import (
	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func newPolicies(c *Controller) component {
	c.policies = noPolicies{}
	return newStub()
}

// PolicyGroupVersion and PolicyResource name Cairn's TrafficPolicy CRD.
var PolicyGroupVersion = schema.GroupVersion{Group: "cairn.dev", Version: "v1alpha1"}

const PolicyResource = "trafficpolicies"

// noPolicies applies no traffic policy.
type noPolicies struct{}

func (noPolicies) apply(objectRef, []registry.ServiceKey, *config.RouteSpec) []string { return nil }
