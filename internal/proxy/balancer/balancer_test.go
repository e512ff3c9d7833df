package balancer

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

func eps(n int, weights ...int) []*Endpoint {
	out := make([]*Endpoint, n)
	for i := range out {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		out[i] = NewEndpoint(fmt.Sprintf("10.0.0.%d:80", i+1), w, "")
	}
	return out
}

func counts(t *testing.T, b *Balancer, n int, key func(i int) (uint64, bool)) map[string]int {
	t.Helper()
	c := map[string]int{}
	for i := range n {
		k, has := key(i)
		e := b.Pick(k, has)
		if e == nil {
			t.Fatal("no endpoint picked")
		}
		c[e.Addr]++
	}
	return c
}

func noKey(int) (uint64, bool) { return 0, false }

// within checks got against want*n with a relative tolerance.
func within(t *testing.T, what string, got int, want float64, tol float64) {
	t.Helper()
	if math.Abs(float64(got)-want) > tol*want {
		t.Errorf("%s: %d, want %.0f ±%.0f%%", what, got, want, tol*100)
	}
}

func TestWeightsHonoured(t *testing.T) {
	for _, p := range []Policy{RoundRobin, Random, RingHash} {
		t.Run(string(p), func(t *testing.T) {
			e := eps(3, 1, 2, 5)
			b, err := New(p, e, "")
			if err != nil {
				t.Fatal(err)
			}
			const n = 40000
			c := counts(t, b, n, noKey)
			tol := 0.05
			if p == RingHash {
				tol = 0.15 // a ring of ~1,000 points is only roughly proportional
			}
			for i, w := range []float64{1, 2, 5} {
				within(t, e[i].Addr, c[e[i].Addr], n*w/8, tol)
			}
		})
	}
}

