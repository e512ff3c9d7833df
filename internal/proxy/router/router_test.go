package router

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

func req(method, target string, header ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func name(r *Route) string {
	if r == nil {
		return "<none>"
	}
	return r.Name
}

func TestPrecedence(t *testing.T) {
	tbl, err := Compile([]Route{
		{Name: "catch-all"},
		{Name: "api", Path: PathMatch{Type: PathPrefix, Value: "/api"}},
		{Name: "api-v2", Path: PathMatch{Type: PathPrefix, Value: "/api/v2/"}},
		{Name: "api-exact", Path: PathMatch{Type: PathExact, Value: "/api/health"}},
		{Name: "api-regex", Path: PathMatch{Type: PathRegex, Value: "/api/v[0-9]+/users/[0-9]+"}},
		{Name: "api-post", Path: PathMatch{Value: "/api"}, Methods: []string{"post"}},
		{Name: "api-canary", Path: PathMatch{Value: "/api"}, Headers: []ValueMatch{{Name: "x-canary", Value: "1"}}},
		{Name: "api-canary-cookie", Path: PathMatch{Value: "/api"}, Headers: []ValueMatch{{Name: "Cookie", Type: ValueRegex, Value: ".*canary=yes.*"}, {Name: "x-canary", Type: ValuePresent}}},
		{Name: "api-debug", Path: PathMatch{Value: "/api"}, Query: []ValueMatch{{Name: "debug", Value: "on"}}},
		{Name: "shop", Hosts: []string{"shop.example.com"}, Path: PathMatch{Value: "/"}},
		{Name: "shop-cart", Hosts: []string{"SHOP.example.com."}, Path: PathMatch{Value: "/cart"}},
		{Name: "wild", Hosts: []string{"*.example.com"}},
		{Name: "wild-deeper", Hosts: []string{"*.eu.example.com"}},
		{Name: "only-admin", Hosts: []string{"admin.example.com"}, Path: PathMatch{Type: PathExact, Value: "/"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r    *http.Request
		want string
	}{
		{req("GET", "http://any.test/"), "catch-all"},
		{req("GET", "http://any.test/apix"), "catch-all"}, // prefixes match whole path elements
		{req("GET", "http://any.test/api"), "api"},
		{req("GET", "http://any.test/api/"), "api"},
		{req("GET", "http://any.test/api/v2"), "api-v2"},            // a trailing slash in the prefix is ignored
		{req("GET", "http://any.test/api/v2/users/7"), "api-regex"}, // a regex beats any prefix
		{req("GET", "http://any.test/api/v2/users"), "api-v2"},
		{req("GET", "http://any.test/api/v3/users/7"), "api-regex"},
		{req("GET", "http://any.test/api/health"), "api-exact"}, // exact beats the longer prefix match
		{req("POST", "http://any.test/api/x"), "api-post"},      // a method beats headers
		{req("GET", "http://any.test/api/x", "X-Canary", "1"), "api-canary"},
		{req("GET", "http://any.test/api/x", "X-Canary", "2", "Cookie", "a=b; canary=yes"), "api-canary-cookie"}, // two header matches beat one
		{req("GET", "http://any.test/api/x", "X-Canary", "2"), "api"},
		{req("GET", "http://any.test/api/x?a=1&debug=on"), "api-debug"},
		{req("GET", "http://any.test/api/x?debug=%6Fn"), "api-debug"}, // query values are unescaped
		{req("GET", "http://any.test/api/x?debug=off"), "api"},
		{req("GET", "http://shop.example.com/cart/42"), "shop-cart"},
		{req("GET", "http://Shop.Example.com:8080/"), "shop"},
		{req("GET", "http://www.example.com/api"), "wild"},      // a wildcard host group beats the any-host routes
		{req("GET", "http://a.eu.example.com/"), "wild-deeper"}, // the longest wildcard
		{req("GET", "http://example.com/"), "catch-all"},        // *.example.com needs a label before it
		{req("GET", "http://admin.example.com/x"), "<none>"},    // no falling through from the host's group
	} {
		if got := name(tbl.Lookup(tc.r)); got != tc.want {
			t.Errorf("%s %s%s %v: %s, want %s", tc.r.Method, tc.r.Host, tc.r.URL.RequestURI(), tc.r.Header, got, tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		r     Route
		field string
	}{
		{Route{Path: PathMatch{Value: "api"}}, "routes[1].path.value"},
		{Route{Path: PathMatch{Type: "glob", Value: "/x"}}, "routes[1].path.type"},
		{Route{Path: PathMatch{Type: PathRegex, Value: "/(x"}}, "routes[1].path.value"},
		{Route{Path: PathMatch{Type: PathRegex}}, "routes[1].path.value"},
		{Route{Hosts: []string{"ok.test", "bad host"}}, "routes[1].hosts[1]"},
		{Route{Hosts: []string{"a.*.test"}}, "routes[1].hosts[0]"},
		{Route{Hosts: []string{"*example.com"}}, "routes[1].hosts[0]"},
		{Route{Methods: []string{"GET", "G E"}}, "routes[1].methods[1]"},
		{Route{Headers: []ValueMatch{{Value: "x"}}}, "routes[1].headers[0].name"},
		{Route{Headers: []ValueMatch{{Name: "bad:name"}}}, "routes[1].headers[0].name"},
		{Route{Query: []ValueMatch{{Name: "q", Type: "fuzzy"}}}, "routes[1].query[0].type"},
		{Route{Query: []ValueMatch{{Name: "q", Type: ValueRegex, Value: "[a"}}}, "routes[1].query[0].value"},
	} {
		_, err := Compile([]Route{{Name: "fine"}, tc.r})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error on %s", tc.r, err, tc.field)
		}
	}
}

func TestLookupAllocatesNothing(t *testing.T) {
	tbl, err := Compile([]Route{
		{Name: "a", Hosts: []string{"*.example.com"}, Path: PathMatch{Value: "/api"}, Methods: []string{"GET"},
			Headers: []ValueMatch{{Name: "x-env", Value: "prod"}}, Query: []ValueMatch{{Name: "v", Type: ValuePresent}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := req("GET", "http://www.example.com/api/x?v=1", "X-Env", "prod")
	if name(tbl.Lookup(r)) != "a" {
		t.Fatal("no match")
	}
	if n := testing.AllocsPerRun(100, func() { tbl.Lookup(r) }); n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
}

func FuzzLookup(f *testing.F) {
	tbl, err := Compile([]Route{
		{Name: "a", Hosts: []string{"*.example.com", "x.test"}, Path: PathMatch{Value: "/api"}},
		{Name: "b", Path: PathMatch{Type: PathRegex, Value: "/v[0-9]+/.*"}, Query: []ValueMatch{{Name: "q", Type: ValueRegex, Value: "a+"}}},
		{Name: "c", Path: PathMatch{Type: PathExact, Value: "/"}},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("www.example.com", "/api/x", "q=aa")
	f.Add("[::1]:80", "/v1/x", "q=%zz&q=a")
	f.Add("", "", "&&=")
	f.Fuzz(func(t *testing.T, host, path, query string) {
		r := &http.Request{Method: "GET", Host: host, Header: http.Header{}}
		r.URL = &url.URL{Path: path, RawQuery: query}
		tbl.Lookup(r) // must not panic
	})
}
