package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/prometheus/client_golang/prometheus"
)

// backend is a real Go HTTP server on 127.0.0.1 that names itself in
// every answer.
type testBackend struct {
	name  string
	addr  string
	srv   *http.Server
	ln    net.Listener
	hits  atomic.Int64
	fail  atomic.Int64 // answer this status (0: 200)
	delay atomic.Int64 // ns
	conns atomic.Int64 // connections accepted (http.Server.ConnState)
}

func startBackend(t *testing.T, name string, h http.Handler) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{name: name, addr: ln.Addr().String(), ln: ln}
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.hits.Add(1)
			if d := b.delay.Load(); d > 0 {
				time.Sleep(time.Duration(d))
			}
			w.Header().Set("X-Backend", b.name)
			if c := b.fail.Load(); c != 0 {
				w.WriteHeader(int(c))
			}
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s xff=%s xfp=%s xfh=%s rid=%s host=%s body=%s", b.name, r.Method, r.URL.RequestURI(),
				r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"),
				r.Header.Get("X-Request-Id"), r.Host, body)
		})
	}
	b.srv = b.newServer(h)
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *testBackend) newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}}
}

// restart serves the backend again on its address (after stop).
func (b *testBackend) restart(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart %s on %s: %v", b.name, b.addr, err)
	}
	b.ln = ln
	b.srv = b.newServer(b.srv.Handler)
	go b.srv.Serve(ln)
}

// stop closes the backend and its connections (a killed instance).
func (b *testBackend) stop() { b.srv.Close() }

type testGateway struct {
	e    *Engine
	s    *Server
	addr string
	url  string
	reg  *prometheus.Registry
	log  *strings.Builder

	tlsAddr string         // with startGatewayTLS
	tlsURL  string         // https://127.0.0.1:port
	roots   *x509.CertPool // trusts the gateway's certificate
	certPEM []byte         // the gateway's certificate
}

// noEventLoop runs the tests' gateways with a goroutine per connection
// (CAIRN_TEST_GOROUTINES=1; scripts/test.sh runs the package both ways).
var noEventLoop = os.Getenv("CAIRN_TEST_GOROUTINES") == "1"

func startGateway(t *testing.T, opts Options, docs string) *testGateway {
	t.Helper()
	return startGatewayWith(t, opts, docs, false)
}

// startGatewayTLS starts a gateway with a TLS listener too, on a
// self-signed certificate for 127.0.0.1 and localhost.
func startGatewayTLS(t *testing.T, opts Options, docs string) *testGateway {
	t.Helper()
	return startGatewayWith(t, opts, docs, true)
}

func startGatewayWith(t *testing.T, opts Options, docs string, withTLS bool) *testGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &testGateway{addr: ln.Addr().String(), url: "http://" + ln.Addr().String(), reg: prometheus.NewRegistry()}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(g.reg)
	}
	g.e = NewEngine(opts)
	if docs != "" {
		g.apply(t, docs)
	}
	so := ServerOptions{Listen: ln, Logger: opts.Logger, NoEventLoop: noEventLoop}
	if withTLS {
		tln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cert, roots := selfSignedCert(t)
		so.TLSListen, so.TLSConfig = tln, &tls.Config{Certificates: []tls.Certificate{cert}}
		g.tlsAddr, g.tlsURL, g.roots = tln.Addr().String(), "https://"+tln.Addr().String(), roots
		g.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	}
	g.s = NewServer(g.e, so)
	g.s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.s.Drain(ctx)
	})
	return g
}

func (g *testGateway) apply(t *testing.T, docs string, services ...map[ServiceKey][]Instance) {
	t.Helper()
	if err := g.update(docs, services...); err != nil {
		t.Fatal(err)
	}
}

func (g *testGateway) update(docs string, services ...map[ServiceKey][]Instance) error {
	parsed, err := config.Parse([]byte(docs))
	if err != nil {
		return err
	}
	s := &Snapshot{Routes: parsed}
	if len(services) > 0 {
		s.Services = services[0]
	}
	return g.e.Update(s)
}

var testClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

func get(t *testing.T, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	return send(t, "GET", url, hdr...)
}

// send makes a request with headers given as name, value pairs ("Host"
// sets the request's host) and returns the status, headers and body.
func send(t *testing.T, method, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func routeDoc(name, spec string) string {
	return "kind: Route\nmetadata: {name: " + name + "}\nspec:\n" + spec + "\n---\n"
}
