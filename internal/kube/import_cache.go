package kube

import (
	"errors"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Helpers over the shared informer caches, used by the importer and the
// exporter alike.

// sliceServiceIndex indexes EndpointSlices by "namespace/service" from
// their kubernetes.io/service-name label.
const sliceServiceIndex = "cairn.dev/service-name"

// syncFactory returns the informer factory that watches namespace ns, or
// nil when ns is not watched.
func syncFactory(c *Controller, ns string) kubeinformers.SharedInformerFactory {
	if f, ok := c.core[ns]; ok {
		return f
	}
	return c.core[metav1.NamespaceAll]
}

// addSliceIndex adds sliceServiceIndex to a slice informer once (the
// importer and the exporter share the informer).
func addSliceIndex(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[sliceServiceIndex]; ok {
		return nil
	}
	return inf.AddIndexers(cache.Indexers{sliceServiceIndex: func(obj any) ([]string, error) {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
			return nil, nil
		}
		return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
	}})
}

// watchServicesAndSlices calls fn with every Service and EndpointSlice
// added, changed (old and new) or deleted in the watched namespaces, and
// indexes the slices by Service.
func watchServicesAndSlices(c *Controller, fn func(obj any)) error {
	h := cache.ResourceEventHandlerFuncs{
		AddFunc: fn,
		// A slice whose service-name label changed concerns both Services.
		UpdateFunc: func(old, cur any) { fn(old); fn(cur) },
		DeleteFunc: fn,
	}
	for _, f := range c.core {
		if _, err := f.Core().V1().Services().Informer().AddEventHandler(h); err != nil {
			return err
		}
		sl := f.Discovery().V1().EndpointSlices().Informer()
		if err := addSliceIndex(sl); err != nil {
			return err
		}
		if _, err := sl.AddEventHandler(h); err != nil {
			return err
		}
	}
	return nil
}

// cachedSlices returns the EndpointSlices of a Service from the cache.
func cachedSlices(c *Controller, k registry.ServiceKey) []*discoveryv1.EndpointSlice {
	f := syncFactory(c, k.Namespace)
	if f == nil {
		return nil
	}
	objs, err := f.Discovery().V1().EndpointSlices().Informer().GetIndexer().ByIndex(sliceServiceIndex, k.String())
	if err != nil { // only when the index is missing, which setup rules out
		return nil
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*discoveryv1.EndpointSlice); ok {
			out = append(out, s)
		}
	}
	return out
}

// cachedService returns a Service from the cache, or nil.
func cachedService(c *Controller, k registry.ServiceKey) *corev1.Service {
	f := syncFactory(c, k.Namespace)
	if f == nil {
		return nil
	}
	s, err := f.Core().V1().Services().Lister().Services(k.Namespace).Get(k.Name)
	if err != nil { // not found is the only error a lister returns
		return nil
	}
	return s
}

// unwrapTombstone returns the object of a delete event, which may come
// wrapped when the watch missed the deletion.
func unwrapTombstone(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

// serviceKeyOf is the registry key of a Service, or of the Service an
// EndpointSlice belongs to; ok is false for anything else.
func serviceKeyOf(obj any) (registry.ServiceKey, bool) {
	switch o := unwrapTombstone(obj).(type) {
	case *corev1.Service:
		return registry.ServiceKey{Namespace: o.Namespace, Name: o.Name}, true
	case *discoveryv1.EndpointSlice:
		if n := o.Labels[discoveryv1.LabelServiceName]; n != "" {
			return registry.ServiceKey{Namespace: o.Namespace, Name: n}, true
		}
	}
	return registry.ServiceKey{}, false
}

// syncRegister registers a collector, or returns the one already
// registered under the same name (two controllers in one process, or the
// importer and exporter sharing a counter). With no registerer it returns
// c unregistered.
func syncRegister[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	if r == nil {
		return c, nil
	}
	err := r.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// newSyncQueue returns a work queue of registry service keys: a key added
// while queued is queued once (bursts of events coalesce), a key is worked
// on by one worker at a time, and a failed key is retried after a delay
// growing from 20ms to 30s.
func newSyncQueue() workqueue.TypedRateLimitingInterface[registry.ServiceKey] {
	return workqueue.NewTypedRateLimitingQueue(
		workqueue.NewTypedItemExponentialFailureRateLimiter[registry.ServiceKey](20*time.Millisecond, 30*time.Second))
}
