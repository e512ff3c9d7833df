package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// slowBackend answers /slow after d, or stops when the request's context
// ends (the proxy closed the connection): each request's outcome arrives
// on the channel, "done" or "canceled".
func slowBackend(t *testing.T, d time.Duration) (*testBackend, chan string, chan struct{}) {
	outcomes := make(chan string, 16)
	started := make(chan struct{}, 16)
	b := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-time.After(d):
			io.WriteString(w, "slow answer "+r.URL.Path)
			outcomes <- "done"
		case <-r.Context().Done():
			outcomes <- "canceled"
		}
	}))
	return b, outcomes, started
}

func recvWithin[T any](t *testing.T, ch chan T, within time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		t.Fatalf("no %s within %v", what, within)
	}
	var zero T
	return zero
}

// A client that goes away while the backend works ends the backend's
// request (the proxy closes that connection), and the access log says
// 499, as nginx does with proxy_ignore_client_abort off.
func TestClientGoneEndsBackendRequest(t *testing.T) {
	for _, after := range []time.Duration{100 * time.Millisecond, 3 * watchAfter} {
		t.Run(after.String(), func(t *testing.T) {
			b, outcomes, started := slowBackend(t, 20*time.Second)
			var logBuf bytes.Buffer
			al := NewAccessLog(&logBuf, nil)
			g := startGateway(t, Options{AccessLog: al}, routeDoc("slow", "  retries: {attempts: 2}\n  backends: [{address: "+addr(b)+"}]"))
			c, err := net.Dial("tcp", g.addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
			recvWithin(t, started, 5*time.Second, "request at the backend")
			time.Sleep(after)
			closedAt := time.Now()
			c.Close()
			if got := recvWithin(t, outcomes, 5*time.Second, "end of the backend's request"); got != "canceled" {
				t.Fatalf("backend request %s, want canceled", got)
			}
			// Found by the next sweep at the latest.
			if d := time.Since(closedAt); d > 3*watchAfter {
				t.Errorf("backend request ended %v after the client left", d)
			}
			select {
			case <-started:
				t.Fatal("the request was retried after the client left")
			case <-time.After(100 * time.Millisecond):
			}

			// The gateway goes on serving on new connections.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := g.s.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			al.Close()
			var line struct {
				Status int    `json:"status"`
				Error  string `json:"error"`
				Route  string `json:"route"`
			}
			if err := json.Unmarshal(bytes.TrimSpace(logBuf.Bytes()), &line); err != nil {
				t.Fatalf("access log %q: %v", logBuf.String(), err)
			}
			if line.Status != 499 || line.Error != "client went away" || line.Route != "default/slow" {
				t.Fatalf("access log %+v, want status 499, error \"client went away\", route default/slow", line)
			}
		})
	}
}

// A client that stays gets its slow answer, and its connection carries the
// next request: the watch stops cleanly and leaves no deadline behind.
// Pipelined requests are not mistaken for a client going away.
func TestClientWatchedStays(t *testing.T) {
	b, outcomes, _ := slowBackend(t, 2*watchAfter)
	g := startGateway(t, Options{}, routeDoc("slow", "  backends: [{address: "+addr(b)+"}]"))
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	read := func(path string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "slow answer "+path {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: shop\r\n\r\n")
	read("/one")
	io.WriteString(c, "GET /two HTTP/1.1\r\nHost: shop\r\n\r\n")
	read("/two")
	// Two at once: the second is in the socket while the first runs.
	io.WriteString(c, "GET /three HTTP/1.1\r\nHost: shop\r\n\r\nGET /four HTTP/1.1\r\nHost: shop\r\n\r\n")
	read("/three")
	read("/four")
	for i := 0; i < 4; i++ {
		if got := recvWithin(t, outcomes, time.Second, "backend outcome"); got != "done" {
			t.Fatalf("backend request %d %s, want done", i, got)
		}
	}
}

// A Content-Length body that arrives in parts reaches the client part by
// part: the gateway does not hold what it has until its buffer fills.
func TestContentLengthBodyStreams(t *testing.T) {
	release := make(chan struct{})
	b := startBackend(t, "drip", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "hello")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "world")
	}))
	g := startGateway(t, Options{}, routeDoc("drip", "  backends: [{address: "+addr(b)+"}]"))
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /drip HTTP/1.1\r\nHost: shop\r\n\r\n")
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "hello" {
		t.Fatalf("first part: %q, %v (held back while the backend waits?)", first, err)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "world" {
		t.Fatalf("rest: %q, %v", rest, err)
	}
}
