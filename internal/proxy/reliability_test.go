package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/coder/websocket"
)

// load runs GETs from several clients until stop is called, counting
// answers by backend and every failure (a transport error or a status
// other than 200).
type load struct {
	wg       sync.WaitGroup
	stopped  atomic.Bool
	total    atomic.Int64
	mu       sync.Mutex
	failures []string
	byBE     map[string]int
}

func startLoad(t *testing.T, url string, clients int) *load {
	l := &load{byBE: map[string]int{}}
	for i := 0; i < clients; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 5 * time.Second}
			defer c.CloseIdleConnections()
			for !l.stopped.Load() {
				resp, err := c.Get(url)
				l.total.Add(1)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					l.fail(fmt.Sprintf("%d %s %v %s", resp.StatusCode, resp.Header.Get("X-Cairn-Error"), err, body))
					continue
				}
				l.mu.Lock()
				l.byBE[resp.Header.Get("X-Backend")]++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) fail(s string) {
	l.mu.Lock()
	l.failures = append(l.failures, s)
	l.mu.Unlock()
}

func (l *load) stop(t *testing.T) {
	t.Helper()
	l.stopped.Store(true)
	l.wg.Wait()
	if len(l.failures) > 0 {
		t.Errorf("%d of %d requests failed; first: %s", len(l.failures), l.total.Load(), l.failures[0])
	}
}

func (l *load) count(be string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byBE[be]
}

// (a) An instance is killed under load: retries hide it from clients,
// outlier detection ejects it, and once it is back and the ejection is
// over it takes traffic again.
func TestReliabilityInstanceKilledUnderLoad(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	g := startGateway(t, Options{}, "")
	// Default retries and budget; outlier detection with a short ejection.
	g.apply(t, routeDoc("r", "  outlierDetection: {baseEjection: 400ms}\n  backends: [{service: web}]"), svc("web", inst(a), inst(b), inst(c)))
	l := startLoad(t, g.url+"/", 4)
	waitFor(t, 3*time.Second, "traffic on all three", func() bool { return l.count("a") > 20 && l.count("b") > 20 && l.count("c") > 20 })

	b.stop()
	waitFor(t, 3*time.Second, "b to be ejected", func() bool {
		return metric(t, g.reg, "cairn_proxy_upstream_ejected", "instance", b.addr) == 1
	})
	if n := metric(t, g.reg, "cairn_proxy_outlier_ejections_total", "route", "default/r"); n < 1 {
		t.Fatalf("ejections %v", n)
	}
	// While it is out, a and c take everything.
	before := l.count("a") + l.count("c")
	time.Sleep(150 * time.Millisecond)
	if l.count("a")+l.count("c") <= before {
		t.Fatal("no traffic while b is down")
	}

	b.restart(t)
	hitsAtRestart := b.hits.Load()
	waitFor(t, 4*time.Second, "b to take traffic again", func() bool { return b.hits.Load() > hitsAtRestart+20 })
	l.stop(t)
	t.Logf("%d requests; a %d b %d c %d; retries %v", l.total.Load(), l.count("a"), l.count("b"), l.count("c"),
		metric(t, g.reg, "cairn_proxy_retries_total"))
	if l.total.Load() < 100 {
		t.Fatalf("only %d requests: not much of a load", l.total.Load())
	}
}

// (b) A rolling restart of every instance, each drained: no request fails.
func TestReliabilityRollingRestart(t *testing.T) {
	var insts []*testBackend
	for _, n := range []string{"a", "b", "c"} {
		b := startBackend(t, n, nil)
		b.delay.Store(int64(3 * time.Millisecond)) // requests in flight at every moment
		insts = append(insts, b)
	}
	route := routeDoc("r", "  backends: [{service: web}]")
	services := func() map[ServiceKey][]Instance {
		var list []Instance
		for _, b := range insts {
			if b != nil {
				list = append(list, inst(b))
			}
		}
		return svc("web", list...)
	}
	g := startGateway(t, Options{}, "")
	g.apply(t, route, services())
	l := startLoad(t, g.url+"/", 4)
	time.Sleep(100 * time.Millisecond)
	for i, name := range []string{"a", "b", "c"} {
		old := insts[i]
		insts[i] = nil
		g.apply(t, route, services()) // out of the registry's healthy instances
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := old.srv.Shutdown(ctx); err != nil { // drain: in-flight requests finish
			t.Fatal(err)
		}
		cancel()
		nb := startBackend(t, name+"2", nil)
		nb.delay.Store(int64(3 * time.Millisecond))
		insts[i] = nb
		g.apply(t, route, services())
		waitFor(t, 3*time.Second, name+"2 to take traffic", func() bool { return nb.hits.Load() > 10 })
		time.Sleep(50 * time.Millisecond)
	}
	l.stop(t)
	t.Logf("%d requests: %v", l.total.Load(), l.byBE)
}

