package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"

	"github.com/cairnhq/cairn/internal/config"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
)

// Status is written by the leader only, and only when it changed: each
// object's wanted status is computed from the pass and compared with the
// cached one. A condition keeps its lastTransitionTime while its status
// stays the same.

// reasonRouteConflict is the reason of a route condition when a Route
// document the route makes already exists in Cairn, not managed by
// Kubernetes (Cairn never overwrites those).
const reasonRouteConflict gatewayv1.RouteConditionReason = "RouteDocumentConflict"

// maxMessage bounds a condition message (the API allows 32768 bytes).
const maxMessage = 4096

func (rc *routeController) writeStatus(ctx context.Context, ingresses []*networkingv1.Ingress, gw *gatewayResult, dropped map[config.Key]dropNote) error {
	var errs []error
	keep := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			errs = append(errs, err)
		}
	}
	for _, ing := range ingresses {
		keep(rc.ingressStatus(ctx, ing))
	}
	if gw != nil {
		for _, cs := range gw.classes {
			keep(rc.classStatus(ctx, cs))
		}
		for _, gs := range gw.gateways {
			keep(rc.gatewayStatus(ctx, gs))
		}
		for _, rs := range gw.routes {
			keep(rc.writeRouteStatus(ctx, rs.obj, routeParents(rs, dropped)))
		}
		for _, obj := range gw.unowned {
			keep(rc.writeRouteStatus(ctx, obj, nil))
		}
	}
	return errors.Join(errs...)
}

// ingressStatus sets an Ingress's load-balancer address to the gateway's.
func (rc *routeController) ingressStatus(ctx context.Context, ing *networkingv1.Ingress) error {
	addr := rc.c.o.StatusAddress
	if addr == "" || !rc.c.Leading() {
		return nil
	}
	lb := networkingv1.IngressLoadBalancerIngress{Hostname: addr}
	if net.ParseIP(addr) != nil {
		lb = networkingv1.IngressLoadBalancerIngress{IP: addr}
	}
	want := []networkingv1.IngressLoadBalancerIngress{lb}
	if equality.Semantic.DeepEqual(ing.Status.LoadBalancer.Ingress, want) {
		return nil
	}
	cp := ing.DeepCopy()
	cp.Status.LoadBalancer.Ingress = want
	_, err := rc.c.client.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	return err
}

func (rc *routeController) classStatus(ctx context.Context, cs *classState) error {
	gc := cs.gc
	st := gc.Status.DeepCopy()
	st.Conditions = conditions(gc.Status.Conditions, gc.Generation,
		condition(string(gatewayv1.GatewayClassConditionStatusAccepted), cs.accepted, string(cs.reason), cs.message))
	if equality.Semantic.DeepEqual(&gc.Status, st) || !rc.c.Leading() {
		return nil
	}
	cp := gc.DeepCopy()
	cp.Status = *st
	_, err := rc.c.gw.GatewayV1().GatewayClasses().UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	return err
}

