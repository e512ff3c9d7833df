package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/workqueue"
)

// exportWorkers is how many services are written to Kubernetes at once.
const exportWorkers = 4

// exporter writes registry services of other sources (Eureka, the API) to
// Kubernetes as selector-less Services with EndpointSlices, so that pods
// reach them through cluster DNS (Cairn → Kubernetes):
//
//	registry feed ──> state (every service and instance) ──key──> queue
//	Services / EndpointSlices Cairn manages (informers) ──key──> queue
//	queue ──> reconcile: planExport(state) vs the cached objects ──> create / update / delete
//
// Every replica follows the feed; only the leader writes, and a replica
// that becomes leader reconciles everything once.
type exporter struct {
	c     *Controller
	log   *slog.Logger
	reg   *registry.Registry
	rule  ExportRule
	queue workqueue.TypedRateLimitingInterface[registry.ServiceKey]
	done  chan struct{} // closed once the first desired set is known
	stop  chan struct{} // closed when run returns
	m     *exportMetrics

	mu    sync.Mutex
	state map[registry.ServiceKey]*exportState // the registry, as the feed tells it

	// Outcomes of reconciles: for the metrics, and so that a problem is
	// logged when it starts rather than at every event.
	omu      sync.Mutex
	outcomes map[registry.ServiceKey]exportOutcome
	totals   exportOutcome
}

// exportState is one registry service. Its values are the registry's
// immutable pointers; the maps are only touched under exporter.mu.
type exportState struct {
	svc   *registry.Service // nil until its event arrives
	insts map[string]*registry.Instance
}

// exportOutcome is what the last reconcile of a service did.
type exportOutcome struct {
	exported  int    // 1 when the Service is written
	endpoints int    // endpoints written
	skipped   int    // instances or ports left out
	conflict  int    // 1 when a Service of that name is not Cairn's
	problem   string // why the service is selected but not written, or what was left out
}

func newExporter(c *Controller) component {
	return &exporter{c: c, log: c.log.With("sync", "export"), reg: c.o.Registry, rule: c.o.Export,
		queue: newSyncQueue(), done: make(chan struct{}), stop: make(chan struct{}),
		state: map[registry.ServiceKey]*exportState{}, outcomes: map[registry.ServiceKey]exportOutcome{}}
}

func (ex *exporter) synced() <-chan struct{} { return ex.done }

// setup watches the Services and EndpointSlices Cairn manages (and
// Services named like a registry service, whose appearance is a conflict
// and whose deletion ends one), and arranges a full reconcile each time
// this replica becomes leader.
func (ex *exporter) setup() error {
	m, err := newExportMetrics(ex.c.o.Metrics)
	if err != nil {
		return fmt.Errorf("kube: export metrics: %w", err)
	}
	ex.m = m
	if err := watchServicesAndSlices(ex.c, ex.observe); err != nil {
		return fmt.Errorf("kube: export: %w", err)
	}
	ex.c.whenLeading(func() {
		select {
		case <-ex.done: // the desired set is known
		case <-ex.stop:
			return
		}
		select {
		case <-ex.stop: // stopped meanwhile: nothing to do, nothing to log
			return
		default:
		}
		ex.log.Info("leading: reconciling exported Services")
		ex.enqueueAll()
	})
	return nil
}

// observe queues the registry service an object concerns when Cairn
// manages the object or the registry has a service of that name.
func (ex *exporter) observe(obj any) {
	o := unwrapTombstone(obj)
	k, ok := serviceKeyOf(o)
	if !ok {
		return
	}
	if m, isMeta := o.(metav1.Object); isMeta && m.GetLabels()[config.LabelManagedBy] == ManagedByCairn {
		ex.queue.Add(k)
		return
	}
	ex.mu.Lock()
	_, known := ex.state[k]
	ex.mu.Unlock()
	if known {
		ex.queue.Add(k)
	}
}

// run follows the registry's feed until ctx ends, with workers writing
// what changed.
func (ex *exporter) run(ctx context.Context) {
	defer close(ex.stop)
	var wg sync.WaitGroup
	defer wg.Wait() // no worker outlives run
	go func() {
		<-ctx.Done()
		ex.queue.ShutDown()
	}()
	feed := ex.reg.Feed()
	rev := ex.resync()
	cursor := feed.Subscribe(rev)
	defer cursor.Close()
	close(ex.done)
	for range exportWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ex.next(ctx) {
			}
		}()
	}
	for {
		evs, _, notify, err := feed.Since(rev, 0)
		if errors.Is(err, registry.ErrCompacted) {
			// Fell behind the feed: start again from a snapshot.
			rev = ex.resync()
			cursor.Set(rev)
			continue
		}
		if len(evs) > 0 {
			ex.apply(evs)
			rev = evs[len(evs)-1].Revision
			cursor.Set(rev)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-notify:
		}
	}
}

// resync replaces the state with a snapshot of the registry, queues
// every service (and every object Cairn manages, in case its service is
// gone) and returns the snapshot's revision.
func (ex *exporter) resync() int64 {
	snap := ex.reg.Snapshot(registry.Filter{})
	state := make(map[registry.ServiceKey]*exportState, len(snap.Services))
	for _, s := range snap.Services {
		state[s.Key()] = &exportState{svc: s, insts: map[string]*registry.Instance{}}
	}
	for _, in := range snap.Instances {
		k := in.Key().ServiceKey()
		if state[k] == nil {
			state[k] = &exportState{insts: map[string]*registry.Instance{}}
		}
		state[k].insts[in.ID] = in
	}
	ex.mu.Lock()
	old := ex.state
	ex.state = state
	ex.mu.Unlock()
	for k := range old {
		ex.queue.Add(k)
	}
	ex.enqueueAll()
	return snap.Revision
}

