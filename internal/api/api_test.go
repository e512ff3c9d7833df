package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

func newServer(t *testing.T, cfg registry.Config) (*httptest.Server, *registry.Registry) {
	t.Helper()
	reg, err := registry.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Registry: reg, PingInterval: 50 * time.Millisecond}))
	t.Cleanup(func() { srv.Close(); reg.Close() })
	return srv, reg
}

// do sends a request and decodes the JSON answer into a map.
func do(t *testing.T, method, url, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: body is not JSON: %s", method, url, b)
		}
	}
	return resp.StatusCode, m, resp.Header
}

const webA = `{"service":"web","id":"a","address":"10.0.0.1","ports":[{"name":"http","port":8080,"protocol":"http"}],"zone":"z1","metadata":{"version":"1"}}`

func TestRegisterGetRenewDeregister(t *testing.T) {
	srv, _ := newServer(t, registry.Config{})
	code, body, h := do(t, "POST", srv.URL+"/v1/instances", webA)
	if code != 201 {
		t.Fatalf("register: %d %v", code, body)
	}
	if h.Get("X-Cairn-Index") != "1" || body["revision"].(float64) != 1 {
		t.Fatalf("index header %q, body %v", h.Get("X-Cairn-Index"), body)
	}
	in := body["instance"].(map[string]any)
	if in["ttl"] != "1m30s" || in["namespace"] != "default" || in["status"] != "UP" {
		t.Fatalf("defaults: %v", in)
	}
	code, _, _ = do(t, "PUT", srv.URL+"/v1/services/default/web/instances/a", webA)
	if code != 200 {
		t.Fatalf("re-register: %d", code)
	}
	code, body, _ = do(t, "GET", srv.URL+"/v1/services/default/web/instances/a", "")
	if code != 200 || body["instance"].(map[string]any)["address"] != "10.0.0.1" {
		t.Fatalf("get: %d %v", code, body)
	}
	if code, _, _ = do(t, "PUT", srv.URL+"/v1/services/default/web/instances/a/renew", ""); code != 200 {
		t.Fatalf("renew: %d", code)
	}
	code, body, _ = do(t, "GET", srv.URL+"/v1/services/default/web", "")
	if code != 200 || len(body["instances"].([]any)) != 1 {
		t.Fatalf("service: %d %v", code, body)
	}
	code, body, _ = do(t, "GET", srv.URL+"/v1/services", "")
	if code != 200 || body["services"].([]any)[0].(map[string]any)["healthy"].(float64) != 1 {
		t.Fatalf("services: %d %v", code, body)
	}
	if code, _, _ = do(t, "DELETE", srv.URL+"/v1/services/default/web/instances/a", ""); code != 200 {
		t.Fatalf("deregister: %d", code)
	}
	if code, _, _ = do(t, "PUT", srv.URL+"/v1/services/default/web/instances/a/renew", ""); code != 404 {
		t.Fatalf("renew after deregister: %d, want 404", code)
	}
}

func TestOverrideAndFilters(t *testing.T) {
	srv, _ := newServer(t, registry.Config{})
	do(t, "POST", srv.URL+"/v1/instances", webA)
	do(t, "POST", srv.URL+"/v1/instances", strings.Replace(strings.Replace(webA, `"a"`, `"b"`, 1), "z1", "z2", 1))
	code, body, _ := do(t, "PUT", srv.URL+"/v1/services/default/web/instances/a/override", `{"status":"OUT_OF_SERVICE"}`)
	if code != 200 || body["instance"].(map[string]any)["statusOverride"] != "OUT_OF_SERVICE" {
		t.Fatalf("override: %d %v", code, body)
	}
	ids := func(q string) string {
		_, body, _ := do(t, "GET", srv.URL+"/v1/instances?"+q, "")
		var out []string
		for _, in := range body["instances"].([]any) {
			out = append(out, in.(map[string]any)["id"].(string))
		}
		return strings.Join(out, ",")
	}
	for q, want := range map[string]string{
		"":                      "a,b",
		"healthy=true":          "b",
		"zone=z1":               "a",
		"meta=version:1":        "a,b",
		"meta=version:2":        "",
		"status=OUT_OF_SERVICE": "a",
		"service=web&namespace=default&healthy=false": "a,b",
	} {
		if got := ids(q); got != want {
			t.Errorf("GET /v1/instances?%s = %q, want %q", q, got, want)
		}
	}
	do(t, "DELETE", srv.URL+"/v1/services/default/web/instances/a/override", "")
	if got := ids("healthy=true"); got != "a,b" {
		t.Fatalf("after clearing the override: %q", got)
	}
}

