package kube

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// The TrafficPolicy controller (docs/kubernetes-policy.md):
//
//	TrafficPolicies ────────────────┐
//	Services, Ingresses, xRoutes ────┴─> pass ──> index: target → policy <── apply ── route controller
//	                                       └────> status (the leader only)
//
// Every change (a policy, or a target coming or going) runs one pass over
// all policies, on one goroutine: policies are few, and a whole pass
// leaves no order of events to get wrong. A pass that changes what applies
// where asks the route controller to translate again (c.resyncRoutes).
// Every replica keeps the index, since every replica's route controller
// asks it; only the leader writes status.

// policyController implements routePolicies.
type policyController struct {
	c      *Controller
	log    *slog.Logger
	pols   []cache.SharedIndexInformer // TrafficPolicies: one informer per watched namespace, or the cluster's
	kickCh chan struct{}
	done   chan struct{}

	index    atomic.Pointer[policyIndex]
	targeted atomic.Pointer[map[policyTarget]bool] // what some policy names, for the targets' event handlers

	// written remembers the status last written to each policy, until the
	// informer's copy moves past the version it was written over: a pass
	// that runs before the write comes back does not write it again.
	// Used by the pass's goroutine only.
	written map[types.UID]writtenStatus
}

var _ routePolicies = (*policyController)(nil)

// policyRetry is the wait before a pass after status writes failed.
const policyRetry = time.Second

func newPolicies(c *Controller) component {
	p := &policyController{c: c, log: c.log.With("controller", "trafficpolicy"), kickCh: make(chan struct{}, 1), done: make(chan struct{}),
		written: map[types.UID]writtenStatus{}}
	p.index.Store(&policyIndex{})
	p.targeted.Store(&map[policyTarget]bool{})
	c.policies = p
	c.whenLeading(p.kick) // a new leader writes the status a follower only computed
	return p
}

func (p *policyController) synced() <-chan struct{} { return p.done }

// kick asks for a pass; kicks while one is pending coalesce.
func (p *policyController) kick() {
	select {
	case p.kickCh <- struct{}{}:
	default:
	}
}

func (p *policyController) setup() error {
	if !p.c.hasPols {
		close(p.done)
		return nil
	}
	gvr := PolicyGroupVersion.WithResource(PolicyResource)
	onPolicy := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.kick() },
		UpdateFunc: func(any, any) { p.kick() },
		DeleteFunc: func(any) { p.kick() },
	}
	for _, f := range p.c.dynInf {
		inf := f.ForResource(gvr).Informer()
		if _, err := inf.AddEventHandler(onPolicy); err != nil {
			return fmt.Errorf("kube: trafficpolicies: %w", err)
		}
		p.pols = append(p.pols, inf)
	}
	// A target coming or going changes where policies apply; changes
	// within a target do not.
	for ns, f := range p.c.core {
		infs := map[string]cache.SharedIndexInformer{
			"Service": f.Core().V1().Services().Informer(),
			"Ingress": f.Networking().V1().Ingresses().Informer(),
		}
		if g := p.c.gwInf[ns]; g != nil {
			infs["HTTPRoute"] = g.Gateway().V1().HTTPRoutes().Informer()
			infs["GRPCRoute"] = g.Gateway().V1().GRPCRoutes().Informer()
		}
		for kind, inf := range infs {
			on := p.onTarget(kind)
			if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: on, DeleteFunc: on}); err != nil {
				return fmt.Errorf("kube: %s informer: %w", kind, err)
			}
		}
	}
	return nil
}

// onTarget returns the handler of objects of a kind: a pass when a policy
// names the object.
func (p *policyController) onTarget(kind string) func(any) {
	return func(obj any) {
		key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err != nil {
			return
		}
		ns, name, _ := strings.Cut(key, "/")
		if (*p.targeted.Load())[policyTarget{Kind: kind, Namespace: ns, Name: name}] {
			p.kick()
		}
	}
}