// apply folds a batch of feed events into the state and queues the
// services they touched.
func (ex *exporter) apply(evs []registry.Event) {
	dirty := map[registry.ServiceKey]bool{}
	ex.mu.Lock()
	entry := func(k registry.ServiceKey) *exportState {
		st := ex.state[k]
		if st == nil {
			st = &exportState{insts: map[string]*registry.Instance{}}
			ex.state[k] = st
		}
		return st
	}
	for i := range evs {
		ev := &evs[i]
		switch {
		case ev.Kind == registry.KindService && ev.Service != nil:
			k := ev.Service.Key()
			if ev.Type == registry.EventDeleted {
				delete(ex.state, k)
			} else {
				entry(k).svc = ev.Service
			}
			dirty[k] = true
		case ev.Kind == registry.KindInstance && ev.Instance != nil:
			k := ev.Instance.Key().ServiceKey()
			if ev.Type == registry.EventDeleted {
				if st := ex.state[k]; st != nil {
					delete(st.insts, ev.Instance.ID)
				}
			} else {
				entry(k).insts[ev.Instance.ID] = ev.Instance
			}
			dirty[k] = true
		}
	}
	ex.mu.Unlock()
	for k := range dirty {
		ex.queue.Add(k)
	}
}

// enqueueAll queues every registry service and every service of an
// object Cairn manages.
func (ex *exporter) enqueueAll() {
	ex.mu.Lock()
	keys := slices.Collect(maps.Keys(ex.state))
	ex.mu.Unlock()
	managed := labels.SelectorFromSet(labels.Set{config.LabelManagedBy: ManagedByCairn})
	for _, f := range ex.c.core {
		svcs, _ := f.Core().V1().Services().Lister().List(managed) // listers do not fail
		for _, s := range svcs {
			keys = append(keys, registry.ServiceKey{Namespace: s.Namespace, Name: s.Name})
		}
		sls, _ := f.Discovery().V1().EndpointSlices().Lister().List(managed)
		for _, s := range sls {
			if k, ok := serviceKeyOf(s); ok {
				keys = append(keys, k)
			}
		}
	}
	for _, k := range keys {
		ex.queue.Add(k)
	}
}

// plan computes what service k should be in Kubernetes: nil when it is
// not to be exported, with a problem to report when it is selected but
// cannot be.
func (ex *exporter) plan(k registry.ServiceKey) (*exportPlan, string) {
	ex.mu.Lock()
	st := ex.state[k]
	var insts map[string]*registry.Instance
	if st != nil && ex.rule.selects(k, st.svc, st.insts) {
		insts = maps.Clone(st.insts) // planned outside the lock: the feed keeps going
	}
	ex.mu.Unlock()
	if insts == nil {
		return nil, ""
	}
	return planExport(k, insts)
}

// next works on one key; it returns false once the queue is shut down.
func (ex *exporter) next(ctx context.Context) bool {
	k, quit := ex.queue.Get()
	if quit {
		return false
	}
	defer ex.queue.Done(k)
	err := ex.reconcile(ctx, k)
	switch {
	case err == nil || errors.Is(err, errNotLeading):
		// Not leading: nothing to retry, becoming leader reconciles all.
		ex.queue.Forget(k)
	case ctx.Err() != nil:
	default:
		ex.m.errors.Inc()
		if !exportQuiet(err) {
			ex.log.Warn("export failed, will retry", "service", k.String(), "err", err)
		}
		ex.queue.AddRateLimited(k)
	}
	return true
}

// record keeps the outcome of a reconcile for the metrics and logs a
// problem when it appears or changes.
func (ex *exporter) record(k registry.ServiceKey, o exportOutcome) {
	ex.omu.Lock()
	old := ex.outcomes[k]
	if o == (exportOutcome{}) {
		delete(ex.outcomes, k)
	} else {
		ex.outcomes[k] = o
	}
	t := &ex.totals
	t.exported += o.exported - old.exported
	t.endpoints += o.endpoints - old.endpoints
	t.skipped += o.skipped - old.skipped
	t.conflict += o.conflict - old.conflict
	totals := *t
	ex.omu.Unlock()

	ex.m.services.Set(float64(totals.exported))
	ex.m.endpoints.Set(float64(totals.endpoints))
	ex.m.skipped.Set(float64(totals.skipped))
	ex.m.conflicts.Set(float64(totals.conflict))
	switch {
	case o.problem != "" && o.problem != old.problem:
		ex.log.Warn("registry service not fully exported", "service", k.String(), "problem", o.problem)
	case o.exported == 1 && old.exported == 0:
		ex.log.Info("exported to Kubernetes", "service", k.String(), "endpoints", o.endpoints)
	case o.exported == 0 && old.exported == 1:
		ex.log.Info("no longer exported to Kubernetes", "service", k.String())
	}
}

// sliceOwned reports whether Cairn wrote an EndpointSlice.
func sliceOwned(s *discoveryv1.EndpointSlice) bool {
	return s.Labels[config.LabelManagedBy] == ManagedByCairn && s.Labels[discoveryv1.LabelManagedBy] == exportSliceController
}

// exportQuiet reports whether every error in err is an expected
// exportRetry, to be retried without a warning.
func exportQuiet(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !exportQuiet(e) {
				return false
			}
		}
		return true
	}
	var r *exportRetry
	return errors.As(err, &r)
}
