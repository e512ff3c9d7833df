package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/workqueue"
)

// importReleaseRetry is how often the importer looks again at a registry
// service whose Kubernetes Service is gone but which instances of other
// sources still hold (it is deleted once they are gone).
const importReleaseRetry = time.Minute

// importer mirrors Kubernetes Services and their EndpointSlices into the
// registry (Kubernetes → Cairn):
//
//	Service / EndpointSlice events ──key ns/name──> queue ──one at a time──> reconcile
//	reconcile: desired (mapService of the cached objects) vs the registry's
//	           source-"kubernetes" instances ──> Upsert / Deregister
//
// Events only name the Service to look at; the reconcile reads the whole
// current state from the caches, so a burst of slice updates costs one
// pass and nothing depends on the order events arrive in. Instances of
// other sources in the same registry service are never touched.
type importer struct {
	c     *Controller
	log   *slog.Logger
	reg   *registry.Registry
	queue workqueue.TypedRateLimitingInterface[registry.ServiceKey]
	done  chan struct{}
	m     *importMetrics

	// What each imported Service gave, for the metrics and so that a
	// problem is logged when it appears rather than at every event.
	mu                        sync.Mutex
	status                    map[registry.ServiceKey]importStatus
	instances, droppedEntries int
}

type importStatus struct {
	instances int
	dropped   []string
}

func newImporter(c *Controller) component {
	return &importer{c: c, log: c.log.With("sync", "import"), reg: c.o.Registry, queue: newSyncQueue(),
		done: make(chan struct{}), status: map[registry.ServiceKey]importStatus{}}
}

func (im *importer) synced() <-chan struct{} { return im.done }

// setup registers handlers on the Service and EndpointSlice informers of
// every watched namespace.
func (im *importer) setup() error {
	m, err := newImportMetrics(im.c.o.Metrics)
	if err != nil {
		return fmt.Errorf("kube: import metrics: %w", err)
	}
	im.m = m
	if err := watchServicesAndSlices(im.c, im.enqueue); err != nil {
		return fmt.Errorf("kube: import: %w", err)
	}
	return nil
}

func (im *importer) enqueue(obj any) {
	if k, ok := serviceKeyOf(obj); ok {
		im.queue.Add(k)
	}
}

// run makes a first full pass, says it is in sync, then follows the
// queue until ctx ends.
func (im *importer) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		im.queue.ShutDown()
	}()
	im.firstPass(ctx)
	close(im.done)
	for im.next(ctx) {
	}
}

