package config

import (
	"encoding/json"
	"strings"
	"testing"
)

const sample = `
apiVersion: cairn.dev/v1
kind: Route
metadata: {name: orders, namespace: shop}
spec:
  hosts: [Shop.Example.com, "*.example.com"]
  match:
    path: {value: /orders}
    methods: [get]
    headers: [{name: x-canary, value: "1"}]
    cookies: [{name: canary, type: present}]
  backends:
    - {service: orders, port: 8080, weight: 90}
    - {service: orders, subset: {version: v2}, weight: 10}
  loadBalancer: {policy: ring_hash, hash: {header: x-user}}
  timeouts: {connect: 1s, request: 10s}
  retries: {attempts: 3, on: [connect-failure, "503"]}
---
kind: route
metadata: {name: static}
spec:
  backends: [{address: "127.0.0.1:9000"}]
`

func TestParseNormalizes(t *testing.T) {
	docs, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Fatalf("got %d documents", len(docs))
	}
	d := docs[0]
	if d.Key() != (Key{"Route", "shop", "orders"}) {
		t.Fatalf("key %v", d.Key())
	}
	r, fe := DecodeRoute(d.Spec, "shop")
	if fe != nil {
		t.Fatal(fe)
	}
	if r.Hosts[0] != "shop.example.com" || r.Match.Methods[0] != "GET" || r.Match.Path.Type != "prefix" {
		t.Fatalf("not normalized: %+v", r)
	}
	if r.Backends[0].Port != "8080" || r.Backends[1].EffectiveWeight() != 10 {
		t.Fatalf("backends: %+v", r.Backends)
	}
	p := r.RetryOrDefault()
	if p.Attempts != 3 || !p.ConnectFailure || p.Reset || !p.Statuses[3] || p.Statuses[2] {
		t.Fatalf("retry policy %+v", p)
	}
	if docs[1].Kind != KindRoute || docs[1].Metadata.Namespace != "default" || docs[1].APIVersion != APIVersion {
		t.Fatalf("defaults: %+v", docs[1])
	}
	// Normalizing again changes nothing: the spec is canonical.
	again, fe := Decode(mustJSON(t, docs[0]))
	if fe != nil {
		t.Fatal(fe)
	}
	if string(again.Spec) != string(docs[0].Spec) {
		t.Fatalf("not idempotent:\n%s\n%s", again.Spec, docs[0].Spec)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseErrorsNameTheField(t *testing.T) {
	base := "kind: Route\nmetadata: {name: r}\nspec:\n"
	cases := []struct{ doc, field string }{
		{"kind: Route\nspec: {backends: [{address: 'a:1'}]}", "documents[0].metadata.name"},
		{"kind: Nope\nmetadata: {name: r}\nspec: {}", "documents[0].kind"},
		{"apiVersion: v9\nkind: Route\nmetadata: {name: r}\nspec: {}", "documents[0].apiVersion"},
		{"kind: Route\nmetadata: {name: R_1}\nspec: {}", "documents[0].metadata.name"},
		{"kind: Route\nmetadata: {name: r}", "documents[0].spec"},
		{base + "  backends: []", "documents[0].spec.backends"},
		{base + "  bogus: 1\n  backends: [{address: 'a:1'}]", "documents[0].spec.bogus"},
		{base + "  backends: [{address: 'a:1', colour: red}]", "documents[0].spec.backends[0].colour"},
		{base + "  backends: [{address: 'nope'}]", "documents[0].spec.backends[0].address"},
		{base + "  backends: [{service: Orders}]", "documents[0].spec.backends[0].service"},
		{base + "  backends: [{service: o, port: [1]}]", "documents[0].spec.backends[0].port"},
		{base + "  backends: [{service: o, port: 70000}]", "documents[0].spec.backends[0].port"},
		{base + "  backends: [{service: o, weight: -1}]", "documents[0].spec.backends[0].weight"},
		{base + "  backends: [{service: o, weight: 0}]", "documents[0].spec.backends"},
		{base + "  backends: [{service: o, weight: x}]", "documents[0].spec.backends[0].weight"},
		{base + "  backends: [{status: 200}]", "documents[0].spec.backends[0].status"},
		{base + "  backends: [{status: 500, service: o}]", "documents[0].spec.backends[0].status"},
		{base + "  backends: [{status: 500, tls: true}]", "documents[0].spec.backends[0].status"},
		{base + "  backends: [{status: 500, weight: 10001}]", "documents[0].spec.backends[0].weight"},
		{base + "  hosts: ['a b']\n  backends: [{service: o}]", "documents[0].spec.hosts[0]"},
		{base + "  match: {path: {value: 'x'}}\n  backends: [{service: o}]", "documents[0].spec.match.path.value"},
		{base + "  match: {path: {type: regex, value: '('}}\n  backends: [{service: o}]", "documents[0].spec.match.path.value"},
		{base + "  match: {headers: [{name: 'a b'}]}\n  backends: [{service: o}]", "documents[0].spec.match.headers[0].name"},
		{base + "  match: {query: [{name: q, type: fuzzy}]}\n  backends: [{service: o}]", "documents[0].spec.match.query[0].type"},
		{base + "  loadBalancer: {policy: magic}\n  backends: [{service: o}]", "documents[0].spec.loadBalancer.policy"},
		{base + "  loadBalancer: {policy: ring_hash}\n  backends: [{service: o}]", "documents[0].spec.loadBalancer.hash"},
		{base + "  timeouts: {connect: soon}\n  backends: [{service: o}]", "documents[0].spec.timeouts.connect"},
		{base + "  retries: {on: [teapot]}\n  backends: [{service: o}]", "documents[0].spec.retries.on[0]"},
		{base + "  retries: {attempts: 99}\n  backends: [{service: o}]", "documents[0].spec.retries.attempts"},
		{base + "  retries: {budget: {percent: 101}}\n  backends: [{service: o}]", "documents[0].spec.retries.budget.percent"},
		{base + "  circuitBreaker: {maxRequests: -1}\n  backends: [{service: o}]", "documents[0].spec.circuitBreaker.maxRequests"},
		{base + "  outlierDetection: {baseEjection: 1m, maxEjection: 1s}\n  backends: [{service: o}]", "documents[0].spec.outlierDetection.maxEjection"},
		{base + "  backends: [{service: o}]\n---\n" + base + "  backends: [{service: o}]", "documents[1].metadata.name"},
		{"kind: Route\n  bad: [", "documents[0]"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.doc))
		fe, ok := err.(*FieldError)
		if !ok {
			t.Errorf("%q: got %v, want a field error", c.doc, err)
			continue
		}
		if fe.Field != c.field {
			t.Errorf("%q: field %q (%s), want %q", c.doc, fe.Field, fe.Message, c.field)
		}
		if strings.TrimSpace(fe.Message) == "" {
			t.Errorf("%q: empty message", c.doc)
		}
	}
}

func TestParseJSONArray(t *testing.T) {
	docs, err := Parse([]byte(`[{"kind":"Route","metadata":{"name":"a"},"spec":{"backends":[{"address":"h:1"}]}},
		{"kind":"Route","metadata":{"name":"b"},"spec":{"backends":[{"address":"h:2"}]}}]`))
	if err != nil || len(docs) != 2 {
		t.Fatalf("%v %v", docs, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"kind":"Route","metadata":{"name":"a"},"spec":{"backends":[{"address":"h:1"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Parse(data)
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %T %v is not a field error", err, err)
			}
			return
		}
		// Every accepted document survives a round trip unchanged.
		for _, d := range docs {
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			again, fe := Decode(b)
			if fe != nil {
				t.Fatalf("accepted document rejected on re-read: %v\n%s", fe, b)
			}
			if string(again.Spec) != string(d.Spec) {
				t.Fatalf("spec changed on re-read:\n%s\n%s", d.Spec, again.Spec)
			}
		}
	})
}
