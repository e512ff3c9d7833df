package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// backendSet starts one named backend per name.
func backendSet(t *testing.T, names ...string) map[string]*testBackend {
	t.Helper()
	m := map[string]*testBackend{}
	for _, n := range names {
		m[n] = startBackend(t, n, nil)
	}
	return m
}

func addr(b *testBackend) string { return `"` + b.addr + `"` }

// do sends a request and returns the status and the backend that answered
// ("" for none).
func do(t *testing.T, method, url string, hdr ...string) (int, string, string) {
	t.Helper()
	code, h, body := send(t, method, url, hdr...)
	return code, h.Get("X-Backend"), body
}

func TestRoutingMatchAndPrecedence(t *testing.T) {
	bs := backendSet(t, "exacthost", "wild", "wildlong", "strict", "exactpath", "regex", "exactitem",
		"prefix", "longprefix", "post", "anymethod", "canaryhdr", "stablehdr", "canarycookie", "stablecookie",
		"query", "noquery", "hdrregex", "first", "second", "root")
	docs := routeDoc("r-exacthost", "  hosts: [api.example.com]\n  backends: [{address: "+addr(bs["exacthost"])+"}]") +
		routeDoc("r-wild", "  hosts: [\"*.example.com\"]\n  backends: [{address: "+addr(bs["wild"])+"}]") +
		routeDoc("r-wildlong", "  hosts: [\"*.eu.example.com\"]\n  backends: [{address: "+addr(bs["wildlong"])+"}]") +
		routeDoc("r-strict", "  hosts: [strict.example.com]\n  match: {path: {type: exact, value: /only}}\n  backends: [{address: "+addr(bs["strict"])+"}]") +
		routeDoc("r-exactpath", "  match: {path: {type: exact, value: /exact}}\n  backends: [{address: "+addr(bs["exactpath"])+"}]") +
		routeDoc("r-regex", "  match: {path: {type: regex, value: \"/items/[0-9]+\"}}\n  backends: [{address: "+addr(bs["regex"])+"}]") +
		routeDoc("r-exactitem", "  match: {path: {type: exact, value: /items/7}}\n  backends: [{address: "+addr(bs["exactitem"])+"}]") +
		routeDoc("r-prefix", "  match: {path: {value: /items}}\n  backends: [{address: "+addr(bs["prefix"])+"}]") +
		routeDoc("r-longprefix", "  match: {path: {value: /items/special/}}\n  backends: [{address: "+addr(bs["longprefix"])+"}]") +
		routeDoc("r-post", "  match: {path: {value: /m}, methods: [post, PUT]}\n  backends: [{address: "+addr(bs["post"])+"}]") +
		routeDoc("r-anymethod", "  match: {path: {value: /m}}\n  backends: [{address: "+addr(bs["anymethod"])+"}]") +
		routeDoc("r-canaryhdr", "  match: {path: {value: /h}, headers: [{name: x-canary, value: \"1\"}]}\n  backends: [{address: "+addr(bs["canaryhdr"])+"}]") +
		routeDoc("r-stablehdr", "  match: {path: {value: /h}}\n  backends: [{address: "+addr(bs["stablehdr"])+"}]") +
		routeDoc("r-canarycookie", "  match: {path: {value: /c}, cookies: [{name: canary, value: yes}]}\n  backends: [{address: "+addr(bs["canarycookie"])+"}]") +
		routeDoc("r-stablecookie", "  match: {path: {value: /c}}\n  backends: [{address: "+addr(bs["stablecookie"])+"}]") +
		routeDoc("r-query", "  match: {path: {value: /q}, query: [{name: v, value: \"2\"}, {name: debug, type: present}]}\n  backends: [{address: "+addr(bs["query"])+"}]") +
		routeDoc("r-noquery", "  match: {path: {value: /q}}\n  backends: [{address: "+addr(bs["noquery"])+"}]") +
		routeDoc("r-hdrregex", "  match: {path: {value: /rx}, headers: [{name: X-Version, type: regex, value: \"v[0-9]+\"}]}\n  backends: [{address: "+addr(bs["hdrregex"])+"}]") +
		// Two routes equal in every rule: the one whose key sorts first
		// wins, whatever the order of the documents.
		routeDoc("zz-dup", "  match: {path: {value: /dup}}\n  backends: [{address: "+addr(bs["second"])+"}]") +
		routeDoc("aa-dup", "  match: {path: {value: /dup}}\n  backends: [{address: "+addr(bs["first"])+"}]")
	g := startGateway(t, Options{}, docs)

	cases := []struct {
		name, method, path string
		hdr                []string
		want               string // backend; "" for 404
	}{
		{"exact host", "GET", "/anything", []string{"Host", "api.example.com"}, "exacthost"},
		{"exact host, port and case", "GET", "/", []string{"Host", "API.Example.COM:8080"}, "exacthost"},
		{"wildcard", "GET", "/x", []string{"Host", "shop.example.com"}, "wild"},
		{"wildcard, deeper", "GET", "/x", []string{"Host", "a.b.example.com"}, "wild"},
		{"longest wildcard", "GET", "/x", []string{"Host", "paris.eu.example.com"}, "wildlong"},
		{"wildcard needs a label", "GET", "/", []string{"Host", "example.com"}, "root"},
		{"strict host, path matches", "GET", "/only", []string{"Host", "strict.example.com"}, "strict"},
		{"strict host, no fall through to wildcard or any-host", "GET", "/exact", []string{"Host", "strict.example.com"}, ""},
		{"exact path", "GET", "/exact", nil, "exactpath"},
		{"exact path is exact", "GET", "/exact/more", nil, "root"},
		{"regex beats prefix", "GET", "/items/42", nil, "regex"},
		{"regex is anchored", "GET", "/items/42x", nil, "prefix"},
		{"exact beats regex", "GET", "/items/7", nil, "exactitem"},
		{"prefix", "GET", "/items", nil, "prefix"},
		{"prefix subpath", "GET", "/items/abc", nil, "prefix"},
		{"prefix is element-wise", "GET", "/itemsx", nil, "root"},
		{"longer prefix beats shorter", "GET", "/items/special/1", nil, "longprefix"},
		{"longer prefix, trailing slash optional", "GET", "/items/special", nil, "longprefix"},
		{"method", "POST", "/m", nil, "post"},
		{"method lower-cased in config", "PUT", "/m/x", nil, "post"},
		{"method not listed", "GET", "/m", nil, "anymethod"},
		{"header canary", "GET", "/h", []string{"X-Canary", "1"}, "canaryhdr"},
		{"header canary, other value", "GET", "/h", []string{"X-Canary", "2"}, "stablehdr"},
		{"no header", "GET", "/h", nil, "stablehdr"},
		{"cookie canary", "GET", "/c", []string{"Cookie", "a=b; canary=yes; c=d"}, "canarycookie"},
		{"cookie canary, quoted", "GET", "/c", []string{"Cookie", `canary="yes"`}, "canarycookie"},
		{"cookie canary, other value", "GET", "/c", []string{"Cookie", "canary=no"}, "stablecookie"},
		{"cookie in a second Cookie header", "GET", "/c", []string{"Cookie", "a=b", "Cookie", "canary=yes"}, "canarycookie"},
		{"query exact and present", "GET", "/q?debug&v=2", nil, "query"},
		{"query escaped", "GET", "/q?%76=%32&debug=1", nil, "query"},
		{"query, one missing", "GET", "/q?v=2", nil, "noquery"},
		{"header regex", "GET", "/rx", []string{"X-Version", "v12"}, "hdrregex"},
		{"header regex anchored", "GET", "/rx", []string{"X-Version", "v12-beta"}, "root"},
		{"tie: key order", "GET", "/dup", nil, "first"},
	}
	// A catch-all for the any-host group, added last: it never shadows
	// the more specific routes.
	g.apply(t, docs+routeDoc("r-root", "  backends: [{address: "+addr(bs["root"])+"}]"))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, be, body := do(t, c.method, g.url+c.path, c.hdr...)
			if c.want == "" {
				if code != http.StatusNotFound || be != "" {
					t.Fatalf("got %d from %q, want 404: %s", code, be, body)
				}
				return
			}
			if code != 200 || be != c.want {
				t.Fatalf("got %d from %q, want %q: %s", code, be, c.want, body)
			}
		})
	}
}

