package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/proxy/router"
)

// FuzzReadHead feeds arbitrary bytes to the HTTP/1.1 response-head parser
// of the upstream pool and reads the body it frames: it must not panic,
// and a head it accepts must have a status of 100-999 and consistent
// framing.
func FuzzReadHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-A\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-A: 1\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nto the end",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
		"\r\nHTTP/1.1 999 X\r\nA:b\r\na: c\r\n\r\n",
		"HTTP/1.1 200\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: x-foo, keep-alive\r\nX-Foo: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		uc := &upConn{br: bufio.NewReaderSize(bytes.NewReader(data), 16<<10)}
		var fs []hfield
		rh, err := uc.readHead(&fs, method)
		h := make(http.Header)
		for _, f := range fs {
			h[f.k] = append(h[f.k], f.v)
		}
		if err != nil {
			return
		}
		if rh.status < 100 || rh.status > 999 {
			t.Fatalf("status %d", rh.status)
		}
		if rh.status >= 100 && rh.status < 200 && rh.status != 101 {
			t.Fatalf("1xx %d returned", rh.status)
		}
		switch {
		case rh.noBody:
			if rh.length != 0 {
				t.Fatalf("no body but length %d", rh.length)
			}
		case rh.chunked:
			if rh.length != -1 {
				t.Fatalf("chunked with length %d", rh.length)
			}
		case rh.length < -1:
			t.Fatalf("length %d", rh.length)
		case rh.length == -1 && !rh.close:
			t.Fatal("a body to the end of the connection must close it")
		}
		if rh.minor == 0 && h.Get("Connection") == "" && !rh.close {
			t.Fatal("HTTP/1.0 without keep-alive must close")
		}
		for k := range h {
			if k == "Transfer-Encoding" {
				t.Fatal("Transfer-Encoding kept in the header")
			}
		}
		// What passes to the client: no hop-by-hop field, none that a
		// Connection field names, one Content-Length at most.
		pass := passFields(append([]hfield(nil), fs...))
		cls := 0
		for _, f := range pass {
			if isHop(f.k) || connectionListed(h, f.k) {
				t.Fatalf("%q passed to the client", f.k)
			}
			if f.k == "Content-Length" {
				cls++
			}
		}
		if cls > 1 {
			t.Fatalf("%d Content-Length fields passed", cls)
		}
		var b bodyReader
		b.reset(uc, &rh, 0)
		n, err := io.Copy(io.Discard, io.LimitReader(&b, 1<<20))
		if err == nil && rh.length >= 0 && n != rh.length && !rh.noBody {
			t.Fatalf("read %d of a %d-byte body without error", n, rh.length)
		}
		if err == nil && b.done && rh.chunked {
			for k := range b.trailer {
				if k == "" {
					t.Fatal("empty trailer name")
				}
			}
		}
	})
}

