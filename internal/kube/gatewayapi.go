package kube

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The Gateway API side of the route controller. Cairn's gateways are one
// data plane: every gateway process serves the routes of every Gateway of
// Cairn's GatewayClasses, on the addresses it listens on. So a Gateway
// decides which HTTPRoutes attach and to which host names (its listeners'
// hostname and allowedRoutes), not where traffic enters; listener ports
// are not bound per Gateway. See docs/kubernetes-routes.md.

// gatewayInput is every Gateway API object a pass translates.
type gatewayInput struct {
	classes  []*gatewayv1.GatewayClass
	gateways []*gatewayv1.Gateway
	routes   []*gatewayv1.HTTPRoute
	grpc     []*gatewayv1.GRPCRoute
	noGRPC   bool // the cluster does not serve GRPCRoutes: listeners do not take them
}

// gatewayResult is a translation: the state of each object of Cairn's
// classes, for status, and the routes to store.
type gatewayResult struct {
	classes  []*classState
	gateways []*gatewayState
	routes   []*routeState
	// unowned are the routes with no parent of Cairn's: status entries
	// Cairn wrote earlier are removed from them.
	unowned []routeObject
}

func (r *gatewayResult) gens() []genRoute {
	var out []genRoute
	for _, rs := range r.routes {
		out = append(out, rs.gens...)
	}
	return out
}

// classState is a GatewayClass of Cairn's controller.
type classState struct {
	gc       *gatewayv1.GatewayClass
	accepted bool
	reason   gatewayv1.GatewayClassConditionReason
	message  string
}

// gatewayState is a Gateway of one of Cairn's classes.
type gatewayState struct {
	gw        *gatewayv1.Gateway
	accepted  bool
	reason    gatewayv1.GatewayConditionReason
	message   string
	listeners []*listenerState
}

// listenerState is one listener of a Gateway.
type listenerState struct {
	l            gatewayv1.Listener
	supported    bool                       // the protocol is one Cairn serves (HTTP)
	kinds        []gatewayv1.RouteGroupKind // route kinds it takes
	invalidKinds []string                   // kinds named in allowedRoutes that Cairn does not serve
	attached     int32                      // routes attached to it
}

// routeKinds are the route kinds Cairn's HTTP listeners take: gRPC comes
// as HTTP/2 (h2c) on the same listeners.
var routeKinds = []gatewayv1.RouteGroupKind{
	{Group: ptrTo(gatewayv1.Group(gatewayv1.GroupName)), Kind: kindHTTPRoute},
	{Group: ptrTo(gatewayv1.Group(gatewayv1.GroupName)), Kind: kindGRPCRoute},
}

// translateGatewayAPI works out the state of Cairn's GatewayClasses, their
// Gateways and the HTTPRoutes and GRPCRoutes attached to them, and the
// routes those make. controller is Cairn's controllerName.
func translateGatewayAPI(in gatewayInput, v clusterView, controller string) *gatewayResult {
	res := &gatewayResult{}
	classes := map[string]*classState{}
	for _, gc := range in.classes {
		if string(gc.Spec.ControllerName) != controller {
			continue
		}
		cs := &classState{gc: gc, accepted: true, reason: gatewayv1.GatewayClassReasonAccepted, message: "Cairn serves this class"}
		if gc.Spec.ParametersRef != nil {
			cs.accepted, cs.reason, cs.message = false, gatewayv1.GatewayClassReasonInvalidParameters, "Cairn's GatewayClasses take no parameters (parametersRef)"
		}
		classes[gc.Name] = cs
		res.classes = append(res.classes, cs)
	}
	gateways := map[string]*gatewayState{}
	for _, gw := range in.gateways {
		cs := classes[string(gw.Spec.GatewayClassName)]
		if cs == nil {
			continue
		}
		gs := evaluateGateway(gw, cs, in.noGRPC)
		gateways[gw.Namespace+"/"+gw.Name] = gs
		res.gateways = append(res.gateways, gs)
	}
	for _, hr := range in.routes {
		obj := routeObject{http: hr}
		if rs := translateRoute(obj, hr, gateways, v); rs != nil {
			res.routes = append(res.routes, rs)
		} else {
			res.unowned = append(res.unowned, obj)
		}
	}
	for _, gr := range in.grpc {
		obj := routeObject{grpc: gr}
		if rs := translateRoute(obj, grpcAsHTTP(gr), gateways, v); rs != nil {
			res.routes = append(res.routes, rs)
		} else {
			res.unowned = append(res.unowned, obj)
		}
	}
	return res
}

