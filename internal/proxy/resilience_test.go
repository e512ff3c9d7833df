package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// blackholeAddr returns a 127.0.0.1 address whose connects time out: a
// listener with a backlog of 0 whose accept queue is already full, so
// the kernel drops new SYNs.
func blackholeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	a := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for i := 0; i < 5; i++ {
		c, err := net.DialTimeout("tcp", a, 100*time.Millisecond)
		if err != nil {
			return a // full: this connect timed out
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("could not fill the accept queue of a backlog-0 listener")
	return ""
}

// h2cBackend starts a backend speaking HTTP/2 with prior knowledge, to
// exercise the net/http transport path of the engine (http2: true).
func h2cBackend(t *testing.T, name string, h http.HandlerFunc) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{name: name, addr: ln.Addr().String(), ln: ln}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", b.name)
		h(w, r)
	}), Protocols: p}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func call(t *testing.T, method, url, body string) (int, http.Header, time.Duration) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	start := time.Now()
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, time.Since(start)
}

// codeOf GETs url and returns the status, 0 on a transport error (for
// goroutines, which must not call t.Fatal).
func codeOf(url string) int {
	resp, err := testClient.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestResilienceConnectFailure(t *testing.T) {
	good := startBackend(t, "good", nil)
	dead := deadAddr(t)
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: \""+dead+"\"}]"))
	code, h, _ := call(t, "GET", g.url+"/", "")
	if code != http.StatusBadGateway || h.Get("X-Cairn-Error") != "upstream connection failed" {
		t.Fatalf("dead backend: %d %v", code, h)
	}
	// One instance refuses connections: every method is retried on the
	// other, bodies included (the refused one never saw them).
	services := svc("web", Instance{ID: "dead", Host: "127.0.0.1", Ports: map[string]int{"http": portOf(dead)}}, inst(good))
	g.apply(t, routeDoc("r", "  outlierDetection: {consecutiveFailures: 0}\n  retries: {backoff: {base: 1ms}, budget: {percent: 100}}\n  backends: [{service: web}]"), services)
	for i := 0; i < 20; i++ {
		for _, m := range []string{"GET", "POST", "PATCH"} {
			body := ""
			if m != "GET" {
				body = "x=" + strconv.Itoa(i)
			}
			if code, h, _ := call(t, m, g.url+"/", body); code != 200 {
				t.Fatalf("%s %d: %d %v", m, i, code, h)
			}
		}
	}
	if good.hits.Load() != 60 {
		t.Fatalf("good got %d of 60", good.hits.Load())
	}
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

func TestResilienceConnectTimeout(t *testing.T) {
	hole := blackholeAddr(t)
	good := startBackend(t, "good", nil)
	for _, h2 := range []bool{false, true} {
		name := "http1"
		if h2 {
			name = "h2c"
		}
		t.Run(name, func(t *testing.T) {
			extra := ""
			if h2 {
				extra = ", http2: true"
			}
			g := startGateway(t, Options{}, routeDoc("r", "  timeouts: {connect: 150ms}\n  retries: {attempts: 0}\n  backends: [{address: \""+hole+"\""+extra+"}]"))
			code, h, d := call(t, "GET", g.url+"/", "")
			if code != http.StatusGatewayTimeout || d < 140*time.Millisecond || d > time.Second {
				t.Fatalf("connect timeout: %d after %v (%v)", code, d, h)
			}
		})
	}
	// A connect timeout on one instance is retried on another, for any
	// method: the backend never saw the request.
	services := svc("web", Instance{ID: "hole", Host: "127.0.0.1", Ports: map[string]int{"http": portOf(hole)}}, inst(good))
	g := startGateway(t, Options{}, "")
	g.apply(t, routeDoc("r", "  timeouts: {connect: 100ms}\n  outlierDetection: {consecutiveFailures: 0}\n  backends: [{service: web}]"), services)
	for i := 0; i < 4; i++ {
		for _, m := range []string{"GET", "POST"} {
			if code, h, d := call(t, m, g.url+"/", "body"); code != 200 || d > time.Second {
				t.Fatalf("%s: %d after %v (%v)", m, code, d, h)
			}
		}
	}
}

