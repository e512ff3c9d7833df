package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/pkg/client"
)

const routesYAML = `apiVersion: cairn.dev/v1
kind: Route
metadata: {name: orders, namespace: shop}
spec:
  hosts: [shop.example.com]
  match:
    path: {value: /orders}
    methods: [GET, POST]
    headers: [{name: x-canary, value: "1"}]
  backends:
    - {service: orders, port: http, weight: 90}
    - {service: orders, subset: {version: v2}, weight: 10}
  retries: {attempts: 3, on: [connect-failure, "503"]}
---
kind: route
metadata: {name: static}
spec:
  backends: [{address: "127.0.0.1:9000"}]
`

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fields joins the whitespace-separated fields of each line.
func fields(s string) []string {
	var out []string
	for _, l := range lines(s) {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return out
}

func wantLines(t *testing.T, what, got string, want ...string) {
	t.Helper()
	if g := fields(got); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n%s\nwant:\n%s", what, strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

func TestCLIConfigLifecycle(t *testing.T) {
	ts := newTestServer(t)
	file := writeFile(t, "routes.yaml", routesYAML)

	wantLines(t, "dry run", ts.mustCairn(t, "apply", "-f", file, "--dry-run"),
		"route/shop/orders created (dry run)", "route/default/static created (dry run)")
	wantLines(t, "apply", ts.mustCairn(t, "apply", "-f", file),
		"route/shop/orders created", "route/default/static created")
	wantLines(t, "apply again", ts.mustCairn(t, "apply", "-f", file),
		"route/shop/orders unchanged", "route/default/static unchanged")

	wantLines(t, "get routes", ts.mustCairn(t, "get", "routes"),
		"NAMESPACE NAME HOSTS MATCH BACKENDS REVISION",
		"default static * / 127.0.0.1:9000 1",
		"shop orders shop.example.com /orders,GET|POST,h:x-canary=1 orders:http(90%),orders{version=v2}(10%) 1")
	wantLines(t, "get one route", ts.mustCairn(t, "get", "Route", "orders", "-n", "shop"),
		"NAMESPACE NAME HOSTS MATCH BACKENDS REVISION",
		"shop orders shop.example.com /orders,GET|POST,h:x-canary=1 orders:http(90%),orders{version=v2}(10%) 1")
	wantLines(t, "get routes of a namespace", ts.mustCairn(t, "get", "route", "-n", "default"),
		"NAMESPACE NAME HOSTS MATCH BACKENDS REVISION", "default static * / 127.0.0.1:9000 1")

	var doc client.ConfigDocument
	if err := json.Unmarshal([]byte(ts.mustCairn(t, "get", "route", "orders", "-n", "shop", "-o", "json")), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Kind != "Route" || doc.Metadata.ModifyRevision != 1 || !strings.Contains(compact(t, doc.Spec), `"weight":90`) {
		t.Fatalf("json: %+v", doc)
	}

	// `get -o yaml` re-applies as unchanged, one document or the list.
	one := writeFile(t, "one.yaml", ts.mustCairn(t, "get", "route", "orders", "-n", "shop", "-o", "yaml"))
	wantLines(t, "re-apply one", ts.mustCairn(t, "apply", "-f", one), "route/shop/orders unchanged")
	list := ts.mustCairn(t, "get", "routes", "-o", "yaml")
	if !strings.Contains(list, "---\n") || !strings.Contains(list, "modifyRevision: 1") {
		t.Fatalf("yaml list:\n%s", list)
	}
	all := writeFile(t, "all.yaml", list)
	wantLines(t, "re-apply list", ts.mustCairn(t, "apply", "-f", all),
		"route/default/static unchanged", "route/shop/orders unchanged")
	jsonList := writeFile(t, "all.json", ts.mustCairn(t, "get", "routes", "-o", "json"))
	wantLines(t, "re-apply json list", ts.mustCairn(t, "apply", "-f", jsonList),
		"route/default/static unchanged", "route/shop/orders unchanged")

	// diff: nothing, then an edit.
	if code, out, errOut := ts.cairn(t, "diff", "-f", file); code != 0 || out != "" || errOut != "" {
		t.Fatalf("diff of applied file: exit %d\n%s%s", code, out, errOut)
	}
	edited := strings.Replace(strings.Replace(routesYAML, "weight: 90", "weight: 80", 1), "weight: 10", "weight: 20", 1)
	if err := os.WriteFile(file, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := ts.cairn(t, "diff", "-f", file)
	if code != 1 || errOut != "" {
		t.Fatalf("diff of edited file: exit %d\n%s%s", code, out, errOut)
	}
	var minus, plus []string
	for _, l := range lines(out) {
		switch {
		case strings.HasPrefix(l, "---") || strings.HasPrefix(l, "+++") || strings.HasPrefix(l, "@@"):
		case strings.HasPrefix(l, "-"):
			minus = append(minus, strings.TrimSpace(l[1:]))
		case strings.HasPrefix(l, "+"):
			plus = append(plus, strings.TrimSpace(l[1:]))
		}
	}
	if strings.Join(minus, ";") != "weight: 90;weight: 10" || strings.Join(plus, ";") != "weight: 80;weight: 20" ||
		!strings.HasPrefix(out, "--- route/shop/orders (live)\n+++ route/shop/orders ("+file+")\n@@ -") {
		t.Fatalf("diff:\n%s", out)
	}
	wantLines(t, "apply the edit (dry run)", ts.mustCairn(t, "apply", "-f", file, "--dry-run"),
		"route/shop/orders configured (dry run)", "route/default/static unchanged (dry run)")
	wantLines(t, "apply the edit", ts.mustCairn(t, "apply", "-f", file),
		"route/shop/orders configured", "route/default/static unchanged")
	if code, out, _ := ts.cairn(t, "diff", "-f", file); code != 0 || out != "" {
		t.Fatalf("diff after apply: exit %d\n%s", code, out)
	}
	// A document the server lacks is all added.
	extra := writeFile(t, "extra.yaml", "kind: Route\nmetadata: {name: extra}\nspec: {backends: [{service: x}]}\n")
	code, out, _ = ts.cairn(t, "diff", "-f", extra)
	if code != 1 || !strings.HasPrefix(out, "--- route/default/extra (not on the server)\n+++ route/default/extra (") ||
		!strings.Contains(out, "\n@@ -0,0 +1,") || strings.Contains(out, "\n-") || !strings.Contains(out, "\n+kind: Route\n") {
		t.Fatalf("diff of a new document: exit %d\n%s", code, out)
	}

	// delete by name; delete -f is atomic (a missing document deletes nothing).
	wantLines(t, "delete", ts.mustCairn(t, "delete", "routes", "static"), "route/default/static deleted")
	code, out, errOut = ts.cairn(t, "delete", "-f", file)
	if code != 1 || out != "" || strings.TrimSpace(errOut) != "cairn delete: not found: route/default/static" {
		t.Fatalf("delete -f with a missing document: exit %d\n%s%s", code, out, errOut)
	}
	wantLines(t, "after the failed delete", ts.mustCairn(t, "get", "routes"),
		"NAMESPACE NAME HOSTS MATCH BACKENDS REVISION",
		"shop orders shop.example.com /orders,GET|POST,h:x-canary=1 orders:http(80%),orders{version=v2}(20%) 2")
	ts.mustCairn(t, "apply", "-f", file)
	wantLines(t, "delete -f", ts.mustCairn(t, "delete", "-f", file),
		"route/shop/orders deleted", "route/default/static deleted")
	wantLines(t, "get after delete", ts.mustCairn(t, "get", "routes"), "NAMESPACE NAME HOSTS MATCH BACKENDS REVISION")
}

func TestCLIApplyStdinAndJSON(t *testing.T) {
	ts := newTestServer(t)
	old := stdin
	stdin = strings.NewReader(routesYAML)
	defer func() { stdin = old }()
	var res client.ApplyResult
	if err := json.Unmarshal([]byte(ts.mustCairn(t, "apply", "-f", "-", "-o", "json")), &res); err != nil {
		t.Fatal(err)
	}
	if res.Revision != 1 || len(res.Results) != 2 || res.Results[0].Action != client.ActionCreated {
		t.Fatalf("%+v", res)
	}
}

// A bad file is refused with one line naming the file and the field, and
// nothing is sent.
func TestCLIConfigErrors(t *testing.T) {
	ts := newTestServer(t)
	good := writeFile(t, "good.yaml", routesYAML)
	bad := writeFile(t, "bad.yaml", routesYAML+"---\nkind: Route\nmetadata: {name: bad}\nspec:\n  backends: [{service: x, weight: -1}]\n")
	other := writeFile(t, "other.yaml", "kind: Route\nmetadata: {name: static}\nspec: {backends: [{service: y}]}\n")
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	ts.mustCairn(t, "apply", "-f", good)
	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		stderr  string
		request bool
	}{
		{"bad document", []string{"apply", "-f", good, "-f", bad}, 1, "cairn apply: " + bad + ": documents[2].spec.backends[0].weight: must be between 0 and 10000", false},
		{"same document in two files", []string{"apply", "-f", good, "-f", other}, 1,
			"cairn apply: " + other + ": documents[0].metadata.name: route/default/static is also " + good + " documents[1]", false},
		{"missing file", []string{"apply", "-f", missing}, 1, "cairn apply: open " + missing, false},
		{"no file", []string{"apply"}, 2, "cairn apply: -f FILE is required", false},
		{"apply with an argument", []string{"apply", "-f", good, "x"}, 2, "cairn apply: wrong number of arguments (1)", false},
		{"stdin twice", []string{"apply", "-f", "-", "-f", "-"}, 1, "cairn apply: -f - given twice", false},
		{"diff of a bad file", []string{"diff", "-f", bad}, 2, "cairn diff: " + bad + ": documents[2].spec.backends[0].weight", false},
		{"diff of a missing file", []string{"diff", "-f", missing}, 2, "cairn diff: open " + missing, false},
		{"diff without file", []string{"diff"}, 2, "cairn diff: -f FILE is required", false},
		{"delete of a bad file", []string{"delete", "-f", bad}, 1, "cairn delete: " + bad + ": documents[2]", false},
		{"delete without name", []string{"delete", "route"}, 2, "cairn delete: wrong number of arguments (1)", false},
		{"delete both ways", []string{"delete", "route", "x", "-f", good}, 2, "cairn delete: give KIND NAME or -f FILE, not both", false},
		{"delete unknown kind", []string{"delete", "gateway", "x"}, 2, `cairn delete: kind: unknown kind "gateway"`, false},
		{"delete bad name", []string{"delete", "route", "X_1"}, 2, "cairn delete: name:", false},
		{"delete missing", []string{"delete", "route", "nope"}, 1, "cairn delete: not found: route/default/nope", true},
		{"get missing", []string{"get", "route", "nope", "-n", "shop"}, 1, "cairn get: not found: route/shop/nope", true},
		{"get bad name", []string{"get", "route", "Nope"}, 2, "cairn get: name:", false},
		{"get too many", []string{"get", "routes", "a", "b"}, 2, "cairn get: wrong number of arguments (3)", false},
		{"get bad namespace", []string{"get", "routes", "-n", "UP"}, 1, "cairn get: namespace: must be a lowercase DNS label", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.requests.Load()
			code, out, errOut := ts.cairn(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if ls := lines(errOut); len(ls) != 1 || !strings.HasPrefix(ls[0], tt.stderr) {
				t.Fatalf("stderr is not one line starting with %q:\n%s", tt.stderr, errOut)
			}
			if out != "" {
				t.Fatalf("stdout: %s", out)
			}
			if !tt.request && ts.requests.Load() != before {
				t.Fatal("a request was sent")
			}
		})
	}
	// Nothing changed: the good file is still applied as it was.
	wantLines(t, "after the errors", ts.mustCairn(t, "apply", "-f", good),
		"route/shop/orders unchanged", "route/default/static unchanged")
}

func TestCLIConfigHelpAndWatch(t *testing.T) {
	for _, verb := range []string{"apply", "delete", "diff", "get"} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{verb, "-h"}, &out, &errOut); code != 0 ||
			!strings.HasPrefix(errOut.String(), "Usage: cairn "+verb+" ") || !strings.Contains(errOut.String(), "-server") {
			t.Fatalf("%s -h: exit %d\n%s", verb, code, errOut.String())
		}
	}
	ts := newTestServer(t)
	ts.mustCairn(t, "apply", "-f", writeFile(t, "r.yaml", routesYAML))
	w := ts.watch(t)
	w.waitFor(t, "SNAPSHOT  config    route/default/static")
	ts.mustCairn(t, "delete", "route", "orders", "-n", "shop")
	w.waitFor(t, "DELETED   config    route/shop/orders")
	w.stop(t)
}

func TestLineDiff(t *testing.T) {
	a := strings.Split("a b c d e f g h i j k l m", " ")
	b := strings.Split("a b x d e f g h i j k l m n", " ")
	var out bytes.Buffer
	writeHunks(&out, lineDiff(a, b), 3)
	want := "@@ -1,6 +1,6 @@\n a\n b\n-c\n+x\n d\n e\n f\n@@ -11,3 +11,4 @@\n k\n l\n m\n+n\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	writeHunks(&out, lineDiff(nil, []string{"x", "y"}), 3)
	if out.String() != "@@ -0,0 +1,2 @@\n+x\n+y\n" {
		t.Fatalf("all added:\n%s", out.String())
	}
	if hasChanges(lineDiff(a, a)) {
		t.Fatal("equal inputs differ")
	}
	// Changes closer than twice the context share a hunk.
	out.Reset()
	writeHunks(&out, lineDiff(strings.Split("1 2 3 4 5 6 7 8", " "), strings.Split("1 X 3 4 5 6 Y 8", " ")), 2)
	if !strings.HasPrefix(out.String(), "@@ -1,8 +1,8 @@\n") || strings.Count(out.String(), "@@") != 2 {
		t.Fatalf("merged hunk:\n%s", out.String())
	}
}

// A server error about documents[N] of the combined apply names the file
// and its own index.
func TestExplainApplyNamesTheFile(t *testing.T) {
	srcs := []source{{name: "a.yaml", docs: make([]config.Document, 2)}, {name: "b.yaml", docs: make([]config.Document, 2)}}
	err := explainApply(&client.APIError{StatusCode: 400, Field: "documents[3].spec.hosts[0]",
		Message: "documents[3].spec.hosts[0]: not a host"}, srcs)
	if err.Error() != "b.yaml: documents[1].spec.hosts[0]: not a host" {
		t.Fatalf("%v", err)
	}
	other := &client.APIError{StatusCode: 404, Message: "not found"}
	if explainApply(other, srcs) != error(other) {
		t.Fatal("an error about no document was changed")
	}
}
