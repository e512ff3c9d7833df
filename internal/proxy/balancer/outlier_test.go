package balancer

import (
	"testing"
	"time"
)

func TestOutlierEjection(t *testing.T) {
	e := eps(10)
	o := NewOutliers(OutlierConfig{Consecutive: 3, BaseEjection: 10 * time.Second, MaxEjection: 25 * time.Second, MaxEjectedPercent: 20}, e)
	now := time.Unix(1_700_000_000, 0)
	fail := func(ep *Endpoint, n int) (ejected bool) {
		for range n {
			ejected = o.Result(ep, false, now) || ejected
		}
		return ejected
	}
	// Two failures, a success, two failures: never three in a row.
	fail(e[0], 2)
	o.Result(e[0], true, now)
	if fail(e[0], 2) || e[0].Ejected(now) {
		t.Fatal("ejected without three consecutive failures")
	}
	if !fail(e[0], 1) || !e[0].Ejected(now) {
		t.Fatal("three in a row did not eject")
	}
	// Back after the base ejection; a second ejection lasts twice as long,
	// a third is capped.
	if !e[0].Ejected(now.Add(9*time.Second)) || e[0].Ejected(now.Add(11*time.Second)) {
		t.Fatal("first ejection is not 10s")
	}
	now = now.Add(11 * time.Second)
	fail(e[0], 3)
	if !e[0].Ejected(now.Add(19*time.Second)) || e[0].Ejected(now.Add(21*time.Second)) {
		t.Fatal("second ejection is not 20s")
	}
	now = now.Add(21 * time.Second)
	fail(e[0], 3)
	if !e[0].Ejected(now.Add(24*time.Second)) || e[0].Ejected(now.Add(26*time.Second)) {
		t.Fatal("third ejection is not capped at 25s")
	}
	// At most 20% of 10 endpoints out at once.
	if !fail(e[1], 3) {
		t.Fatal("a second endpoint could not be ejected")
	}
	if fail(e[2], 3) || e[2].Ejected(now) {
		t.Fatal("a third endpoint ejected past the 20% cap")
	}
	// A healthy quiet period earns ejections back.
	now = now.Add(time.Hour)
	o.Result(e[0], true, now)
	if e[0].ejections.Load() != 2 {
		t.Fatalf("ejection count after a quiet hour: %d, want 2", e[0].ejections.Load())
	}
}

func TestOutlierAlwaysOneMayGo(t *testing.T) {
	e := eps(2)
	o := NewOutliers(OutlierConfig{Consecutive: 1}, e) // 10% of 2 rounds to 0: still one may be ejected
	now := time.Now()
	if !o.Result(e[0], false, now) {
		t.Fatal("the first endpoint could not be ejected")
	}
	if o.Result(e[1], false, now) {
		t.Fatal("both endpoints of two ejected")
	}
	// The balancer keeps the ejected one out.
	b, _ := New(RoundRobin, e, "")
	for range 10 {
		if b.Pick(0, false) != e[1] {
			t.Fatal("ejected endpoint picked")
		}
	}
}
