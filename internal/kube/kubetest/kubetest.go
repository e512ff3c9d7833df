// Package kubetest runs a real Kubernetes control plane for tests: etcd and
// kube-apiserver on 127.0.0.1, envtest style (no kubelet, no controllers,
// nothing runs pods, so tests create EndpointSlices themselves).
//
// The binaries come from scripts/kube-assets.sh, which builds and caches
// them outside the repository and prints their folder; tests find it in
// CAIRN_KUBE_ASSETS, else in the script's default cache folder. A test that
// cannot find them fails with a message saying how to get them; it never
// skips.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// KubeVersion is the kube-apiserver scripts/kube-assets.sh builds.
const KubeVersion = "v1.32.13"

// Env is a running control plane.
type Env struct {
	// Config reaches the API server as a cluster admin (system:masters).
	Config *rest.Config
	// Kubeconfig is a kubeconfig file for the same identity, for processes
	// such as `cairn server --kubeconfig`.
	Kubeconfig string
	// Assets is the folder holding etcd, kube-apiserver and helm.
	Assets string

	dir       string
	etcd      *exec.Cmd
	apiserver *exec.Cmd
	stopOnce  sync.Once
}

// AssetsDir returns the folder of the binaries, or an error that says how
// to get them.
func AssetsDir() (string, error) {
	dir := os.Getenv("CAIRN_KUBE_ASSETS")
	if dir == "" {
		cache := os.Getenv("CAIRN_CACHE")
		if cache == "" {
			base := os.Getenv("XDG_CACHE_HOME")
			if base == "" {
				home, _ := os.UserHomeDir()
				base = filepath.Join(home, ".cache")
			}
			cache = filepath.Join(base, "cairn")
		}
		dir = filepath.Join(cache, "kube-"+KubeVersion)
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
			return "", fmt.Errorf("kubetest: %s not found in %s: run scripts/kube-assets.sh (scripts/test.sh does) and set CAIRN_KUBE_ASSETS to the folder it prints", b, dir)
		}
	}
	return dir, nil
}

