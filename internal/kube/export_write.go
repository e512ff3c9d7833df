package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// errNotLeading stops a reconcile when this replica does not (or no
// longer) hold the lease: only the leader writes.
var errNotLeading = errors.New("kube: not leading")

// exportRetry is an expected, already reported failure (a write that met
// a cache not yet up to date, a namespace that does not exist yet): it is
// retried without a warning.
type exportRetry struct{ err error }

func (e *exportRetry) Error() string { return e.err.Error() }
func (e *exportRetry) Unwrap() error { return e.err }

// exportFieldManager names Cairn in the objects' managedFields.
const exportFieldManager = "cairn"

// reconcile makes the Kubernetes objects of registry service k what the
// plan says, touching only objects labelled as Cairn's, and writing only
// what differs.
func (ex *exporter) reconcile(ctx context.Context, k registry.ServiceKey) error {
	if !ex.c.Leading() {
		return errNotLeading
	}
	plan, problem := ex.plan(k)
	if syncFactory(ex.c, k.Namespace) == nil {
		o := exportOutcome{}
		if plan != nil {
			o.problem = "namespace " + k.Namespace + " is not watched"
		}
		ex.record(k, o)
		return nil
	}
	cur := cachedService(ex.c, k)
	var ours []*discoveryv1.EndpointSlice
	for _, s := range cachedSlices(ex.c, k) {
		if sliceOwned(s) {
			ours = append(ours, s)
		}
	}

	if cur != nil && cur.Labels[config.LabelManagedBy] != ManagedByCairn {
		// Someone else's Service: left alone. Slices of Cairn's left from
		// before must not add endpoints to it.
		o := exportOutcome{}
		if plan != nil {
			o = exportOutcome{conflict: 1, problem: "a Service " + k.String() + " not managed by Cairn exists: left alone"}
		}
		ex.record(k, o)
		return ex.deleteSlices(ctx, ours)
	}
	if plan == nil {
		ex.record(k, exportOutcome{problem: problem})
		err := ex.deleteSlices(ctx, ours)
		if cur != nil {
			err = errors.Join(err, ex.deleteService(ctx, cur))
		}
		return err
	}
	svc, err := ex.writeService(ctx, k, cur, plan)
	if err != nil {
		return err
	}
	if err := ex.writeSlices(ctx, svc, ours, plan); err != nil {
		return err
	}
	ex.record(k, exportOutcome{exported: 1, endpoints: plan.endpoints, skipped: len(plan.skipped),
		problem: exportSummary(plan.skipped)})
	return nil
}

// writeService creates the Service or brings Cairn's fields of it back
// to the plan, and returns it as it now is.
func (ex *exporter) writeService(ctx context.Context, k registry.ServiceKey, cur *corev1.Service, plan *exportPlan) (*corev1.Service, error) {
	if !ex.c.Leading() {
		return nil, errNotLeading
	}
	api := ex.c.client.CoreV1().Services(k.Namespace)
	if cur == nil {
		want := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: k.Name, Namespace: k.Namespace, Labels: exportServiceLabels()},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: plan.ports},
		}
		svc, err := api.Create(ctx, want, metav1.CreateOptions{FieldManager: exportFieldManager})
		ex.m.write("services", "create", err)
		switch {
		case apierrors.IsNotFound(err):
			ex.record(k, exportOutcome{problem: "namespace " + k.Namespace + " does not exist"})
			return nil, &exportRetry{err}
		case apierrors.IsAlreadyExists(err):
			return nil, &exportRetry{err} // the cache has not seen it yet
		case err != nil:
			return nil, fmt.Errorf("create Service %s: %w", k, err)
		}
		return svc, nil
	}
	if cur.Spec.Type != corev1.ServiceTypeClusterIP || cur.Spec.ClusterIP == corev1.ClusterIPNone {
		// Changed to another type, or made headless (which cannot be
		// undone in place): start again.
		if err := ex.deleteService(ctx, cur); err != nil {
			return nil, err
		}
		return nil, &exportRetry{fmt.Errorf("Service %s had type %s: recreating it", k, cur.Spec.Type)}
	}
	if !exportServiceDiffers(cur, plan.ports) {
		return cur, nil
	}
	u := cur.DeepCopy()
	maps.Copy(u.Labels, exportServiceLabels())
	u.Spec.Selector = nil
	u.Spec.Ports = plan.ports
	svc, err := api.Update(ctx, u, metav1.UpdateOptions{FieldManager: exportFieldManager})
	ex.m.write("services", "update", err)
	switch {
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		return nil, &exportRetry{err}
	case err != nil:
		return nil, fmt.Errorf("update Service %s: %w", k, err)
	}
	return svc, nil
}