// firstPass reconciles every Service in the caches and every registry
// service the importer made or imported into (a persisted registry keeps
// them across restarts): those Kubernetes no longer has are removed.
// Events queued meanwhile are worked on afterwards and find nothing to do.
func (im *importer) firstPass(ctx context.Context) {
	keys := map[registry.ServiceKey]bool{}
	for _, f := range im.c.core {
		svcs, _ := f.Core().V1().Services().Lister().List(labels.Everything()) // a lister does not fail
		for _, s := range svcs {
			keys[registry.ServiceKey{Namespace: s.Namespace, Name: s.Name}] = true
		}
	}
	namespaces := im.c.o.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{""} // every namespace
	}
	for _, ns := range namespaces {
		insts, _ := im.reg.Instances(registry.Filter{Namespace: ns, Source: Source})
		for _, in := range insts {
			keys[in.Key().ServiceKey()] = true
		}
		svcs, _ := im.reg.Services(registry.Filter{Namespace: ns})
		for _, s := range svcs {
			if importOwned(s.Service) {
				keys[s.Key()] = true
			}
		}
	}
	// Several Services at a time (each still by one goroutine): a cold
	// start of a large cluster is bound by the registry log's flushes,
	// which concurrent writes share.
	work := make(chan registry.ServiceKey)
	var wg sync.WaitGroup
	for range importFirstPassWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				if err := im.reconcile(ctx, k); err != nil {
					im.retry(k, err)
				}
			}
		}()
	}
	for _, k := range slices.SortedFunc(maps.Keys(keys), compareKeys) {
		if ctx.Err() != nil {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	im.mu.Lock()
	services, instances := len(im.status), im.instances
	im.mu.Unlock()
	im.log.Info("imported Kubernetes Services", "services", services, "instances", instances)
}

func compareKeys(a, b registry.ServiceKey) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

// next works on one key; it returns false once the queue is shut down.
func (im *importer) next(ctx context.Context) bool {
	k, quit := im.queue.Get()
	if quit {
		return false
	}
	defer im.queue.Done(k)
	if err := im.reconcile(ctx, k); err != nil {
		im.retry(k, err)
		return true
	}
	im.queue.Forget(k)
	return true
}

func (im *importer) retry(k registry.ServiceKey, err error) {
	im.m.errors.Inc()
	im.log.Warn("import failed, will retry", "service", k.String(), "err", err)
	im.queue.AddRateLimited(k)
}

// reconcile makes the registry's source-"kubernetes" instances of one
// service what the cached Service and EndpointSlices say. Input the
// registry rejects is left out and logged, not retried; a registry that
// cannot write is retried.
func (im *importer) reconcile(ctx context.Context, k registry.ServiceKey) error {
	var want importedService
	exists := false
	if svc := cachedService(im.c, k); svc != nil {
		if why := importSkipReason(svc); why != "" {
			if svc.Labels[config.LabelManagedBy] != ManagedByCairn { // Cairn's own: expected, not worth a line
				im.log.Debug("not imported", "service", k.String(), "reason", why)
			}
		} else {
			exists = true
			want = mapService(svc, cachedSlices(im.c, k))
		}
	}

	all, _ := im.reg.Instances(registry.Filter{Namespace: k.Namespace, Service: k.Name})
	ours := map[string]*registry.Instance{}
	others := map[string]bool{}
	for _, in := range all {
		if in.Source == Source {
			ours[in.ID] = in
		} else {
			others[in.ID] = true
		}
	}

	var errs []error
	var fe *registry.FieldError
	if exists {
		if err := im.putService(ctx, k, want.meta, len(others) > 0); errors.As(err, &fe) {
			want.dropped = append(want.dropped, "service metadata: "+fe.Error())
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	// The writes of one pass run concurrently: the registry's log makes
	// concurrent writes durable together, so a Service's endpoints cost
	// about one disk flush rather than one each.
	w := &importWrites{}
	for _, id := range slices.Sorted(maps.Keys(want.instances)) {
		in := want.instances[id]
		if others[id] {
			want.dropped = append(want.dropped, "instance "+id+": an instance of another source has this id")
			continue
		}
		if old := ours[id]; old != nil && sameImport(old, &in) {
			w.imported.Add(1)
			continue
		}
		w.run(func() error {
			if _, _, _, err := im.reg.Upsert(ctx, in); err != nil {
				return fmt.Errorf("register %s: %w", in.Key(), err)
			}
			w.imported.Add(1)
			return nil
		})
	}
	for id, old := range ours {
		if _, keep := want.instances[id]; keep {
			continue
		}
		w.run(func() error {
			if _, err := im.reg.Deregister(ctx, old.Key()); err != nil && !errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("deregister %s: %w", old.Key(), err)
			}
			return nil
		})
	}
	for _, err := range w.wait() {
		if errors.As(err, &fe) { // input the registry rejects: retrying will not help
			want.dropped = append(want.dropped, err.Error())
		} else {
			errs = append(errs, err)
		}
	}
	slices.Sort(want.dropped) // concurrent writes fail in any order
	imported := int(w.imported.Load())
	if !exists {
		pending, err := im.releaseService(ctx, k)
		if err != nil {
			errs = append(errs, err)
		} else if pending {
			im.queue.AddAfter(k, importReleaseRetry)
		}
	}
	im.record(k, exists, imported, want.dropped)
	return errors.Join(errs...)
}

// importOwned reports whether a registry service was made by the importer.
func importOwned(s *registry.Service) bool {
	return s.Explicit && s.Metadata[importMetaSource] == Source
}

// putService makes the registry service explicit (it exists as long as
// the Kubernetes Service does, even with no ready endpoint) and gives it
// the Service's labels and annotations, unless the service belongs to
// someone else: one created through the API, or one that instances of
// other sources made before the Service existed. Their metadata is theirs.
func (im *importer) putService(ctx context.Context, k registry.ServiceKey, meta map[string]string, shared bool) error {
	var tags []string
	if cur, _, err := im.reg.Service(k); err == nil {
		if !importOwned(cur) && (cur.Explicit || shared) {
			return nil
		}
		tags = cur.Tags // tags set through the API stay
	}
	_, _, err := im.reg.PutService(ctx, registry.Service{Namespace: k.Namespace, Name: k.Name, Metadata: meta, Tags: tags})
	if err != nil {
		return fmt.Errorf("put service %s: %w", k, err)
	}
	return nil
}

// releaseService deletes the registry service the importer made for a
// Service that is gone. When instances of other sources still hold it,
// it keeps only the marker and reports pending: it is deleted once they
// are gone.
func (im *importer) releaseService(ctx context.Context, k registry.ServiceKey) (pending bool, err error) {
	cur, _, err := im.reg.Service(k)
	if err != nil || !importOwned(cur) {
		return false, nil
	}
	_, err = im.reg.DeleteService(ctx, k, false)
	switch {
	case err == nil || errors.Is(err, registry.ErrNotFound):
		return false, nil
	case errors.Is(err, registry.ErrHasInstances):
		_, _, err = im.reg.PutService(ctx, registry.Service{Namespace: k.Namespace, Name: k.Name,
			Metadata: map[string]string{importMetaSource: Source}, Tags: cur.Tags})
		if err != nil {
			return false, fmt.Errorf("put service %s: %w", k, err)
		}
		return true, nil
	}
	return false, fmt.Errorf("delete service %s: %w", k, err)
}

// sameImport reports whether registering b over a would change nothing.
func sameImport(a, b *registry.Instance) bool {
	return a.Address == b.Address && slices.Equal(a.Ports, b.Ports) && a.Zone == b.Zone &&
		a.Region == b.Region && a.Cluster == b.Cluster && a.Weight == b.Weight &&
		maps.Equal(a.Metadata, b.Metadata) && slices.Equal(a.Tags, b.Tags) && a.Source == b.Source &&
		a.Status == b.Status && a.TTL == b.TTL && a.Check == nil && b.Check == nil
}

// record keeps what a reconcile imported for the metrics, and logs what it
// left out when that changes.
func (im *importer) record(k registry.ServiceKey, exists bool, imported int, dropped []string) {
	im.mu.Lock()
	old, had := im.status[k]
	if exists {
		im.status[k] = importStatus{instances: imported, dropped: dropped}
	} else {
		delete(im.status, k)
		imported, dropped = 0, nil
	}
	im.instances += imported - old.instances
	im.droppedEntries += len(dropped) - len(old.dropped)
	services, instances, droppedEntries := len(im.status), im.instances, im.droppedEntries
	im.mu.Unlock()

	im.m.services.Set(float64(services))
	im.m.instances.Set(float64(instances))
	im.m.dropped.Set(float64(droppedEntries))
	switch {
	case len(dropped) > 0 && !slices.Equal(dropped, old.dropped):
		im.log.Warn("parts of a Service left out of the registry", "service", k.String(), "left_out", dropped)
	case had && !exists:
		im.log.Debug("Service removed from the registry", "service", k.String())
	case !had && exists:
		im.log.Debug("Service imported", "service", k.String(), "instances", imported)
	}
}

// importParallel bounds the registry writes of one reconcile in flight;
// importFirstPassWorkers is how many Services the first pass reconciles
// at once.
const (
	importParallel         = 32
	importFirstPassWorkers = 8
)

// importWrites runs registry writes concurrently, at most importParallel
// at a time, and collects their errors.
type importWrites struct {
	wg       sync.WaitGroup
	sem      chan struct{}
	mu       sync.Mutex
	errs     []error
	imported atomic.Int64
}

func (w *importWrites) run(fn func() error) {
	if w.sem == nil {
		w.sem = make(chan struct{}, importParallel)
	}
	w.sem <- struct{}{}
	w.wg.Add(1)
	go func() {
		defer func() { <-w.sem; w.wg.Done() }()
		if err := fn(); err != nil {
			w.mu.Lock()
			w.errs = append(w.errs, err)
			w.mu.Unlock()
		}
	}()
}

func (w *importWrites) wait() []error {
	w.wg.Wait()
	return w.errs
}
