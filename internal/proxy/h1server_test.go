package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startH1 serves handler with the gateway's HTTP/1.1 server alone.
func startH1(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h2 := &http.Server{Handler: h}
	s := newH1Server(h, h2, ln, false) // a plain handler: no event loop
	go s.serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.drain(ctx)
	})
	return ln.Addr().String()
}

// rawStatus sends raw bytes and returns the first status line and the
// whole answer (until the server closes or 2s pass).
func rawStatus(t *testing.T, addr, raw string) (string, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	line, _, _ := strings.Cut(string(b), "\r\n")
	return line, string(b)
}

func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Query", r.URL.RawQuery)
		w.Header().Set("X-Trailer", r.Trailer.Get("X-Sum"))
		out := r.Method + " " + r.RequestURI + " " + string(body)
		if r.URL.Query().Has("cl") {
			w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		}
		io.WriteString(w, out)
	})
}

func TestH1RejectsMalformedRequests(t *testing.T) {
	addr := startH1(t, echoHandler())
	cases := []struct{ name, raw, status string }{
		{"CL and TE (smuggling)", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"two different CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"negative CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400"},
		{"gzip TE", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400"},
		{"folding", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", "HTTP/1.1 400"},
		{"space in name", "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", "HTTP/1.1 400"},
		{"control char", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", "HTTP/1.1 400"},
		{"HTTP/2.0 text", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP/1.1 505"},
		{"bad line", "GET /\r\nHost: a\r\n\r\n", "HTTP/1.1 400"},
		{"long head", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 70) + "\r\n", "HTTP/1.1 431"},
		{"long line", "GET /" + strings.Repeat("a", 20000) + " HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 414"},
		{"bad expect", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx", "HTTP/1.1 417"},
	}
	for _, c := range cases {
		if line, all := rawStatus(t, addr, c.raw); !strings.HasPrefix(line, c.status) || !strings.Contains(all, "Connection: close") {
			t.Errorf("%s: got %q", c.name, all)
		}
	}
}

func TestH1FramingAndKeepAlive(t *testing.T) {
	addr := startH1(t, echoHandler())
	// Pipelined: a chunked body with a trailer, a Content-Length body, an
	// absolute-form target and an escaped path, on one connection.
	raw := "POST /c?q=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n" +
		"PUT /l HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nwxyz" +
		"GET http://other.example/abs?x=y HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /a%20b HTTP/1.1\r\nHost: h\r\n\r\n"
	resps := rawExchange(t, addr, raw, "POST", "PUT", "GET", "GET")
	if r := resps[0]; r.body != "POST /c?q=1 abcde" || r.Header.Get("X-Trailer") != "5" || r.Header.Get("X-Query") != "q=1" {
		t.Errorf("chunked: %q %v", r.body, r.Header)
	}
	if r := resps[1]; r.body != "PUT /l wxyz" {
		t.Errorf("length: %q", r.body)
	}
	if r := resps[2]; r.body != "GET /abs?x=y " || r.Header.Get("X-Host") != "other.example" {
		t.Errorf("absolute form: %q %v", r.body, r.Header)
	}
	if r := resps[3]; r.Header.Get("X-Path") != "/a b" {
		t.Errorf("escaped path: %v", r.Header)
	}
	// HTTP/1.0: closes unless asked to keep alive.
	if _, all := rawStatus(t, addr, "GET /x HTTP/1.0\r\n\r\n"); !strings.Contains(all, "Connection: close") || !strings.HasSuffix(all, "GET /x ") {
		t.Errorf("HTTP/1.0: %q", all)
	}
	// A body of known length can keep an HTTP/1.0 connection; one that
	// ends with the connection cannot.
	resps = rawExchange(t, addr, "GET /1?cl HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET", "GET")
	if resps[0].Header.Get("Connection") != "keep-alive" || resps[1].body != "GET /2 " || !resps[1].Close {
		t.Errorf("HTTP/1.0 keep-alive: %v %q", resps[0].Header, resps[1].body)
	}
}

func TestH1ExpectContinue(t *testing.T) {
	addr := startH1(t, echoHandler())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(c, "POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 Continue") {
		t.Fatalf("want 100 Continue before the body, got %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "POST /e hello" {
		t.Fatalf("body %q", b)
	}
}

func TestH1HandlerPanicClosesOnlyTheConnection(t *testing.T) {
	addr := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		io.WriteString(w, "fine")
	}))
	if line, _ := rawStatus(t, addr, "GET /panic HTTP/1.1\r\nHost: h\r\n\r\n"); !strings.HasPrefix(line, "HTTP/1.1 500") {
		t.Fatalf("panic: %q", line)
	}
	if r := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "GET"); r[0].body != "fine" {
		t.Fatalf("after a panic: %q", r[0].body)
	}
}

func FuzzH1ReadRequest(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("POST /x?y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nT: v\r\n\r\n"))
	f.Add([]byte("GET http://h/p HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nab"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, c2 := net.Pipe()
		defer c1.Close()
		go func() {
			c2.Write(data)
			c2.Close()
		}()
		hc := &h1conn{c: c1, br: bufio.NewReader(c1), hdr: http.Header{}, srv: &h1server{}}
		r, status, err := hc.readRequest()
		if err != nil {
			if status != 0 && (status < 400 || status > 599) {
				t.Fatalf("status %d for an error", status)
			}
			return
		}
		if r.URL == nil || r.Method == "" || (r.ProtoMinor == 1 && len(r.Header["Host"]) != 1 && r.Host == "") {
			t.Fatalf("accepted an incomplete request: %+v", r)
		}
		if r.ContentLength < -1 || (r.ContentLength == -1) != hc.body.chunked {
			t.Fatalf("framing: length %d chunked %v", r.ContentLength, hc.body.chunked)
		}
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	})
}