// (c) A snapshot with an error is rejected whole, naming the route and the
// field, and the running config keeps serving.
func TestReliabilityBadConfigRejected(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	g := startGateway(t, Options{}, "")
	good := func(name, be string) config.Document {
		return config.Document{Kind: config.KindRoute, Metadata: config.Metadata{Name: name, Namespace: "default"},
			Spec: json.RawMessage(`{"backends":[{"address":"` + be + `"}]}`)}
	}
	if err := g.e.Update(&Snapshot{Revision: 7, Routes: []config.Document{good("main", a.addr)}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, spec, field string
	}{
		{"invalid path regex", `{"match":{"path":{"type":"regex","value":"/x/(["}},"backends":[{"address":"` + b.addr + `"}]}`, "spec.match.path.value"},
		{"invalid header regex", `{"match":{"headers":[{"name":"x-a","type":"regex","value":"a++"}]},"backends":[{"address":"` + b.addr + `"}]}`, "spec.match.headers[0].value"},
		{"unknown field", `{"backends":[{"address":"` + b.addr + `"}],"retry":{"attempts":1}}`, "spec.retry"},
		{"unknown nested field", `{"backends":[{"address":"` + b.addr + `","weigth":2}]}`, "spec.backends[0].weigth"},
		{"bad duration", `{"backends":[{"address":"` + b.addr + `"}],"timeouts":{"connect":"soon"}}`, "spec.timeouts.connect"},
		{"rewrite prefix not a wire path", `{"rewrite":{"prefix":"/a b\r\nX-Injected: 1"},"backends":[{"address":"` + b.addr + `"}]}`, "spec.rewrite.prefix"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := config.Document{Kind: config.KindRoute, Metadata: config.Metadata{Name: "broken", Namespace: "shop"}, Spec: json.RawMessage(c.spec)}
			// The good part of the snapshot would move traffic to b.
			err := g.e.Update(&Snapshot{Revision: 8, Routes: []config.Document{good("main", b.addr), bad}})
			var re *RouteError
			if !errors.As(err, &re) || re.Route != "shop/broken" || re.Field != c.field {
				t.Fatalf("got %v (%#v), want an error naming shop/broken and %s", err, re, c.field)
			}
			if !strings.Contains(err.Error(), "shop/broken") || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("message %q", err)
			}
			if g.e.Revision() != 7 || strings.Join(g.e.Routes(), ",") != "default/main" {
				t.Fatalf("running config changed: rev %d routes %v", g.e.Revision(), g.e.Routes())
			}
			for i := 0; i < 5; i++ {
				if code, h, _ := get(t, g.url+"/"); code != 200 || h.Get("X-Backend") != "a" {
					t.Fatalf("%d from %q", code, h.Get("X-Backend"))
				}
			}
		})
	}
	if b.hits.Load() != 0 {
		t.Fatal("a rejected config took traffic")
	}
	// A gateway with no registry refuses service backends, by field.
	st := startGateway(t, Options{Static: true}, "")
	err := st.update(routeDoc("svc", "  backends: [{address: \""+a.addr+"\"}, {service: web}]"))
	var re *RouteError
	if !errors.As(err, &re) || re.Route != "default/svc" || re.Field != "spec.backends[1].service" {
		t.Fatalf("static: %v", err)
	}
}

