package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

// doType is do with a Content-Type.
func doType(t *testing.T, method, url, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: body is not JSON: %s", method, url, b)
	}
	return resp.StatusCode, m
}

const ordersRoute = `{"apiVersion":"cairn.dev/v1","kind":"Route","metadata":{"name":"orders","namespace":"shop"},
	"spec":{"hosts":["Shop.Example.com"],"backends":[{"service":"orders","port":"http"}]}}`

func TestConfigDocumentEndpoints(t *testing.T) {
	srv, reg := newServer(t, registry.Config{})
	base := srv.URL + "/v1/config/route/shop/orders"

	code, body, h := do(t, "PUT", base, ordersRoute)
	if code != 201 || h.Get("X-Cairn-Index") != "1" {
		t.Fatalf("create: %d %v", code, body)
	}
	doc := body["document"].(map[string]any)
	meta := doc["metadata"].(map[string]any)
	if doc["kind"] != "Route" || meta["createRevision"].(float64) != 1 || doc["spec"].(map[string]any)["hosts"].([]any)[0] != "shop.example.com" {
		t.Fatalf("stored document: %v", doc)
	}
	// The same document again: 200, nothing changes.
	if code, body, _ := do(t, "PUT", base, ordersRoute); code != 200 || body["revision"].(float64) != 1 || reg.Revision() != 1 {
		t.Fatalf("unchanged put: %d %v", code, body)
	}
	// YAML, without kind and metadata (the path names them); the kind in any spelling.
	code, body = doType(t, "PUT", srv.URL+"/v1/config/routes/shop/orders", "application/yaml",
		"spec:\n  backends:\n    - {service: orders, weight: 90}\n    - {service: orders, subset: {version: v2}, weight: 10}\n")
	if code != 200 || body["revision"].(float64) != 2 {
		t.Fatalf("yaml put: %d %v", code, body)
	}
	meta = body["document"].(map[string]any)["metadata"].(map[string]any)
	if meta["createRevision"].(float64) != 1 || meta["modifyRevision"].(float64) != 2 || meta["namespace"] != "shop" {
		t.Fatalf("metadata after the change: %v", meta)
	}
	do(t, "PUT", srv.URL+"/v1/config/Route/default/static", `{"spec":{"backends":[{"address":"127.0.0.1:9000"}]}}`)

	code, body, _ = do(t, "GET", base, "")
	if code != 200 || body["document"].(map[string]any)["metadata"].(map[string]any)["name"] != "orders" {
		t.Fatalf("get: %d %v", code, body)
	}
	names := func(q string) string {
		t.Helper()
		code, body, _ := do(t, "GET", srv.URL+"/v1/config"+q, "")
		if code != 200 {
			t.Fatalf("list %s: %d %v", q, code, body)
		}
		var out []string
		for _, d := range body["documents"].([]any) {
			out = append(out, d.(map[string]any)["metadata"].(map[string]any)["name"].(string))
		}
		return strings.Join(out, ",")
	}
	for q, want := range map[string]string{"": "static,orders", "?kind=routes": "static,orders", "?namespace=shop": "orders", "?namespace=none": ""} {
		if got := names(q); got != want {
			t.Errorf("GET /v1/config%s = %q, want %q", q, got, want)
		}
	}

	if code, body, _ := do(t, "DELETE", base, ""); code != 200 || body["revision"].(float64) != 4 {
		t.Fatalf("delete: %d %v", code, body)
	}
	if code, body, _ := do(t, "GET", base, ""); code != 404 || body["error"] != "not found: route/shop/orders" {
		t.Fatalf("get after delete: %d %v", code, body)
	}
	_, body, _ = do(t, "GET", srv.URL+"/v1/status", "")
	if body["configs"].(float64) != 1 {
		t.Fatalf("status: %v", body)
	}
}

func TestConfigApply(t *testing.T) {
	srv, reg := newServer(t, registry.Config{})
	apply := srv.URL + "/v1/config/apply"
	results := func(body map[string]any) string {
		var out []string
		for _, r := range body["results"].([]any) {
			m := r.(map[string]any)
			out = append(out, fmt.Sprintf("%s/%s/%s %s", m["kind"], m["namespace"], m["name"], m["action"]))
		}
		return strings.Join(out, ", ")
	}
	stream := "kind: Route\nmetadata: {name: a}\nspec: {backends: [{service: a}]}\n---\n" +
		"kind: Route\nmetadata: {name: b, namespace: shop}\nspec: {backends: [{service: b}]}\n"

	// A dry run of a YAML stream changes nothing.
	code, body := doType(t, "POST", apply+"?dryRun=true", "application/yaml", stream)
	if code != 200 || body["dryRun"] != true || results(body) != "Route/default/a created, Route/shop/b created" || reg.Revision() != 0 {
		t.Fatalf("dry run: %d %v", code, body)
	}
	code, body = doType(t, "POST", apply, "text/yaml", stream)
	if code != 200 || body["revision"].(float64) != 1 || body["dryRun"] != false {
		t.Fatalf("apply: %d %v", code, body)
	}
	// JSON form: change one, keep one, delete one, all in one revision.
	code, body = doType(t, "POST", apply, "application/json", `{"documents":[
		{"kind":"Route","metadata":{"name":"a"},"spec":{"backends":[{"service":"a2"}]}},
		{"kind":"route","metadata":{"name":"c"},"spec":{"backends":[{"service":"c"}]}}],
		"delete":[{"kind":"routes","namespace":"shop","name":"b"}]}`)
	if code != 200 || body["revision"].(float64) != 2 || results(body) != "Route/default/a configured, Route/default/c created, Route/shop/b deleted" {
		t.Fatalf("json apply: %d %v", code, body)
	}
	evs, _, _, _ := reg.Feed().Since(1, 0)
	if len(evs) != 3 || evs[2].Revision != 2 {
		t.Fatalf("events of the apply: %+v", evs)
	}
	code, body = doType(t, "POST", apply, "application/yaml", stream[:strings.Index(stream, "---")])
	if code != 200 || results(body) != "Route/default/a configured" {
		t.Fatalf("re-apply: %d %v", code, body)
	}
}

