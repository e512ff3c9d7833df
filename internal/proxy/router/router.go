// Package router matches requests to routes: by host (exact or wildcard),
// path (exact, prefix, regex), method, headers, query parameters and
// cookies. A
// Table is compiled once per configuration and is immutable; Lookup takes
// no lock and allocates nothing for the common matches.
//
// Precedence, as Envoy's virtual hosts and the Gateway API's HTTPRoute:
//
//  1. Host: the most specific host group that names the request's host
//     wins — an exact host, else the longest matching wildcard
//     ("*.example.com"), else the routes with no host. There is no falling
//     through to a less specific group: a request whose host has routes
//     but none that match is not found (404).
//  2. Within the group: an exact path beats a regular expression, which
//     beats a prefix (as in Kong: a catch-all prefix never shadows a
//     regex), and a longer prefix beats a shorter one.
//  3. Then a route that names methods beats one that does not, then more
//     header and cookie matches beat fewer, then more query matches beat
//     fewer.
//  4. Then the order in which routes were given.
package router

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// PathType is how a route matches the path.
type PathType string

const (
	PathPrefix PathType = "prefix" // element-wise: /api matches /api and /api/x, not /apix
	PathExact  PathType = "exact"
	PathRegex  PathType = "regex" // RE2, the whole path must match
)

// ValueType is how a header or query parameter matches.
type ValueType string

const (
	ValueExact   ValueType = "exact"
	ValueRegex   ValueType = "regex"
	ValuePresent ValueType = "present"
)

// Route is a route's match and what it leads to (opaque to the router).
type Route struct {
	Name    string
	Hosts   []string // exact, or "*.suffix"; none: any host
	Path    PathMatch
	Methods []string
	Headers []ValueMatch
	Query   []ValueMatch
	Cookies []ValueMatch
	Target  any
}

// PathMatch matches the request path; the zero value is prefix "/".
type PathMatch struct {
	Type  PathType
	Value string
}

// ValueMatch matches one header or query parameter.
type ValueMatch struct {
	Name  string
	Type  ValueType // default exact
	Value string
}

// FieldError is a route that cannot be compiled; Field names where.
type FieldError struct {
	Field   string // e.g. routes[2].path.value
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Table is a compiled set of routes.
type Table struct {
	exact    map[string][]*compiled // by lower-case host
	wildcard []wildGroup            // longest suffix first
	any      []*compiled
}

type wildGroup struct {
	suffix string // ".example.com"
	routes []*compiled
}

type compiled struct {
	route   *Route
	order   int
	path    PathType
	value   string // prefix: without a trailing slash ("" for "/"); exact: as given
	re      *regexp.Regexp
	methods []string
	headers []valueMatcher
	query   []valueMatcher
	cookies []valueMatcher
}

type valueMatcher struct {
	name  string // headers: canonical; query: as given
	typ   ValueType
	value string
	re    *regexp.Regexp
}

// Compile checks and compiles routes. Any error rejects them all.
func Compile(routes []Route) (*Table, error) {
	t := &Table{exact: map[string][]*compiled{}}
	wild := map[string][]*compiled{}
	for i := range routes {
		r := &routes[i]
		c, err := compile(r, i)
		if err != nil {
			return nil, err
		}
		if len(r.Hosts) == 0 {
			t.any = append(t.any, c)
		}
		seen := map[string]bool{}
		for j, h := range r.Hosts {
			h = strings.ToLower(strings.TrimSuffix(h, "."))
			field := fmt.Sprintf("routes[%d].hosts[%d]", i, j)
			if err := checkHost(h); err != nil {
				return nil, &FieldError{field, err.Error()}
			}
			if seen[h] {
				continue
			}
			seen[h] = true
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				wild[suffix] = append(wild[suffix], c)
			} else {
				t.exact[h] = append(t.exact[h], c)
			}
		}
	}
	for h := range t.exact {
		sortRoutes(t.exact[h])
	}
	for suffix, rs := range wild {
		sortRoutes(rs)
		t.wildcard = append(t.wildcard, wildGroup{suffix, rs})
	}
	slices.SortFunc(t.wildcard, func(a, b wildGroup) int {
		if d := len(b.suffix) - len(a.suffix); d != 0 {
			return d
		}
		return strings.Compare(a.suffix, b.suffix)
	})
	sortRoutes(t.any)
	return t, nil
}

func checkHost(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if h == "" || strings.Contains(name, "*") || (strings.HasPrefix(h, "*") && !strings.HasPrefix(h, "*.")) {
		return fmt.Errorf("%q: want a host name or a wildcard such as *.example.com", h)
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return fmt.Errorf("%q: %q is not a DNS label", h, l)
		}
	}
	return nil
}