func (rc *routeController) gatewayStatus(ctx context.Context, gs *gatewayState) error {
	gw := gs.gw
	st := gatewayv1.GatewayStatus{}
	addr := rc.c.o.StatusAddress
	if addr != "" {
		typ := gatewayv1.HostnameAddressType
		if net.ParseIP(addr) != nil {
			typ = gatewayv1.IPAddressType
		}
		st.Addresses = []gatewayv1.GatewayStatusAddress{{Type: &typ, Value: addr}}
	}
	programmed, pReason, pMessage := gs.accepted, string(gatewayv1.GatewayReasonProgrammed), "Cairn's gateways serve its routes"
	if !gs.accepted {
		pReason, pMessage = string(gatewayv1.GatewayReasonInvalid), gs.message
	}
	for _, a := range gw.Spec.Addresses {
		if a.Value != addr && programmed {
			// Cairn's gateways are one data plane at one address, which
			// Cairn is told (the status address), not one it assigns.
			programmed, pReason = false, string(gatewayv1.GatewayReasonAddressNotUsable)
			pMessage = fmt.Sprintf("Cairn does not assign addresses: its gateways are reached at %q, not %q", addr, a.Value)
			if addr == "" {
				pMessage = fmt.Sprintf("Cairn does not assign addresses, and its gateways' address is not configured: %q cannot be used", a.Value)
			}
		}
	}
	st.Conditions = conditions(gw.Status.Conditions, gw.Generation,
		condition(string(gatewayv1.GatewayConditionAccepted), gs.accepted, string(gs.reason), gs.message),
		condition(string(gatewayv1.GatewayConditionProgrammed), programmed, pReason, pMessage))
	for _, ls := range gs.listeners {
		var old []metav1.Condition
		for _, o := range gw.Status.Listeners {
			if o.Name == ls.l.Name {
				old = o.Conditions
			}
		}
		st.Listeners = append(st.Listeners, gatewayv1.ListenerStatus{
			Name: ls.l.Name, SupportedKinds: ls.kinds, AttachedRoutes: ls.attached,
			Conditions: conditions(old, gw.Generation, listenerConditions(gs, ls)...),
		})
	}
	if equality.Semantic.DeepEqual(gw.Status, st) || !rc.c.Leading() {
		return nil
	}
	cp := gw.DeepCopy()
	cp.Status = st
	_, err := rc.c.gw.GatewayV1().Gateways(gw.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	return err
}

func listenerConditions(gs *gatewayState, ls *listenerState) []metav1.Condition {
	var out []metav1.Condition
	if ls.supported {
		out = append(out, condition(string(gatewayv1.ListenerConditionAccepted), true, string(gatewayv1.ListenerReasonAccepted), "accepted by Cairn"))
	} else {
		out = append(out, condition(string(gatewayv1.ListenerConditionAccepted), false, string(gatewayv1.ListenerReasonUnsupportedProtocol),
			fmt.Sprintf("protocol %s is not supported: Cairn serves HTTP listeners (its gateways terminate TLS themselves, with --tls-cert)", ls.l.Protocol)))
	}
	if len(ls.invalidKinds) > 0 {
		out = append(out, condition(string(gatewayv1.ListenerConditionResolvedRefs), false, string(gatewayv1.ListenerReasonInvalidRouteKinds),
			fmt.Sprintf("route kinds %s are not supported (only HTTPRoute and GRPCRoute)", strings.Join(ls.invalidKinds, ", "))))
	} else {
		out = append(out, condition(string(gatewayv1.ListenerConditionResolvedRefs), true, string(gatewayv1.ListenerReasonResolvedRefs), "every reference resolves"))
	}
	switch {
	case !gs.accepted:
		out = append(out, condition(string(gatewayv1.ListenerConditionProgrammed), false, string(gatewayv1.ListenerReasonInvalid), gs.message))
	case !ls.supported || len(ls.kinds) == 0:
		out = append(out, condition(string(gatewayv1.ListenerConditionProgrammed), false, string(gatewayv1.ListenerReasonInvalid), "the listener takes no route Cairn serves"))
	default:
		out = append(out, condition(string(gatewayv1.ListenerConditionProgrammed), true, string(gatewayv1.ListenerReasonProgrammed), "Cairn's gateways serve its routes"))
	}
	return append(out, condition(string(gatewayv1.ListenerConditionConflicted), false, string(gatewayv1.ListenerReasonNoConflicts), "no conflicts"))
}

// routeParents computes the route's status entries for Cairn's
// parents. A rule that cannot be served as written (dropped, answering
// errors, or whose documents could not be stored) makes the route
// PartiallyInvalid; when no rule is served as written, the route is not
// Accepted.
func routeParents(rs *routeState, dropped map[config.Key]dropNote) []parentEntry {
	var problems []string
	var reason gatewayv1.RouteConditionReason
	served := 0
	for i, r := range rs.rules {
		why, rsn := "", gatewayv1.RouteReasonUnsupportedValue
		switch {
		case r.dropped != "":
			why = r.dropped
		case r.invalid != "":
			why = r.invalid + " (its requests get 500)"
		default:
			for _, g := range rs.gens {
				if d, ok := dropped[g.key()]; ok && g.rule == i {
					why = d.message
					if d.conflict {
						rsn = reasonRouteConflict
					}
					break
				}
			}
		}
		if why == "" {
			served++
			continue
		}
		if reason == "" {
			reason = rsn
		}
		problems = append(problems, fmt.Sprintf("rule %d: %s", i, why))
	}
	var out []parentEntry
	for _, ps := range rs.parents {
		var conds []metav1.Condition
		switch {
		case !ps.attached:
			conds = append(conds, condition(string(gatewayv1.RouteConditionAccepted), false, string(ps.reason), ps.message))
		case served == 0 && len(rs.rules) > 0:
			conds = append(conds, condition(string(gatewayv1.RouteConditionAccepted), false, string(reason),
				"no rule can be served: "+strings.Join(problems, "; ")))
		default:
			conds = append(conds, condition(string(gatewayv1.RouteConditionAccepted), true, string(gatewayv1.RouteReasonAccepted), ps.message))
			if len(problems) > 0 {
				conds = append(conds, condition(string(gatewayv1.RouteConditionPartiallyInvalid), true, string(reason),
					"Dropped Rule(s): "+strings.Join(problems, "; ")))
			}
		}
		conds = append(conds, condition(string(gatewayv1.RouteConditionResolvedRefs), rs.refs.reason == gatewayv1.RouteReasonResolvedRefs,
			string(rs.refs.reason), rs.refs.message))
		out = append(out, parentEntry{ref: ps.ref, conds: conds})
	}
	return out
}

// parentEntry is one status.parents entry Cairn writes.
type parentEntry struct {
	ref   gatewayv1.ParentReference
	conds []metav1.Condition
}

// writeRouteStatus replaces Cairn's entries of a route's status.parents
// with ours (none: Cairn's are removed), keeping other controllers'
// entries.
func (rc *routeController) writeRouteStatus(ctx context.Context, obj routeObject, ours []parentEntry) error {
	controller := gatewayv1.GatewayController(rc.c.o.GatewayController)
	current := obj.parents()
	generation := obj.meta().GetGeneration()
	var parents []gatewayv1.RouteParentStatus
	for _, p := range current {
		if p.ControllerName != controller {
			parents = append(parents, p)
		}
	}
	others := len(parents)
	for _, e := range ours {
		if len(parents) >= 32 { // the API's limit
			break
		}
		var old []metav1.Condition
		for _, p := range current {
			if p.ControllerName == controller && reflect.DeepEqual(p.ParentRef, e.ref) {
				old = p.Conditions
			}
		}
		parents = append(parents, gatewayv1.RouteParentStatus{ParentRef: e.ref, ControllerName: controller,
			Conditions: conditions(old, generation, e.conds...)})
	}
	if len(ours) == 0 && others == len(current) {
		return nil // nothing of Cairn's to remove
	}
	if parents == nil {
		parents = []gatewayv1.RouteParentStatus{}
	}
	if equality.Semantic.DeepEqual(current, parents) || !rc.c.Leading() {
		return nil
	}
	return obj.updateParents(ctx, rc.c.gw, parents)
}

// routeObject is an HTTPRoute or a GRPCRoute: their status is the same.
type routeObject struct {
	http *gatewayv1.HTTPRoute
	grpc *gatewayv1.GRPCRoute
}

func (o routeObject) kind() string {
	if o.grpc != nil {
		return kindGRPCRoute
	}
	return kindHTTPRoute
}

func (o routeObject) meta() metav1.Object {
	if o.grpc != nil {
		return o.grpc
	}
	return o.http
}

func (o routeObject) parents() []gatewayv1.RouteParentStatus {
	if o.grpc != nil {
		return o.grpc.Status.Parents
	}
	return o.http.Status.Parents
}

func (o routeObject) updateParents(ctx context.Context, gw gatewayclient.Interface, parents []gatewayv1.RouteParentStatus) error {
	if o.grpc != nil {
		cp := o.grpc.DeepCopy()
		cp.Status.Parents = parents
		_, err := gw.GatewayV1().GRPCRoutes(cp.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		return err
	}
	cp := o.http.DeepCopy()
	cp.Status.Parents = parents
	_, err := gw.GatewayV1().HTTPRoutes(cp.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	return err
}

func condition(typ string, ok bool, reason, message string) metav1.Condition {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	if len(message) > maxMessage {
		message = strings.ToValidUTF8(message[:maxMessage-3], "") + "..."
	}
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: message}
}

// conditions returns want with observedGeneration set, each keeping the
// lastTransitionTime of the same type in old when its status is the same.
func conditions(old []metav1.Condition, generation int64, want ...metav1.Condition) []metav1.Condition {
	now := metav1.Now()
	out := make([]metav1.Condition, 0, len(want))
	for _, c := range want {
		c.ObservedGeneration = generation
		c.LastTransitionTime = now
		if prev := meta.FindStatusCondition(old, c.Type); prev != nil && prev.Status == c.Status {
			c.LastTransitionTime = prev.LastTransitionTime
		}
		out = append(out, c)
	}
	return out
}