// Start runs etcd and kube-apiserver and waits until the API server is
// ready. Logs go to files in a temporary folder, printed on failure.
func Start() (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cairn-kubetest-")
	if err != nil {
		return nil, err
	}
	e := &Env{Assets: assets, dir: dir}
	if err := e.start(); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) start() error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	etcdPeer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	e.etcd = exec.Command(filepath.Join(e.Assets, "etcd"),
		"--name=kubetest", "--data-dir="+filepath.Join(e.dir, "etcd"),
		"--listen-client-urls="+etcdClient, "--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer, "--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=kubetest="+etcdPeer, "--unsafe-no-fsync")
	if err := e.run(e.etcd, "etcd.log"); err != nil {
		return err
	}

	token := randomToken()
	if err := os.WriteFile(filepath.Join(e.dir, "tokens.csv"),
		[]byte(token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}
	if err := writeServiceAccountKey(filepath.Join(e.dir, "sa.key")); err != nil {
		return err
	}
	port := ports[2]
	e.apiserver = exec.Command(filepath.Join(e.Assets, "kube-apiserver"),
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(e.dir, "certs"),
		"--token-auth-file="+filepath.Join(e.dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(e.dir, "sa.key"),
		"--service-account-signing-key-file="+filepath.Join(e.dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
	)
	if err := e.run(e.apiserver, "kube-apiserver.log"); err != nil {
		return err
	}
	host := "https://127.0.0.1:" + strconv.Itoa(port)
	e.Config = &rest.Config{
		Host:            host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             1000,
		Burst:           2000,
	}
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: kubetest
  context: {cluster: kubetest, user: admin, namespace: default}
current-context: kubetest
`, host, token)
	if err := os.WriteFile(e.Kubeconfig, []byte(kc), 0o600); err != nil {
		return err
	}
	return e.waitReady(2 * time.Minute)
}

func (e *Env) run(cmd *exec.Cmd, logName string) error {
	f, err := os.Create(filepath.Join(e.dir, logName))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("kubetest: start %s: %w", cmd.Path, err)
	}
	return nil
}

func (e *Env) waitReady(limit time.Duration) error {
	rt, err := rest.TransportFor(e.Config)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		if e.apiserver.ProcessState != nil {
			break
		}
		resp, err := c.Get(e.Config.Host + "/readyz")
		if err == nil {
			body := new(bytes.Buffer)
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return e.ensureDefaultNamespace()
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, lastLines(body.String(), 5))
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kubetest: kube-apiserver not ready within %s (last: %s)\n%s", limit, last, e.Logs())
}

// ensureDefaultNamespace waits for the namespaces the API server makes
// itself (default, kube-system), which tests and charts take for granted.
func (e *Env) ensureDefaultNamespace() error {
	cs := e.Clientset()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if apierrors.IsNotFound(err) {
			_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubetest: namespace default: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Clientset returns a typed client for the core API groups.
func (e *Env) Clientset() kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(e.Config)
}

// Logs returns the tails of etcd's and kube-apiserver's logs.
func (e *Env) Logs() string {
	var b strings.Builder
	for _, n := range []string{"etcd.log", "kube-apiserver.log"} {
		data, _ := os.ReadFile(filepath.Join(e.dir, n))
		fmt.Fprintf(&b, "--- %s (last lines)\n%s\n", n, lastLines(string(data), 30))
	}
	return b.String()
}

// Stop ends the API server first, then etcd (stopping both at once can
// hang the API server for many seconds), and removes the temporary folder.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		stop(e.apiserver, 10*time.Second)
		stop(e.etcd, 10*time.Second)
		os.RemoveAll(e.dir)
	})
}

func stop(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// ApplyCRDs creates the CustomResourceDefinitions in the YAML files (one or
// more documents each) and waits until the API server serves them.
func (e *Env) ApplyCRDs(files ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dyn := dynamic.NewForConfigOrDie(e.Config)
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		objs, err := DecodeYAML(data)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				return fmt.Errorf("%s: %s %s is not a CustomResourceDefinition", f, o.GetKind(), o.GetName())
			}
			if _, err := dyn.Resource(crdResource).Create(ctx, o, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("%s: create %s: %w", f, o.GetName(), err)
			}
			names = append(names, o.GetName())
		}
	}
	for _, n := range names {
		for {
			crd, err := dyn.Resource(crdResource).Get(ctx, n, metav1.GetOptions{})
			if err == nil && established(crd) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kubetest: CRD %s not established: %v", n, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// Discovery lags the Established condition a little; clients that map
	// kinds to resources (dry runs, dynamic informers) need it.
	return e.waitDiscovery(ctx, names)
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// DecodeYAML reads a multi-document YAML (or JSON) stream into objects,
// skipping empty documents.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// Apply creates each object (server-side dry run when dryRun is set), in
// order, mapping kinds to resources through the API server's discovery. It
// returns the first object the API server refuses, naming it.
func (e *Env) Apply(ctx context.Context, objs []*unstructured.Unstructured, dryRun bool) error {
	dc, err := discovery.NewDiscoveryClientForConfig(e.Config)
	if err != nil {
		return err
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	dyn := dynamic.NewForConfigOrDie(e.Config)
	opts := metav1.CreateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ns := o.GetNamespace()
			if ns == "" {
				ns = "default"
			}
			ri = dyn.Resource(m.Resource).Namespace(ns)
		}
		if _, err := ri.Create(ctx, o, opts); err != nil {
			return fmt.Errorf("%s %s/%s: %w", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

func (e *Env) waitDiscovery(ctx context.Context, crds []string) error {
	cs := e.Clientset()
	for _, n := range crds {
		plural, group, _ := strings.Cut(n, ".")
		for {
			lists, err := cs.Discovery().ServerPreferredResources()
			if found(lists, group, plural) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kubetest: %s not in discovery: %v", n, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func found(lists []*metav1.APIResourceList, group, plural string) bool {
	for _, l := range lists {
		if g, _, _ := strings.Cut(l.GroupVersion, "/"); g != group {
			continue
		}
		for _, r := range l.APIResources {
			if r.Name == plural {
				return true
			}
		}
	}
	return false
}

// GatewayAPICRDs returns the standard-channel Gateway API CRD files of the
// sigs.k8s.io/gateway-api module Cairn builds with, from the module cache.
func GatewayAPICRDs() ([]string, error) {
	// The module is required because this package uses its types (below),
	// so `go list -m` finds it in the module cache.
	_ = gatewayv1.GroupName
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kubetest: locate sigs.k8s.io/gateway-api: %v: %s", err, stderr.String())
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("kubetest: no Gateway API CRDs in %s", dir)
	}
	return files, nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func writeServiceAccountKey(path string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