// Every endpoint answers bad input with a 4xx JSON error naming the field,
// and the registry's revision does not move.
// okRoute is a valid Route named r in the default namespace.
const okRoute = `{"kind":"Route","metadata":{"name":"r"},"spec":{"backends":[{"service":"o"}]}}`

func TestBadInputChangesNothing(t *testing.T) {
	srv, reg := newServer(t, registry.Config{})
	do(t, "POST", srv.URL+"/v1/instances", webA)
	rev := reg.Revision()
	inst := srv.URL + "/v1/services/default/web/instances/a"
	cases := []struct {
		method, path, body string
		code               int
		field              string
	}{
		{"POST", "/v1/instances", `{`, 400, "body"},
		{"POST", "/v1/instances", ``, 400, "body"},
		{"POST", "/v1/instances", `[]`, 400, "body"},
		{"POST", "/v1/instances", webA + `{}`, 400, "body"},
		{"POST", "/v1/instances", `{"service":"web","id":"x","address":"10.0.0.1","bogus":1}`, 400, "bogus"},
		{"POST", "/v1/instances", `{"service":"web","id":"x","address":"10.0.0.1","ports":[{"name":"p","port":"80"}]}`, 400, "ports.port"},
		{"POST", "/v1/instances", `{"service":"web","id":"x","address":"10.0.0.1","ports":[{"name":"p","port":0}]}`, 400, "ports[0].port"},
		{"POST", "/v1/instances", `{"service":"Web!","id":"x","address":"10.0.0.1"}`, 400, "service"},
		{"POST", "/v1/instances", `{"service":"web","id":"x","address":""}`, 400, "address"},
		{"POST", "/v1/instances", `{"service":"web","id":"x","address":"10.0.0.1","ttl":"forever"}`, 400, "ttl"},
		{"POST", "/v1/instances", `{"service":"web","id":"x","address":"10.0.0.1","status":"SLEEPY"}`, 400, "status"},
		{"POST", "/v1/instances", `{"service":"web","id":"x","address":"10.0.0.1","check":{"type":"http"}}`, 400, "check.port"},
		{"POST", "/v1/instances", `{"service":"web","id":"x","address":"10.0.0.1","healthy":true}`, 400, "healthy"},
		{"POST", "/v1/instances", `{"service":"web","id":"x","address":"10.0.0.1","metadata":{"k":` + `"` + strings.Repeat("v", 2000) + `"}}`, 400, "metadata.k"},
		{"POST", "/v1/instances", `{"service":"web","id":"x","address":"10.0.0.1","metadata":{"k":"` + strings.Repeat("v", 2<<20) + `"}}`, 413, "body"},
		{"PUT", "/v1/services/default/web/instances/a", `{"service":"other","address":"10.0.0.1"}`, 400, "service"},
		{"PUT", "/v1/services/BAD/web/instances/a", webA, 400, "namespace"},
		{"PUT", "/v1/services/default/web/instances/a%25", webA, 400, "id"},
		{"PUT", "/v1/services/default/web/instances/nope/renew", ``, 404, ""},
		{"PUT", "/v1/services/default/web/instances/a/override", `{"status":"MAYBE"}`, 400, "status"},
		{"PUT", "/v1/services/default/web/instances/a/override", `{}`, 400, "status"},
		{"PUT", "/v1/services/default/web/instances/a/status", `{"status":1}`, 400, "status"},
		{"DELETE", "/v1/services/default/web/instances/nope", ``, 404, ""},
		{"DELETE", "/v1/services/default/web/instances/nope/override", ``, 404, ""},
		{"GET", "/v1/services/default/web/instances/nope", ``, 404, ""},
		{"PUT", "/v1/services/default/web", `{"tags":["a b"]}`, 400, "tags[0]"},
		{"PUT", "/v1/services/default/web", `{"name":"other"}`, 400, "name"},
		{"DELETE", "/v1/services/default/web", ``, 409, "cascade"},
		{"DELETE", "/v1/services/default/web?cascade=maybe", ``, 400, "cascade"},
		{"DELETE", "/v1/services/default/none", ``, 404, ""},
		{"GET", "/v1/instances?healthy=yes", ``, 400, "healthy"},
		{"GET", "/v1/instances?meta=novalue", ``, 400, "meta"},
		{"GET", "/v1/instances?status=NOPE", ``, 400, "status"},
		{"GET", "/v1/instances?index=-1", ``, 400, "index"},
		{"GET", "/v1/instances?index=1&wait=soon", ``, 400, "wait"},
		{"GET", "/v1/instances?wait=1s", ``, 400, "wait"},
		{"GET", "/v1/services?namespace=UP", ``, 400, "namespace"},
		{"GET", "/v1/watch?from=x", ``, 400, "from"},
		{"GET", "/v1/watch?service=A", ``, 400, "service"},
		{"GET", "/v1/sd/prometheus?port=A", ``, 400, "port"},
		{"PUT", "/v1/config/route/default/r", `{`, 400, "body"},
		{"PUT", "/v1/config/route/default/r", ``, 400, "body"},
		{"PUT", "/v1/config/route/default/r", `[]`, 400, "body"},
		{"PUT", "/v1/config/route/default/r", okRoute + `{}`, 400, "body"},
		{"PUT", "/v1/config/route/default/r", `{"metadata":{"name":"other"},"spec":{"backends":[{"service":"o"}]}}`, 400, "metadata.name"},
		{"PUT", "/v1/config/route/default/r", `{"metadata":{"namespace":"shop"},"spec":{"backends":[{"service":"o"}]}}`, 400, "metadata.namespace"},
		{"PUT", "/v1/config/route/default/r", `{"metadata":1,"spec":{"backends":[{"service":"o"}]}}`, 400, "metadata"},
		{"PUT", "/v1/config/route/default/r", `{"kind":"Gateway","spec":{"backends":[{"service":"o"}]}}`, 400, "kind"},
		{"PUT", "/v1/config/route/default/r", `{"apiVersion":"v2","spec":{"backends":[{"service":"o"}]}}`, 400, "apiVersion"},
		{"PUT", "/v1/config/route/default/r", `{"kind":"Route"}`, 400, "spec"},
		{"PUT", "/v1/config/route/default/r", `{"spec":{"backends":[{"service":"o","weight":-1}]}}`, 400, "spec.backends[0].weight"},
		{"PUT", "/v1/config/route/default/r", `{"spec":{"bogus":1,"backends":[{"service":"o"}]}}`, 400, "spec.bogus"},
		{"PUT", "/v1/config/route/default/r", `{"spec":{"backends":[{"service":"o"}]},"status":{}}`, 400, "status"},
		{"PUT", "/v1/config/route/default/r", `{"spec":{"hosts":["` + strings.Repeat("h", 300<<10) + `"],"backends":[{"service":"o"}]}}`, 413, "body"},
		{"PUT", "/v1/config/gateways/default/r", okRoute, 404, "kind"},
		{"PUT", "/v1/config/route/BAD/r", okRoute, 400, "namespace"},
		{"PUT", "/v1/config/route/default/R_1", okRoute, 400, "name"},
		{"GET", "/v1/config/widget/default/r", ``, 404, "kind"},
		{"GET", "/v1/config/route/default/none", ``, 404, ""},
		{"GET", "/v1/config?kind=widgets", ``, 400, "kind"},
		{"GET", "/v1/config?namespace=UP", ``, 400, "namespace"},
		{"GET", "/v1/config?index=x", ``, 400, "index"},
		{"DELETE", "/v1/config/route/default/none", ``, 404, ""},
		{"DELETE", "/v1/config/nope/default/none", ``, 404, "kind"},
		{"POST", "/v1/config/apply", `{"documents":[` + okRoute + `,{"kind":"Route","metadata":{"name":"b"},"spec":{"backends":[{"service":"o","weight":-1}]}}]}`, 400,
			"documents[1].spec.backends[0].weight"},
		{"POST", "/v1/config/apply", `{"documents":[{"kind":"Route","metadata":{"name":"b"},"spec":{"backends":[]}}]}`, 400, "documents[0].spec.backends"},
		{"POST", "/v1/config/apply", `{"documents":[{"metadata":{"name":"b"},"spec":{"backends":[{"service":"o"}]}}]}`, 400, "documents[0].kind"},
		{"POST", "/v1/config/apply", `{"documents":[` + okRoute + `,` + okRoute + `]}`, 400, "documents[1].metadata.name"},
		{"POST", "/v1/config/apply", `{"documents":[],"delete":[]}`, 400, "documents"},
		{"POST", "/v1/config/apply", `{"docs":[]}`, 400, "docs"},
		{"POST", "/v1/config/apply", `{"documents":{}}`, 400, "documents"},
		{"POST", "/v1/config/apply", `{"documents":[` + okRoute + `],"delete":[{"kind":"route","name":"missing"}]}`, 404, ""},
		{"POST", "/v1/config/apply", `{"delete":[{"kind":"widget","name":"x"}]}`, 400, "delete[0].kind"},
		{"POST", "/v1/config/apply", `{"delete":[{"kind":"route","name":"X"}]}`, 400, "delete[0].name"},
		{"POST", "/v1/config/apply?dryRun=maybe", `{"documents":[` + okRoute + `]}`, 400, "dryRun"},
		{"GET", "/v1/config/apply", ``, 405, ""},
		{"PATCH", "/v1/instances", `{}`, 405, ""},
		{"GET", "/v2/nothing", ``, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path+" "+tc.field, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Error, Field string }
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if resp.StatusCode != tc.code || e.Field != tc.field || e.Error == "" {
				t.Fatalf("got %d field %q (%q), want %d field %q", resp.StatusCode, e.Field, e.Error, tc.code, tc.field)
			}
			if reg.Revision() != rev {
				t.Fatalf("revision moved from %d to %d", rev, reg.Revision())
			}
		})
	}
	// Wrong Content-Type, and bad YAML bodies.
	for _, tc := range []struct {
		method, path, contentType, body string
		code                            int
		field                           string
	}{
		{"POST", "/v1/instances", "text/xml", webA, 415, "Content-Type"},
		{"PUT", "/v1/config/route/default/r", "text/xml", okRoute, 415, "Content-Type"},
		{"POST", "/v1/config/apply", "text/plain", okRoute, 415, "Content-Type"},
		{"PUT", "/v1/config/route/default/r", "application/yaml", "spec: [", 400, "body"},
		{"PUT", "/v1/config/route/default/r", "application/yaml", "spec: {backends: [{service: o}]}\n---\nspec: {}\n", 400, "body"},
		{"PUT", "/v1/config/route/default/r", "application/yaml", "spec:\n  backends: [{service: o, weight: x}]\n", 400, "spec.backends[0].weight"},
		{"POST", "/v1/config/apply", "application/yaml", "kind: Route\nmetadata: {name: a}\nspec: {backends: [{service: o}]}\n---\nkind: Route\nmetadata: {name: b}\nspec: {hosts: ['a b'], backends: [{service: o}]}\n",
			400, "documents[1].spec.hosts[0]"},
		{"POST", "/v1/config/apply", "application/yaml", "", 400, "documents"},
		{"POST", "/v1/config/apply", "application/yaml", "kind: Route\n  bad: [", 400, "documents[0]"},
	} {
		code, body := doType(t, tc.method, srv.URL+tc.path, tc.contentType, tc.body)
		if code != tc.code || body["field"] != tc.field || body["error"] == "" {
			t.Errorf("%s %s (%s) %q: %d %v, want %d field %q", tc.method, tc.path, tc.contentType, tc.body, code, body, tc.code, tc.field)
		}
		if reg.Revision() != rev {
			t.Fatalf("revision moved from %d to %d", rev, reg.Revision())
		}
	}
	if code, _, _ := do(t, "GET", inst, ""); code != 200 {
		t.Fatal("instance damaged by bad requests")
	}
}

