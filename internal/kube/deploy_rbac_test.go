package kube

// The chart's RBAC against what the controller does: the API server's
// authorizer answers for each permission (SubjectAccessReview), the chart
// grants nothing else, and a controller running as the chart's
// ServiceAccount (impersonated) gets in sync and leads without a single
// forbidden request.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/kube/kubetest"
	"github.com/cairnhq/cairn/internal/registry"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Where a permission applies.
const (
	watchedScope = "watched namespaces" // a Role in each, or the ClusterRole
	clusterScope = "cluster"            // cluster-scoped kinds: always the ClusterRole
	leaseScope   = "release namespace"  // the leader-election Role
)

type permission struct {
	group, resource string // resource may be "kind/subresource"
	verbs           []string
	scope           string
}

// controllerPermissions is everything the controller may do (deploy/README.md
// gives the reason for each).
var controllerPermissions = func() []permission {
	read := []string{"get", "list", "watch"}
	all := []string{"get", "list", "watch", "create", "update", "delete"}
	status := []string{"update"}
	const gw = "gateway.networking.k8s.io"
	return []permission{
		{"", "services", all, watchedScope},
		{"discovery.k8s.io", "endpointslices", all, watchedScope},
		{"networking.k8s.io", "ingresses", read, watchedScope},
		{"networking.k8s.io", "ingresses/status", status, watchedScope},
		{gw, "gateways", read, watchedScope},
		{gw, "httproutes", read, watchedScope},
		{gw, "grpcroutes", read, watchedScope},
		{gw, "referencegrants", read, watchedScope},
		{gw, "gateways/status", status, watchedScope},
		{gw, "httproutes/status", status, watchedScope},
		{gw, "grpcroutes/status", status, watchedScope},
		{"cairn.dev", "trafficpolicies", read, watchedScope},
		{"cairn.dev", "trafficpolicies/status", []string{"patch"}, watchedScope},
		{"", "namespaces", read, clusterScope},
		{"networking.k8s.io", "ingressclasses", read, clusterScope},
		{gw, "gatewayclasses", read, clusterScope},
		{gw, "gatewayclasses/status", status, clusterScope},
		{"coordination.k8s.io", "leases", []string{"get", "create", "update"}, leaseScope},
	}
}()