func (p *policyController) run(ctx context.Context) {
	if !p.c.hasPols {
		<-ctx.Done()
		return
	}
	first := true
	for {
		retry := p.pass(ctx)
		if first {
			close(p.done)
			first = false
		}
		var again <-chan time.Time
		var t *time.Timer
		if retry {
			t = time.NewTimer(policyRetry)
			again = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kickCh:
		case <-again:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// pass reads every policy, resolves where each applies, swaps the index
// in, and (on the leader) writes the status that changed. It returns true
// when a status write failed and the pass should run again.
func (p *policyController) pass(ctx context.Context) (retry bool) {
	pols := p.list()
	res := resolvePolicies(pols, p.exists)
	p.targeted.Store(&res.targeted)
	if old := p.index.Load(); old.sig != res.index.sig {
		p.index.Store(res.index)
		p.log.Debug("traffic policies changed: translating routes again", "applied", len(res.index.byTarget))
		p.c.resyncRoutes()
	}
	if !p.c.Leading() {
		clear(p.written)
		return false
	}
	live := make(map[types.UID]bool, len(pols))
	for _, pol := range pols {
		live[pol.uid] = true
	}
	for uid := range p.written {
		if !live[uid] {
			delete(p.written, uid)
		}
	}
	for _, pol := range pols {
		if err := p.writeStatus(ctx, pol, res.verdicts[pol]); err != nil {
			if ctx.Err() != nil {
				return false
			}
			p.log.Warn("writing the status of a traffic policy", "policy", pol.key(), "err", err)
			retry = true
		}
	}
	return retry
}

// list decodes every policy in the informers' caches, oldest first (by
// creation time, then namespace/name: GEP-713's order of precedence).
func (p *policyController) list() []*trafficPolicy {
	var out []*trafficPolicy
	for _, inf := range p.pols {
		for _, obj := range inf.GetStore().List() {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				out = append(out, decodePolicy(u))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].created.Equal(out[j].created) {
			return out[i].created.Before(out[j].created)
		}
		return out[i].key() < out[j].key()
	})
	return out
}

// exists reports whether a target is in the informers' caches; when not,
// why may explain (an API the cluster does not serve).
func (p *policyController) exists(t policyTarget) (ok bool, why string) {
	f := p.factory(t.Namespace)
	if f == nil {
		return false, "its namespace is not watched"
	}
	var err error
	switch t.Kind {
	case "Service":
		_, err = f.Core().V1().Services().Lister().Services(t.Namespace).Get(t.Name)
	case "Ingress":
		_, err = f.Networking().V1().Ingresses().Lister().Ingresses(t.Namespace).Get(t.Name)
	case "HTTPRoute", "GRPCRoute":
		g := p.c.gwInf[t.Namespace]
		if g == nil {
			g = p.c.gwInf[metav1.NamespaceAll]
		}
		if g == nil {
			return false, "the Gateway API is not installed"
		}
		if t.Kind == "HTTPRoute" {
			_, err = g.Gateway().V1().HTTPRoutes().Lister().HTTPRoutes(t.Namespace).Get(t.Name)
		} else {
			_, err = g.Gateway().V1().GRPCRoutes().Lister().GRPCRoutes(t.Namespace).Get(t.Name)
		}
	default:
		return false, "not a kind a policy attaches to"
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err.Error()
	}
	return err == nil, ""
}

// factory is the informer factory that watches namespace ns.
func (p *policyController) factory(ns string) kubeinformers.SharedInformerFactory {
	if f := p.c.core[ns]; f != nil {
		return f
	}
	return p.c.core[metav1.NamespaceAll]
}

// apply merges into spec the policies attached to the route's origin and
// to the Services its backends name (see mergePolicy for the order).
func (p *policyController) apply(origin objectRef, backends []registry.ServiceKey, spec *config.RouteSpec) []string {
	idx := p.index.Load()
	if len(idx.byTarget) == 0 {
		return nil
	}
	var chain []*trafficPolicy
	add := func(t policyTarget) {
		if pol := idx.byTarget[t]; pol != nil && !slices.Contains(chain, pol) {
			chain = append(chain, pol)
		}
	}
	add(policyTarget{Kind: origin.Kind, Namespace: origin.Namespace, Name: origin.Name})
	for _, b := range backends {
		add(policyTarget{Kind: "Service", Namespace: b.Namespace, Name: b.Name})
	}
	var applied []string
	for _, pol := range chain {
		if mergePolicy(spec, pol.spec) {
			applied = append(applied, pol.key())
		}
	}
	return applied
}
