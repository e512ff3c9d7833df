package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// The route controller turns Ingresses and Gateway API HTTPRoutes into
// Route documents in the registry, which every gateway follows:
//
//	Ingress, IngressClass ─────────┐
//	GatewayClass, Gateway,          ├─ informers ─> queue ─> pass: translate all,
//	HTTP/GRPCRoute, ReferenceGrant ─┘                         diff with the registry,
//	Service (ports), Namespace (labels)                       ApplyConfig, status (leader)
//
// Every informer event only marks the queue; one worker runs a pass that
// translates everything again, so a burst of events is one pass and the
// documents always come from one consistent view of the caches. Every
// replica writes its own registry; only the leader writes status.
type routeController struct {
	c     *Controller
	queue workqueue.TypedRateLimitingInterface[string]
	done  chan struct{} // closed after the first full pass
	once  sync.Once

	// Gateway API kinds that not every installation serves (GRPCRoute
	// joined the standard channel in v1.1): without them, no informer
	// (it would never sync) and no such routes.
	hasGRPC, hasGrants bool

	mu         sync.Mutex
	referenced map[string]bool         // "namespace/name" of the Services the last pass read
	dropped    map[config.Key]dropNote // documents not written, as last logged
	problems   map[string]string       // Ingress parts left out, as last logged
}

// passKey is the only item of the queue: a pass translates everything.
const passKey = "routes"

// coalesce is how long an event waits for others before the pass it asks
// for, so a burst (a Helm install, a namespace of routes) is one pass.
const coalesce = 50 * time.Millisecond

// IngressController is the spec.controller of IngressClasses Cairn
// serves.
const IngressController = "cairn.dev/ingress-controller"

func newRoutes(c *Controller) component {
	rc := &routeController{
		c: c,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "cairn_routes"}),
		done:       make(chan struct{}),
		referenced: map[string]bool{},
	}
	c.resyncRoutes = rc.kick
	// A new leader writes every status again: the old one may have left
	// some behind.
	c.whenLeading(rc.kick)
	return rc
}

// kick asks for a pass soon.
func (rc *routeController) kick() { rc.queue.AddAfter(passKey, coalesce) }

func (rc *routeController) synced() <-chan struct{} { return rc.done }

// primary is the factory that watches cluster-scoped objects
// (IngressClasses, GatewayClasses, Namespaces): one of them is enough.
func (rc *routeController) primary() string {
	keys := make([]string, 0, len(rc.c.core))
	for ns := range rc.c.core {
		keys = append(keys, ns)
	}
	sort.Strings(keys)
	return keys[0]
}

func (rc *routeController) setup() error {
	c := rc.c
	always := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { rc.kick() },
		UpdateFunc: func(any, any) { rc.kick() },
		DeleteFunc: func(any) { rc.kick() },
	}
	// Objects whose spec, labels or annotations matter: status-only
	// updates (ours among them) do not ask for a pass.
	specOnly := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { rc.kick() },
		UpdateFunc: func(o, n any) {
			if specChanged(o, n) {
				rc.kick()
			}
		},
		DeleteFunc: func(any) { rc.kick() },
	}
	services := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { rc.serviceChanged(o) },
		UpdateFunc: func(o, n any) { rc.serviceUpdated(o, n) },
		DeleteFunc: func(o any) { rc.serviceChanged(o) },
	}
	p := rc.primary()
	if _, err := c.core[p].Networking().V1().IngressClasses().Informer().AddEventHandler(always); err != nil {
		return err
	}
	if c.hasGW {
		var err error
		if rc.hasGRPC, err = rc.c.served(gatewayv1.GroupVersion.String(), "grpcroutes"); err != nil {
			return err
		}
		if rc.hasGrants, err = rc.c.served(gatewayv1beta1.GroupVersion.String(), "referencegrants"); err != nil {
			return err
		}
		if !rc.hasGRPC {
			c.log.Info("the GRPCRoute CRD (gateway.networking.k8s.io/v1) is not installed: GRPCRoutes are not served")
		}
		if !rc.hasGrants {
			c.log.Info("the ReferenceGrant CRD (gateway.networking.k8s.io/v1beta1) is not installed: cross-namespace backendRefs are refused")
		}
		if _, err := c.gwInf[p].Gateway().V1().GatewayClasses().Informer().AddEventHandler(specOnly); err != nil {
			return err
		}
		// Namespace labels decide listeners' allowedRoutes selectors.
		nsHandler := cache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { rc.kick() },
			UpdateFunc: func(o, n any) {
				if !labels.Equals(o.(*corev1.Namespace).Labels, n.(*corev1.Namespace).Labels) {
					rc.kick()
				}
			},
			DeleteFunc: func(any) { rc.kick() },
		}
		if _, err := c.core[p].Core().V1().Namespaces().Informer().AddEventHandler(nsHandler); err != nil {
			return err
		}
	}
	for ns, f := range c.core {
		if _, err := f.Networking().V1().Ingresses().Informer().AddEventHandler(specOnly); err != nil {
			return err
		}
		if _, err := f.Core().V1().Services().Informer().AddEventHandler(services); err != nil {
			return err
		}
		if !c.hasGW {
			continue
		}
		g := c.gwInf[ns]
		infs := []cache.SharedIndexInformer{g.Gateway().V1().Gateways().Informer(), g.Gateway().V1().HTTPRoutes().Informer()}
		if rc.hasGRPC {
			infs = append(infs, g.Gateway().V1().GRPCRoutes().Informer())
		}
		for _, inf := range infs {
			if _, err := inf.AddEventHandler(specOnly); err != nil {
				return err
			}
		}
		if rc.hasGrants {
			if _, err := g.Gateway().V1beta1().ReferenceGrants().Informer().AddEventHandler(always); err != nil {
				return err
			}
		}
	}
	return nil
}

