// Package kube connects Cairn's registry to a Kubernetes cluster:
//
//	Services + EndpointSlices ──import──> registry (source "kubernetes")
//	registry services (Eureka, API) ──export──> selector-less Services + EndpointSlices
//	Ingress, Gateway + HTTPRoute, TrafficPolicy ──routes──> Route documents ──> gateways
//
// It reads through client-go's shared informers (no resync: every change
// arrives as an event, and a restart lists everything again). Reads go into
// every replica's registry; writes to Kubernetes (exported Services and
// EndpointSlices, status of Ingresses, Gateways, HTTPRoutes and policies)
// come from one replica at a time, the holder of a coordination.k8s.io
// Lease.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
)

// Source is the registry source of instances imported from Kubernetes.
const Source = "kubernetes"

// Options configure a Controller.
type Options struct {
	Registry *registry.Registry
	// Config reaches the API server; see RESTConfig.
	Config *rest.Config
	// Namespaces limits what is watched (and needs only namespaced RBAC);
	// empty means the whole cluster.
	Namespaces []string

	// Export decides which registry services are written to Kubernetes.
	Export ExportRule

	// IngressClass is the ingressClassName (or kubernetes.io/ingress.class
	// annotation) of Ingresses Cairn serves (default "cairn").
	IngressClass string
	// GatewayController is the controllerName of GatewayClasses Cairn
	// serves (default "cairn.dev/gateway-controller").
	GatewayController string
	// StatusAddress is the gateway's address as clients reach it (an IP
	// or host name), written to Ingress and Gateway status. Empty: none.
	StatusAddress string

	// Leader election: the Lease LeaseNamespace/LeaseName, held by
	// Identity (default: the host name).
	LeaseNamespace string
	LeaseName      string
	Identity       string
	LeaseDuration  time.Duration // default 15s
	RenewDeadline  time.Duration // default 10s
	RetryPeriod    time.Duration // default 2s

	Logger  *slog.Logger
	Metrics prometheus.Registerer
}

// ExportRule opts registry services into being written to Kubernetes.
// A service is exported when its namespace is listed, or its name starts
// with one of the prefixes, or its metadata has Label=true ("cairn.dev/
// export" by default). An empty rule exports nothing.
type ExportRule struct {
	Namespaces []string
	Prefixes   []string
	Label      string
}

func (o *Options) defaults() error {
	if o.Registry == nil || o.Config == nil {
		return errors.New("kube: Registry and Config are required")
	}
	if o.IngressClass == "" {
		o.IngressClass = "cairn"
	}
	if o.GatewayController == "" {
		o.GatewayController = "cairn.dev/gateway-controller"
	}
	if o.LeaseName == "" {
		o.LeaseName = "cairn-controller"
	}
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = podNamespace(o.Namespaces)
	}
	if o.Identity == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("kube: leader election identity: %w", err)
		}
		o.Identity = h
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline <= 0 {
		o.RenewDeadline = 10 * time.Second
	}
	if o.RetryPeriod <= 0 {
		o.RetryPeriod = 2 * time.Second
	}
	if o.Export.Label == "" {
		o.Export.Label = "cairn.dev/export"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// podNamespace is the namespace Cairn runs in when in a cluster, else the
// first watched namespace, else "default".
func podNamespace(watched []string) string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
		return string(b)
	}
	if len(watched) > 0 {
		return watched[0]
	}
	return "default"
}

// RESTConfig returns the configuration to reach the API server: from the
// kubeconfig file when one is given (or $KUBECONFIG is set), else the
// in-cluster service account.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	if kubeconfig == "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("not in a cluster and no --kubeconfig: %w", err)
		}
		return c, nil
	}
	c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return c, nil
}

