package proxy

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

func threeBackends(t *testing.T) (a, b, c *testBackend, services map[ServiceKey][]Instance) {
	t.Helper()
	a, b, c = startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	return a, b, c, svc("web", inst(a), inst(b), inst(c))
}

func TestBalancingRoundRobinEven(t *testing.T) {
	a, b, c, services := threeBackends(t)
	g := startGateway(t, Options{}, "")
	g.apply(t, routeDoc("rr", "  backends: [{service: web}]"), services)
	for i := 0; i < 300; i++ {
		if code, _, _ := get(t, g.url+"/"); code != 200 {
			t.Fatal(code)
		}
	}
	if a.hits.Load() != 100 || b.hits.Load() != 100 || c.hits.Load() != 100 {
		t.Fatalf("round robin: %d %d %d", a.hits.Load(), b.hits.Load(), c.hits.Load())
	}
}

func TestBalancingInstanceWeights(t *testing.T) {
	a, b, c, services := threeBackends(t)
	insts := services[ServiceKey{"default", "web"}]
	insts[0].Weight, insts[1].Weight, insts[2].Weight = 3, 1, 0 // 0 reads as 1
	for _, policy := range []string{"round_robin", "random", "least_request"} {
		t.Run(policy, func(t *testing.T) {
			for _, x := range []*testBackend{a, b, c} {
				x.hits.Store(0)
			}
			g := startGateway(t, Options{}, "")
			g.apply(t, routeDoc("w", "  loadBalancer: {policy: "+policy+"}\n  backends: [{service: web}]"), services)
			const n = 500
			for i := 0; i < n; i++ {
				if code, _, _ := get(t, g.url+"/"); code != 200 {
					t.Fatal(code)
				}
			}
			// Expect 300/100/100 of 500.
			ha, hb, hc := a.hits.Load(), b.hits.Load(), c.hits.Load()
			if policy == "round_robin" {
				if ha != 300 || hb != 100 || hc != 100 {
					t.Fatalf("weighted round robin: %d %d %d", ha, hb, hc)
				}
				return
			}
			if ha < 240 || ha > 360 || hb < 50 || hc < 50 {
				t.Fatalf("%s: %d %d %d", policy, ha, hb, hc)
			}
		})
	}
}

func TestBalancingRingHash(t *testing.T) {
	a, b, _, services := threeBackends(t)
	for _, tc := range []struct {
		name, hash string
		hdr        func(key string) []string
	}{
		{"header", "{header: x-user}", func(k string) []string { return []string{"X-User", k} }},
		{"cookie", "{cookie: session}", func(k string) []string { return []string{"Cookie", "theme=dark; session=" + k} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, Options{}, "")
			g.apply(t, routeDoc("rh", "  loadBalancer: {policy: ring_hash, hash: "+tc.hash+"}\n  backends: [{service: web}]"), services)
			used := map[string]int{}
			for k := 0; k < 30; k++ {
				key := fmt.Sprintf("user-%d", k)
				first := ""
				for i := 0; i < 10; i++ {
					_, be, _ := do(t, "GET", g.url+"/", tc.hdr(key)...)
					if first == "" {
						first = be
					} else if be != first {
						t.Fatalf("key %s went to %s then %s", key, first, be)
					}
				}
				used[first]++
			}
			if len(used) < 2 {
				t.Fatalf("30 keys all on one instance: %v", used)
			}
			// Ring hash moves only the keys of a removed instance.
			before := map[string]string{}
			for k := 0; k < 30; k++ {
				key := fmt.Sprintf("user-%d", k)
				_, before[key], _ = do(t, "GET", g.url+"/", tc.hdr(key)...)
			}
			g.apply(t, routeDoc("rh", "  loadBalancer: {policy: ring_hash, hash: "+tc.hash+"}\n  backends: [{service: web}]"),
				svc("web", inst(a), inst(b)))
			for k := 0; k < 30; k++ {
				key := fmt.Sprintf("user-%d", k)
				_, now, _ := do(t, "GET", g.url+"/", tc.hdr(key)...)
				if before[key] != "c" && now != before[key] {
					t.Fatalf("key %s moved from %s to %s when c left", key, before[key], now)
				}
			}
		})
	}
	t.Run("sourceIP", func(t *testing.T) {
		g := startGateway(t, Options{}, "")
		g.apply(t, routeDoc("rh", "  loadBalancer: {policy: ring_hash, hash: {sourceIP: true}}\n  backends: [{service: web}]"), services)
		seen := map[string]bool{}
		for i := 0; i < 50; i++ {
			// The X-Forwarded-For a client sends is not its address.
			_, be, _ := do(t, "GET", g.url+"/", "X-Forwarded-For", fmt.Sprintf("10.0.0.%d", i))
			seen[be] = true
		}
		if len(seen) != 1 {
			t.Fatalf("one client address went to %v", seen)
		}
	})
}

func TestBalancingLeastRequestAvoidsBusy(t *testing.T) {
	slow := startBackend(t, "slow", nil)
	fast := startBackend(t, "fast", nil)
	slow.delay.Store(int64(200 * time.Millisecond))
	g := startGateway(t, Options{}, "")
	g.apply(t, routeDoc("lr", "  loadBalancer: {policy: least_request}\n  backends: [{service: web}]"), svc("web", inst(slow), inst(fast)))
	var wg sync.WaitGroup
	stop := time.Now().Add(700 * time.Millisecond)
	var mu sync.Mutex
	fails := 0
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				resp, err := testClient.Get(g.url + "/")
				if err == nil {
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					mu.Lock()
					fails++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	s, f := slow.hits.Load(), fast.hits.Load()
	// Round robin would give the slow instance half. Least request sends it
	// a request only when it has none in flight: a few per 200ms.
	if fails != 0 || f < 40 || s > (s+f)/10 {
		t.Fatalf("slow %d fast %d fails %d", s, f, fails)
	}
}

func TestBalancingEWMAAvoidsSlow(t *testing.T) {
	slow := startBackend(t, "slow", nil)
	fast := startBackend(t, "fast", nil)
	slow.delay.Store(int64(100 * time.Millisecond))
	g := startGateway(t, Options{}, "")
	g.apply(t, routeDoc("ewma", "  loadBalancer: {policy: ewma}\n  backends: [{service: web}]"), svc("web", inst(slow), inst(fast)))
	for i := 0; i < 200; i++ {
		if code, _, _ := get(t, g.url+"/"); code != http.StatusOK {
			t.Fatal(code)
		}
	}
	// Sequential requests: after one sample of each, the slow one costs
	// 100ms against well under 1ms (a stall of the fast one can let a
	// request or two through).
	if s := slow.hits.Load(); s > 8 {
		t.Fatalf("slow %d fast %d", s, fast.hits.Load())
	}
}