func compile(r *Route, i int) (*compiled, error) {
	f := func(field string) string { return fmt.Sprintf("routes[%d].%s", i, field) }
	c := &compiled{route: r, order: i}
	p := r.Path
	if p.Type == "" {
		p.Type = PathPrefix
	}
	if p.Value == "" && p.Type != PathRegex {
		p.Value = "/"
	}
	c.path = p.Type
	switch p.Type {
	case PathPrefix, PathExact:
		if !strings.HasPrefix(p.Value, "/") {
			return nil, &FieldError{f("path.value"), fmt.Sprintf("%q must start with /", p.Value)}
		}
		c.value = p.Value
		if p.Type == PathPrefix {
			c.value = strings.TrimRight(p.Value, "/")
		}
	case PathRegex:
		re, err := regexp.Compile(`^(?:` + p.Value + `)$`)
		if err != nil || p.Value == "" {
			return nil, &FieldError{f("path.value"), fmt.Sprintf("%q is not a regular expression: %v", p.Value, err)}
		}
		c.re = re
	default:
		return nil, &FieldError{f("path.type"), fmt.Sprintf("%q: want prefix, exact or regex", p.Type)}
	}
	for j, m := range r.Methods {
		m = strings.ToUpper(m)
		if m == "" || strings.Trim(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return nil, &FieldError{f(fmt.Sprintf("methods[%d]", j)), fmt.Sprintf("%q is not an HTTP method", m)}
		}
		c.methods = append(c.methods, m)
	}
	for _, list := range []struct {
		field  string
		in     []ValueMatch
		out    *[]valueMatcher
		header bool
	}{{"headers", r.Headers, &c.headers, true}, {"query", r.Query, &c.query, false}, {"cookies", r.Cookies, &c.cookies, false}} {
		for j, m := range list.in {
			vm, err := compileValue(m, list.header)
			if err != nil {
				return nil, &FieldError{f(fmt.Sprintf("%s[%d].%s", list.field, j, err.Field)), err.Message}
			}
			*list.out = append(*list.out, vm)
		}
	}
	return c, nil
}

func compileValue(m ValueMatch, header bool) (valueMatcher, *FieldError) {
	vm := valueMatcher{name: m.Name, typ: m.Type, value: m.Value}
	if m.Name == "" {
		return vm, &FieldError{"name", "is required"}
	}
	if header {
		if strings.ContainsAny(m.Name, " \t\r\n:") {
			return vm, &FieldError{"name", fmt.Sprintf("%q is not a header name", m.Name)}
		}
		vm.name = textproto.CanonicalMIMEHeaderKey(m.Name)
	}
	if vm.typ == "" {
		vm.typ = ValueExact
	}
	switch vm.typ {
	case ValueExact, ValuePresent:
	case ValueRegex:
		re, err := regexp.Compile(`^(?:` + m.Value + `)$`)
		if err != nil {
			return vm, &FieldError{"value", fmt.Sprintf("%q is not a regular expression: %v", m.Value, err)}
		}
		vm.re = re
	default:
		return vm, &FieldError{"type", fmt.Sprintf("%q: want exact, regex or present", vm.typ)}
	}
	return vm, nil
}

// sortRoutes orders routes by precedence (package comment, 2-4).
func sortRoutes(rs []*compiled) {
	rank := func(c *compiled) int {
		switch c.path {
		case PathExact:
			return 0
		case PathRegex:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(rs, func(a, b *compiled) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		if a.path == PathPrefix {
			if d := len(b.value) - len(a.value); d != 0 {
				return d
			}
		}
		if am, bm := len(a.methods) > 0, len(b.methods) > 0; am != bm {
			if am {
				return -1
			}
			return 1
		}
		if d := len(b.headers) + len(b.cookies) - len(a.headers) - len(a.cookies); d != 0 {
			return d
		}
		if d := len(b.query) - len(a.query); d != 0 {
			return d
		}
		return a.order - b.order
	})
}

// Lookup returns the route for a request, or nil.
func (t *Table) Lookup(r *http.Request) *Route {
	host := hostOnly(r.Host)
	var group []*compiled
	if g, ok := t.exact[host]; ok {
		group = g
	} else {
		group = t.any
		for _, w := range t.wildcard {
			if len(host) > len(w.suffix) && strings.HasSuffix(host, w.suffix) {
				group = w.routes
				break
			}
		}
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	for _, c := range group {
		if c.matches(r, path) {
			return c.route
		}
	}
	return nil
}

// hostOnly lower-cases the Host header and drops its port.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return strings.ToLower(h) // no allocation when already lower case
}

func (c *compiled) matches(r *http.Request, path string) bool {
	switch c.path {
	case PathExact:
		if path != c.value {
			return false
		}
	case PathPrefix:
		if c.value != "" && path != c.value && !(strings.HasPrefix(path, c.value) && path[len(c.value)] == '/') {
			return false
		}
	case PathRegex:
		if !c.re.MatchString(path) {
			return false
		}
	}
	if len(c.methods) > 0 && !slices.Contains(c.methods, r.Method) {
		return false
	}
	for i := range c.headers {
		m := &c.headers[i]
		vs, ok := r.Header[m.name]
		if !ok || !m.matchAny(vs) {
			return false
		}
	}
	for i := range c.query {
		m := &c.query[i]
		v, ok := queryValue(r.URL.RawQuery, m.name)
		if !ok || !m.match(v) {
			return false
		}
	}
	for i := range c.cookies {
		m := &c.cookies[i]
		v, ok := cookieValue(r.Header["Cookie"], m.name)
		if !ok || !m.match(v) {
			return false
		}
	}
	return true
}

// cookieValue finds a cookie in the Cookie headers without parsing them
// all (http.Request.Cookie allocates every cookie).
func cookieValue(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			if k == name {
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v, true
			}
		}
	}
	return "", false
}

// CookieValue is cookieValue for the proxy's hash keys.
func CookieValue(h http.Header, name string) (string, bool) { return cookieValue(h["Cookie"], name) }

func (m *valueMatcher) matchAny(vs []string) bool {
	for _, v := range vs {
		if m.match(v) {
			return true
		}
	}
	return false
}

func (m *valueMatcher) match(v string) bool {
	switch m.typ {
	case ValuePresent:
		return true
	case ValueRegex:
		return m.re.MatchString(v)
	}
	return v == m.value
}

// queryValue finds the first value of a query parameter without building
// the whole map (it unescapes only what it returns).
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(k, "%+") {
			if uk, err := url.QueryUnescape(k); err == nil {
				k = uk
			}
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			if uv, err := url.QueryUnescape(v); err == nil {
				v = uv
			}
		}
		return v, true
	}
	return "", false
}
