package kube

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Two replicas campaign for one Lease: exactly one leads, and when it
// stops the other takes over, with the Lease naming it.
func TestLeaderElectionHandsOver(t *testing.T) {
	ns := testNamespace(t)
	start := func(id string) (*Controller, context.CancelFunc, chan error) {
		c, err := New(Options{Registry: newRegistry(t), Config: env.Config, Logger: testLogger(t),
			Namespaces: []string{ns}, Identity: id,
			LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { c.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return c, cancel, done
	}
	a, stopA, doneA := start("replica-a")
	b, stopB, doneB := start("replica-b")

	var leader, follower *Controller
	eventually(t, 10*time.Second, "one replica leads", func() (bool, string) {
		la, lb := a.Leading(), b.Leading()
		switch {
		case la && !lb:
			leader, follower = a, b
		case lb && !la:
			leader, follower = b, a
		}
		return leader != nil, "a leading=" + boolStr(la) + " b leading=" + boolStr(lb)
	})
	// The follower stays a follower while the leader renews.
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		if follower.Leading() {
			t.Fatal("both replicas lead")
		}
	}
	stopLeader, doneLeader := stopA, doneA
	if leader == b {
		stopLeader, doneLeader = stopB, doneB
	}
	stopped := time.Now()
	stopLeader()
	<-doneLeader
	if leader.Leading() {
		t.Fatal("a stopped controller still says it leads")
	}
	eventually(t, 10*time.Second, "the other replica takes over", func() (bool, string) {
		return follower.Leading(), "follower not leading"
	})
	t.Logf("hand-over took %s", time.Since(stopped).Round(time.Millisecond))
	lease, err := env.Clientset().CoordinationV1().Leases(ns).Get(context.Background(), "cairn-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != follower.o.Identity {
		t.Fatalf("lease holder = %v, want %s", lease.Spec.HolderIdentity, follower.o.Identity)
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
