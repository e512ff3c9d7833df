package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// h2cClient speaks HTTP/2 with prior knowledge over plain TCP. Its
// connections close when the test ends, before the gateway drains (which
// would otherwise wait a second for HTTP/2 clients to go after GOAWAY).
func h2cClient(t *testing.T) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// tlsClient trusts the gateway's certificate and speaks HTTP/2 (h2) or
// HTTP/1.1 over TLS.
func tlsClient(t *testing.T, g *testGateway, h2 bool) *http.Client {
	p := new(http.Protocols)
	if h2 {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	tr := &http.Transport{Protocols: p, TLSClientConfig: &tls.Config{RootCAs: g.roots}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// protoBackend names the protocol and the request body it got.
func protoBackend(t *testing.T) *testBackend {
	return startBackend(t, "proto", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Backend-Proto", r.Proto)
		io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" xfp="+r.Header.Get("X-Forwarded-Proto")+" xfh="+r.Header.Get("X-Forwarded-Host")+" body="+string(body))
	}))
}

func TestProtocolsCurl(t *testing.T) {
	curl := requireCurl(t)
	b := protoBackend(t)
	g := startGatewayTLS(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	cafile := t.TempDir() + "/ca.pem"
	writeCA(t, g, cafile)
	for _, c := range []struct {
		name      string
		args      []string
		wantProto string
		wantXFP   string
	}{
		{"http1.1", []string{"--http1.1", g.url + "/p?x=1"}, "1.1", "http"},
		{"h2c prior knowledge", []string{"--http2-prior-knowledge", g.url + "/p?x=1"}, "2", "http"},
		{"https h2 by ALPN", []string{"--http2", "--cacert", cafile, g.tlsURL + "/p?x=1"}, "2", "https"},
		{"https http1.1 by ALPN", []string{"--http1.1", "--cacert", cafile, g.tlsURL + "/p?x=1"}, "1.1", "https"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, method := range []string{"GET", "POST"} {
				args := append([]string{"-sS", "--max-time", "5", "-w", "\n%{http_code} %{http_version}", "-H", "X-Request-Id: curl-1"}, c.args...)
				want := "GET /p?x=1 xfp=" + c.wantXFP + " xfh=" + strings.TrimPrefix(strings.TrimPrefix(c.args[len(c.args)-1], "http://"), "https://")
				want = strings.TrimSuffix(want, "/p?x=1") + " body="
				if method == "POST" {
					args = append(args, "--data-binary", "payload")
					want = strings.Replace(want, "GET", "POST", 1) + "payload"
				}
				out, err := exec.Command(curl, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("curl %v: %v\n%s", args, err, out)
				}
				body, tail, _ := strings.Cut(string(out), "\n")
				if body != want || tail != "200 "+c.wantProto {
					t.Fatalf("curl %s: got %q / %q, want %q / 200 %s", method, body, tail, want, c.wantProto)
				}
			}
		})
	}
}