// (d) Swapping configs under load drops nothing, and a request started
// before a swap finishes on the config it started with.
func TestReliabilityConfigSwapUnderLoad(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	slow := startBackend(t, "slow", nil)
	slow.delay.Store(int64(400 * time.Millisecond))
	cfgA := routeDoc("r", "  backends: [{address: "+addr(a)+"}]") + routeDoc("slow", "  match: {path: {value: /slow}}\n  backends: [{address: "+addr(slow)+"}]")
	cfgB := routeDoc("r", "  loadBalancer: {policy: least_request}\n  backends: [{address: "+addr(b)+"}]")
	g := startGateway(t, Options{}, cfgA)

	slowDone := make(chan string, 1)
	go func() {
		resp, err := testClient.Get(g.url + "/slow")
		if err != nil {
			slowDone <- err.Error()
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		slowDone <- fmt.Sprint(resp.StatusCode, " ", resp.Header.Get("X-Backend"))
	}()
	waitFor(t, 2*time.Second, "the slow request to reach its backend", func() bool { return slow.hits.Load() == 1 })

	l := startLoad(t, g.url+"/", 4)
	for i := 0; i < 40; i++ {
		cfg := cfgA
		if i%2 == 0 {
			cfg = cfgB // the slow route is gone, and its upstream retired
		}
		g.apply(t, cfg)
		time.Sleep(10 * time.Millisecond)
	}
	l.stop(t)
	if got := <-slowDone; got != "200 slow" {
		t.Fatalf("the request in flight during the swaps: %s", got)
	}
	if l.count("a") == 0 || l.count("b") == 0 {
		t.Fatalf("both configs should have served: %v", l.byBE)
	}
}

// (e) Drain: a request in flight completes, new connections are refused,
// and WebSocket tunnels are closed at the drain deadline.
func TestReliabilityDrain(t *testing.T) {
	slow := startBackend(t, "slow", nil)
	slow.delay.Store(int64(300 * time.Millisecond))
	ws := wsBackend(t)
	g := startGateway(t, Options{}, routeDoc("ws", "  match: {path: {value: /chat}}\n  backends: [{address: "+addr(ws)+"}]")+
		routeDoc("slow", "  backends: [{address: "+addr(slow)+"}]"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+g.addr+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if _, _, err := conn.Read(ctx); err != nil { // the greeting
		t.Fatal(err)
	}

	slowDone := make(chan int, 1)
	go func() {
		resp, err := testClient.Get(g.url + "/slow")
		if err != nil {
			slowDone <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		slowDone <- resp.StatusCode
	}()
	waitFor(t, 2*time.Second, "the slow request in flight", func() bool { return slow.hits.Load() == 1 })

	const grace = 800 * time.Millisecond
	start := time.Now()
	drained := make(chan error, 1)
	go func() {
		dctx, dcancel := context.WithTimeout(context.Background(), grace)
		defer dcancel()
		drained <- g.s.Drain(dctx)
	}()
	waitFor(t, time.Second, "new connections to be refused", func() bool {
		c, err := net.DialTimeout("tcp", g.addr, 100*time.Millisecond)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	if code := <-slowDone; code != 200 {
		t.Fatalf("the request in flight got %d", code)
	}
	// Before the deadline the tunnel still works.
	if err := conn.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "echo:still here" {
		t.Fatalf("tunnel during the drain: %q %v", msg, err)
	}
	select {
	case err := <-drained:
		t.Fatalf("drain ended early (%v) with a tunnel open", err)
	default:
	}
	err = <-drained
	if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d < grace-50*time.Millisecond || d > grace+time.Second {
		t.Fatalf("drain: %v after %v", err, d)
	}
	// The tunnel was closed at the deadline.
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	if _, _, err := conn.Read(rctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the tunnel is still open after the drain: %v", err)
	}
}

// A drain with nothing long-lived in flight returns as soon as the last
// request is done.
func TestReliabilityDrainQuick(t *testing.T) {
	slow := startBackend(t, "slow", nil)
	slow.delay.Store(int64(200 * time.Millisecond))
	g := startGateway(t, Options{}, routeDoc("slow", "  backends: [{address: "+addr(slow)+"}]"))
	done := make(chan int, 1)
	go func() { done <- codeOf(g.url + "/") }()
	waitFor(t, 2*time.Second, "in flight", func() bool { return slow.hits.Load() == 1 })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.s.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("drain took %v", d)
	}
	if code := <-done; code != 200 {
		t.Fatal(code)
	}
}
