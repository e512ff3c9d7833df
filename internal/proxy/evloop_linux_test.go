package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// loopCounts returns what the gateway's event loops did.
func loopCounts(t *testing.T, g *testGateway) (served, handed int64) {
	t.Helper()
	v := g.s.h1.ev
	if v == nil {
		t.Fatal("the gateway has no event loops")
	}
	return counterOf(v.served), counterOf(v.handed)
}

func counterOf(c prometheus.Counter) int64 {
	var m dto.Metric
	c.Write(&m)
	return int64(m.GetCounter().GetValue())
}

// The common exchange stays in the loops; what they do not do goes to a
// goroutine, once per connection, and is answered the same.
func TestEventLoopServesAndHandsOver(t *testing.T) {
	if noEventLoop {
		t.Skip("CAIRN_TEST_GOROUTINES=1: the gateways run without event loops")
	}
	b := startBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
		io.WriteString(w, "ok "+r.Method+" "+string(body))
	}))
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	for i := 0; i < 20; i++ {
		if code, _, body := get(t, g.url+"/"); code != 200 || body != "ok GET " {
			t.Fatalf("GET: %d %q", code, body)
		}
	}
	served, handed := loopCounts(t, g)
	if served < 20 || handed != 0 {
		t.Fatalf("20 GETs: %d served by the loops, %d handed over; want 20 and 0", served, handed)
	}
	// A body to read: handed over, answered.
	resp, err := testClient.Post(g.url+"/", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok POST payload" {
		t.Fatalf("POST: %d %q", resp.StatusCode, body)
	}
	// An answer that streams (chunked): handed over after its head.
	fresh := &http.Client{Transport: &http.Transport{}} // a new connection, served by a loop first
	defer fresh.CloseIdleConnections()
	resp, err = fresh.Get(g.url + "/chunked")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok GET " {
		t.Fatalf("chunked GET: %d %q", resp.StatusCode, body)
	}
	served, handed = loopCounts(t, g)
	if handed < 2 {
		t.Fatalf("a POST and a chunked answer: %d hand-overs, want 2", handed)
	}
	// The same counts as metrics.
	want := map[string]float64{"served": float64(served), "handoff": float64(handed)}
	mfs, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cairn_proxy_event_loop_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			ev := m.GetLabel()[0].GetValue()
			if w, ok := want[ev]; ok && m.GetCounter().GetValue() != w {
				t.Errorf("cairn_proxy_event_loop_total{event=%q} = %v, want %v", ev, m.GetCounter().GetValue(), w)
			}
			delete(want, ev)
		}
	}
	if len(want) > 0 {
		t.Fatalf("cairn_proxy_event_loop_total lacks %v", want)
	}
}

// A client that sends its request and closes its side gets the answer,
// then the connection closes (its end has no event of its own for an
// edge-triggered loop: it must be read after the request).
func TestClientHalfCloseGetsAnswerThenClose(t *testing.T) {
	b := startBackend(t, "a", nil)
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: shop\r\n\r\n")
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "a GET /x") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer: %v, want the connection closed (EOF)", err)
	}
}

// Large answers (under the loop's 1 MiB) to a client that reads slowly,
// three asked at once: the socket cannot take them all, so the loop keeps
// what it does not take, sends it as the client reads, and then answers
// the next request.
func TestLargeAnswersSlowClient(t *testing.T) {
	testSndBuf = 32 << 10
	defer func() { testSndBuf = 0 }()
	payload := strings.Repeat("0123456789abcdef", 48<<10) // 768 KiB
	b := startBackend(t, "big", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		io.WriteString(w, payload)
	}))
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 4<<10)
	const n = 3
	io.WriteString(c, strings.Repeat("GET /big HTTP/1.1\r\nHost: shop\r\n\r\n", n))
	time.Sleep(300 * time.Millisecond) // the gateway's writes fill the socket meanwhile
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 32<<10)
	for i := 0; i < n; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for {
			k, err := resp.Body.Read(buf)
			got.Write(buf[:k])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Microsecond)
		}
		resp.Body.Close()
		if got.String() != payload {
			t.Fatalf("answer %d: %d bytes, want the %d sent", i, got.Len(), len(payload))
		}
	}
	if !noEventLoop {
		if served, handed := loopCounts(t, g); served < n || handed != 0 {
			t.Fatalf("%d served by the loops, %d handed over; want %d and 0", served, handed, n)
		}
		if counterOf(g.s.h1.ev.blocked) == 0 {
			t.Fatal("the answers went out without the socket ever being full: the test tests nothing")
		}
	}
}