func TestBlockingQuery(t *testing.T) {
	srv, reg := newServer(t, registry.Config{})
	do(t, "POST", srv.URL+"/v1/instances", webA)
	idx := reg.Revision()

	// Nothing changes: the query waits for `wait`, then answers the same index.
	start := time.Now()
	_, _, h := do(t, "GET", fmt.Sprintf("%s/v1/services/default/web/instances?index=%d&wait=200ms", srv.URL, idx), "")
	if time.Since(start) < 150*time.Millisecond || h.Get("X-Cairn-Index") != fmt.Sprint(idx) {
		t.Fatalf("blocking query returned after %v with index %s", time.Since(start), h.Get("X-Cairn-Index"))
	}

	// A change to another service does not wake it; one to web does.
	type result struct {
		body map[string]any
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		_, body, _ := do(t, "GET", fmt.Sprintf("%s/v1/services/default/web/instances?index=%d&wait=20s", srv.URL, idx), "")
		done <- result{body, time.Since(start)}
	}()
	time.Sleep(100 * time.Millisecond)
	do(t, "POST", srv.URL+"/v1/instances", `{"service":"other","id":"o","address":"10.0.0.9"}`)
	select {
	case <-done:
		t.Fatal("a change to another service woke the query")
	case <-time.After(200 * time.Millisecond):
	}
	do(t, "POST", srv.URL+"/v1/instances", strings.Replace(webA, `"a"`, `"b"`, 1))
	select {
	case r := <-done:
		if n := len(r.body["instances"].([]any)); n != 2 {
			t.Fatalf("woken query saw %d instances", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query did not return after a change")
	}

	// An index from the future (server lost writes) answers at once.
	start = time.Now()
	do(t, "GET", srv.URL+"/v1/instances?index=999999&wait=5s", "")
	if time.Since(start) > 2*time.Second {
		t.Fatal("future index blocked")
	}
}

// sseReader reads Server-Sent Events.
type sseReader struct {
	r    *bufio.Reader
	resp *http.Response
}

type sse struct {
	event, id string
	data      map[string]any
}

func openWatch(t *testing.T, url string, header ...string) *sseReader {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseReader{r: bufio.NewReader(resp.Body), resp: resp}
}

func (s *sseReader) next(t *testing.T) sse {
	t.Helper()
	var ev sse
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && ev.event != "":
			return ev
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &ev.data); err != nil {
				t.Fatalf("bad data: %v", err)
			}
		}
	}
}