func TestResiliencePerTryAndRequestTimeouts(t *testing.T) {
	slow := startBackend(t, "slow", nil)
	slow.delay.Store(int64(600 * time.Millisecond))
	fast := startBackend(t, "fast", nil)
	slow2 := h2cBackend(t, "slow-h2", func(w http.ResponseWriter, r *http.Request) { time.Sleep(600 * time.Millisecond) })
	for _, c := range []struct{ name, spec string }{
		{"perTry http1", "  timeouts: {perTry: 100ms}\n  retries: {attempts: 0}\n  backends: [{address: " + addr(slow) + "}]"},
		{"request http1", "  timeouts: {request: 100ms}\n  backends: [{address: " + addr(slow) + "}]"},
		{"perTry h2c", "  timeouts: {perTry: 100ms}\n  retries: {attempts: 0}\n  backends: [{address: " + addr(slow2) + ", http2: true}]"},
		{"request h2c", "  timeouts: {request: 100ms}\n  backends: [{address: " + addr(slow2) + ", http2: true}]"},
		// Retries on timeout, but the request timeout bounds them all.
		{"request bounds retries", "  timeouts: {perTry: 80ms, request: 200ms}\n  retries: {attempts: 5, on: [timeout]}\n  backends: [{address: " + addr(slow) + "}]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := startGateway(t, Options{}, routeDoc("r", c.spec))
			code, h, d := call(t, "GET", g.url+"/", "")
			limit := 400 * time.Millisecond
			if code != http.StatusGatewayTimeout || d > limit || h.Get("X-Cairn-Error") != "upstream timed out" {
				t.Fatalf("%d after %v (limit %v): %v", code, d, limit, h)
			}
		})
	}
	// With retry on timeout, a slow instance is skipped within the request.
	g := startGateway(t, Options{}, "")
	g.apply(t, routeDoc("r", "  timeouts: {perTry: 100ms}\n  retries: {attempts: 2, on: [timeout]}\n  backends: [{service: web}]"), svc("web", inst(slow), inst(fast)))
	for i := 0; i < 6; i++ {
		if code, h, _ := call(t, "GET", g.url+"/", ""); code != 200 || h.Get("X-Backend") != "fast" {
			t.Fatalf("%d from %q", code, h.Get("X-Backend"))
		}
	}
	// Not for POST: a request the backend may have acted on.
	if code, _, _ := call(t, "POST", g.url+"/", "x"); code != 200 {
		// Round robin alternates: this one or the next goes to slow.
		if code2, _, _ := call(t, "POST", g.url+"/", "x"); code != http.StatusGatewayTimeout && code2 != http.StatusGatewayTimeout {
			t.Fatalf("POST retried after a timeout: %d %d", code, code2)
		}
	}
}

// resetBackend reads a request and closes the connection without an
// answer; hits counts the requests.
func resetBackend(t *testing.T) (addr string, hits *atomic.Int64) {
	hits = new(atomic.Int64)
	rb := startRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		hits.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, not a clean close
		}
	})
	return rb.addr, hits
}

