package kube

// The Helm chart (deploy/helm/cairn) and the plain manifests rendered from
// it (deploy/manifests/cairn.yaml), checked by helm and by the real API
// server: every object is created in a server-side dry run, and any
// refusal or warning (a Pod Security "restricted" violation, a deprecated
// API) fails the test. deploy_rbac_test.go checks the chart's RBAC.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/kube/kubetest"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	chartDir      = "../../deploy/helm/cairn"
	manifestsFile = "../../deploy/manifests/cairn.yaml"
)

// fullValues exercises every optional part of the chart: some namespaces
// instead of the cluster, the GatewayClass, an emptyDir instead of
// claims, TLS, autoscaling, a NodePort gateway Service. %s and %s are the
// two watched namespaces.
const fullValues = `
kubernetes:
  namespaces: [%s, %s]
  export: {namespaces: [legacy], prefixes: [ext-]}
  statusAddress: gateway.example.com
gatewayAPI: {enabled: true}
ingressClass: {default: true}
server:
  replicas: 3
  persistence: {enabled: false}
  dnsDomains: cairn
  extraArgs: [--eureka-namespace=shop]
gateway:
  zone: eu-1a
  tls: {enabled: true, secretName: cairn-gateway-tls}
  autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 5}
  service: {type: NodePort, externalTrafficPolicy: Local}
commonLabels: {team: platform}
`

// bareValues turns off the Kubernetes controller and the gateway: a plain
// registry server.
const bareValues = `
kubernetes: {enabled: false}
gateway: {enabled: false}
server: {persistence: {storageClass: "-"}}
`

func TestChartLint(t *testing.T) {
	helm(t, "lint", "--strict", chartDir)
	helm(t, "lint", "--strict", chartDir, "-f", writeTemp(t, "values.yaml", fmt.Sprintf(fullValues, "a", "b")))
	helm(t, "lint", "--strict", chartDir, "-f", writeTemp(t, "values.yaml", bareValues))
}

// Values the chart cannot work with are refused by helm, naming the value.
func TestChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct{ name, values, want string }{
		{"unknown key", "kubernetes: {namespace: [a]}", "namespace is not allowed"},
		{"bad namespace", "kubernetes: {namespaces: [Not_A_Name]}", "kubernetes.namespaces"},
		{"bad log level", "server: {logLevel: loud}", "server.logLevel"},
		{"bad duration", "kubernetes: {leaseDuration: soon}", "kubernetes.leaseDuration"},
		{"TLS without secret", "gateway: {tls: {enabled: true}}", "gateway.tls.secretName"},
		{"autoscaling bounds", "gateway: {autoscaling: {enabled: true, minReplicas: 5, maxReplicas: 2}}", "minReplicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runHelm(t, "template", "x", chartDir, "--kube-version", kubetest.KubeVersion,
				"-f", writeTemp(t, "values.yaml", tc.values))
			if err == nil {
				t.Fatalf("helm template accepted %q", tc.values)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Fatalf("helm's error does not name %s:\n%s", tc.want, stderr)
			}
		})
	}
}

