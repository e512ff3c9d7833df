package health

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/cairnhq/cairn/internal/registry"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// startGRPC serves the standard health service (google.golang.org/grpc)
// on 127.0.0.1.
func startGRPC(t *testing.T) (*grpchealth.Server, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := grpc.NewServer()
	hs := grpchealth.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(cl)
	t.Cleanup(srv.Stop)
	return hs, cl
}

func TestGRPCHealthServer(t *testing.T) {
	hs, ln := startGRPC(t)
	addr := ln.Addr().String()
	hs.SetServingStatus("cart", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)

	tests := []struct {
		service string
		pass    bool
		out     string
	}{
		{"", true, "SERVING"}, // the server as a whole
		{"cart", true, "SERVING"},
		{"down", false, "NOT_SERVING"},
		{"nope", false, "grpc-status 5 NOT_FOUND: unknown service"},
	}
	for _, tt := range tests {
		out, err := checkNow(t, registry.CheckSpec{Type: "grpc", GRPCService: tt.service}, addr)
		if tt.pass && (err != nil || out != tt.out) {
			t.Errorf("service %q: %q, %v; want a pass with %q", tt.service, out, err, tt.out)
		}
		if !tt.pass && (err == nil || err.Error() != tt.out) {
			t.Errorf("service %q: %q, %v; want a failure %q", tt.service, out, err, tt.out)
		}
	}
	if n := ln.accepted.Load(); n != int64(len(tests)) {
		t.Errorf("%d connections for %d checks, want a fresh one per check", n, len(tests))
	}
}

// TestGRPCThroughRegistry flips a gRPC service between SERVING and
// NOT_SERVING and follows the verdict.
func TestGRPCThroughRegistry(t *testing.T) {
	hs, ln := startGRPC(t)
	hs.SetServingStatus("cart", healthpb.HealthCheckResponse_SERVING)
	reg := newRegistry(t, registry.Config{})
	runChecker(t, New(reg, testLogger(t)))
	check := &registry.CheckSpec{Type: "grpc", GRPCService: "cart", Interval: roomyInterval, UnhealthyThreshold: 1}
	register(t, reg, instance("cart-1", check, registry.Port{Name: "grpc", Port: portOf(t, ln.Addr()), Protocol: "grpc"}))

	waitHealth(t, reg, "cart-1", registry.HealthPassing)
	hs.SetServingStatus("cart", healthpb.HealthCheckResponse_NOT_SERVING)
	if out := waitHealth(t, reg, "cart-1", registry.HealthFailing); out != "NOT_SERVING" {
		t.Errorf("output = %q, want NOT_SERVING", out)
	}
	hs.SetServingStatus("cart", healthpb.HealthCheckResponse_SERVING)
	waitHealth(t, reg, "cart-1", registry.HealthPassing)
}

func TestGRPCNotAGRPCServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, err := checkNow(t, registry.CheckSpec{Type: "grpc"}, srv.Listener.Addr().String())
	if err == nil {
		t.Fatal("a grpc check of an HTTP/1 server passed")
	}
	t.Logf("error: %v", err)
}

// TestGRPCWire checks the hand-made encoding against the generated code.
func TestGRPCWire(t *testing.T) {
	for _, service := range []string{"", "cart", strings.Repeat("x", 300)} {
		frame := encodeHealthRequest(service)
		msg, err := readFrame(bytes.NewReader(frame), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var req healthpb.HealthCheckRequest
		if err := proto.Unmarshal(msg, &req); err != nil || req.Service != service {
			t.Fatalf("request for %q decodes as %q, %v", service, req.Service, err)
		}
	}
	for _, st := range []healthpb.HealthCheckResponse_ServingStatus{0, 1, 2, 3} {
		b, err := proto.Marshal(&healthpb.HealthCheckResponse{Status: st})
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, 0x12, 2, 'h', 'i', 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4) // unknown fields are skipped
		if got, err := decodeServingStatus(b); err != nil || got != int32(st) {
			t.Errorf("status %v decodes as %d, %v", st, got, err)
		}
	}
	for _, bad := range [][]byte{{0x08}, {0x0a, 5, 1}, {0x00}, {0x0f}, {0x11, 1}} {
		if _, err := decodeServingStatus(bad); err == nil {
			t.Errorf("decodeServingStatus(%x) accepted a malformed message", bad)
		}
	}
	if _, err := readFrame(bytes.NewReader(nil), 10); !errors.Is(err, io.EOF) {
		t.Errorf("empty body: %v, want io.EOF", err)
	}
	for _, bad := range [][]byte{{0, 0}, {1, 0, 0, 0, 0}, {0, 0, 0, 0, 20}, {0, 0, 0, 0, 3, 1}} {
		if _, err := readFrame(bytes.NewReader(bad), 10); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("readFrame(%x) = %v, want an error", bad, err)
		}
	}
	if got := grpcTimeout(1500 * time.Millisecond); got != "1500m" {
		t.Errorf("grpcTimeout = %q", got)
	}
}