// Controller runs the sync in both directions and the route controllers.
type Controller struct {
	o      Options
	log    *slog.Logger
	client kubernetes.Interface

	leading  atomic.Bool
	leaderMu sync.Mutex
	onLead   []func() // called (on their own goroutine) when this replica starts leading

	gw  gatewayclient.Interface // nil when the cluster has no Gateway API CRDs
	dyn dynamic.Interface

	// Informer factories: one cluster-wide, or one per watched namespace.
	core    map[string]kubeinformers.SharedInformerFactory
	gwInf   map[string]gwinformers.SharedInformerFactory
	dynInf  map[string]dynamicinformer.DynamicSharedInformerFactory
	hasGW   bool // the Gateway API CRDs are served
	hasPols bool // Cairn's TrafficPolicy CRD is served

	components []component
	ready      chan struct{}

	// policies applies TrafficPolicies to the routes made from Ingresses
	// and HTTPRoutes (set by newPolicies); resyncRoutes asks the route
	// controller to translate everything again, as after a policy change
	// (set by newRoutes).
	policies     routePolicies
	resyncRoutes func()
}

// objectRef names a Kubernetes object.
type objectRef struct {
	Group, Kind, Namespace, Name string
}

// routePolicies is what the route controllers ask of the TrafficPolicy
// controller.
type routePolicies interface {
	// apply merges into spec the policies attached to the route's origin
	// (an HTTPRoute or Ingress) and to the Services its backends name, and
	// returns the namespace/name of each policy it applied.
	apply(origin objectRef, backends []registry.ServiceKey, spec *config.RouteSpec) []string
}

// A component is one part of the sync. setup registers its informers and
// handlers before the factories start; run works once every cache has
// synced, until ctx ends; synced is closed when its first full pass is
// done (Ready waits for all of them).
type component interface {
	setup() error
	run(ctx context.Context)
	synced() <-chan struct{}
}

// New checks the options and makes the clients; Run starts the work.
func New(o Options) (*Controller, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(o.Config)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "cairn"
	}
	// client-go's default (5 requests/s, bursts of 10) would take minutes
	// to export a thousand services after a leader change.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	gw, err := gatewayclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	c := &Controller{o: o, log: o.Logger.With("component", "kubernetes"), client: cs, gw: gw, dyn: dyn,
		core: map[string]kubeinformers.SharedInformerFactory{}, gwInf: map[string]gwinformers.SharedInformerFactory{},
		dynInf: map[string]dynamicinformer.DynamicSharedInformerFactory{}, ready: make(chan struct{})}
	c.resyncRoutes = func() {}
	c.components = []component{newImporter(c), newExporter(c), newPolicies(c), newRoutes(c)}
	return c, nil
}

// Ready is closed once the informers have synced and the first import is
// in the registry.
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// Leading reports whether this replica holds the lease and so writes to
// Kubernetes.
func (c *Controller) Leading() bool { return c.leading.Load() }

// whenLeading registers fn to run each time this replica starts leading.
func (c *Controller) whenLeading(fn func()) {
	c.leaderMu.Lock()
	c.onLead = append(c.onLead, fn)
	c.leaderMu.Unlock()
}