func TestResilienceRetryOnReset(t *testing.T) {
	raddr, rhits := resetBackend(t)
	good := startBackend(t, "good", nil)
	services := svc("web", Instance{ID: "reset", Host: "127.0.0.1", Ports: map[string]int{"http": portOf(raddr)}}, inst(good))
	g := startGateway(t, Options{}, "")
	spec := "  outlierDetection: {consecutiveFailures: 0}\n  backends: [{service: web}]"
	budget := "  retries: {budget: {percent: 100, minPerSecond: 1000}}\n"
	g.apply(t, routeDoc("r", budget+spec), services)
	for i := 0; i < 10; i++ {
		if code, _, _ := call(t, "GET", g.url+"/", ""); code != 200 {
			t.Fatalf("GET %d: %d", i, code)
		}
		if code, _, _ := call(t, "PUT", g.url+"/", "idempotent"); code != 200 {
			t.Fatalf("PUT %d: %d", i, code)
		}
	}
	if int(rhits.Load()) < 5 {
		t.Fatalf("the resetting instance got %d requests: round robin should send it half", int(rhits.Load()))
	}
	// POST is not retried: the ones that go to the resetting instance fail.
	before := int(rhits.Load())
	fails := 0
	for i := 0; i < 10; i++ {
		code, h, _ := call(t, "POST", g.url+"/", "pay")
		if code == http.StatusBadGateway {
			fails++
			if h.Get("X-Cairn-Error") == "" {
				t.Fatal("no X-Cairn-Error")
			}
		} else if code != 200 {
			t.Fatal(code)
		}
	}
	if fails == 0 || fails != int(rhits.Load())-before {
		t.Fatalf("POST: %d failed, the resetting instance got %d", fails, int(rhits.Load())-before)
	}
	// Unless nonIdempotent says so.
	g.apply(t, routeDoc("r", "  retries: {nonIdempotent: true, budget: {percent: 100, minPerSecond: 1000}}\n"+spec), services)
	for i := 0; i < 10; i++ {
		if code, _, _ := call(t, "POST", g.url+"/", "pay"); code != 200 {
			t.Fatalf("POST with nonIdempotent: %d", code)
		}
	}
}

func TestResilienceRetryOnStatus(t *testing.T) {
	bad := startBackend(t, "bad", nil)
	good := startBackend(t, "good", nil)
	services := svc("web", inst(bad), inst(good))
	g := startGateway(t, Options{}, "")
	run := func(spec string, n int) (ok, failed int) {
		t.Helper()
		// A budget that does not get in the way (TestResilienceRetryBudget).
		g.apply(t, routeDoc("r", "  outlierDetection: {consecutiveFailures: 0}\n  retries: {"+spec+"backoff: {base: 1ms}, budget: {percent: 100, minPerSecond: 1000}}\n  backends: [{service: web}]"), services)
		for i := 0; i < n; i++ {
			code, _, _ := call(t, "GET", g.url+"/", "")
			if code == 200 {
				ok++
			} else {
				failed++
			}
		}
		return ok, failed
	}
	for _, c := range []struct {
		fail     int
		spec     string
		retried  bool
		whatWant string
	}{
		{503, "", true, "503 retried by default"},
		{502, "", true, "502 retried by default"},
		{504, "", true, "504 retried by default"},
		{500, "", false, "500 not retried by default"},
		{503, "on: [connect-failure, reset], ", false, "503 not retried when not listed"},
		{500, "on: [\"500\"], ", true, "500 retried when listed"},
		{503, "attempts: 0, ", false, "no retries with attempts 0"},
	} {
		bad.fail.Store(int64(c.fail))
		ok, failed := run(c.spec, 20)
		if c.retried && failed != 0 || !c.retried && (failed < 5 || ok < 5) {
			t.Errorf("%s: %d ok, %d failed", c.whatWant, ok, failed)
		}
	}
}

func TestResilienceBackoff(t *testing.T) {
	b := startBackend(t, "down", nil)
	b.fail.Store(503)
	g := startGateway(t, Options{}, routeDoc("r", "  retries: {attempts: 3, backoff: {base: 20ms, max: 20ms}, budget: {percent: 100, minPerSecond: 1000}}\n"+
		"  outlierDetection: {consecutiveFailures: 0}\n  backends: [{address: "+addr(b)+"}]"))
	const n = 20
	start := time.Now()
	for i := 0; i < n; i++ {
		if code, _, _ := call(t, "GET", g.url+"/", ""); code != 503 {
			t.Fatal(code)
		}
	}
	d := time.Since(start)
	// 60 backoffs, each uniform in [0, 20ms]: 600ms on average, standard
	// deviation 45ms; never more than 1.2s (plus the requests).
	if d < 350*time.Millisecond || d > 2*time.Second {
		t.Fatalf("%d requests with 3 retries each took %v", n, d)
	}
	if b.hits.Load() != 4*n {
		t.Fatalf("backend hits %d, want %d", b.hits.Load(), 4*n)
	}
	if r := metric(t, g.reg, "cairn_proxy_retries_total", "route", "default/r"); r != 3*n {
		t.Fatalf("retries metric %v", r)
	}
}

