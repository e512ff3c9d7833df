package kube

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// clusterView is what a translation reads besides the objects it
// translates: the informers' caches in the controller, maps in unit tests.
type clusterView interface {
	// service returns a Service, nil when there is none; watched is false
	// when its namespace is not one the controller watches (so nil says
	// nothing about whether it exists).
	service(namespace, name string) (svc *corev1.Service, watched bool)
	// namespaceLabels returns a namespace's labels; ok is false when the
	// namespace is unknown.
	namespaceLabels(namespace string) (labels map[string]string, ok bool)
	// referenceGrants lists the ReferenceGrants of a namespace.
	referenceGrants(namespace string) []*gatewayv1beta1.ReferenceGrant
}

// servicePortName finds a Service's port by number. Registry instances
// imported from EndpointSlices name their ports after the Service's
// ports (and carry the target port number), so a backend that gives a
// Service port number routes by that port's name; an unnamed port (a
// Service may have only one) gives "", which the gateway reads as the
// instance's only port.
func servicePortName(svc *corev1.Service, port int32) (name string, ok bool) {
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			return p.Name, true
		}
	}
	return "", false
}

// view reads the informers' caches for one pass.
func (rc *routeController) view() *informerView {
	return &informerView{rc: rc, referenced: map[string]bool{}}
}

// informerView is the clusterView of the informers' caches. It records
// the Services a pass looks up, so that only changes to those ask for
// another pass.
type informerView struct {
	rc         *routeController
	referenced map[string]bool
}

func (v *informerView) service(ns, name string) (*corev1.Service, bool) {
	v.referenced[ns+"/"+name] = true
	f := v.rc.c.core[metav1.NamespaceAll]
	if f == nil {
		f = v.rc.c.core[ns]
	}
	if f == nil {
		return nil, false
	}
	svc, err := f.Core().V1().Services().Lister().Services(ns).Get(name)
	if err != nil {
		return nil, true
	}
	return svc, true
}

func (v *informerView) namespaceLabels(ns string) (map[string]string, bool) {
	n, err := v.rc.c.core[v.rc.primary()].Core().V1().Namespaces().Lister().Get(ns)
	if err != nil {
		return nil, false
	}
	return n.Labels, true
}

func (v *informerView) referenceGrants(ns string) []*gatewayv1beta1.ReferenceGrant {
	if !v.rc.hasGrants {
		return nil
	}
	f := v.rc.c.gwInf[metav1.NamespaceAll]
	if f == nil {
		f = v.rc.c.gwInf[ns]
	}
	if f == nil {
		return nil
	}
	gs, _ := f.Gateway().V1beta1().ReferenceGrants().Lister().ReferenceGrants(ns).List(labels.Everything())
	return gs
}

func (v *informerView) ingressClasses() []*networkingv1.IngressClass {
	cs, _ := v.rc.c.core[v.rc.primary()].Networking().V1().IngressClasses().Lister().List(labels.Everything())
	return cs
}

// servedIngresses lists the Ingresses of Cairn's class, oldest first.
func (rc *routeController) servedIngresses() []*networkingv1.Ingress {
	classes := rc.view().ingressClasses()
	var out []*networkingv1.Ingress
	for _, f := range rc.c.core {
		list, _ := f.Networking().V1().Ingresses().Lister().List(labels.Everything())
		for _, ing := range list {
			if servesIngress(ing, rc.c.o.IngressClass, classes) {
				out = append(out, ing)
			}
		}
	}
	sortObjects(out)
	return out
}

// gatewayInput lists the Gateway API objects of every watched namespace
// (cluster-scoped GatewayClasses from one factory).
func (rc *routeController) gatewayInput() gatewayInput {
	in := gatewayInput{noGRPC: !rc.hasGRPC}
	in.classes, _ = rc.c.gwInf[rc.primary()].Gateway().V1().GatewayClasses().Lister().List(labels.Everything())
	for _, f := range rc.c.gwInf {
		gws, _ := f.Gateway().V1().Gateways().Lister().List(labels.Everything())
		in.gateways = append(in.gateways, gws...)
		hrs, _ := f.Gateway().V1().HTTPRoutes().Lister().List(labels.Everything())
		in.routes = append(in.routes, hrs...)
		if rc.hasGRPC {
			grs, _ := f.Gateway().V1().GRPCRoutes().Lister().List(labels.Everything())
			in.grpc = append(in.grpc, grs...)
		}
	}
	sortObjects(in.classes)
	sortObjects(in.gateways)
	sortObjects(in.routes)
	sortObjects(in.grpc)
	return in
}

// sortObjects orders objects oldest first, then by namespace and name: the
// Gateway API's order between routes, and a stable order for the rest.
func sortObjects[T metav1.Object](objs []T) {
	slices.SortFunc(objs, func(a, b T) int {
		if c := a.GetCreationTimestamp().Compare(b.GetCreationTimestamp().Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.GetNamespace(), b.GetNamespace()); c != 0 {
			return c
		}
		return strings.Compare(a.GetName(), b.GetName())
	})
}