func TestWatchSnapshotThenChanges(t *testing.T) {
	srv, _ := newServer(t, registry.Config{})
	do(t, "POST", srv.URL+"/v1/instances", webA)
	w := openWatch(t, srv.URL+"/v1/watch?service=web")
	first := w.next(t)
	if first.event != "snapshot" || first.id != "1" || len(first.data["instances"].([]any)) != 1 || first.data["resync"] != false {
		t.Fatalf("first message: %+v", first)
	}
	do(t, "POST", srv.URL+"/v1/instances", `{"service":"other","id":"o","address":"10.0.0.9"}`) // filtered out
	do(t, "DELETE", srv.URL+"/v1/services/default/web/instances/a", "")
	got := w.next(t)
	if got.event != "change" || got.data["type"] != "DELETED" || got.data["kind"] != "instance" || got.data["reason"] != "deregister" {
		t.Fatalf("change: %+v", got)
	}
	// The deregistration of the last instance also deletes the implicit
	// service, in the same revision: only the revision's last event has the id.
	if got.id != "" || got.data["revision"].(float64) != 3 {
		t.Fatalf("first event of revision 3: id %q data %v", got.id, got.data)
	}
	if svc := w.next(t); svc.data["kind"] != "service" || svc.data["type"] != "DELETED" || svc.id != "3" {
		t.Fatalf("last event of revision 3: %+v", svc)
	}
}

