package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// headerEcho answers with the request headers it got as "Key: value"
// lines, sorted by http.Header.Write.
func headerEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "echo")
		h := r.Header.Clone()
		h.Set("X-Got-Host", r.Host)
		h.Set("X-Got-Uri", r.RequestURI)
		_ = h.Write(w)
	})
}

func parseHeaderLines(s string) http.Header {
	h := http.Header{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			h.Add(k, v)
		}
	}
	return h
}

func TestHTTPHopByHopRequestHeaders(t *testing.T) {
	b := startBackend(t, "echo", headerEcho())
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	raw := "GET /x HTTP/1.1\r\nHost: shop.example.com\r\n" +
		"Connection: keep-alive, X-Hop-A, x-hop-b\r\nX-Hop-A: 1\r\nX-Hop-B: 2\r\n" +
		"Keep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9v\r\nProxy-Connection: keep-alive\r\nTe: trailers, deflate\r\n" +
		"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: spoofed.example.com\r\n" +
		"Authorization: Bearer x\r\nX-End: kept\r\n" +
		"Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nTracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\r\n" +
		"X-B3-Traceid: 80f198ee56343ba864fe8b2a57d3eff7\r\nX-B3-Spanid: e457b5a2e4d86bd1\r\nX-B3-Sampled: 1\r\nB3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1\r\n" +
		"\r\n"
	resps := rawExchange(t, g.addr, raw, "GET")
	got := parseHeaderLines(resps[0].body)
	if resps[0].StatusCode != 200 {
		t.Fatalf("%d %s", resps[0].StatusCode, resps[0].body)
	}
	for _, k := range []string{"X-Hop-A", "X-Hop-B", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Upgrade"} {
		if v, ok := got[k]; ok {
			t.Errorf("hop-by-hop %s passed on: %q", k, v)
		}
	}
	if c := got.Get("Connection"); c != "" && !strings.EqualFold(c, "keep-alive") {
		t.Errorf("Connection passed on: %q", c)
	}
	want := map[string]string{
		"X-End":             "kept",
		"Authorization":     "Bearer x",
		"X-Forwarded-For":   "203.0.113.9, 127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  "shop.example.com",
		"X-Got-Host":        "shop.example.com",
		"X-Got-Uri":         "/x",
		"Traceparent":       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"Tracestate":        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
		"X-B3-Traceid":      "80f198ee56343ba864fe8b2a57d3eff7",
		"X-B3-Spanid":       "e457b5a2e4d86bd1",
		"X-B3-Sampled":      "1",
		"B3":                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
	}
	for k, v := range want {
		if vs := got[k]; len(vs) != 1 || vs[0] != v {
			t.Errorf("%s = %q, want %q", k, vs, v)
		}
	}
	if id := got.Get("X-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) || resps[0].Header.Get("X-Request-Id") != id {
		t.Errorf("request id %q, echoed %q", id, resps[0].Header.Get("X-Request-Id"))
	}
}

func TestHTTPRequestIDKept(t *testing.T) {
	b := startBackend(t, "echo", headerEcho())
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	code, h, body := get(t, g.url+"/", "X-Request-Id", "my-id-1")
	if code != 200 || h.Get("X-Request-Id") != "my-id-1" || parseHeaderLines(body).Get("X-Request-Id") != "my-id-1" {
		t.Fatalf("%d %q %q", code, h.Get("X-Request-Id"), body)
	}
	ids := map[string]bool{}
	for i := 0; i < 50; i++ {
		_, h, _ := get(t, g.url+"/")
		ids[h.Get("X-Request-Id")] = true
	}
	if len(ids) != 50 {
		t.Fatalf("request ids repeat: %d distinct of 50", len(ids))
	}
}

func TestHTTPHopByHopResponseHeaders(t *testing.T) {
	rb := startRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			// X-Late-Hop, named by Connection, comes after end-to-end fields.
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop, keep-alive, x-late-hop\r\nX-Resp-Hop: 1\r\nKeep-Alive: timeout=9\r\n"+
				"Proxy-Authenticate: Basic\r\nUpgrade: foo\r\nX-Resp-End: kept\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Late-Hop: 2\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: \""+rb.addr+"\"}]"))
	resps := rawExchange(t, g.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "GET")
	for _, r := range resps {
		for _, k := range []string{"X-Resp-Hop", "X-Late-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
			if v, ok := r.Header[k]; ok {
				t.Errorf("hop-by-hop response header %s passed on: %q", k, v)
			}
		}
		if c := r.Header.Get("Connection"); strings.Contains(strings.ToLower(c), "x-resp-hop") {
			t.Errorf("Connection passed on: %q", c)
		}
		if r.Header.Get("X-Resp-End") != "kept" || len(r.Header["Set-Cookie"]) != 2 || r.body != "ok" {
			t.Errorf("end-to-end headers lost: %v %q", r.Header, r.body)
		}
	}
}