// A few of the things the controller must not be able to do.
var deniedRequests = []authorizationv1.ResourceAttributes{
	{Verb: "get", Resource: "secrets"},
	{Verb: "list", Resource: "secrets"},
	{Verb: "list", Resource: "configmaps"},
	{Verb: "create", Resource: "pods"},
	{Verb: "create", Resource: "pods", Subresource: "exec"},
	{Verb: "list", Group: "apps", Resource: "deployments"},
	{Verb: "update", Group: "networking.k8s.io", Resource: "ingresses"},
	{Verb: "update", Group: "gateway.networking.k8s.io", Resource: "httproutes"},
	{Verb: "delete", Group: "cairn.dev", Resource: "trafficpolicies"},
	{Verb: "delete", Resource: "namespaces"},
	{Verb: "list", Resource: "nodes"},
	{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
	{Verb: "create", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
	{Verb: "impersonate", Resource: "serviceaccounts"},
}

func TestRBACCoversControllerWholeCluster(t *testing.T) { testRBAC(t, false) }
func TestRBACCoversControllerNamespaces(t *testing.T)   { testRBAC(t, true) }

func testRBAC(t *testing.T, namespaced bool) {
	releaseNS := testNamespace(t)
	release := fmt.Sprintf("rbac%d", nsSeq.Add(1))
	values := ""
	var watched []string
	if namespaced {
		watched = []string{testNamespace(t), testNamespace(t)}
		values = fmt.Sprintf("kubernetes: {namespaces: [%s, %s]}", watched[0], watched[1])
	}
	objs := renderChart(t, release, releaseNS, values)
	fullname := release + "-cairn"
	leaseName := fullname + "-controller"

	// The chart grants exactly the permissions above, each where it belongs.
	checkRulesGranted(t, objs, watched, leaseName)

	// Create the ServiceAccount and RBAC for real (cluster-scoped ones are
	// removed after the test: their names are the release's).
	var rbacObjs []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			rbacObjs = append(rbacObjs, o)
		}
	}
	ctx := context.Background()
	if err := env.Apply(ctx, rbacObjs, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dyn := dynamic.NewForConfigOrDie(env.Config)
		for _, r := range []string{"clusterrolebindings", "clusterroles"} {
			dyn.Resource(schema.GroupVersionResource{Group: rbacv1.GroupName, Version: "v1", Resource: r}).
				Delete(context.Background(), fullname, metav1.DeleteOptions{})
		}
	})
	user := "system:serviceaccount:" + releaseNS + ":" + fullname

	// The authorizer's view. RBAC objects reach it through its informers,
	// so wait for the first answer to turn.
	where := watched
	if !namespaced {
		where = []string{metav1.NamespaceAll, releaseNS, testNamespace(t)}
	}
	work := where[len(where)-1] // where the controller is put to work
	var allowed, denied []authorizationv1.ResourceAttributes
	for _, p := range controllerPermissions {
		resource, sub, _ := strings.Cut(p.resource, "/")
		for _, verb := range p.verbs {
			a := authorizationv1.ResourceAttributes{Verb: verb, Group: p.group, Resource: resource, Subresource: sub}
			switch p.scope {
			case clusterScope:
				allowed = append(allowed, a)
			case leaseScope:
				a.Namespace = releaseNS
				if verb != "create" {
					a.Name = leaseName
				}
				allowed = append(allowed, a)
			case watchedScope:
				for _, ns := range where {
					a.Namespace = ns
					allowed = append(allowed, a)
				}
			}
		}
	}
	eventually(t, 10*time.Second, "the chart's RBAC takes effect", func() (bool, string) {
		ok, why := accessReview(t, user, allowed[0])
		return ok, describe(allowed[0]) + ": " + why
	})
	for _, a := range allowed {
		if ok, why := accessReview(t, user, a); !ok {
			t.Errorf("the controller may not %s (%s)", describe(a), why)
		}
	}
	for _, a := range deniedRequests {
		for _, ns := range append(slices.Clone(where), releaseNS) {
			a.Namespace = ns
			denied = append(denied, a)
		}
	}
	// Its own Lease only, and only in the release namespace.
	denied = append(denied,
		authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: releaseNS, Name: "other-lease"},
		authorizationv1.ResourceAttributes{Verb: "delete", Group: "coordination.k8s.io", Resource: "leases", Namespace: releaseNS, Name: leaseName},
		authorizationv1.ResourceAttributes{Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system", Name: leaseName},
	)
	if namespaced {
		for _, ns := range []string{metav1.NamespaceAll, releaseNS} {
			denied = append(denied,
				authorizationv1.ResourceAttributes{Verb: "list", Resource: "services", Namespace: ns},
				authorizationv1.ResourceAttributes{Verb: "create", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: ns})
		}
	}
	for _, a := range denied {
		if ok, _ := accessReview(t, user, a); ok {
			t.Errorf("the controller may %s", describe(a))
		}
	}

	// The controller itself, as the ServiceAccount: in sync, leading, and
	// doing each kind of write it does, without a request refused. Its
	// class and controller names are its own, so that it leaves other
	// tests' Ingresses and Gateways alone.
	var forbidden forbiddenRecorder
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cfg.Wrap(forbidden.wrap)
	reg := newRegistry(t)
	o := Options{Registry: reg, Config: cfg, Namespaces: watched, LeaseNamespace: releaseNS, LeaseName: leaseName, Identity: release,
		IngressClass: release, GatewayController: "example.com/" + release, StatusAddress: "10.9.8.7",
		Export: ExportRule{Namespaces: []string{work}}}
	t.Cleanup(func() {
		if f := forbidden.list(); len(f) > 0 {
			t.Errorf("requests refused to the chart's ServiceAccount:\n%s", strings.Join(f, "\n"))
		}
	})
	c := startController(t, o)
	eventually(t, 15*time.Second, "the controller leads as the ServiceAccount", func() (bool, string) {
		return c.Leading(), "not leading"
	})
	exerciseController(t, reg, work, release)

	// And it renews the Lease.
	leases := env.Clientset().CoordinationV1().Leases(releaseNS)
	first, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the leader renews its Lease", func() (bool, string) {
		l, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return l.ResourceVersion != first.ResourceVersion, "renewTime " + l.Spec.RenewTime.String()
	})
}