// evaluateGateway checks a Gateway's listeners.
func evaluateGateway(gw *gatewayv1.Gateway, cs *classState, noGRPC bool) *gatewayState {
	gs := &gatewayState{gw: gw}
	kinds := routeKinds
	if noGRPC {
		kinds = kinds[:1]
	}
	valid := 0
	for _, l := range gw.Spec.Listeners {
		ls := &listenerState{l: l, kinds: []gatewayv1.RouteGroupKind{}}
		if l.Protocol == gatewayv1.HTTPProtocolType {
			ls.supported = true
			valid++
			if l.AllowedRoutes == nil || len(l.AllowedRoutes.Kinds) == 0 {
				ls.kinds = append(ls.kinds, kinds...)
			}
			if l.AllowedRoutes != nil {
				for _, k := range l.AllowedRoutes.Kinds {
					group := gatewayv1.GroupName
					if k.Group != nil {
						group = string(*k.Group)
					}
					if i := slices.IndexFunc(kinds, func(rk gatewayv1.RouteGroupKind) bool { return rk.Kind == k.Kind }); group == gatewayv1.GroupName && i >= 0 {
						ls.kinds = append(ls.kinds, kinds[i])
					} else {
						ls.invalidKinds = append(ls.invalidKinds, group+"/"+string(k.Kind))
					}
				}
			}
		}
		gs.listeners = append(gs.listeners, ls)
	}
	switch {
	case !cs.accepted:
		gs.reason, gs.message = gatewayv1.GatewayReasonInvalid, fmt.Sprintf("GatewayClass %s is not accepted: %s", cs.gc.Name, cs.message)
	case gw.Spec.Infrastructure != nil && gw.Spec.Infrastructure.ParametersRef != nil:
		gs.reason, gs.message = gatewayv1.GatewayReasonInvalidParameters, "Cairn's Gateways take no parameters (infrastructure.parametersRef)"
	case valid == 0:
		gs.reason, gs.message = gatewayv1.GatewayReasonListenersNotValid, "no listener has a protocol Cairn serves (HTTP)"
	case valid < len(gw.Spec.Listeners):
		gs.accepted, gs.reason, gs.message = true, gatewayv1.GatewayReasonListenersNotValid, "some listeners have a protocol Cairn does not serve; the HTTP listeners are accepted"
	default:
		gs.accepted, gs.reason, gs.message = true, gatewayv1.GatewayReasonAccepted, "accepted by Cairn"
	}
	return gs
}

// allows reports whether a listener takes routes of a kind from a
// namespace.
func (ls *listenerState) allows(kind, routeNS, gatewayNS string, v clusterView) bool {
	if !ls.supported || !slices.ContainsFunc(ls.kinds, func(k gatewayv1.RouteGroupKind) bool { return string(k.Kind) == kind }) {
		return false
	}
	from := gatewayv1.NamespacesFromSame
	var sel *metav1.LabelSelector
	if ar := ls.l.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		if ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		sel = ar.Namespaces.Selector
	}
	switch from {
	case gatewayv1.NamespacesFromAll:
		return true
	case gatewayv1.NamespacesFromSame:
		return routeNS == gatewayNS
	case gatewayv1.NamespacesFromSelector:
		if sel == nil {
			return false
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return false
		}
		l, ok := v.namespaceLabels(routeNS)
		return ok && s.Matches(labels.Set(l))
	}
	return false
}

// intersectHosts returns the host names a route is served for through a
// listener: the route's names the listener's name covers, and the
// listener's name where one of the route's wildcards covers it. every is
// true when neither names a host; ok is false when they share none.
func intersectHosts(listener *gatewayv1.Hostname, route []gatewayv1.Hostname) (hosts []string, every, ok bool) {
	lh := ""
	if listener != nil {
		lh = strings.ToLower(string(*listener))
	}
	switch {
	case lh == "" && len(route) == 0:
		return nil, true, true
	case lh == "":
		for _, h := range route {
			hosts = append(hosts, strings.ToLower(string(h)))
		}
		return hosts, false, true
	case len(route) == 0:
		return []string{lh}, false, true
	}
	for _, h := range route {
		rh := strings.ToLower(string(h))
		switch {
		case hostCovers(lh, rh):
			hosts = append(hosts, rh)
		case hostCovers(rh, lh):
			hosts = append(hosts, lh)
		}
	}
	return hosts, false, len(hosts) > 0
}

// hostCovers reports whether every name h matches also matches pattern:
// equal names, or pattern "*.suffix" and h a name or wildcard under it.
func hostCovers(pattern, h string) bool {
	if pattern == h {
		return true
	}
	suffix, ok := strings.CutPrefix(pattern, "*")
	if !ok {
		return false
	}
	rest := strings.TrimPrefix(h, "*")
	return len(rest) > len(suffix) && strings.HasSuffix(rest, suffix)
}

func ptrTo[T any](v T) *T { return &v }