func writeCA(t *testing.T, g *testGateway, path string) {
	t.Helper()
	if err := os.WriteFile(path, g.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestProtocolsGoHTTP2Clients(t *testing.T) {
	b := protoBackend(t)
	g := startGatewayTLS(t, Options{}, routeDoc("r", "  backends: [{address: "+addr(b)+"}]"))
	for _, c := range []struct {
		name, url, proto, xfp string
		client                *http.Client
	}{
		{"h2c", g.url, "HTTP/2.0", "http", h2cClient(t)},
		{"h2 over TLS", g.tlsURL, "HTTP/2.0", "https", tlsClient(t, g, true)},
		{"http1.1 over TLS", g.tlsURL, "HTTP/1.1", "https", tlsClient(t, g, false)},
	} {
		for _, method := range []string{"GET", "POST"} {
			var body io.Reader
			if method == "POST" {
				// Unknown length: an HTTP/2 request body without
				// content-length goes upstream chunked.
				body = io.MultiReader(strings.NewReader("pay"), strings.NewReader("load"))
			}
			req, _ := http.NewRequest(method, c.url+"/p", body)
			resp, err := c.client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", c.name, method, err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := method + " /p xfp=" + c.xfp
			if resp.StatusCode != 200 || resp.Proto != c.proto || !strings.HasPrefix(string(got), want) || resp.Header.Get("X-Backend-Proto") != "HTTP/1.1" {
				t.Fatalf("%s %s: %d %s %q", c.name, method, resp.StatusCode, resp.Proto, got)
			}
			if method == "POST" && !strings.HasSuffix(string(got), "body=payload") {
				t.Fatalf("%s: body %q", c.name, got)
			}
		}
	}
}

// startGRPCBackend runs grpc-go with the health service on 127.0.0.1.
func startGRPCBackend(t *testing.T) (*health.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("shop.Orders", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return hs, ln.Addr().String()
}

func TestProtocolsGRPC(t *testing.T) {
	hs, baddr := startGRPCBackend(t)
	g := startGatewayTLS(t, Options{}, routeDoc("grpc", "  match: {path: {value: /grpc.health.v1.Health}}\n  backends: [{address: \""+baddr+"\", http2: true}]"))
	for _, c := range []struct {
		name   string
		target string
		creds  credentials.TransportCredentials
	}{
		{"h2c", g.addr, insecure.NewCredentials()},
		{"tls", g.tlsAddr, credentials.NewTLS(&tls.Config{RootCAs: g.roots})},
	} {
		t.Run(c.name, func(t *testing.T) {
			hs.SetServingStatus("shop.Orders", healthpb.HealthCheckResponse_SERVING)
			cc, err := grpc.NewClient(c.target, grpc.WithTransportCredentials(c.creds))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			client := healthpb.NewHealthClient(cc)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()

			// Unary.
			var hdr, trl metadata.MD
			resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "shop.Orders"}, grpc.Header(&hdr), grpc.Trailer(&trl))
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Check: %v %v", resp, err)
			}
			if len(hdr.Get("x-request-id")) != 1 {
				t.Fatalf("no request id in the response headers: %v", hdr)
			}
			// A failed call is a gRPC status, not a transport error.
			_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
			if st, ok := status.FromError(err); !ok || st.Code() != codes.NotFound {
				t.Fatalf("Check of an unknown service: %v (code %v)", err, status.Code(err))
			}

			// Server streaming: Watch sends the status, then each change.
			wctx, wcancel := context.WithCancel(ctx)
			defer wcancel()
			stream, err := client.Watch(wctx, &healthpb.HealthCheckRequest{Service: "shop.Orders"})
			if err != nil {
				t.Fatal(err)
			}
			m, err := stream.Recv()
			if err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Watch first: %v %v", m, err)
			}
			hs.SetServingStatus("shop.Orders", healthpb.HealthCheckResponse_NOT_SERVING)
			m, err = stream.Recv()
			if err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Fatalf("Watch second: %v %v", m, err)
			}
			hs.SetServingStatus("shop.Orders", healthpb.HealthCheckResponse_SERVING)
			m, err = stream.Recv()
			if err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Watch third: %v %v", m, err)
			}
			wcancel()
			if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
				t.Fatalf("after cancel: %v", err)
			}
		})
	}
	// Two of each call; the canceled Watch streams end on their own time.
	waitFor(t, 3*time.Second, "6 gRPC requests counted", func() bool {
		return metric(t, g.reg, "cairn_proxy_requests_total", "route", "default/grpc", "class", "2xx") == 6
	})
}

// wsBackend echoes WebSocket messages, greets first, and refuses /deny.
func wsBackend(t *testing.T) *testBackend {
	return startBackend(t, "ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/deny" {
			w.Header().Set("X-Why", "no token")
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx := r.Context()
		if err := c.Write(ctx, websocket.MessageText, []byte("hello "+r.Header.Get("X-Forwarded-Host"))); err != nil {
			return
		}
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	}))
}

func TestProtocolsWebSocket(t *testing.T) {
	b := wsBackend(t)
	g := startGateway(t, Options{}, routeDoc("ws", "  backends: [{address: "+addr(b)+"}]"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+g.addr+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if resp.StatusCode != http.StatusSwitchingProtocols || len(resp.Header.Get("X-Request-Id")) != 32 {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	_, msg, err := c.Read(ctx)
	if err != nil || string(msg) != "hello "+g.addr {
		t.Fatalf("greeting %q %v", msg, err)
	}
	for i, m := range []string{"one", "two", strings.Repeat("x", 100<<10)} {
		typ := websocket.MessageText
		if i == 1 {
			typ = websocket.MessageBinary
		}
		if err := c.Write(ctx, typ, []byte(m)); err != nil {
			t.Fatal(err)
		}
		gt, got, err := c.Read(ctx)
		if err != nil || gt != typ || string(got) != "echo:"+m {
			t.Fatalf("echo %d: %v %d bytes %v", i, gt, len(got), err)
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}

	// A refused handshake is the backend's answer.
	_, resp, err = websocket.Dial(ctx, "ws://"+g.addr+"/deny", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Why") != "no token" {
		t.Fatalf("refused handshake: %v %+v", err, resp)
	}
	// A dead backend: 502.
	g.apply(t, routeDoc("ws", "  backends: [{address: \""+deadAddr(t)+"\"}]"))
	_, resp, err = websocket.Dial(ctx, "ws://"+g.addr+"/chat", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("dead backend: %v %+v", err, resp)
	}
	waitFor(t, 2*time.Second, "the tunnel to be counted", func() bool {
		return metric(t, g.reg, "cairn_proxy_requests_total", "route", "default/ws", "class", "1xx") == 1
	})
}

func TestProtocolsWebSocketTLS(t *testing.T) {
	b := wsBackend(t)
	g := startGatewayTLS(t, Options{}, routeDoc("ws", "  backends: [{address: "+addr(b)+"}]"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "wss://"+g.tlsAddr+"/chat", &websocket.DialOptions{HTTPClient: tlsClient(t, g, false)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatal(resp.StatusCode)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello "+g.tlsAddr {
		t.Fatalf("greeting %q %v", msg, err)
	}
	for _, m := range []string{"a", "bb", "ccc"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.Read(ctx); err != nil || string(got) != "echo:"+m {
			t.Fatalf("%q %v", got, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}