// exerciseController makes the controller (class and GatewayClass
// controller names = class, status address 10.9.8.7, exporting namespace
// ns) write what it writes: an exported Service and EndpointSlice, created
// and deleted; the status of an Ingress, a GatewayClass, a Gateway, an
// HTTPRoute and a TrafficPolicy.
func exerciseController(t *testing.T, reg *registry.Registry, ns, class string) {
	t.Helper()
	ctx := context.Background()
	objs, err := kubetest.DecodeYAML([]byte(strings.NewReplacer("NS", ns, "CLASS", class).Replace(`
apiVersion: v1
kind: Service
metadata: {name: web, namespace: NS}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: NS}
spec:
  ingressClassName: CLASS
  defaultBackend: {service: {name: web, port: {number: 80}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: CLASS}
spec: {controllerName: example.com/CLASS}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: NS}
spec:
  gatewayClassName: CLASS
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: NS}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: cairn.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: NS}
spec:
  targetRefs: [{kind: Service, name: web}]
  retries: {attempts: 2}
`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Apply(ctx, objs, false); err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(env.Config)
	gc := schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gatewayclasses"}
	t.Cleanup(func() { dyn.Resource(gc).Delete(context.Background(), class, metav1.DeleteOptions{}) })

	inst := registry.Instance{Namespace: ns, Service: "legacy", ID: "legacy-1", Address: "10.1.2.3",
		Ports: []registry.Port{{Name: "http", Port: 8080, Protocol: "http"}}, Source: "api", Status: registry.StatusUp}
	if _, _, _, err := reg.Upsert(ctx, inst); err != nil {
		t.Fatal(err)
	}

	status := func(gvr schema.GroupVersionResource, namespace, name string, path ...string) func() (bool, string) {
		return func() (bool, string) {
			var u *unstructured.Unstructured
			var err error
			if namespace == "" {
				u, err = dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
			} else {
				u, err = dyn.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
			}
			if err != nil {
				return false, err.Error()
			}
			v, ok, _ := unstructured.NestedFieldNoCopy(u.Object, path...)
			l, isList := v.([]any)
			return ok && (!isList || len(l) > 0), fmt.Sprintf("status %v", u.Object["status"])
		}
	}
	gw := func(r string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: r}
	}
	for _, w := range []struct {
		what string
		cond func() (bool, string)
	}{
		{"the exported Service", status(schema.GroupVersionResource{Version: "v1", Resource: "services"}, ns, "legacy", "metadata", "name")},
		{"the Ingress's address", status(schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}, ns, "web", "status", "loadBalancer", "ingress")},
		{"the GatewayClass's conditions", status(gc, "", class, "status", "conditions")},
		{"the Gateway's conditions", status(gw("gateways"), ns, "gw", "status", "conditions")},
		{"the HTTPRoute's parents", status(gw("httproutes"), ns, "web", "status", "parents")},
		{"the TrafficPolicy's conditions", status(PolicyGroupVersion.WithResource(PolicyResource), ns, "web", "status", "conditions")},
	} {
		eventually(t, 10*time.Second, "as the ServiceAccount, the controller writes "+w.what, w.cond)
	}
	eventually(t, 10*time.Second, "the exported EndpointSlice", func() (bool, string) {
		l, err := env.Clientset().DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=legacy"})
		if err != nil {
			return false, err.Error()
		}
		return len(l.Items) > 0, fmt.Sprintf("%d slices", len(l.Items))
	})
	if _, err := reg.Deregister(ctx, inst.Key()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the exported Service deleted", func() (bool, string) {
		_, err := env.Clientset().CoreV1().Services(ns).Get(ctx, "legacy", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// checkRulesGranted checks every rule of the chart's Roles and
// ClusterRoles against controllerPermissions, both ways.
func checkRulesGranted(t *testing.T, objs []*unstructured.Unstructured, watched []string, leaseName string) {
	t.Helper()
	type grant struct{ scope, group, resource, verb string }
	granted := map[grant][]string{} // → where
	for _, o := range objs {
		var rules []rbacv1.PolicyRule
		var scopes []string
		switch {
		case o.GetKind() == "ClusterRole":
			rules = typed[rbacv1.ClusterRole](t, o).Rules
			scopes = []string{clusterScope}
			if len(watched) == 0 {
				scopes = append(scopes, watchedScope)
			}
		case o.GetKind() == "Role" && o.GetName() == strings.TrimSuffix(leaseName, "-controller")+"-leader-election":
			rules = typed[rbacv1.Role](t, o).Rules
			scopes = []string{leaseScope}
		case o.GetKind() == "Role":
			rules = typed[rbacv1.Role](t, o).Rules
			scopes = []string{watchedScope}
		default:
			continue
		}
		for _, r := range rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						if len(r.ResourceNames) > 0 && !slices.Equal(r.ResourceNames, []string{leaseName}) {
							t.Errorf("%s %s names resources %v", o.GetKind(), o.GetName(), r.ResourceNames)
						}
						found := false
						for _, p := range controllerPermissions {
							if p.group == g && p.resource == res && slices.Contains(p.verbs, v) && slices.Contains(scopes, p.scope) {
								found = true
								k := grant{p.scope, g, res, v}
								granted[k] = append(granted[k], o.GetNamespace())
							}
						}
						if !found {
							t.Errorf("%s %s/%s grants %s on %s/%s, which the controller does not need there", o.GetKind(), o.GetNamespace(), o.GetName(), v, g, res)
						}
					}
				}
			}
		}
	}
	for _, p := range controllerPermissions {
		for _, v := range p.verbs {
			where := granted[grant{p.scope, p.group, p.resource, v}]
			if len(where) == 0 {
				t.Errorf("no rule grants %s on %s/%s (%s)", v, p.group, p.resource, p.scope)
			}
			if p.scope == watchedScope && len(watched) > 0 {
				for _, ns := range watched {
					if !slices.Contains(where, ns) {
						t.Errorf("no Role grants %s on %s/%s in the watched namespace %s", v, p.group, p.resource, ns)
					}
				}
			}
		}
	}
}