func TestRoutingNotFoundIsJSON(t *testing.T) {
	a := startBackend(t, "a", nil)
	g := startGateway(t, Options{}, routeDoc("r", "  hosts: [a.example.com]\n  backends: [{address: "+addr(a)+"}]"))
	resp, err := testClient.Get(g.url + "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" || body.Error == "" ||
		resp.Header.Get("X-Cairn-Error") == "" || len(resp.Header.Get("X-Request-Id")) != 32 {
		t.Fatalf("%d %v %+v", resp.StatusCode, resp.Header, body)
	}
	if a.hits.Load() != 0 {
		t.Fatal("backend was called")
	}
	if n := metric(t, g.reg, "cairn_proxy_unrouted_requests_total"); n != 1 {
		t.Fatalf("unrouted = %v", n)
	}
}

func TestRoutingRewrite(t *testing.T) {
	a := startBackend(t, "a", nil)
	docs := routeDoc("strip", "  match: {path: {value: /api/v1/}}\n  rewrite: {prefix: /}\n  backends: [{address: "+addr(a)+"}]") +
		routeDoc("move", "  match: {path: {value: /old}}\n  rewrite: {prefix: /new/}\n  backends: [{address: "+addr(a)+"}]") +
		routeDoc("exact", "  match: {path: {type: exact, value: /login}}\n  rewrite: {prefix: /auth/login}\n  backends: [{address: "+addr(a)+"}]") +
		routeDoc("host", "  hosts: [public.example.com]\n  rewrite: {host: internal.svc}\n  backends: [{address: "+addr(a)+"}]")
	g := startGateway(t, Options{}, docs)
	cases := []struct{ path, host, wantPath, wantHost string }{
		{"/api/v1/users?x=1&y=%20", "", "/users?x=1&y=%20", ""},
		{"/api/v1", "", "/", ""},
		{"/api/v1/", "", "/", ""},
		{"/api/v1/a/b/", "", "/a/b/", ""},
		{"/api/v%31/users%2Fx?q=%2F", "", "/users%2Fx?q=%2F", ""}, // matched decoded, cut escaped
		{"/old", "", "/new/", ""},
		{"/old/a/b", "", "/new/a/b", ""},
		{"/login?next=/x", "", "/auth/login?next=/x", ""},
		{"/keep/this?q", "public.example.com", "/keep/this?q", "internal.svc"},
	}
	for _, c := range cases {
		var hdr []string
		if c.host != "" {
			hdr = []string{"Host", c.host}
		}
		code, _, body := get(t, g.url+c.path, hdr...)
		want := "a GET " + c.wantPath + " "
		if code != 200 || !strings.HasPrefix(body, want) {
			t.Errorf("%s: got %d %q, want prefix %q", c.path, code, body, want)
		}
		if c.wantHost != "" && (!strings.Contains(body, " host="+c.wantHost+" ") || !strings.Contains(body, " xfh="+c.host+" ")) {
			t.Errorf("%s: host not rewritten (or X-Forwarded-Host lost): %q", c.path, body)
		}
	}
}

func TestRoutingWeightedSplit(t *testing.T) {
	a := startBackend(t, "stable", nil)
	b := startBackend(t, "canary", nil)
	z := startBackend(t, "zero", nil)
	g := startGateway(t, Options{}, routeDoc("split", "  backends:\n  - {address: "+addr(a)+", weight: 90}\n  - {address: "+addr(b)+", weight: 10}\n  - {address: "+addr(z)+", weight: 0}"))
	const n = 1000
	for i := 0; i < n; i++ {
		if code, _, body := get(t, g.url+"/"); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	// 10% of 1000: mean 100, standard deviation 9.5; ±40 is over 4σ.
	if c := b.hits.Load(); c < 60 || c > 140 || a.hits.Load()+c != n {
		t.Fatalf("stable %d canary %d", a.hits.Load(), c)
	}
	if z.hits.Load() != 0 {
		t.Fatalf("weight 0 backend got %d requests", z.hits.Load())
	}
	if s := metric(t, g.reg, "cairn_proxy_requests_total", "route", "default/split", "backend", b.addr, "class", "2xx"); s != float64(b.hits.Load()) {
		t.Fatalf("metric for canary %v, hits %d", s, b.hits.Load())
	}
}

// A status backend answers its share of the requests itself, forwards
// nothing and is never retried (the Gateway API's 500 for references that
// do not resolve).
func TestRoutingStatusBackend(t *testing.T) {
	a := startBackend(t, "valid", nil)
	g := startGateway(t, Options{}, routeDoc("half", "  backends:\n  - {address: "+addr(a)+", weight: 1}\n  - {status: 500, weight: 1}\n  retries: {attempts: 2, on: [\"500\"]}"))
	const n = 400
	failed := 0
	for range n {
		code, hdr, body := get(t, g.url+"/")
		switch code {
		case 200:
		case 500:
			failed++
			if !strings.Contains(body, "not valid") || hdr.Get("X-Cairn-Error") == "" {
				t.Fatalf("status backend answered %q (%v)", body, hdr)
			}
		default:
			t.Fatalf("%d %s", code, body)
		}
	}
	// Half of 400: mean 200, standard deviation 10; ±60 is 6σ.
	if failed < 140 || failed > 260 || int(a.hits.Load()) != n-failed {
		t.Fatalf("%d of %d answered 500, backend hits %d", failed, n, a.hits.Load())
	}
	g.apply(t, routeDoc("all", "  backends:\n  - {status: 503}"))
	if code, _, _ := get(t, g.url+"/"); code != 503 {
		t.Fatalf("a route of one status backend answered %d", code)
	}
}

func TestRoutingSubsetsAndServices(t *testing.T) {
	v1a := startBackend(t, "v1a", nil)
	v1b := startBackend(t, "v1b", nil)
	v2 := startBackend(t, "v2", nil)
	other := startBackend(t, "other-ns", nil)
	services := svc("shop", inst(v1a, "version", "v1"), inst(v1b, "version", "v1"), inst(v2, "version", "v2", "track", "canary"))
	services[ServiceKey{"team", "shop"}] = []Instance{inst(other)}
	docs := routeDoc("v2", "  match: {headers: [{name: x-track, value: canary}]}\n  backends: [{service: shop, subset: {version: v2, track: canary}}]") +
		routeDoc("v1", "  backends: [{service: shop, subset: {version: v1}}]") +
		routeDoc("ns", "  hosts: [team.example.com]\n  backends: [{service: shop, namespace: team}]")
	g := startGateway(t, Options{}, "")
	g.apply(t, docs, services)
	for i := 0; i < 20; i++ {
		if _, be, _ := do(t, "GET", g.url+"/", "X-Track", "canary"); be != "v2" {
			t.Fatalf("canary went to %q", be)
		}
		if _, be, _ := do(t, "GET", g.url+"/"); be != "v1a" && be != "v1b" {
			t.Fatalf("v1 went to %q", be)
		}
		if _, be, _ := do(t, "GET", g.url+"/", "Host", "team.example.com"); be != "other-ns" {
			t.Fatalf("namespace team went to %q", be)
		}
	}
	if v1a.hits.Load() != 10 || v1b.hits.Load() != 10 {
		t.Fatalf("round robin over the v1 subset: %d %d", v1a.hits.Load(), v1b.hits.Load())
	}
	// A subset nobody matches: 503, no healthy instance.
	g.apply(t, routeDoc("v3", "  backends: [{service: shop, subset: {version: v3}}]"), services)
	code, h, _ := get(t, g.url+"/")
	if code != http.StatusServiceUnavailable || h.Get("X-Cairn-Error") == "" {
		t.Fatalf("empty subset: %d %v", code, h)
	}
}

func TestRoutingServiceWeightsAcrossBackends(t *testing.T) {
	// A canary by subsets of one service: 90/10 over 1000 requests.
	v1 := startBackend(t, "v1", nil)
	v2 := startBackend(t, "v2", nil)
	services := svc("shop", inst(v1, "version", "v1"), inst(v2, "version", "v2"))
	g := startGateway(t, Options{}, "")
	g.apply(t, routeDoc("canary", "  backends:\n  - {service: shop, subset: {version: v1}, weight: 90}\n  - {service: shop, subset: {version: v2}, weight: 10}"), services)
	for i := 0; i < 1000; i++ {
		if code, _, _ := get(t, g.url+"/"); code != 200 {
			t.Fatal(code)
		}
	}
	if c := v2.hits.Load(); c < 60 || c > 140 {
		t.Fatalf("v1 %d v2 %d", v1.hits.Load(), c)
	}
}