func TestRoundRobinIsSmooth(t *testing.T) {
	e := eps(3, 5, 1, 1)
	b, _ := New(RoundRobin, e, "")
	// nginx's smooth WRR for 5,1,1 never sends more than 3 in a row to the heavy one.
	run, maxRun := 0, 0
	var last *Endpoint
	for range 700 {
		p := b.Pick(0, false)
		if p == last {
			run++
		} else {
			run = 1
		}
		last = p
		maxRun = max(maxRun, run)
	}
	if maxRun > 4 {
		t.Fatalf("a run of %d picks of one endpoint", maxRun)
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	e := eps(2)
	b, _ := New(LeastRequest, e, "")
	for range 10 {
		e[0].Start() // ten requests in flight on the first, never ended
	}
	c := counts(t, b, 1000, noKey)
	// Power of two choices with two endpoints: the busy one only wins when
	// both picks land on it (about a quarter of the time).
	if c[e[1].Addr] < 700 {
		t.Fatalf("idle endpoint got %d of 1000", c[e[1].Addr])
	}
}

func TestEWMAPrefersFast(t *testing.T) {
	e := eps(3)
	now := time.Now()
	for i, ms := range []int{50, 5, 50} {
		e[i].Observe(time.Duration(ms)*time.Millisecond, now)
	}
	b, _ := New(EWMA, e, "")
	c := counts(t, b, 3000, noKey)
	if c[e[1].Addr] < 1500 {
		t.Fatalf("the fast endpoint got %d of 3000: %v", c[e[1].Addr], c)
	}
}

func TestPeakEWMA(t *testing.T) {
	e := NewEndpoint("a", 1, "")
	t0 := time.Now()
	e.Observe(10*time.Millisecond, t0)
	e.Observe(100*time.Millisecond, t0.Add(time.Millisecond)) // a spike counts at once
	if e.Latency() != 100*time.Millisecond {
		t.Fatalf("after a spike: %v", e.Latency())
	}
	e.Observe(10*time.Millisecond, t0.Add(30*time.Second)) // three time constants later
	if l := e.Latency(); l > 20*time.Millisecond || l < 10*time.Millisecond {
		t.Fatalf("after recovering: %v", l)
	}
	done := e.Start()
	if e.Active() != 1 {
		t.Fatal("not counted in flight")
	}
	done(time.Millisecond, false)
	done(time.Millisecond, false) // twice is once
	if e.Active() != 0 {
		t.Fatalf("in flight after done: %d", e.Active())
	}
}

func TestRingHashIsConsistent(t *testing.T) {
	e := eps(10)
	b, _ := New(RingHash, e, "")
	owner := map[int]string{}
	for k := range 5000 {
		owner[k] = b.Pick(HashKey(fmt.Sprint("user-", k)), true).Addr
	}
	// The same key always goes to the same endpoint.
	for k := range 100 {
		if got := b.Pick(HashKey(fmt.Sprint("user-", k)), true).Addr; got != owner[k] {
			t.Fatalf("key %d moved from %s to %s", k, owner[k], got)
		}
	}
	// Adding an eleventh endpoint moves about 1/11 of the keys, all to it.
	b2, _ := New(RingHash, append(e, NewEndpoint("10.0.0.99:80", 1, "")), "")
	moved := 0
	for k := range 5000 {
		got := b2.Pick(HashKey(fmt.Sprint("user-", k)), true).Addr
		if got != owner[k] {
			moved++
			if got != "10.0.0.99:80" {
				t.Fatalf("key %d moved between old endpoints: %s -> %s", k, owner[k], got)
			}
		}
	}
	within(t, "keys moved", moved, 5000.0/11, 0.35)
}

func TestEjectedSkippedUntilAllAre(t *testing.T) {
	for _, p := range []Policy{RoundRobin, Random, LeastRequest, EWMA, RingHash} {
		t.Run(string(p), func(t *testing.T) {
			e := eps(3)
			b, _ := New(p, e, "")
			e[0].Eject(time.Now().Add(time.Minute))
			e[1].Eject(time.Now().Add(time.Minute))
			c := counts(t, b, 300, func(i int) (uint64, bool) { return uint64(i) * 0x9e3779b97f4a7c15, true })
			if c[e[2].Addr] != 300 {
				t.Fatalf("ejected endpoints picked: %v", c)
			}
			e[2].Eject(time.Now().Add(time.Minute))
			if b.Pick(1, true) == nil {
				t.Fatal("all ejected: nothing picked (want panic mode: use them all)")
			}
			e[0].Restore()
			c = counts(t, b, 100, noKey)
			if c[e[0].Addr] != 100 {
				t.Fatalf("restored endpoint not used alone: %v", c)
			}
			e[1].Eject(time.Now().Add(-time.Second)) // an ejection that has run out
			if !e[1].Ejected(time.Now().Add(-2*time.Second)) || e[1].Ejected(time.Now()) {
				t.Fatal("ejection times wrong")
			}
		})
	}
}

func TestZonePreference(t *testing.T) {
	e := []*Endpoint{NewEndpoint("a:1", 1, "z1"), NewEndpoint("b:1", 1, "z2"), NewEndpoint("c:1", 1, "z1")}
	b, _ := New(RoundRobin, e, "z1")
	c := counts(t, b, 100, noKey)
	if c["b:1"] != 0 || c["a:1"] != 50 || c["c:1"] != 50 {
		t.Fatalf("local zone not preferred: %v", c)
	}
	// The local zone all ejected: the others take over.
	e[0].Eject(time.Now().Add(time.Minute))
	e[2].Eject(time.Now().Add(time.Minute))
	if c := counts(t, b, 10, noKey); c["b:1"] != 10 {
		t.Fatalf("no failover out of the zone: %v", c)
	}
	// A zone with no endpoints of its own: everyone.
	b2, _ := New(RoundRobin, e[1:2], "z1")
	if b2.Pick(0, false).Addr != "b:1" {
		t.Fatal("no endpoint in the local zone and none picked")
	}
}

func TestEdgeCases(t *testing.T) {
	if _, err := New("fastest", nil, ""); err == nil {
		t.Fatal("unknown policy accepted")
	}
	for _, p := range []Policy{RoundRobin, Random, LeastRequest, EWMA, RingHash} {
		b, _ := New(p, nil, "")
		if b.Pick(1, true) != nil || b.Len() != 0 {
			t.Fatalf("%s: picked from nothing", p)
		}
		one, _ := New(p, eps(1), "")
		if one.Pick(7, true) == nil {
			t.Fatalf("%s: one endpoint, none picked", p)
		}
	}
	// Huge weights keep the round-robin schedule bounded.
	big, _ := New(RoundRobin, eps(2, 1_000_000, 1), "")
	if n := len(big.all.schedule); n > 4097 {
		t.Fatalf("schedule of %d entries", n)
	}
}

// TestConcurrentPicks: picks, starts, ends and observations from many
// goroutines (run with -race).
func TestConcurrentPicks(t *testing.T) {
	for _, p := range []Policy{RoundRobin, Random, LeastRequest, EWMA, RingHash} {
		e := eps(5, 1, 2, 3)
		b, _ := New(p, e, "")
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 2000 {
					ep := b.Pick(uint64(g*1000+i), true)
					done := ep.Start()
					done(time.Duration(i%7)*time.Millisecond, i%5 != 0)
				}
			}()
		}
		wg.Wait()
		for _, ep := range e {
			if ep.Active() != 0 {
				t.Fatalf("%s: %s has %d in flight after all ended", p, ep.Addr, ep.Active())
			}
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, p := range []Policy{RoundRobin, Random, LeastRequest, EWMA, RingHash} {
		bal, _ := New(p, eps(20, 1, 2, 3), "")
		b.Run(string(p), func(b *testing.B) {
			b.ReportAllocs()
			k := HashKey("session-42")
			for b.Loop() {
				bal.Pick(k, true)
			}
		})
	}
}