// accessReview asks the API server's authorizer whether the service
// account user may do a.
func accessReview(t *testing.T, user string, a authorizationv1.ResourceAttributes) (bool, string) {
	t.Helper()
	ns := strings.Split(strings.TrimPrefix(user, "system:serviceaccount:"), ":")[0]
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               user,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &a,
	}}
	res, err := env.Clientset().AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview: %v", err)
	}
	why := res.Status.Reason + res.Status.EvaluationError
	if why == "" {
		why = "no rule allows it"
	}
	return res.Status.Allowed, why
}

func describe(a authorizationv1.ResourceAttributes) string {
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	if a.Group != "" {
		res = a.Group + "/" + res
	}
	where := "in all namespaces"
	if a.Namespace != "" {
		where = "in " + a.Namespace
	}
	if a.Name != "" {
		res += " " + a.Name
	}
	return a.Verb + " " + res + " " + where
}

// forbiddenRecorder notes every request the API server answers with 403.
type forbiddenRecorder struct {
	mu   sync.Mutex
	reqs []string
}

func (f *forbiddenRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			f.mu.Lock()
			f.reqs = append(f.reqs, req.Method+" "+req.URL.Path+"?"+req.URL.RawQuery)
			f.mu.Unlock()
		}
		return resp, err
	})
}

// list returns the refused requests, each once.
func (f *forbiddenRecorder) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := slices.Clone(f.reqs)
	slices.Sort(l)
	return slices.Compact(l)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (fn roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return fn(r) }