func TestResilienceRetryBudget(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	a.fail.Store(503)
	b.fail.Store(503)
	g := startGateway(t, Options{}, "")
	g.apply(t, routeDoc("r", "  retries: {attempts: 3, backoff: {base: 1ms}, budget: {percent: 20, minPerSecond: 5}}\n"+
		"  outlierDetection: {consecutiveFailures: 0}\n  backends: [{service: web}]"), svc("web", inst(a), inst(b)))
	const n = 500
	start := time.Now()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := 0; w < 5; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/5; i++ {
				resp, err := testClient.Get(g.url + "/")
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 503 {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	hits := a.hits.Load() + b.hits.Load()
	// Without a budget: 4 tries each, 2000 hits. With it: the requests,
	// 20% more, and the trickle (5 at the start, 5 a second).
	limit := float64(n)*1.2 + 5 + 5*secs + 1
	if bad.Load() != 0 || float64(hits) > limit || hits < n+n/10 {
		t.Fatalf("%d requests, %d backend hits (limit %.0f), %d unexpected answers, %.1fs", n, hits, limit, bad.Load(), secs)
	}
	if r := metric(t, g.reg, "cairn_proxy_retries_total", "route", "default/r"); int64(r) != hits-n {
		t.Fatalf("retries metric %v, hits beyond the requests %d", r, hits-n)
	}
}

func TestResilienceCircuitBreakerMaxRequests(t *testing.T) {
	release := make(chan struct{})
	var inflight atomic.Int64
	b := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		<-release
		io.WriteString(w, "done")
	}))
	g := startGateway(t, Options{}, routeDoc("r", "  circuitBreaker: {maxRequests: 3}\n  backends: [{address: "+addr(b)+"}]"))
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := testClient.Get(g.url + "/slow")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	waitFor(t, 3*time.Second, "3 slow requests in flight", func() bool { return inflight.Load() == 3 })
	if v := metric(t, g.reg, "cairn_proxy_upstream_circuit_open", "instance", b.addr); v != 1 {
		t.Errorf("circuit_open gauge %v while full", v)
	}
	for i := 0; i < 10; i++ {
		code, h, d := call(t, "GET", g.url+"/more", "")
		if code != http.StatusServiceUnavailable || !strings.Contains(h.Get("X-Cairn-Error"), "circuit") || d > time.Second {
			t.Fatalf("over the limit: %d after %v: %v", code, d, h)
		}
	}
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("a request within the limit got %d", c)
		}
	}
	if code, _, _ := call(t, "GET", g.url+"/after", ""); code != 200 {
		t.Fatalf("after the slow ones: %d", code)
	}
	if n := metric(t, g.reg, "cairn_proxy_circuit_open_total", "route", "default/r"); n != 10 {
		t.Fatalf("circuit_open_total %v", n)
	}
	if n := metric(t, g.reg, "cairn_proxy_requests_total", "route", "default/r", "class", "5xx"); n != 10 {
		t.Fatalf("5xx %v", n)
	}
}

func TestResilienceCircuitBreakerConnections(t *testing.T) {
	release := make(chan struct{})
	var inflight atomic.Int64
	b := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done")
	}))
	g := startGateway(t, Options{}, routeDoc("r", "  circuitBreaker: {maxConnections: 1, maxPending: 1}\n  backends: [{address: "+addr(b)+"}]"))
	results := make(chan int, 2)
	go func() { results <- codeOf(g.url + "/slow") }()
	waitFor(t, 3*time.Second, "the slow request in flight", func() bool { return inflight.Load() == 1 })
	// The second waits for the one connection; the third finds the
	// queue full.
	go func() { results <- codeOf(g.url + "/queued") }()
	waitFor(t, 3*time.Second, "a request waiting for a connection", func() bool {
		g.e.mu.Lock()
		defer g.e.mu.Unlock()
		for _, u := range g.e.upstreams {
			if u.pending.Load() == 1 {
				return true
			}
		}
		return false
	})
	code, h, _ := call(t, "GET", g.url+"/third", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(h.Get("X-Cairn-Error"), "circuit") {
		t.Fatalf("third: %d %v", code, h)
	}
	close(release)
	for i := 0; i < 2; i++ {
		if c := <-results; c != 200 {
			t.Fatalf("slow or queued: %d", c)
		}
	}
	if n := b.conns.Load(); n != 1 {
		t.Fatalf("maxConnections 1, the backend saw %d", n)
	}
}