// specChanged reports whether an update changed more than status.
func specChanged(o, n any) bool {
	om, ok1 := o.(metav1.Object)
	nm, ok2 := n.(metav1.Object)
	if !ok1 || !ok2 {
		return true
	}
	return om.GetGeneration() != nm.GetGeneration() ||
		!labels.Equals(om.GetLabels(), nm.GetLabels()) ||
		!labels.Equals(om.GetAnnotations(), nm.GetAnnotations()) ||
		om.GetDeletionTimestamp() != nm.GetDeletionTimestamp()
}

// serviceChanged asks for a pass when a Service a route names appears or
// goes: its ports decide the backends' port names, and its existence the
// HTTPRoutes' ResolvedRefs.
func (rc *routeController) serviceChanged(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	svc, ok := o.(*corev1.Service)
	if !ok {
		rc.kick()
		return
	}
	rc.mu.Lock()
	ref := rc.referenced[svc.Namespace+"/"+svc.Name]
	rc.mu.Unlock()
	if ref {
		rc.kick()
	}
}

func (rc *routeController) serviceUpdated(o, n any) {
	old, ok1 := o.(*corev1.Service)
	cur, ok2 := n.(*corev1.Service)
	if ok1 && ok2 && old.Spec.Type == cur.Spec.Type && slices.EqualFunc(old.Spec.Ports, cur.Spec.Ports, func(a, b corev1.ServicePort) bool {
		return a.Name == b.Name && a.Port == b.Port
	}) {
		return
	}
	rc.serviceChanged(n)
}

func (rc *routeController) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		rc.queue.ShutDown()
	}()
	rc.queue.Add(passKey) // the first pass, now that the caches have synced
	for {
		key, quit := rc.queue.Get()
		if quit {
			return
		}
		err := rc.pass(ctx)
		switch {
		case err == nil:
			rc.queue.Forget(key)
		case ctx.Err() != nil:
		case apierrors.IsConflict(err):
			// A status written from a cache a step behind: the next pass
			// reads the newer object.
			rc.c.log.Debug("routes: status conflict; retrying", "err", err)
			rc.queue.AddRateLimited(key)
		default:
			rc.c.log.Warn("routes: pass failed; retrying", "err", err, "retries", rc.queue.NumRequeues(key))
			rc.queue.AddRateLimited(key)
		}
		rc.queue.Done(key)
	}
}

// pass translates every object, brings the registry's documents in line
// and, on the leader, writes status.
func (rc *routeController) pass(ctx context.Context) error {
	v := rc.view()
	ingresses := rc.servedIngresses()
	var gens []genRoute
	problems := map[string]string{}
	for _, ing := range ingresses {
		g, p := translateIngress(ing, v)
		gens = append(gens, g...)
		if len(p) > 0 {
			problems[ing.Namespace+"/"+ing.Name] = strings.Join(p, "; ")
		}
	}
	rc.logIngressProblems(problems)
	var gw *gatewayResult
	if rc.c.hasGW {
		gw = translateGatewayAPI(rc.gatewayInput(), v, rc.c.o.GatewayController)
		gens = append(gens, gw.gens()...)
	}
	rc.mu.Lock()
	rc.referenced = v.referenced
	rc.mu.Unlock()

	docs, dropped := rc.documents(gens)
	conflicts, err := rc.store(ctx, docs)
	if err != nil {
		return err
	}
	for k, why := range conflicts {
		dropped[k] = dropNote{message: why, conflict: true}
	}
	rc.logDropped(dropped)
	rc.once.Do(func() {
		rc.c.log.Info("routes: in sync", "documents", len(docs)-len(conflicts), "ingresses", len(ingresses))
		close(rc.done)
	})
	if !rc.c.Leading() {
		return nil
	}
	return rc.writeStatus(ctx, ingresses, gw, dropped)
}

// genRoute is one Route document a translation asks for.
type genRoute struct {
	origin   objectRef
	name     string
	spec     config.RouteSpec
	services []registry.ServiceKey // the registry services its backends name
	rule     int                   // the HTTPRoute rule it comes from (status)
}

func (g *genRoute) key() config.Key {
	return config.Key{Kind: config.KindRoute, Namespace: g.origin.Namespace, Name: g.name}
}