func TestHTTPKeepAlivePooling(t *testing.T) {
	b := startBackend(t, "a", nil)
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	for i := 0; i < 200; i++ {
		if code, _, _ := get(t, g.url+"/"); code != 200 {
			t.Fatal(code)
		}
	}
	if n := b.conns.Load(); n > 2 {
		t.Fatalf("200 sequential requests used %d backend connections", n)
	}
	// Four clients at once: a handful of connections, reused.
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				resp, err := testClient.Get(g.url + "/")
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if n := b.conns.Load(); n > 8 {
		t.Fatalf("400 requests used %d backend connections", n)
	}
	if n := metric(t, g.reg, "cairn_proxy_upstream_connections", "instance", b.addr); n < 1 || n > 8 {
		t.Fatalf("open connections gauge %v", n)
	}
}

// dataBackend serves /download/N (N random bytes, X-Sum their SHA-256;
// chunked when ?chunked), and answers uploads with the SHA-256 and length
// of what it read.
func dataBackend(t *testing.T) *testBackend {
	return startBackend(t, "data", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, ok := strings.CutPrefix(r.URL.Path, "/download/"); ok {
			size, _ := strconv.Atoi(n)
			data := make([]byte, size)
			rng := rand.NewChaCha8([32]byte{byte(size)})
			rng.Read(data)
			sum := sha256.Sum256(data)
			w.Header().Set("X-Sum", hex.EncodeToString(sum[:]))
			if r.URL.Query().Has("chunked") {
				for off := 0; off < len(data); off += 100 << 10 {
					w.Write(data[off:min(off+100<<10, len(data))])
					w.(http.Flusher).Flush()
				}
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(data)
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%s %d %s te=%v cl=%d", r.Method, n, hex.EncodeToString(h.Sum(nil)), r.TransferEncoding, r.ContentLength)
	}))
}

func TestHTTPLargeBodies(t *testing.T) {
	b := dataBackend(t)
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	const size = 6 << 20
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(data)
	sum := sha256.Sum256(data)
	want := fmt.Sprintf(" %d %s ", size, hex.EncodeToString(sum[:]))

	for _, method := range []string{"POST", "PUT"} {
		resp, err := testClient.Post(g.url+"/upload", "application/octet-stream", bytes.NewReader(data))
		if method == "PUT" {
			req, _ := http.NewRequest("PUT", g.url+"/upload", bytes.NewReader(data))
			resp, err = testClient.Do(req)
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), method+want) || !strings.Contains(string(body), fmt.Sprintf("cl=%d", size)) {
			t.Fatalf("%s upload: %d %q", method, resp.StatusCode, body)
		}
	}
	// A chunked upload (length unknown) stays chunked.
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < size; off += 64 << 10 {
			pw.Write(data[off : off+64<<10])
		}
		pw.Close()
	}()
	resp, err := testClient.Post(g.url+"/upload", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "POST"+want+"te=[chunked]") {
		t.Fatalf("chunked upload: %d %q", resp.StatusCode, body)
	}

	for _, q := range []string{"", "?chunked"} {
		resp, err := testClient.Get(g.url + "/download/" + strconv.Itoa(size) + q)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != resp.Header.Get("X-Sum") {
			t.Fatalf("download%s: %d bytes, err %v, sum mismatch %v", q, n, err, hex.EncodeToString(h.Sum(nil)) != resp.Header.Get("X-Sum"))
		}
		if q == "" && resp.ContentLength != size {
			t.Fatalf("Content-Length not passed on: %d", resp.ContentLength)
		}
	}
}

func TestHTTPSmallBodies(t *testing.T) {
	b := startBackend(t, "a", nil)
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		req, _ := http.NewRequest(method, g.url+"/form", strings.NewReader("a=1&b=2"))
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "a "+method+" /form ") || !strings.HasSuffix(string(body), "body=a=1&b=2") {
			t.Fatalf("%s: %d %q", method, resp.StatusCode, body)
		}
	}
	// An empty POST reaches the backend with Content-Length: 0.
	resp, err := testClient.Post(g.url+"/empty", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasSuffix(string(body), "body=") {
		t.Fatalf("empty POST: %d %q", resp.StatusCode, body)
	}
}

func TestHTTPStreamingResponseNotBuffered(t *testing.T) {
	release := make(chan struct{})
	b := startBackend(t, "stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sse" {
			w.Header().Set("Content-Type", "text/event-stream")
		}
		w.Write([]byte("first"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write([]byte("-last"))
	}))
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	for _, path := range []string{"/chunked", "/sse"} {
		release = make(chan struct{})
		resp, err := testClient.Get(g.url + path)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, 5)
			n, _ := io.ReadFull(resp.Body, buf)
			got <- string(buf[:n])
		}()
		select {
		case s := <-got:
			if s != "first" {
				t.Fatalf("%s: first chunk %q", path, s)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: the first chunk did not arrive before the backend sent the last: buffered", path)
		}
		close(release)
		rest, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(rest) != "-last" {
			t.Fatalf("%s: rest %q %v", path, rest, err)
		}
	}
}

