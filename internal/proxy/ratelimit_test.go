package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
)

// A route's bucket lets burst requests through, then answers 429 with
// Retry-After and a JSON error, counts it, logs it, and does not reach the
// backend.
func TestRateLimitRefusesOverLimit(t *testing.T) {
	a := startBackend(t, "a", nil)
	var logBuf bytes.Buffer
	al := NewAccessLog(&logBuf, nil)
	g := startGateway(t, Options{AccessLog: al}, routeDoc("r", "  rateLimit: {requests: 1, period: 1h, burst: 3}\n  backends: [{address: "+addr(a)+"}]")+
		routeDoc("free", "  match: {path: {value: /free}}\n  backends: [{address: "+addr(a)+"}]"))
	for i := range 3 {
		if code, _, body := get(t, g.url+"/x"); code != 200 {
			t.Fatalf("request %d within the burst: %d %s", i+1, code, body)
		}
	}
	code, h, body := get(t, g.url+"/x")
	if code != http.StatusTooManyRequests {
		t.Fatalf("over the limit: %d %s", code, body)
	}
	// One token an hour: the next one is an hour away.
	ra, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || ra < 3500 || ra > 3600 {
		t.Fatalf("Retry-After %q", h.Get("Retry-After"))
	}
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != "rate limit exceeded" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("body %q (%v), content type %q", body, err, h.Get("Content-Type"))
	}
	if h.Get("X-Cairn-Error") != "rate limit exceeded" || h.Get("X-Request-Id") == "" {
		t.Fatalf("headers %v", h)
	}
	if n := a.hits.Load(); n != 3 {
		t.Fatalf("backend saw %d requests, want 3", n)
	}
	// Other routes have buckets of their own (none here).
	for range 5 {
		if code, _, _ := get(t, g.url+"/free"); code != 200 {
			t.Fatalf("a route without a rate limit: %d", code)
		}
	}
	if n := metric(t, g.reg, "cairn_proxy_rate_limited_total", "route", "default/r"); n != 1 {
		t.Fatalf("cairn_proxy_rate_limited_total = %v, want 1", n)
	}
	if n := metric(t, g.reg, "cairn_proxy_requests_total", "route", "default/r", "class", "4xx"); n != 1 {
		t.Fatalf("4xx requests = %v, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.s.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	var limited int
	for _, l := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		var rec struct {
			Route, Error string
			Status       int
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if rec.Status == 429 {
			limited++
			if rec.Route != "default/r" || rec.Error != "rate limit exceeded" {
				t.Fatalf("log line %q", l)
			}
		}
	}
	if limited != 1 {
		t.Fatalf("%d lines with status 429:\n%s", limited, logBuf.String())
	}
}

// A bucket refills at requests per period; Retry-After is rounded up to a
// whole second.
func TestRateLimitRefills(t *testing.T) {
	a := startBackend(t, "a", nil)
	g := startGateway(t, Options{}, routeDoc("r", "  rateLimit: {requests: 20, period: 1s, burst: 1}\n  backends: [{address: "+addr(a)+"}]"))
	if code, _, _ := get(t, g.url+"/"); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	code, h, _ := get(t, g.url+"/")
	if code != 429 || h.Get("Retry-After") != "1" {
		t.Fatalf("second request at once: %d, Retry-After %q", code, h.Get("Retry-After"))
	}
	time.Sleep(60 * time.Millisecond) // a token every 50ms
	if code, _, _ := get(t, g.url+"/"); code != 200 {
		t.Fatalf("after a refill: %d", code)
	}
}

// With perClient every client address has its own bucket: one client
// over its limit does not hold back another.
func TestRateLimitPerClient(t *testing.T) {
	a := startBackend(t, "a", nil)
	g := startGateway(t, Options{}, routeDoc("r", "  rateLimit: {requests: 1, period: 1h, burst: 2, perClient: true}\n  backends: [{address: "+addr(a)+"}]"))
	for i := range 2 {
		if code, _, _ := get(t, g.url+"/"); code != 200 {
			t.Fatalf("request %d: %d", i+1, code)
		}
	}
	if code, _, _ := get(t, g.url+"/"); code != 429 {
		t.Fatalf("127.0.0.1 over its limit: %d", code)
	}
	// Other clients, through the same engine (the tests' clients all come
	// from 127.0.0.1): each gets its own burst.
	serve := func(remote string) int {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "http://gw/", nil)
		r.RemoteAddr = remote
		g.e.ServeHTTP(w, r)
		return w.Code
	}
	for _, c := range []struct {
		remote string
		want   []int
	}{
		{"192.0.2.7:5555", []int{200, 200, 429}},
		{"192.0.2.8:5555", []int{200, 200, 429}},
		{"192.0.2.7:6666", []int{429}},       // the same address from another port
		{"[::ffff:192.0.2.8]:1", []int{429}}, // the same address, IPv4-mapped
		{"[2001:db8::1]:443", []int{200, 200, 429}},
		{"127.0.0.1:1", []int{429}},
	} {
		for i, want := range c.want {
			if got := serve(c.remote); got != want {
				t.Fatalf("%s request %d: %d, want %d", c.remote, i+1, got, want)
			}
		}
	}
	if code, _, _ := get(t, g.url+"/"); code != 429 {
		t.Fatalf("127.0.0.1 still over its limit: %d", code)
	}
	if n := metric(t, g.reg, "cairn_proxy_rate_limited_total", "route", "default/r"); n != 8 {
		t.Fatalf("cairn_proxy_rate_limited_total = %v, want 8", n)
	}
}