// The chart with its default values: every object accepted by the API
// server, and the shape the deployment relies on.
func TestChartDefaultValues(t *testing.T) {
	ns := restrictedNamespace(t)
	objs := renderChart(t, "cairn", ns, "")
	dryRun(t, objs)
	checkCommon(t, objs, ns)

	sts := typed[appsv1.StatefulSet](t, mustFind(t, objs, "StatefulSet", "cairn"))
	if sts.Spec.ServiceName != "cairn-headless" {
		t.Errorf("StatefulSet serviceName = %q, want the headless Service", sts.Spec.ServiceName)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	wantArgs(t, "server", c.Args, []string{"server", "--http-addr=:8761", "--data-dir=/var/lib/cairn", "--dns-addr=:8600",
		"--kubernetes", "--kube-status-address=cairn-gateway." + ns + ".svc.cluster.local",
		"--kube-lease-name=cairn-controller", "--kube-ingress-class=cairn", "--kube-gateway-controller=cairn.dev/gateway-controller"},
		[]string{"--kube-namespaces", "--in-memory"})
	for name, field := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"} {
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
		if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != field {
			t.Errorf("server env %s does not come from the downward API's %s", name, field)
		}
	}
	for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port != intstr.FromString("http") {
			t.Errorf("server probe %+v: want GET /health on port http", p)
		}
	}
	wantPort(t, c.Ports, "http", 8761, corev1.ProtocolTCP)
	wantPort(t, c.Ports, "dns-udp", 8600, corev1.ProtocolUDP)
	wantPort(t, c.Ports, "dns-tcp", 8600, corev1.ProtocolTCP)
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "data" ||
		sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName != nil {
		t.Errorf("StatefulSet volumeClaimTemplates = %+v, want one claim \"data\" of the default class", sts.Spec.VolumeClaimTemplates)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "data" && m.MountPath == "/var/lib/cairn" }) {
		t.Errorf("server mounts %+v, want data on /var/lib/cairn", c.VolumeMounts)
	}
	if a := sts.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Error("server pods have no preferred pod anti-affinity")
	}
	checkSecurity(t, "server", sts.Spec.Template.Spec)

	headless := typed[corev1.Service](t, mustFind(t, objs, "Service", "cairn-headless"))
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("headless Service: clusterIP %q publishNotReadyAddresses %v, want None and true", headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses)
	}
	client := typed[corev1.Service](t, mustFind(t, objs, "Service", "cairn"))
	wantServicePort(t, client, 8761, corev1.ProtocolTCP, "http")
	wantServicePort(t, client, 53, corev1.ProtocolUDP, "dns-udp")
	wantServicePort(t, client, 53, corev1.ProtocolTCP, "dns-tcp")

	pdb := typed[policyv1.PodDisruptionBudget](t, mustFind(t, objs, "PodDisruptionBudget", "cairn"))
	if !selects(pdb.Spec.Selector.MatchLabels, sts.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the server pods", pdb.Spec.Selector.MatchLabels)
	}

	gw := typed[appsv1.Deployment](t, mustFind(t, objs, "Deployment", "cairn-gateway"))
	g := gw.Spec.Template.Spec.Containers[0]
	wantArgs(t, "gateway", g.Args, []string{"proxy", "--server=http://cairn:8761", "--listen=:8080", "--admin-addr=:9901"}, []string{"--tls-addr"})
	if p := g.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port != intstr.FromString("admin") {
		t.Errorf("gateway readiness probe %+v: want GET /ready on the admin port", p)
	}
	wantPort(t, g.Ports, "admin", 9901, corev1.ProtocolTCP)
	if gw.Spec.Replicas == nil || *gw.Spec.Replicas != 2 {
		t.Errorf("gateway replicas = %v, want 2", gw.Spec.Replicas)
	}
	checkSecurity(t, "gateway", gw.Spec.Template.Spec)
	gsvc := typed[corev1.Service](t, mustFind(t, objs, "Service", "cairn-gateway"))
	if gsvc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(gsvc.Spec.Ports) != 1 {
		t.Errorf("gateway Service: type %s, %d ports; want LoadBalancer with port 80 only", gsvc.Spec.Type, len(gsvc.Spec.Ports))
	}
	wantServicePort(t, gsvc, 80, corev1.ProtocolTCP, "http")

	ic := typed[networkingv1.IngressClass](t, mustFind(t, objs, "IngressClass", "cairn"))
	if ic.Spec.Controller != "cairn.dev/ingress-controller" || ic.Annotations[networkingv1.AnnotationIsDefaultIngressClass] != "" {
		t.Errorf("IngressClass: controller %q annotations %v; want cairn.dev/ingress-controller, not the default", ic.Spec.Controller, ic.Annotations)
	}
	crb := typed[rbacv1.ClusterRoleBinding](t, mustFind(t, objs, "ClusterRoleBinding", "cairn"))
	if len(crb.Subjects) != 1 || crb.Subjects[0].Name != "cairn" || crb.Subjects[0].Namespace != ns {
		t.Errorf("ClusterRoleBinding subjects %+v, want the ServiceAccount cairn in %s", crb.Subjects, ns)
	}
	mustFind(t, objs, "ServiceAccount", "cairn")
	mustFind(t, objs, "Role", "cairn-leader-election")
	for _, kind := range []string{"GatewayClass", "HorizontalPodAutoscaler"} {
		if o := find(objs, kind, ""); o != nil {
			t.Errorf("default values render a %s (%s)", kind, o.GetName())
		}
	}
}