func TestWatchResumeAndResync(t *testing.T) {
	srv, _ := newServer(t, registry.Config{FeedCapacity: 16})
	do(t, "POST", srv.URL+"/v1/instances", webA) // rev 1
	for i := 0; i < 5; i++ {
		do(t, "PUT", srv.URL+"/v1/services/default/web/instances/a/status", fmt.Sprintf(`{"status":"%s"}`, []string{"DOWN", "UP"}[i%2]))
	}
	// Resume from revision 3 with Last-Event-ID: changes 4..6, no snapshot.
	w := openWatch(t, srv.URL+"/v1/watch", "Last-Event-ID", "3")
	for want := 4; want <= 6; want++ {
		if ev := w.next(t); ev.event != "change" || ev.id != fmt.Sprint(want) {
			t.Fatalf("resumed stream: %+v, want change %d", ev, want)
		}
	}
	// Push the ring far past revision 2: a reader from 2 must resync.
	for i := 0; i < 40; i++ {
		do(t, "PUT", srv.URL+"/v1/services/default/web/instances/a/status", fmt.Sprintf(`{"status":"%s"}`, []string{"UP", "DOWN"}[i%2]))
	}
	w2 := openWatch(t, srv.URL+"/v1/watch?from=2")
	ev := w2.next(t)
	if ev.event != "snapshot" || ev.data["resync"] != true || ev.id != "46" {
		t.Fatalf("behind the ring: %+v", ev)
	}
	do(t, "DELETE", srv.URL+"/v1/services/default/web/instances/a", "")
	if ev := w2.next(t); ev.event != "change" || ev.data["revision"].(float64) != 47 {
		t.Fatalf("after resync: %+v", ev)
	}
	if ev := w2.next(t); ev.id != "47" {
		t.Fatalf("last event of revision 47: %+v", ev)
	}
}