func TestHTTPBodylessResponses(t *testing.T) {
	b := startBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(304)
		default:
			w.Header().Set("Content-Length", "11")
			w.Header().Set("X-Head", "yes")
			if r.Method != "HEAD" {
				io.WriteString(w, "hello world")
			}
		}
	}))
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	// Bodyless answers, then a GET on the same client connection: framing
	// must stay right for both hops.
	raw := "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /204 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /304 HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"v1\"\r\n\r\n" +
		"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /h HTTP/1.1\r\nHost: x\r\n\r\n"
	resps := rawExchange(t, g.addr, raw, "HEAD", "GET", "GET", "HEAD", "GET")
	if r := resps[0]; r.StatusCode != 200 || r.body != "" || r.Header.Get("Content-Length") != "11" || r.Header.Get("X-Head") != "yes" {
		t.Errorf("HEAD: %d %v %q", r.StatusCode, r.Header, r.body)
	}
	if r := resps[1]; r.StatusCode != 204 || r.body != "" {
		t.Errorf("204: %d %q", r.StatusCode, r.body)
	}
	if r := resps[2]; r.StatusCode != 304 || r.body != "" || r.Header.Get("Etag") != `"v1"` {
		t.Errorf("304: %d %v %q", r.StatusCode, r.Header, r.body)
	}
	if r := resps[4]; r.StatusCode != 200 || r.body != "hello world" {
		t.Errorf("GET after: %d %q", r.StatusCode, r.body)
	}
	if n := b.conns.Load(); n != 1 {
		t.Errorf("the backend connection was not reused across bodyless answers: %d connections", n)
	}
}

func TestHTTPResponseTrailers(t *testing.T) {
	b := startBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum, X-Count")
		io.WriteString(w, "part1 ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part2")
		w.Header().Set("X-Checksum", "abc123")
		w.Header().Set("X-Count", "2")
		w.Header().Set(http.TrailerPrefix+"X-Late", "undeclared")
	}))
	g := startGatewayTLS(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	for name, c := range map[string]*http.Client{"http1": testClient, "h2c": h2cClient(t), "h2": tlsClient(t, g, true)} {
		url := g.url
		if name == "h2" {
			url = g.tlsURL
		}
		resp, err := c.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "part1 part2" {
			t.Fatalf("%s: %q %v", name, body, err)
		}
		if resp.Trailer.Get("X-Checksum") != "abc123" || resp.Trailer.Get("X-Count") != "2" || resp.Trailer.Get("X-Late") != "undeclared" {
			t.Fatalf("%s: trailers %v", name, resp.Trailer)
		}
	}
}

func TestHTTPExpectContinue(t *testing.T) {
	b := startBackend(t, "a", nil)
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	for _, method := range []string{"PUT", "POST"} {
		// By hand: the head, then the body only once 100 Continue comes.
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "%s /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", method)
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("%s: want 100 Continue, got %q %v", method, line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\r\n" {
			t.Fatalf("%s: after 100: %q", method, blank)
		}
		io.WriteString(c, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != 200 || !strings.HasSuffix(string(body), "body=hello") {
			t.Fatalf("%s: %d %q", method, resp.StatusCode, body)
		}
	}
	// Go's client waits for the 100 too.
	tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", g.url+"/up", strings.NewReader("world"))
	req.Header.Set("Expect", "100-continue")
	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasSuffix(string(body), "body=world") || time.Since(start) > 2*time.Second {
		t.Fatalf("%d %q after %v", resp.StatusCode, body, time.Since(start))
	}
}

// A backend that closes idle keep-alive connections on its own timeout
// (gunicorn, Node): requests after a pause, POSTs with bodies included,
// must not be sent on the closed connection.
func TestHTTPBackendClosesIdleConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	opened := 0
	srv := &http.Server{IdleTimeout: 50 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, body)
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			opened++
			mu.Unlock()
		}
	}}
	conns.Add(1)
	go func() { defer conns.Done(); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); conns.Wait() })
	g := startGateway(t, Options{}, routeDoc("r", "  retries: {attempts: 0}\n  backends: [{address: \""+ln.Addr().String()+"\"}]"))
	for i, m := range []string{"POST", "POST", "PATCH", "GET"} {
		if i > 0 {
			time.Sleep(250 * time.Millisecond) // longer than the backend keeps it
		}
		req, _ := http.NewRequest(m, g.url+"/", strings.NewReader("payload"))
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != m+" payload" {
			t.Fatalf("%s after the backend closed the idle connection: %d %q", m, resp.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if opened != 4 {
		t.Fatalf("%d connections for 4 requests each after an idle close", opened)
	}
}