// The chart with every option on: watched namespaces (Roles in each), the
// GatewayClass, emptyDir, TLS, autoscaling.
func TestChartFullValues(t *testing.T) {
	ns := restrictedNamespace(t)
	a, b := testNamespace(t), testNamespace(t)
	objs := renderChart(t, "cairn", ns, fmt.Sprintf(fullValues, a, b))
	dryRun(t, objs)
	checkCommon(t, objs, ns)

	for _, watched := range []string{a, b} {
		role := findIn(objs, "Role", "cairn", watched)
		binding := findIn(objs, "RoleBinding", "cairn", watched)
		if role == nil || binding == nil {
			t.Fatalf("no Role and RoleBinding cairn in the watched namespace %s", watched)
		}
	}
	cr := typed[rbacv1.ClusterRole](t, mustFind(t, objs, "ClusterRole", "cairn"))
	for _, r := range cr.Rules {
		if slices.Contains(r.Resources, "services") {
			t.Errorf("with watched namespaces the ClusterRole still grants %v on services", r.Verbs)
		}
	}
	gc := mustFind(t, objs, "GatewayClass", "cairn")
	if ctl, _, _ := unstructured.NestedString(gc.Object, "spec", "controllerName"); ctl != "cairn.dev/gateway-controller" {
		t.Errorf("GatewayClass controllerName = %q", ctl)
	}
	ic := typed[networkingv1.IngressClass](t, mustFind(t, objs, "IngressClass", "cairn"))
	if ic.Annotations[networkingv1.AnnotationIsDefaultIngressClass] != "true" {
		t.Errorf("IngressClass annotations %v, want the default-class annotation", ic.Annotations)
	}

	sts := typed[appsv1.StatefulSet](t, mustFind(t, objs, "StatefulSet", "cairn"))
	if len(sts.Spec.VolumeClaimTemplates) != 0 {
		t.Errorf("persistence off still claims volumes: %+v", sts.Spec.VolumeClaimTemplates)
	}
	if !slices.ContainsFunc(sts.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "data" && v.EmptyDir != nil }) {
		t.Errorf("persistence off: volumes %+v, want data as an emptyDir", sts.Spec.Template.Spec.Volumes)
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		t.Errorf("server replicas = %v, want 3", sts.Spec.Replicas)
	}
	wantArgs(t, "server", sts.Spec.Template.Spec.Containers[0].Args, []string{
		"--kube-namespaces=" + a + "," + b, "--kube-export-namespaces=legacy", "--kube-export-prefixes=ext-",
		"--kube-status-address=gateway.example.com", "--dns-domain=cairn", "--eureka-namespace=shop"}, nil)

	gw := typed[appsv1.Deployment](t, mustFind(t, objs, "Deployment", "cairn-gateway"))
	if gw.Spec.Replicas != nil {
		t.Errorf("with autoscaling the Deployment still sets replicas %d (the HPA owns them)", *gw.Spec.Replicas)
	}
	wantArgs(t, "gateway", gw.Spec.Template.Spec.Containers[0].Args, []string{"--tls-addr=:8443", "--zone=eu-1a"}, nil)
	if !slices.ContainsFunc(gw.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == "cairn-gateway-tls"
	}) {
		t.Error("gateway pods do not mount the TLS Secret")
	}
	hpa := typed[autoscalingv2.HorizontalPodAutoscaler](t, mustFind(t, objs, "HorizontalPodAutoscaler", "cairn-gateway"))
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != "cairn-gateway" || hpa.Spec.MaxReplicas != 5 {
		t.Errorf("HPA targets %+v up to %d", hpa.Spec.ScaleTargetRef, hpa.Spec.MaxReplicas)
	}
	gsvc := typed[corev1.Service](t, mustFind(t, objs, "Service", "cairn-gateway"))
	wantServicePort(t, gsvc, 443, corev1.ProtocolTCP, "https")
	if gsvc.Spec.Type != corev1.ServiceTypeNodePort || gsvc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("gateway Service: type %s externalTrafficPolicy %q", gsvc.Spec.Type, gsvc.Spec.ExternalTrafficPolicy)
	}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" && o.GetLabels()["team"] != "platform" {
			t.Errorf("%s %s lacks commonLabels", o.GetKind(), o.GetName())
		}
	}
}