// A config swap that leaves a route's rateLimit as it was keeps the
// bucket (an empty bucket stays empty); changing the limit, or removing
// the route, starts afresh.
func TestRateLimitSurvivesConfigSwap(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	limited := func(extra string, be *testBackend) string {
		return routeDoc("r", "  rateLimit: {requests: 1, period: 1h, burst: 2}\n"+extra+"  backends: [{address: "+addr(be)+"}]")
	}
	g := startGateway(t, Options{}, limited("", a))
	for range 2 {
		get(t, g.url+"/")
	}
	if code, _, _ := get(t, g.url+"/"); code != 429 {
		t.Fatalf("over the limit: %d", code)
	}
	// Other fields of the route change, another route comes: the bucket stays.
	g.apply(t, limited("  timeouts: {request: 5s}\n", b)+routeDoc("other", "  match: {path: {value: /other}}\n  backends: [{address: "+addr(a)+"}]"))
	if code, _, body := get(t, g.url+"/"); code != 429 {
		t.Fatalf("after a swap keeping the limit: %d %s", code, body)
	}
	if code, _, _ := get(t, g.url+"/other"); code != 200 {
		t.Fatalf("the new route: %d", code)
	}
	// A config the engine rejects, though it built r with another limit
	// before failing on z, changes nothing either.
	bad := []config.Document{
		{Kind: config.KindRoute, Metadata: config.Metadata{Namespace: "default", Name: "r"},
			Spec: json.RawMessage(`{"rateLimit":{"requests":1,"period":"1h","burst":9},"backends":[{"address":` + addr(b) + `}]}`)},
		{Kind: config.KindRoute, Metadata: config.Metadata{Namespace: "default", Name: "z"}, Spec: json.RawMessage(`{"backends":[]}`)},
	}
	if err := g.e.Update(&Snapshot{Routes: bad}); err == nil {
		t.Fatal("a bad config was accepted")
	}
	g.apply(t, limited("", b))
	if code, _, _ := get(t, g.url+"/"); code != 429 {
		t.Fatalf("after a rejected config: %d", code)
	}
	// A new limit is a new bucket.
	g.apply(t, routeDoc("r", "  rateLimit: {requests: 1, period: 1h, burst: 3}\n  backends: [{address: "+addr(b)+"}]"))
	for i := range 3 {
		if code, _, _ := get(t, g.url+"/"); code != 200 {
			t.Fatalf("request %d under the new limit: %d", i+1, code)
		}
	}
	if code, _, _ := get(t, g.url+"/"); code != 429 {
		t.Fatal("the new limit does not hold")
	}
	// A route removed and applied again starts with a full bucket.
	g.apply(t, routeDoc("other", "  backends: [{address: "+addr(a)+"}]"))
	g.apply(t, routeDoc("r", "  rateLimit: {requests: 1, period: 1h, burst: 3}\n  backends: [{address: "+addr(b)+"}]"))
	if code, _, _ := get(t, g.url+"/"); code != 200 {
		t.Fatalf("a route applied again: %d", code)
	}
}

