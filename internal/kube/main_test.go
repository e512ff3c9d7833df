package kube

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/kube/kubetest"
	"github.com/cairnhq/cairn/internal/registry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// env is the real control plane (etcd + kube-apiserver) this package's
// tests share; each test works in a namespace of its own.
var env *kubetest.Env

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if fuzzing() {
		// The fuzz targets here are pure functions; the coordinator and
		// each of its workers (the same binary) would otherwise start a
		// control plane apiece.
		return m.Run()
	}
	var err error
	env, err = kubetest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	crds, err := kubetest.GatewayAPICRDs()
	if err == nil {
		crds = append(crds, cairnCRDs()...)
		err = env.ApplyCRDs(crds...)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, env.Logs())
	}
	return code
}

// fuzzing reports whether this process runs a fuzz target (-test.fuzz) or
// is one of its workers.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// cairnCRDs are the chart's CRD files.
func cairnCRDs() []string {
	files, _ := filepath.Glob("../../deploy/helm/cairn/crds/*.yaml")
	return files
}

var nsSeq atomic.Int64

// testNamespace creates a namespace for one test and deletes it after.
func testNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsSeq.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	cs := env.Clientset()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// newRegistry returns an in-memory registry, closed after the test.
func newRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	reg, err := registry.New(registry.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go reg.Run(ctx)
	t.Cleanup(func() { cancel(); reg.Close() })
	return reg
}

// startController runs a controller with o (Registry, Config, Logger and
// quick leader-election timings filled in when zero) until the test ends,
// and waits until it is in sync.
func startController(t *testing.T, o Options) *Controller {
	t.Helper()
	if o.Registry == nil {
		o.Registry = newRegistry(t)
	}
	if o.Config == nil {
		o.Config = env.Config
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	if o.LeaseNamespace == "" && len(o.Namespaces) > 0 {
		o.LeaseNamespace = o.Namespaces[0]
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 2*time.Second, 1500*time.Millisecond, 200*time.Millisecond
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	runController(t, c)
	return c
}

// runController runs c until the test ends and waits until it is in sync.
func runController(t *testing.T, c *Controller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("controller: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("controller did not stop within 20s")
		}
	})
	select {
	case <-c.Ready():
	case err := <-done:
		t.Fatalf("controller stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("controller not in sync within 30s")
	}
}

// testLogger logs through t, so a failing test shows what the controller did.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// eventually polls cond every 20ms until it holds or limit passes; what
// describes the last state on failure.
func eventually(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, limit, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