func TestConfigBlockingQuery(t *testing.T) {
	srv, reg := newServer(t, registry.Config{})
	do(t, "POST", srv.URL+"/v1/instances", webA)
	do(t, "PUT", srv.URL+"/v1/config/route/default/a", `{"spec":{"backends":[{"service":"web"}]}}`)
	idx := reg.Revision()

	get := func(path string) chan map[string]any {
		done := make(chan map[string]any, 1)
		url := fmt.Sprintf("%s%s?index=%d&wait=20s", srv.URL, path, idx)
		go func() {
			_, body, _ := do(t, "GET", url, "")
			done <- body
		}()
		return done
	}
	configs := get("/v1/config")
	routeA := get("/v1/config/route/default/a")
	instances := get("/v1/instances")
	time.Sleep(100 * time.Millisecond)

	// An instance change does not wake config reads.
	do(t, "PUT", srv.URL+"/v1/services/default/web/instances/a/status", `{"status":"DOWN"}`)
	select {
	case <-configs:
		t.Fatal("an instance change woke a config read")
	case <-instances:
	case <-time.After(10 * time.Second):
		t.Fatal("the instance read did not wake")
	}
	idx = reg.Revision()
	instances = get("/v1/instances")
	time.Sleep(100 * time.Millisecond)

	// A new route wakes the list, not the read of another route nor instance reads.
	do(t, "PUT", srv.URL+"/v1/config/route/default/b", `{"spec":{"backends":[{"service":"web"}]}}`)
	select {
	case body := <-configs:
		if n := len(body["documents"].([]any)); n != 2 {
			t.Fatalf("woken list has %d documents", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the config list did not wake")
	}
	select {
	case <-routeA:
		t.Fatal("a change of route b woke the read of route a")
	case <-instances:
		t.Fatal("a config change woke an instance read")
	case <-time.After(200 * time.Millisecond):
	}
	do(t, "PUT", srv.URL+"/v1/config/route/default/a", `{"spec":{"backends":[{"service":"other"}]}}`)
	select {
	case body := <-routeA:
		if body["document"].(map[string]any)["spec"].(map[string]any)["backends"].([]any)[0].(map[string]any)["service"] != "other" {
			t.Fatalf("woken read: %v", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read of route a did not wake")
	}
	do(t, "PUT", srv.URL+"/v1/services/default/web/instances/a/status", `{"status":"UP"}`)
	select {
	case <-instances:
	case <-time.After(10 * time.Second):
		t.Fatal("the instance read did not wake")
	}
}

func TestWatchCarriesConfig(t *testing.T) {
	srv, _ := newServer(t, registry.Config{})
	do(t, "POST", srv.URL+"/v1/instances", webA)
	do(t, "PUT", srv.URL+"/v1/config/route/default/a", `{"spec":{"backends":[{"service":"web"}]}}`)
	all := openWatch(t, srv.URL+"/v1/watch")
	web := openWatch(t, srv.URL+"/v1/watch?service=web")
	snap := all.next(t)
	if snap.event != "snapshot" || len(snap.data["configs"].([]any)) != 1 {
		t.Fatalf("snapshot: %+v", snap)
	}
	if s := web.next(t); len(s.data["configs"].([]any)) != 0 {
		t.Fatalf("service snapshot has configs: %+v", s)
	}
	do(t, "PUT", srv.URL+"/v1/config/route/shop/b", `{"spec":{"backends":[{"service":"web"}]}}`)
	do(t, "DELETE", srv.URL+"/v1/services/default/web/instances/a", "")
	ev := all.next(t)
	cfg, _ := ev.data["config"].(map[string]any)
	if ev.event != "change" || ev.data["kind"] != "config" || ev.data["type"] != "ADDED" || ev.data["reason"] != "apply" ||
		cfg["metadata"].(map[string]any)["name"] != "b" || ev.id != "3" {
		t.Fatalf("config change: %+v", ev)
	}
	// The service's stream skips the config event.
	if ev := web.next(t); ev.data["kind"] != "instance" || ev.data["revision"].(float64) != 4 {
		t.Fatalf("service stream: %+v", ev)
	}
	// A namespace's stream gets that namespace's documents only.
	shop := openWatch(t, srv.URL+"/v1/watch?namespace=shop")
	if s := shop.next(t); len(s.data["configs"].([]any)) != 1 {
		t.Fatalf("namespace snapshot: %+v", s)
	}
}
