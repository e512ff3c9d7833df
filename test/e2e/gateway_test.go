package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var adminRE = regexp.MustCompile(`admin on (http://\S+)`)

// httpBackend is a Go HTTP server on 127.0.0.1 that answers with its name
// (after an optional delay from ?sleep=DURATION).
func httpBackend(t *testing.T, name string) (addr string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			time.Sleep(d)
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
}

func gwGet(url string, hdr ...string) (int, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func applyYAML(t *testing.T, serverURL, docs string) (int, string) {
	t.Helper()
	resp, err := http.Post(serverURL+"/v1/config/apply", "application/yaml", strings.NewReader(docs))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func registerAt(t *testing.T, serverURL, svc, id string, port int, meta map[string]string) {
	t.Helper()
	in := instance{ID: id, Service: svc, Address: "127.0.0.1", TTL: "0s", Metadata: meta,
		Ports: []map[string]any{{"name": "http", "port": port}}}
	if code, err := call("PUT", serverURL+"/v1/services/default/"+svc+"/instances/"+id, in, nil); err != nil || code/100 != 2 {
		t.Fatalf("register %s: %d %v", id, code, err)
	}
}

func expectVia(t *testing.T, url, want string, hdr ...string) {
	t.Helper()
	eventually(t, 10*time.Second, "gateway answers "+want, func() (bool, string) {
		code, body, err := gwGet(url, hdr...)
		return err == nil && code == 200 && strings.HasPrefix(body, want), fmt.Sprintf("%d %q %v", code, body, err)
	})
}

const ordersRoutes = `
kind: Route
metadata: {name: orders}
spec:
  match: {path: {value: /orders}}
  backends: [{service: orders, subset: {version: v1}}]
---
kind: Route
metadata: {name: orders-canary}
spec:
  match:
    path: {value: /orders}
    headers: [{name: x-canary, value: "1"}]
  backends: [{service: orders, subset: {version: v2}}]
`

// The gateway of `cairn dev` follows the registry it runs beside: routes
// applied through the API and instances registered there reach it live.
func TestDevGatewayFollowsRegistry(t *testing.T) {
	s := startCairn(t, "dev", "--data-dir", t.TempDir())
	_, p1 := httpBackend(t, "orders-v1")
	_, p2 := httpBackend(t, "orders-v2")
	registerAt(t, s.URL, "orders", "o-1", p1, map[string]string{"version": "v1"})
	registerAt(t, s.URL, "orders", "o-2", p2, map[string]string{"version": "v2"})
	if code, body := applyYAML(t, s.URL, ordersRoutes); code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
	expectVia(t, s.GW+"/orders/42", "orders-v1 /orders/42")
	expectVia(t, s.GW+"/orders/42", "orders-v2 /orders/42", "X-Canary", "1")

	// A bad route is refused at the edge, naming the field; the gateway
	// keeps its config.
	code, body := applyYAML(t, s.URL, "kind: Route\nmetadata: {name: bad}\nspec:\n  match: {path: {type: regex, value: '('}}\n  backends: [{service: orders}]\n")
	if code != 400 || !strings.Contains(body, "documents[0].spec.match.path.value") {
		t.Fatalf("bad route: %d %s", code, body)
	}
	expectVia(t, s.GW+"/orders/1", "orders-v1")

	// The v1 instance leaves: its route has no backend left.
	if code, err := call("DELETE", s.URL+"/v1/services/default/orders/instances/o-1", nil, nil); err != nil || code != 200 {
		t.Fatalf("deregister: %d %v", code, err)
	}
	eventually(t, 10*time.Second, "503 without instances", func() (bool, string) {
		code, body, err := gwGet(s.GW + "/orders/1")
		return err == nil && code == 503 && strings.Contains(body, "no healthy backend"), fmt.Sprintf("%d %q %v", code, body, err)
	})
	expectVia(t, s.GW+"/orders/1", "orders-v2", "X-Canary", "1")
}

// `cairn proxy --server` follows a remote server's registry, and SIGTERM
// lets a request in flight finish before the process exits.
func TestProxyFollowsServerAndDrains(t *testing.T) {
	s := startCairn(t, "server", "--in-memory")
	p := &server{}
	var admin string
	launch(t, p, []string{"proxy", "--server", s.URL, "--listen", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--access-log", "off", "--drain-timeout", "10s"},
		want{gwRE, &p.GW}, want{adminRE, &admin})
	_, port := httpBackend(t, "orders-v1")
	registerAt(t, s.URL, "orders", "o-1", port, map[string]string{"version": "v1"})
	if code, body := applyYAML(t, s.URL, ordersRoutes); code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
	expectVia(t, p.GW+"/orders/7", "orders-v1 /orders/7")
	if code, body, err := gwGet(admin + "/ready"); err != nil || code != 200 {
		t.Fatalf("/ready: %d %s %v", code, body, err)
	}
	_, metrics, _ := gwGet(admin + "/metrics")
	if !strings.Contains(metrics, `cairn_proxy_requests_total{backend="orders.default",class="2xx",route="default/orders"}`) {
		t.Fatalf("metrics lack the route's requests:\n%s", metrics)
	}

	// A slow request is in flight when SIGTERM arrives: it completes.
	type result struct {
		code int
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		code, body, err := gwGet(p.GW + "/orders/slow?sleep=1500ms")
		slow <- result{code, body, err}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-slow
	if r.err != nil || r.code != 200 || !strings.HasPrefix(r.body, "orders-v1 /orders/slow") {
		t.Fatalf("in-flight request during drain: %d %q %v", r.code, r.body, r.err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("proxy did not exit after draining")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("proxy exit code %d; stderr:\n%s", code, p.stderr)
	}
	if _, _, err := gwGet(p.GW + "/orders/1"); err == nil {
		t.Fatal("the drained proxy still accepts connections")
	}
}

// `cairn proxy --config FILE` runs alone: a bad file at start is a
// one-line error; a bad edit leaves the running config; a good edit
// applies without a restart.
func TestProxyFromFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "routes.yaml")
	a, _ := httpBackend(t, "static-a")
	b, _ := httpBackend(t, "static-b")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write("kind: Route\nmetadata: {name: a}\nspec:\n  backends: [{address: \"" + a + "\", weight: -3}]\n")
	var stderr bytes.Buffer
	cmd := exec.Command(cairnBin, "proxy", "--config", file, "--listen", "127.0.0.1:0", "--admin-addr", "off")
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("bad file: want exit 1, got %v", err)
	}
	if msg := strings.TrimSpace(stderr.String()); strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "documents[0].spec.backends[0].weight") {
		t.Fatalf("bad file: want one line naming the field, got %q", msg)
	}

	write("kind: Route\nmetadata: {name: a}\nspec:\n  match: {path: {value: /a}}\n  backends: [{address: \"" + a + "\"}]\n")
	p := &server{}
	launch(t, p, []string{"proxy", "--config", file, "--listen", "127.0.0.1:0", "--admin-addr", "off", "--access-log", "off"}, want{gwRE, &p.GW})
	expectVia(t, p.GW+"/a/1", "static-a /a/1")

	write("kind: Route\nmetadata: {name: a}\nspec:\n  match: {path: {value: /a}}\n  backends: [{address: \"" + a + "\"}]\n  bogus: true\n")
	time.Sleep(2500 * time.Millisecond) // past the reload check
	expectVia(t, p.GW+"/a/2", "static-a /a/2")
	if !strings.Contains(p.stderr.String(), "documents[0].spec.bogus") {
		t.Fatalf("the rejected edit is not logged with its field:\n%s", p.stderr)
	}

	write("kind: Route\nmetadata: {name: a}\nspec:\n  match: {path: {value: /a}}\n  backends: [{address: \"" + a + "\"}]\n---\n" +
		"kind: Route\nmetadata: {name: b}\nspec:\n  match: {path: {value: /b}}\n  backends: [{address: \"" + b + "\"}]\n")
	expectVia(t, p.GW+"/b/"+strconv.Itoa(3), "static-b /b/3")
	expectVia(t, p.GW+"/a/3", "static-a /a/3")
}