// A reader holding a revision of another epoch (the server lost its
// history) is answered at once and resynced, whatever the numbers say.
func TestEpochMismatchResyncs(t *testing.T) {
	srv, reg := newServer(t, registry.Config{})
	do(t, "POST", srv.URL+"/v1/instances", webA)
	do(t, "POST", srv.URL+"/v1/instances", strings.Replace(webA, `"a"`, `"b"`, 1))
	_, _, h := do(t, "GET", srv.URL+"/v1/instances", "")
	if h.Get("X-Cairn-Epoch") != reg.Epoch() || reg.Epoch() == "" {
		t.Fatalf("epoch header %q, registry %q", h.Get("X-Cairn-Epoch"), reg.Epoch())
	}
	start := time.Now()
	do(t, "GET", srv.URL+"/v1/instances?index=1&wait=5s&epoch=other", "")
	if time.Since(start) > 2*time.Second {
		t.Fatal("blocking query with a foreign epoch waited")
	}
	w := openWatch(t, srv.URL+"/v1/watch?from=1&epoch=other")
	if ev := w.next(t); ev.event != "snapshot" || ev.data["resync"] != true || ev.data["epoch"] != reg.Epoch() {
		t.Fatalf("watch with a foreign epoch: %+v", ev)
	}
	// The same epoch resumes normally.
	w2 := openWatch(t, srv.URL+"/v1/watch?from=1&epoch="+reg.Epoch())
	if ev := w2.next(t); ev.event != "change" || ev.id != "2" {
		t.Fatalf("watch with the right epoch: %+v", ev)
	}
}

