package kubetest

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestStart runs the control plane, installs the Gateway API CRDs and
// stores a Service: what every Kubernetes test of Cairn builds on.
func TestStart(t *testing.T) {
	start := time.Now()
	env, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	t.Logf("control plane ready in %s", time.Since(start).Round(time.Millisecond))
	files, err := GatewayAPICRDs()
	if err != nil {
		t.Fatal(err)
	}
	if err := env.ApplyCRDs(files...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	got, err := env.Clientset().CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.ClusterIP == "" {
		t.Fatalf("service got no cluster IP: %+v", got.Spec)
	}
}
