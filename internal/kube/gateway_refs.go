package kube

import (
	"fmt"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// resolveBackendRef maps the backendRef of a route of a kind to a registry service
// backend, or says why it cannot with the reason the Gateway API gives:
// InvalidKind for anything but a core Service, RefNotPermitted for a
// Service in another namespace that no ReferenceGrant there allows (said
// before whether it exists, which the route's owner may not learn), and
// BackendNotFound for a Service or port that does not exist.
func resolveBackendRef(kind, routeNS string, ref gatewayv1.BackendObjectReference, v clusterView) (config.Backend, registry.ServiceKey, *refProblem) {
	group, refKind := "", "Service"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		refKind = string(*ref.Kind)
	}
	fail := func(reason gatewayv1.RouteConditionReason, format string, args ...any) (config.Backend, registry.ServiceKey, *refProblem) {
		return config.Backend{}, registry.ServiceKey{}, &refProblem{reason: reason, message: fmt.Sprintf(format, args...)}
	}
	if group != "" || refKind != "Service" {
		g := group
		if g == "" {
			g = "core"
		}
		return fail(gatewayv1.RouteReasonInvalidKind, "%s %s: kind %s/%s is not supported (only Services)", refKind, ref.Name, g, refKind)
	}
	name := string(ref.Name)
	ns := routeNS
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	if ns != routeNS && !referenceGranted(v.referenceGrants(ns), kind, routeNS, name) {
		return fail(gatewayv1.RouteReasonRefNotPermitted, "Service %s/%s: no ReferenceGrant in namespace %s allows %ss from namespace %s to refer to it", ns, name, ns, kind, routeNS)
	}
	svc, watched := v.service(ns, name)
	switch {
	case !watched:
		return fail(gatewayv1.RouteReasonBackendNotFound, "Service %s/%s: namespace %s is not watched by Cairn", ns, name, ns)
	case svc == nil:
		return fail(gatewayv1.RouteReasonBackendNotFound, "Service %s/%s does not exist", ns, name)
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return fail(gatewayv1.RouteReasonInvalidKind, "Service %s/%s: ExternalName Services are not supported", ns, name)
	}
	be := config.Backend{Service: name, Namespace: ns}
	if ref.Port != nil {
		portName, ok := servicePortName(svc, int32(*ref.Port))
		if !ok {
			return fail(gatewayv1.RouteReasonBackendNotFound, "Service %s/%s has no port %d", ns, name, *ref.Port)
		}
		be.Port = config.PortRef(portName)
	}
	return be, registry.ServiceKey{Namespace: ns, Name: name}, nil
}

// referenceGranted reports whether a ReferenceGrant of the target
// namespace lets routes of a kind in namespace from refer to its Service
// name.
func referenceGranted(grants []*gatewayv1beta1.ReferenceGrant, kind, from, name string) bool {
	for _, g := range grants {
		fromOK := false
		for _, f := range g.Spec.From {
			if string(f.Group) == gatewayv1.GroupName && string(f.Kind) == kind && string(f.Namespace) == from {
				fromOK = true
				break
			}
		}
		if !fromOK {
			continue
		}
		for _, t := range g.Spec.To {
			if t.Group == "" && t.Kind == "Service" && (t.Name == nil || string(*t.Name) == name) {
				return true
			}
		}
	}
	return false
}