// A resumed watch with nothing new sends its headers at once.
func TestWatchHeadersFlushedAtOnce(t *testing.T) {
	reg, _ := registry.New(registry.Config{}, nil)
	srv := httptest.NewServer(New(Options{Registry: reg, PingInterval: time.Hour}))
	defer srv.Close()
	do(t, "POST", srv.URL+"/v1/instances", webA)
	client := &http.Client{Timeout: 2 * time.Second}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/watch?from=%d", srv.URL, reg.Revision()), nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("headers not sent for an idle resumed stream: %v", err)
	}
	resp.Body.Close()
}

func TestPrometheusSD(t *testing.T) {
	srv, _ := newServer(t, registry.Config{})
	do(t, "POST", srv.URL+"/v1/instances", `{"service":"web","id":"a","address":"10.0.0.1","ports":[{"name":"http","port":8080},{"name":"metrics","port":9100}],"zone":"z1","tags":["canary"],"metadata":{"team.name":"core"}}`)
	do(t, "POST", srv.URL+"/v1/instances", `{"service":"web","id":"b","address":"10.0.0.2","ports":[{"name":"http","port":8080}],"status":"DOWN"}`)
	do(t, "POST", srv.URL+"/v1/instances", `{"service":"db","id":"c","address":"::1","ports":[{"name":"sql","port":5432}]}`)
	resp, err := http.Get(srv.URL + "/v1/sd/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var groups []targetGroup
	json.NewDecoder(resp.Body).Decode(&groups)
	if len(groups) != 2 {
		t.Fatalf("groups: %+v (the DOWN instance must be left out)", groups)
	}
	db, web := groups[0], groups[1]
	if db.Targets[0] != "[::1]:5432" || web.Targets[0] != "10.0.0.1:9100" {
		t.Fatalf("targets: %v %v", db.Targets, web.Targets)
	}
	l := web.Labels
	if l["__meta_cairn_service"] != "web" || l["__meta_cairn_zone"] != "z1" || l["__meta_cairn_tags"] != ",canary," ||
		l["__meta_cairn_metadata_team_name"] != "core" || l["__meta_cairn_port_name"] != "metrics" {
		t.Fatalf("labels: %v", l)
	}
	_, body, _ := do(t, "GET", srv.URL+"/v1/status", "")
	if body["instances"].(float64) != 3 {
		t.Fatalf("status: %v", body)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	srv, _ := newServer(t, registry.Config{})
	do(t, "POST", srv.URL+"/v1/instances", webA)
	do(t, "PUT", srv.URL+"/v1/services/default/web/instances/a/renew", "")
	code, body, _ := do(t, "GET", srv.URL+"/health", "")
	if code != 200 || body["status"] != "ok" {
		t.Fatalf("health: %d %v", code, body)
	}
	resp, _ := http.Get(srv.URL + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`cairn_registry_instances{health="none",status="UP"} 1`,
		`cairn_registry_services 1`,
		`cairn_registry_configs 0`,
		`cairn_registry_renewals_total 1`,
		`cairn_registry_evictions_total 0`,
		`cairn_registry_self_preservation_active 0`,
		`cairn_feed_subscribers 0`,
		`cairn_api_request_duration_seconds_count{code="201",method="POST",route="POST /v1/instances"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