// FuzzUpstreamPath checks the path sent upstream for a route with
// rewrite.prefix: for a request the route matches, the path (decoded)
// is the rewrite prefix joined to what follows the matched prefix, and the
// query is kept as the client sent it.
func FuzzUpstreamPath(f *testing.F) {
	f.Add("/api/", "/", "/api/v1/users?x=1", false)
	f.Add("/api", "/v2", "/api", false)
	f.Add("/api", "/v2/", "/api/x/?q=%20", false)
	f.Add("/login", "/auth/login", "/login", true)
	f.Add("/api", "/new", "/%61pi/x%2Fy", false)
	f.Add("/a b", "/c", "/a%20b/d", false)
	f.Add("/", "/base", "/x/y", false)
	f.Add("/", "/%", "/", false)         // rejected by config: not an escape
	f.Add("/", "/a\r\nX: y", "/", false) // rejected by config: a header injection
	f.Fuzz(func(t *testing.T, prefix, rewrite, uri string, exact bool) {
		pt := router.PathPrefix
		if exact {
			pt = router.PathExact
		}
		// Only what a Route may say.
		spec, _ := json.Marshal(map[string]any{
			"match":    map[string]any{"path": map[string]string{"type": string(pt), "value": prefix}},
			"rewrite":  map[string]string{"prefix": rewrite},
			"backends": []map[string]string{{"address": "127.0.0.1:1"}},
		})
		if _, fe := config.DecodeRoute(spec, "default"); fe != nil {
			return
		}
		tbl, err := router.Compile([]router.Route{{Name: "r", Path: router.PathMatch{Type: pt, Value: prefix}}})
		if err != nil {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + uri + " HTTP/1.1\r\nHost: x\r\n\r\n")))
		if err != nil || !strings.HasPrefix(req.URL.Path, "/") || tbl.Lookup(req) == nil {
			return // not a path ("*"), or not this route's
		}
		// As Engine.build computes it.
		rt := &route{rewritePrefix: &rewrite, prefixLen: len(prefix)}
		if !exact && len(prefix) > 1 && prefix[len(prefix)-1] == '/' {
			rt.prefixLen--
		}
		got := upstreamPath(req, rt)
		gp, gq, gotQ := strings.Cut(got, "?")
		_, wq, wantQ := strings.Cut(req.RequestURI, "?")
		if gotQ != wantQ || gq != wq {
			t.Fatalf("query: %q from %q", got, req.RequestURI)
		}
		dec, err := url.PathUnescape(gp)
		if err != nil {
			t.Fatalf("upstream path %q is not escaped right: %v", gp, err)
		}
		if !strings.HasPrefix(gp, rewrite) && !strings.HasPrefix(dec, rewrite) {
			t.Fatalf("%q does not start with the rewrite %q", got, rewrite)
		}
		if strings.Contains(strings.ToUpper(req.RequestURI), "%2F") {
			return // an escaped slash stays escaped: not a separator to join on
		}
		rest := req.URL.Path[rt.prefixLen:]
		// rewrite.prefix is written as given, escapes included: compare
		// decoded paths.
		want, err := url.PathUnescape(rewrite)
		if err != nil {
			t.Fatalf("accepted rewrite %q does not unescape: %v", rewrite, err)
		}
		switch {
		case rest == "":
		case strings.HasSuffix(want, "/") && strings.HasPrefix(rest, "/"):
			want += rest[1:]
		case !strings.HasSuffix(want, "/") && !strings.HasPrefix(rest, "/"):
			want += "/" + rest
		default:
			want += rest
		}
		if dec != want {
			t.Fatalf("route %s %q rewrite %q: %q became %q (decoded %q), want %q", pt, prefix, rewrite, req.RequestURI, got, dec, want)
		}
	})
}

// FuzzHeadEnd checks the event loop's test for a whole head against the
// reader it guards: when headEnd says a head is complete, readHeadLines
// reads it from those bytes alone without running out of input; when it
// says not, readHeadLines runs out (or stops on a limit).
func FuzzHeadEnd(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n",
		"\r\n\r\nGET / HTTP/1.1\n\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
		"HTTP/1.1 101 Switching Protocols\r\n\r\n",
		"GET / HTTP/1.1\r\r\n\r\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, resp := range []bool{false, true} {
			complete := headEnd(data, resp)
			br := bufio.NewReaderSize(bytes.NewReader(data), 64<<10)
			var err error
			if resp {
				uc := &upConn{br: br}
				var fs []hfield
				_, err = uc.readHead(&fs, http.MethodGet)
				var re *resetError
				if complete && errors.As(err, &re) && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
					t.Fatalf("headEnd says complete, but the response head reader ran out: %q", data)
				}
				continue
			}
			_, _, _, err = readHeadLines(br, nil, 1<<20)
			if complete && err != nil {
				t.Fatalf("headEnd says complete, readHeadLines: %v on %q", err, data)
			}
			if !complete && err == nil {
				t.Fatalf("headEnd says incomplete, readHeadLines read a head from %q", data)
			}
		}
	})
}