// documents applies traffic policies to each generated route and checks
// it as `cairn apply` would. A route that fails is left out; dropped says
// why, by document key.
func (rc *routeController) documents(gens []genRoute) (map[config.Key]*config.Document, map[config.Key]dropNote) {
	docs := make(map[config.Key]*config.Document, len(gens))
	dropped := map[config.Key]dropNote{}
	for i := range gens {
		g := &gens[i]
		if rc.c.policies != nil {
			rc.c.policies.apply(g.origin, g.services, &g.spec)
		}
		d, err := makeDocument(g)
		k := g.key()
		switch {
		case err != nil:
			dropped[k] = dropNote{message: err.Error()}
		case docs[k] != nil:
			dropped[k] = dropNote{conflict: true, message: fmt.Sprintf("route document %s is also made from %s %s/%s", k, docs[k].Metadata.Labels[LabelOriginKind],
				docs[k].Metadata.Labels[LabelOriginNamespace], docs[k].Metadata.Labels[LabelOriginName])}
		default:
			docs[k] = d
		}
	}
	return docs, dropped
}

// dropNote says why a generated route is not in the registry: it did not
// pass the checks of `cairn apply`, or (conflict) its name is taken.
type dropNote struct {
	message  string
	conflict bool
}

// store makes the registry's documents those in want: changed ones are
// put, the controller's documents no longer wanted are deleted, and
// documents the controller does not own are left alone (conflicts, by
// key). One ApplyConfig carries the whole change, so gateways see it at
// once, unless it is larger than an apply may be (then puts go first).
func (rc *routeController) store(ctx context.Context, want map[config.Key]*config.Document) (map[config.Key]string, error) {
	reg := rc.c.o.Registry
	have, _ := reg.ConfigDocs(config.KindRoute, "")
	current := make(map[config.Key]*config.Document, len(have))
	for _, d := range have {
		current[d.Key()] = d
	}
	conflicts := map[config.Key]string{}
	var puts []config.Document
	for k, d := range want {
		old := current[k]
		switch {
		case old == nil:
			puts = append(puts, *d)
		case !ownedByRoutes(old):
			conflicts[k] = fmt.Sprintf("route document %s exists in Cairn and is not managed by Kubernetes; it is left as it is", k)
		case !sameDocument(old, d):
			puts = append(puts, *d)
		}
	}
	var deletes []config.Key
	for k, d := range current {
		if want[k] == nil && ownedByRoutes(d) {
			deletes = append(deletes, k)
		}
	}
	if len(puts)+len(deletes) == 0 {
		return conflicts, nil
	}
	slices.SortFunc(puts, func(a, b config.Document) int { return compareKey(a.Key(), b.Key()) })
	slices.SortFunc(deletes, compareKey)
	for len(puts)+len(deletes) > 0 {
		n := min(len(puts), config.MaxDocuments)
		p := puts[:n]
		puts = puts[n:]
		m := min(len(deletes), config.MaxDocuments-n)
		del := deletes[:m]
		deletes = deletes[m:]
		if _, err := reg.ApplyConfig(ctx, p, del, false); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				// A document went away between the listing and the apply
				// (a user deleted it): the retry lists again.
				return nil, fmt.Errorf("routes: registry changed during the pass: %w", err)
			}
			return nil, fmt.Errorf("routes: storing %d documents and deleting %d: %w", len(p), len(del), err)
		}
	}
	return conflicts, nil
}

// makeDocument builds and checks the document of a generated route.
func makeDocument(g *genRoute) (*config.Document, error) {
	spec, err := json.Marshal(&g.spec)
	if err != nil {
		return nil, err
	}
	d := &config.Document{APIVersion: config.APIVersion, Kind: config.KindRoute,
		Metadata: config.Metadata{Name: g.name, Namespace: g.origin.Namespace, Labels: originLabels(g.origin)}, Spec: spec}
	if fe := d.Normalize(); fe != nil {
		return nil, fmt.Errorf("route document %s is not valid: %w", g.key(), fe)
	}
	return d, nil
}

// sameDocument reports whether a stored document already says what d
// says (both normalized: their specs are canonical JSON).
func sameDocument(old, d *config.Document) bool {
	return bytes.Equal(old.Spec, d.Spec) && maps.Equal(old.Metadata.Labels, d.Metadata.Labels)
}

func compareKey(a, b config.Key) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// logDropped warns about the documents that could not be written, once
// for each new reason (HTTPRoutes also say it in their status; Ingresses
// have no conditions).
func (rc *routeController) logDropped(now map[config.Key]dropNote) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for k, d := range now {
		if rc.dropped[k] != d {
			rc.c.log.Warn("routes: route document not written", "document", k.String(), "reason", d.message)
		}
	}
	rc.dropped = now
}

// logIngressProblems warns about the parts of Ingresses that were left
// out, when they change.
func (rc *routeController) logIngressProblems(now map[string]string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for k, p := range now {
		if rc.problems[k] != p {
			rc.c.log.Warn("routes: parts of an Ingress are not served", "ingress", k, "problems", p)
		}
	}
	rc.problems = now
}