func TestResilienceOutlierDetection(t *testing.T) {
	bad, good := startBackend(t, "bad", nil), startBackend(t, "good", nil)
	bad.fail.Store(500)
	g := startGateway(t, Options{}, "")
	g.apply(t, routeDoc("r", "  outlierDetection: {consecutiveFailures: 3, baseEjection: 600ms}\n  backends: [{service: web}]"), svc("web", inst(bad), inst(good)))
	fails := 0
	for i := 0; i < 30; i++ {
		if code, _, _ := call(t, "GET", g.url+"/", ""); code == 500 {
			fails++
		}
	}
	// 500 is not retried: the client sees the three that eject it.
	if fails != 3 || bad.hits.Load() != 3 {
		t.Fatalf("%d failures, bad instance hit %d times", fails, bad.hits.Load())
	}
	if v := metric(t, g.reg, "cairn_proxy_upstream_ejected", "instance", bad.addr); v != 1 {
		t.Fatalf("ejected gauge %v", v)
	}
	if v := metric(t, g.reg, "cairn_proxy_outlier_ejections_total", "route", "default/r"); v != 1 {
		t.Fatalf("ejections %v", v)
	}
	// Healed; after the ejection it takes traffic again.
	bad.fail.Store(0)
	time.Sleep(650 * time.Millisecond)
	if v := metric(t, g.reg, "cairn_proxy_upstream_ejected", "instance", bad.addr); v != 0 {
		t.Fatalf("still ejected after baseEjection: %v", v)
	}
	for i := 0; i < 10; i++ {
		if code, _, _ := call(t, "GET", g.url+"/", ""); code != 200 {
			t.Fatal(code)
		}
	}
	if bad.hits.Load() < 3+4 {
		t.Fatalf("the restored instance got %d of 10", bad.hits.Load()-3)
	}
}

// Retries through the net/http transport (http2: true backends): a 503 and
// a refused connection are retried, request bodies are sent again.
func TestResilienceRetriesH2Backends(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.Proto+" "+string(body))
	}
	bad := h2cBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(503)
	})
	good := h2cBackend(t, "good", echo)
	dead := deadAddr(t)
	// Closes every connection once the client's first frames arrive.
	reset := startRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		br.Peek(len(h2Preface))
		c.(*net.TCPConn).SetLinger(0)
	})
	g := startGateway(t, Options{}, "")
	at := func(id, a string) Instance {
		return Instance{ID: id, Host: "127.0.0.1", Ports: map[string]int{"h2c": portOf(a)}}
	}
	// Round robin over four instances, four tries: every request reaches
	// the good one.
	g.apply(t, routeDoc("r", "  retries: {attempts: 3, backoff: {base: 1ms}, budget: {percent: 100, minPerSecond: 1000}}\n  outlierDetection: {consecutiveFailures: 0}\n"+
		"  backends: [{service: web, port: h2c, http2: true}]"),
		svc("web", at("bad", bad.addr), at("dead", dead), at("reset", reset.addr), at("good", good.addr)))
	for i := 0; i < 20; i++ {
		for _, m := range []string{"GET", "PUT", "POST"} {
			req, _ := http.NewRequest(m, g.url+"/", strings.NewReader("body"))
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case m == "POST" && (resp.StatusCode == 503 || resp.StatusCode == 502):
				// POST is not retried on a 503 or a reset (the backend
				// may have acted on it).
			case resp.StatusCode != 200 || string(body) != m+" HTTP/2.0 body":
				t.Fatalf("%s %d: %d %q", m, i, resp.StatusCode, body)
			}
		}
	}
	if bad.hits.Load() == 0 || good.hits.Load() < 30 {
		t.Fatalf("bad %d good %d", bad.hits.Load(), good.hits.Load())
	}
}