// Without the controller and the gateway the chart is a plain registry
// server: no RBAC, no classes, no token in the pod.
func TestChartBareValues(t *testing.T) {
	ns := restrictedNamespace(t)
	objs := renderChart(t, "cairn", ns, bareValues)
	dryRun(t, objs)
	checkCommon(t, objs, ns)
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "IngressClass", "GatewayClass", "Deployment"} {
		if o := find(objs, kind, ""); o != nil {
			t.Errorf("kubernetes and gateway off still render %s %s", kind, o.GetName())
		}
	}
	sts := typed[appsv1.StatefulSet](t, mustFind(t, objs, "StatefulSet", "cairn"))
	wantArgs(t, "server", sts.Spec.Template.Spec.Containers[0].Args, []string{"server"}, []string{"--kubernetes", "--kube-status-address"})
	if a := sts.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Error("without the controller the server pod still mounts an API token")
	}
	if sc := sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName; sc == nil || *sc != "" {
		t.Errorf(`storageClass "-" gives storageClassName %v, want ""`, sc)
	}
}

// The checked-in manifests are exactly what scripts/render-manifests.sh
// makes from the chart now.
func TestManifestsMatchChart(t *testing.T) {
	want, err := os.ReadFile(manifestsFile)
	if err != nil {
		t.Fatalf("%v: run scripts/render-manifests.sh", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../scripts/render-manifests.sh", "-")
	cmd.Env = append(helmEnv(t), "CAIRN_KUBE_ASSETS="+env.Assets, "KUBE_VERSION="+kubetest.KubeVersion)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/render-manifests.sh: %v\n%s", err, stderr.String())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("deploy/manifests/cairn.yaml differs from a fresh render of the chart (%s): run scripts/render-manifests.sh", firstDifference(want, got))
	}
}

// The plain manifests as `kubectl apply -f` sends them: the Namespace for
// real, then every other object accepted in a dry run.
func TestManifestsAccepted(t *testing.T) {
	data, err := os.ReadFile(manifestsFile)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kubetest.DecodeYAML(data)
	if err != nil {
		t.Fatalf("%s: %v", manifestsFile, err)
	}
	if len(objs) == 0 || objs[0].GetKind() != "Namespace" || objs[0].GetName() != "cairn-system" {
		t.Fatal("the manifests do not start with the Namespace cairn-system")
	}
	ctx := context.Background()
	if err := env.Apply(ctx, objs[:1], false); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dryRun(t, objs[1:])
	checkCommon(t, objs[1:], "cairn-system")
	mustFind(t, objs, "StatefulSet", "cairn")
	mustFind(t, objs, "Deployment", "cairn-gateway")
}

// deploy/README.md's values table names every value of values.yaml.
func TestDeployReadmeListsEveryValue(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := sigsyaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../deploy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, key := range leafKeys("", values) {
		if !bytes.Contains(readme, []byte("| `"+key+"`")) {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("deploy/README.md's values table lacks rows for %s", strings.Join(missing, ", "))
	}
}

// leafKeys lists the dotted paths of a values tree's leaves: lists, empty
// maps, and Kubernetes types passed through whole (resources, security
// contexts) are leaves.
func leafKeys(prefix string, m map[string]any) []string {
	var keys []string
	for k, v := range m {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		whole := k == "resources" || k == "podSecurityContext" || k == "securityContext"
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 && !whole {
			keys = append(keys, leafKeys(path, sub)...)
		} else {
			keys = append(keys, path)
		}
	}
	sort.Strings(keys)
	return keys
}

// helm runs helm and returns its stdout, failing the test on an error.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	out, stderr, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// runHelm runs the helm that scripts/kube-assets.sh caches beside the API
// server, with config and cache folders of its own.
func runHelm(t *testing.T, args ...string) (stdout []byte, stderr string, err error) {
	t.Helper()
	bin := filepath.Join(env.Assets, "helm")
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		t.Fatalf("helm not found in %s: run scripts/kube-assets.sh (scripts/test.sh does) and set CAIRN_KUBE_ASSETS to the folder it prints", env.Assets)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = helmEnv(t)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	return out, errb.String(), err
}

func helmEnv(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
}

// renderChart renders the chart for release in namespace, CRDs included,
// with values (YAML) over the defaults.
func renderChart(t *testing.T, release, namespace, values string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace, "--include-crds", "--kube-version", kubetest.KubeVersion}
	if values != "" {
		args = append(args, "-f", writeTemp(t, "values.yaml", values))
	}
	objs, err := kubetest.DecodeYAML(helm(t, args...))
	if err != nil {
		t.Fatalf("helm template output: %v", err)
	}
	checkCRDsShipped(t, objs)
	return objs
}

// checkCRDsShipped: the render holds exactly the CRDs of the chart's crds/.
func checkCRDsShipped(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var want, got []string
	for _, f := range cairnCRDs() {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := kubetest.DecodeYAML(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range docs {
			want = append(want, d.GetName())
		}
	}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			got = append(got, o.GetName())
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(want, got) {
		t.Fatalf("the render holds the CRDs %v, the chart's crds/ folder %v", got, want)
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// restrictedNamespace is a test namespace whose Pod Security labels warn
// about anything the restricted profile forbids, as the plain manifests'
// Namespace does; dryRun turns such warnings into failures.
func restrictedNamespace(t *testing.T) string {
	t.Helper()
	ns := testNamespace(t)
	cs := env.Clientset()
	patch := []byte(`{"metadata":{"labels":{"pod-security.kubernetes.io/warn":"restricted","pod-security.kubernetes.io/enforce":"restricted"}}}`)
	if _, err := cs.CoreV1().Namespaces().Patch(context.Background(), ns, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// dryRun has the API server check every object in a server-side dry run,
// and fails on a refusal or a warning. The cluster already serves the
// chart's CRDs (TestMain installs them), so each CRD is checked under a
// group of its own, which leaves its schema, names and versions as they are.
func dryRun(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var warnings warningRecorder
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = &warnings
	dry := &kubetest.Env{Config: cfg}
	batch := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		o = o.DeepCopy()
		if o.GetKind() == "CustomResourceDefinition" {
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			plural, _, _ := unstructured.NestedString(o.Object, "spec", "names", "plural")
			group = "dryrun." + group
			unstructured.SetNestedField(o.Object, group, "spec", "group")
			o.SetName(plural + "." + group)
		}
		batch = append(batch, o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dry.Apply(ctx, batch, true); err != nil {
		t.Fatalf("the API server refuses %v", err)
	}
	if w := warnings.list(); len(w) > 0 {
		t.Fatalf("the API server warns:\n%s", strings.Join(w, "\n"))
	}
}

type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	w.msgs = append(w.msgs, text)
	w.mu.Unlock()
}

func (w *warningRecorder) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// checkCommon checks what every object of the chart needs: the chart's
// labels, and an explicit namespace on namespaced objects (the plain
// manifests are applied without -n).
func checkCommon(t *testing.T, objs []*unstructured.Unstructured, namespace string) {
	t.Helper()
	mapper := restMapper(t)
	for _, o := range objs {
		what := o.GetKind() + " " + o.GetName()
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if m.Scope.Name() == meta.RESTScopeNameNamespace && o.GetNamespace() == "" {
			t.Errorf("%s has no namespace", what)
		}
		if o.GetKind() == "CustomResourceDefinition" {
			continue // written as they are, not templated
		}
		if o.GetKind() != "Role" && o.GetKind() != "RoleBinding" && m.Scope.Name() == meta.RESTScopeNameNamespace && o.GetNamespace() != namespace {
			t.Errorf("%s is in namespace %q, not the release's %q", what, o.GetNamespace(), namespace)
		}
		l := o.GetLabels()
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "app.kubernetes.io/component", "helm.sh/chart"} {
			if l[k] == "" {
				t.Errorf("%s lacks the label %s", what, k)
			}
		}
	}
	// Every Service selects the pods of one of the chart's workloads.
	var podLabels []map[string]string
	for _, o := range objs {
		if l, ok, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels"); ok {
			podLabels = append(podLabels, l)
		}
	}
	for _, o := range objs {
		if o.GetKind() != "Service" {
			continue
		}
		sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector")
		if !slices.ContainsFunc(podLabels, func(l map[string]string) bool { return selects(sel, l) }) {
			t.Errorf("Service %s selects %v: no pods of the chart", o.GetName(), sel)
		}
	}
}

func restMapper(t *testing.T) meta.RESTMapper {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatal(err)
	}
	return restmapper.NewDiscoveryRESTMapper(groups)
}

// checkSecurity: non-root, no privilege escalation, read-only root
// filesystem, no capabilities.
func checkSecurity(t *testing.T, what string, spec corev1.PodSpec) {
	t.Helper()
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Errorf("%s pods may run as root", what)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s container %s: securityContext %+v, want a read-only root, no privilege escalation, capabilities dropped", what, c.Name, sc)
		}
		if c.Resources.Requests == nil {
			t.Errorf("%s container %s has no resource requests", what, c.Name)
		}
	}
}

func wantArgs(t *testing.T, what string, args, want, unwanted []string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("%s args %q lack %q", what, args, w)
		}
	}
	for _, u := range unwanted {
		if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, u) }) {
			t.Errorf("%s args %q have %q", what, args, u)
		}
	}
}

