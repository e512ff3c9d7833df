package proxy

import (
	"strings"
	"testing"
)

func TestProxyBasics(t *testing.T) {
	a := startBackend(t, "a", nil)
	g := startGateway(t, Options{}, routeDoc("r", "  backends: [{address: \""+a.addr+"\"}]"))
	code, h, body := get(t, g.url+"/x/y?q=1", "X-Forwarded-For", "10.0.0.1")
	if code != 200 || !strings.HasPrefix(body, "a GET /x/y?q=1 xff=10.0.0.1, 127.0.0.1 xfp=http") {
		t.Fatalf("%d %q", code, body)
	}
	if h.Get("X-Backend") != "a" || len(h.Get("X-Request-Id")) != 32 {
		t.Fatalf("headers %v", h)
	}
	if !strings.Contains(body, "rid="+h.Get("X-Request-Id")) {
		t.Fatalf("request id not passed on: %q", body)
	}
}
