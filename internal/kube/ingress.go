package kube

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	networkingv1 "k8s.io/api/networking/v1"
)

// Annotations of Ingresses and IngressClasses.
const (
	annotationIngressClass = "kubernetes.io/ingress.class"
	annotationDefaultClass = "ingressclass.kubernetes.io/is-default-class"
)

// servesIngress reports whether an Ingress is Cairn's: its class is
// className (by spec.ingressClassName, or the legacy annotation), or an
// IngressClass of that name has Cairn's controller, or it names no class
// and Cairn's IngressClass is the default.
func servesIngress(ing *networkingv1.Ingress, className string, classes []*networkingv1.IngressClass) bool {
	if n := ing.Spec.IngressClassName; n != nil {
		if *n == className {
			return true
		}
		for _, c := range classes {
			if c.Name == *n {
				return c.Spec.Controller == IngressController
			}
		}
		return false
	}
	if a, ok := ing.Annotations[annotationIngressClass]; ok {
		return a == className
	}
	for _, c := range classes {
		if c.Spec.Controller == IngressController && c.Annotations[annotationDefaultClass] == "true" {
			return true
		}
	}
	return false
}

// translateIngress makes one route per path of each rule, and for a
// default backend a catch-all route, plus one for the hosts of the rules:
// the gateway does not fall from a host's routes to routes without hosts,
// so without it requests to those hosts that no path matches would get
// 404 instead of the default backend. problems lists what was left out.
func translateIngress(ing *networkingv1.Ingress, v clusterView) (routes []genRoute, problems []string) {
	origin := objectRef{Group: networkingv1.GroupName, Kind: kindIngress, Namespace: ing.Namespace, Name: ing.Name}
	hosts := map[string]bool{}
	for i, rule := range ing.Spec.Rules {
		host := strings.ToLower(rule.Host)
		if host != "" {
			hosts[host] = true
		}
		if rule.HTTP == nil {
			continue
		}
		for j, p := range rule.HTTP.Paths {
			be, svc, err := ingressBackend(ing.Namespace, p.Backend, v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("rules[%d].http.paths[%d]: %v", i, j, err))
				continue
			}
			spec := config.RouteSpec{Match: config.Match{Path: ingressPath(p)}, Backends: []config.Backend{be}}
			if host != "" {
				spec.Hosts = []string{host}
			}
			routes = append(routes, genRoute{origin: origin, name: ingressDocName(ing.Name, i, j), spec: spec,
				services: []registry.ServiceKey{svc}, rule: i})
		}
	}
	if db := ing.Spec.DefaultBackend; db != nil {
		be, svc, err := ingressBackend(ing.Namespace, *db, v)
		if err != nil {
			return routes, append(problems, fmt.Sprintf("defaultBackend: %v", err))
		}
		routes = append(routes, genRoute{origin: origin, name: ingressDefaultDocName(ing.Name, false),
			spec: config.RouteSpec{Backends: []config.Backend{be}}, services: []registry.ServiceKey{svc}, rule: -1})
		if len(hosts) > 0 {
			list := make([]string, 0, len(hosts))
			for h := range hosts {
				list = append(list, h)
			}
			slices.Sort(list)
			routes = append(routes, genRoute{origin: origin, name: ingressDefaultDocName(ing.Name, true),
				spec:     config.RouteSpec{Hosts: list, Backends: []config.Backend{be}},
				services: []registry.ServiceKey{svc}, rule: -1})
		}
	}
	return routes, problems
}

// ingressPath maps an Ingress path: Exact is exact; Prefix and
// ImplementationSpecific are Cairn's element-wise prefix, which is what
// Prefix means in the Ingress API.
func ingressPath(p networkingv1.HTTPIngressPath) *config.PathMatch {
	value := p.Path
	if value == "" {
		value = "/"
	}
	if p.PathType != nil && *p.PathType == networkingv1.PathTypeExact {
		return &config.PathMatch{Type: "exact", Value: value}
	}
	return &config.PathMatch{Type: "prefix", Value: value}
}

// ingressBackend maps an Ingress backend to a registry service backend.
// A port given by number is the Service's port: the backend names it by
// the Service port's name, as the registry's instances do (see
// servicePortName). When the Service is not known (yet), the number is
// kept, and the gateway uses an instance port of that number.
func ingressBackend(ns string, b networkingv1.IngressBackend, v clusterView) (config.Backend, registry.ServiceKey, error) {
	if b.Service == nil {
		return config.Backend{}, registry.ServiceKey{}, fmt.Errorf("only Service backends are supported, not resource backends")
	}
	be := config.Backend{Service: b.Service.Name, Namespace: ns}
	key := registry.ServiceKey{Namespace: ns, Name: b.Service.Name}
	switch port := b.Service.Port; {
	case port.Name != "":
		be.Port = config.PortRef(port.Name)
	case port.Number != 0:
		be.Port = config.PortRef(strconv.Itoa(int(port.Number)))
		if svc, _ := v.service(ns, b.Service.Name); svc != nil {
			if name, ok := servicePortName(svc, port.Number); ok {
				be.Port = config.PortRef(name)
			}
		}
	}
	return be, key, nil
}