// GCRA as a token bucket: burst at once, then one per interval, and the
// wait it reports is the time to the next token.
func TestRateLimitBucket(t *testing.T) {
	l := newRateLimiter(config.RateLimitPolicy{Requests: 10, Period: time.Second, Burst: 5})
	t0 := limiterEpoch.Add(time.Hour)
	for i := range 5 {
		if ok, _ := l.allow("10.0.0.1:1", t0); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.allow("10.0.0.1:1", t0)
	if ok || wait != 100*time.Millisecond {
		t.Fatalf("over the burst: ok=%v wait=%v, want a 100ms wait", ok, wait)
	}
	if ok, _ := l.allow("10.0.0.1:1", t0.Add(99*time.Millisecond)); ok {
		t.Fatal("a token before its time")
	}
	if ok, _ := l.allow("10.0.0.1:1", t0.Add(100*time.Millisecond)); !ok {
		t.Fatal("no token after 100ms")
	}
	// Idle for a long time: the bucket holds burst tokens, not more.
	later := t0.Add(time.Hour)
	n := 0
	for ok, _ := l.allow("", later); ok; ok, _ = l.allow("", later) {
		n++
	}
	if n != 5 {
		t.Fatalf("after an idle hour %d requests passed at once, want the burst of 5", n)
	}
	// Sustained: requests a second over a long run.
	n = 0
	for ms := 1; ms <= 10000; ms++ {
		if ok, _ := l.allow("", later.Add(time.Duration(ms)*time.Millisecond)); ok {
			n++
		}
	}
	if n != 100 {
		t.Fatalf("%d requests passed in 10s at 10/s", n)
	}
}

// The per-client table is bounded: a flood of addresses cannot grow it
// past clientShards × clientsPerShard.
func TestRateLimitClientTableBounded(t *testing.T) {
	l := newRateLimiter(config.RateLimitPolicy{Requests: 1, Period: time.Second, Burst: 1, PerClient: true})
	size := func() int {
		n := 0
		for i := range l.clients {
			l.clients[i].mu.Lock()
			n += len(l.clients[i].tat)
			l.clients[i].mu.Unlock()
		}
		return n
	}
	addr := func(i int) string {
		return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String() + ":1"
	}
	t0 := limiterEpoch.Add(time.Hour)
	for i := range 3 * clientShards * clientsPerShard {
		if ok, _ := l.allow(addr(i), t0); !ok {
			t.Fatalf("client %d refused its first request", i)
		}
	}
	if n := size(); n > clientShards*clientsPerShard {
		t.Fatalf("%d clients kept, bound %d", n, clientShards*clientsPerShard)
	}
	// A client just seen is still known after the flood.
	last := addr(3*clientShards*clientsPerShard - 1)
	if ok, _ := l.allow(last, t0); ok {
		t.Fatal("the last client got a second token within a second")
	}
}

// A full shard is swept: the clients whose bucket has filled again go
// first (forgetting them changes nothing); when they are not an eighth of
// the shard, clients at random make up the eighth.
func TestRateLimitClientTableSweep(t *testing.T) {
	fill := func(idle int) *clientShard {
		s := &clientShard{tat: map[netip.Addr]int64{}}
		for i := range clientsPerShard {
			tat := int64(2000) // active at now=1000
			if i < idle {
				tat = 500
			}
			s.tat[netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})] = tat
		}
		return s
	}
	s := fill(clientsPerShard / 2)
	s.makeRoom(1000)
	if len(s.tat) != clientsPerShard/2 {
		t.Fatalf("%d clients kept, want the %d active ones", len(s.tat), clientsPerShard/2)
	}
	for a, tat := range s.tat {
		if tat != 2000 {
			t.Fatalf("idle client %v kept", a)
		}
	}
	s = fill(10)
	s.makeRoom(1000)
	if len(s.tat) != clientsPerShard-clientsPerShard/8 {
		t.Fatalf("%d clients kept, want %d", len(s.tat), clientsPerShard-clientsPerShard/8)
	}
	for a, tat := range s.tat {
		if tat != 2000 {
			t.Fatalf("idle client %v kept while active ones went", a)
		}
	}
}

func TestRateLimitClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3:80":              "10.1.2.3",
		"[::ffff:10.1.2.3]:80":     "10.1.2.3",
		"[2001:db8::1]:80":         "2001:db8::1",
		"10.1.2.3":                 "10.1.2.3",
		"@":                        "invalid IP",
		"":                         "invalid IP",
		"[fe80::1%eth0]:80":        "fe80::1%eth0",
		"not an address at all:80": "invalid IP",
	} {
		if got := clientAddr(in).String(); got != want {
			t.Errorf("clientAddr(%q) = %s, want %s", in, got, want)
		}
	}
}