// exportServiceDiffers reports whether a Service's selector or ports are
// not what Cairn writes. Other fields (those the API server fills in,
// labels and annotations others add) are not Cairn's concern.
func exportServiceDiffers(cur *corev1.Service, ports []corev1.ServicePort) bool {
	if len(cur.Spec.Selector) > 0 || len(cur.Spec.Ports) != len(ports) {
		return true
	}
	for i, p := range ports {
		c := cur.Spec.Ports[i]
		if c.Name != p.Name || c.Port != p.Port || c.Protocol != p.Protocol || c.TargetPort != p.TargetPort ||
			!equality.Semantic.DeepEqual(c.AppProtocol, p.AppProtocol) || c.NodePort != 0 {
			return true
		}
	}
	return false
}

// writeSlices makes the Service's slices Cairn manages those of the plan.
func (ex *exporter) writeSlices(ctx context.Context, svc *corev1.Service, ours []*discoveryv1.EndpointSlice, plan *exportPlan) error {
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID, Controller: syncPtr(true)}
	have := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range ours {
		have[s.Name] = s
	}
	api := ex.c.client.DiscoveryV1().EndpointSlices(svc.Namespace)
	var errs []error
	for _, want := range plan.slices {
		want.OwnerReferences = []metav1.OwnerReference{owner}
		cur := have[want.Name]
		delete(have, want.Name)
		if cur != nil && cur.AddressType != want.AddressType { // immutable: replace it
			if err := ex.deleteSlices(ctx, []*discoveryv1.EndpointSlice{cur}); err != nil {
				errs = append(errs, err)
				continue
			}
			cur = nil
		}
		if !ex.c.Leading() {
			return errNotLeading
		}
		switch {
		case cur == nil:
			_, err := api.Create(ctx, want, metav1.CreateOptions{FieldManager: exportFieldManager})
			ex.m.write("endpointslices", "create", err)
			if apierrors.IsAlreadyExists(err) {
				err = &exportRetry{err}
			} else if err != nil {
				err = fmt.Errorf("create EndpointSlice %s/%s: %w", want.Namespace, want.Name, err)
			}
			errs = append(errs, err)
		case exportSliceDiffers(cur, want):
			u := cur.DeepCopy()
			maps.Copy(u.Labels, want.Labels)
			u.OwnerReferences, u.Endpoints, u.Ports = want.OwnerReferences, want.Endpoints, want.Ports
			_, err := api.Update(ctx, u, metav1.UpdateOptions{FieldManager: exportFieldManager})
			ex.m.write("endpointslices", "update", err)
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				err = &exportRetry{err}
			} else if err != nil {
				err = fmt.Errorf("update EndpointSlice %s/%s: %w", cur.Namespace, cur.Name, err)
			}
			errs = append(errs, err)
		}
	}
	var stale []*discoveryv1.EndpointSlice
	for _, s := range have {
		stale = append(stale, s)
	}
	return errors.Join(append(errs, ex.deleteSlices(ctx, stale))...)
}

// exportSliceDiffers reports whether a slice's labels, owner, ports or
// endpoints are not what Cairn writes.
func exportSliceDiffers(cur, want *discoveryv1.EndpointSlice) bool {
	for k, v := range want.Labels {
		if cur.Labels[k] != v {
			return true
		}
	}
	return !equality.Semantic.DeepEqual(cur.OwnerReferences, want.OwnerReferences) ||
		!equality.Semantic.DeepEqual(cur.Ports, want.Ports) ||
		!equality.Semantic.DeepEqual(cur.Endpoints, want.Endpoints)
}

// deleteSlices deletes EndpointSlices Cairn wrote. The preconditions make
// sure the object deleted is the one the cache showed.
func (ex *exporter) deleteSlices(ctx context.Context, list []*discoveryv1.EndpointSlice) error {
	var errs []error
	for _, s := range list {
		if !ex.c.Leading() {
			return errNotLeading
		}
		err := ex.c.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &s.UID, ResourceVersion: &s.ResourceVersion}})
		ex.m.write("endpointslices", "delete", err)
		switch {
		case err == nil || apierrors.IsNotFound(err):
		case apierrors.IsConflict(err):
			errs = append(errs, &exportRetry{err})
		default:
			errs = append(errs, fmt.Errorf("delete EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// deleteService deletes a Service Cairn wrote, as the cache showed it.
func (ex *exporter) deleteService(ctx context.Context, s *corev1.Service) error {
	if !ex.c.Leading() {
		return errNotLeading
	}
	err := ex.c.client.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &s.UID, ResourceVersion: &s.ResourceVersion}})
	ex.m.write("services", "delete", err)
	switch {
	case err == nil || apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		return &exportRetry{err}
	}
	return fmt.Errorf("delete Service %s/%s: %w", s.Namespace, s.Name, err)
}