func wantPort(t *testing.T, ports []corev1.ContainerPort, name string, port int32, proto corev1.Protocol) {
	t.Helper()
	if !slices.ContainsFunc(ports, func(p corev1.ContainerPort) bool {
		return p.Name == name && p.ContainerPort == port && p.Protocol == proto
	}) {
		t.Errorf("container ports %+v lack %s %d/%s", ports, name, port, proto)
	}
}

func wantServicePort(t *testing.T, svc corev1.Service, port int32, proto corev1.Protocol, target string) {
	t.Helper()
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		return p.Port == port && p.Protocol == proto && p.TargetPort == intstr.FromString(target)
	}) {
		t.Errorf("Service %s ports %+v lack %d/%s to %s", svc.Name, svc.Spec.Ports, port, proto, target)
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// find returns the first object of kind named name ("": any name).
func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	return nil
}

func findIn(objs []*unstructured.Unstructured, kind, name, namespace string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name && o.GetNamespace() == namespace {
			return o
		}
	}
	return nil
}

func mustFind(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := find(objs, kind, name)
	if o == nil {
		t.Fatalf("no %s %s in the render", kind, name)
	}
	return o
}

// typed converts an object to its Go type.
func typed[T any](t *testing.T, o *unstructured.Unstructured) T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return v
}

// firstDifference describes the first line where two texts differ.
func firstDifference(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl || i >= len(w) || i >= len(g) {
			return fmt.Sprintf("line %d: file %q, render %q", i+1, wl, gl)
		}
	}
	return "same lines"
}