// Run works until ctx ends. It returns an error only when it cannot start.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.discover(ctx); err != nil {
		return err
	}
	namespaces := c.o.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		c.core[ns] = kubeinformers.NewSharedInformerFactoryWithOptions(c.client, 0, kubeinformers.WithNamespace(ns),
			kubeinformers.WithTransform(dropManagedFields))
		if c.hasGW {
			c.gwInf[ns] = gwinformers.NewSharedInformerFactoryWithOptions(c.gw, 0, gwinformers.WithNamespace(ns),
				gwinformers.WithTransform(dropManagedFields))
		}
		if c.hasPols {
			c.dynInf[ns] = dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.dyn, 0, ns, nil)
		}
	}
	for _, comp := range c.components {
		if err := comp.setup(); err != nil {
			return err
		}
	}
	for ns := range c.core {
		c.core[ns].Start(ctx.Done())
		if f := c.gwInf[ns]; f != nil {
			f.Start(ctx.Done())
		}
		if f := c.dynInf[ns]; f != nil {
			f.Start(ctx.Done())
		}
	}
	for ns := range c.core {
		for typ, ok := range c.core[ns].WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("kube: cache of %v did not sync", typ)
			}
		}
		if f := c.gwInf[ns]; f != nil {
			for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
				if !ok {
					return fmt.Errorf("kube: cache of %v did not sync", typ)
				}
			}
		}
		if f := c.dynInf[ns]; f != nil {
			for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
				if !ok {
					return fmt.Errorf("kube: cache of %v did not sync", typ)
				}
			}
		}
	}
	var wg sync.WaitGroup
	for _, comp := range c.components {
		wg.Add(1)
		go func() {
			defer wg.Done()
			comp.run(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.runLeaderElection(ctx)
	}()
	go func() {
		for _, comp := range c.components {
			select {
			case <-comp.synced():
			case <-ctx.Done():
				return
			}
		}
		c.log.Info("in sync with Kubernetes", "namespaces", namespaces, "gatewayAPI", c.hasGW, "trafficPolicies", c.hasPols)
		close(c.ready)
	}()
	<-ctx.Done()
	wg.Wait()
	return nil
}

// dropManagedFields strips server-side-apply bookkeeping from cached
// objects: nothing here reads it, and it is often the larger part of an
// EndpointSlice.
func dropManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// served reports whether the API server serves a resource of a group
// version.
func (c *Controller) served(gv, resource string) (bool, error) {
	list, err := c.client.Discovery().ServerResourcesForGroupVersion(gv)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kube: discovery of %s: %w", gv, err)
	}
	for _, r := range list.APIResources {
		if r.Name == resource {
			return true, nil
		}
	}
	return false, nil
}

// discover finds which optional APIs the cluster serves: the Gateway API
// and Cairn's TrafficPolicy CRD. Without them, their controllers stay off
// (a restart picks up CRDs installed later).
func (c *Controller) discover(ctx context.Context) error {
	var err error
	if c.hasGW, err = c.served(gatewayv1.GroupVersion.String(), "httproutes"); err != nil {
		return err
	}
	if c.hasPols, err = c.served(PolicyGroupVersion.String(), PolicyResource); err != nil {
		return err
	}
	if !c.hasGW {
		c.log.Info("the Gateway API CRDs are not installed: Gateways and HTTPRoutes are not served")
	}
	if !c.hasPols {
		c.log.Info("the TrafficPolicy CRD is not installed: traffic policies are not served")
	}
	return nil
}

// runLeaderElection campaigns for the Lease until ctx ends, again after
// each loss. The lease is released on a clean stop, so another replica
// takes over within its retry period rather than the lease duration.
func (c *Controller) runLeaderElection(ctx context.Context) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaName(c.o.LeaseNamespace, c.o.LeaseName),
		Client:     c.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.o.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   c.o.LeaseDuration,
			RenewDeadline:   c.o.RenewDeadline,
			RetryPeriod:     c.o.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            c.o.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					c.leading.Store(true)
					c.log.Info("leading: this replica writes to Kubernetes", "lease", c.o.LeaseNamespace+"/"+c.o.LeaseName, "identity", c.o.Identity)
					c.leaderMu.Lock()
					fns := append([]func(){}, c.onLead...)
					c.leaderMu.Unlock()
					for _, fn := range fns {
						go fn()
					}
				},
				OnStoppedLeading: func() {
					if c.leading.Swap(false) {
						c.log.Info("stopped leading", "identity", c.o.Identity)
					}
				},
				OnNewLeader: func(id string) {
					if id != c.o.Identity {
						c.log.Info("leader elected", "leader", id)
					}
				},
			},
		})
		if err != nil {
			c.log.Error("leader election", "err", err)
			return
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends
		c.leading.Store(false)
		select {
		case <-ctx.Done():
		case <-time.After(c.o.RetryPeriod):
		}
	}
}
