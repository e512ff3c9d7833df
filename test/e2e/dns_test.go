package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// digShort asks Debian's dig for the short form of an answer.
func digShort(t *testing.T, server, name, qtype string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(server)
	out, err := exec.Command("dig", "@"+host, "-p", port, "+short", "+time=2", "+tries=1", name, qtype).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s %s at %s: %v\n%s", name, qtype, server, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestDNSAcrossClusters runs two real servers: cluster B's Cairn answers
// its zone; cluster A's answers its own and forwards *.cluster-b.local to
// B. A registration in B is visible from A's resolver.
func TestDNSAcrossClusters(t *testing.T) {
	b := startCairn(t, "server", "--in-memory", "--log-level", "warn", "--dns-domain", "cluster-b.local")
	a := startCairn(t, "server", "--in-memory", "--log-level", "warn", "--dns-domain", "cluster-a.local",
		"--dns-forward", "cluster-b.local="+b.DNS)
	for _, reg := range []struct {
		s    *server
		addr string
	}{{a, "10.10.0.1"}, {b, "10.20.0.1"}} {
		code, err := call("PUT", reg.s.URL+"/v1/services/shop/orders/instances/o-1",
			map[string]any{"address": reg.addr, "ports": []map[string]any{{"name": "http", "port": 8080, "protocol": "http"}}}, nil)
		if err != nil || code != 201 {
			t.Fatalf("register at %s: %d %v", reg.s.URL, code, err)
		}
	}
	eventually(t, 5*time.Second, "A answers its own zone", func() (bool, string) {
		got := digShort(t, a.DNS, "orders.shop.svc.cluster-a.local", "A")
		return got == "10.10.0.1", got
	})
	if got := digShort(t, a.DNS, "orders.shop.svc.cluster-b.local", "A"); got != "10.20.0.1" {
		t.Fatalf("cluster B's name through A: %q", got)
	}
	if got := digShort(t, a.DNS, "_http._tcp.orders.shop.svc.cluster-b.local", "SRV"); got != "0 1 8080 o-1.orders.shop.svc.cluster-b.local." {
		t.Fatalf("cluster B's SRV through A: %q", got)
	}
	// A deregistration in B is seen through A once A's cached answer
	// expires (the TTL, 5s by default, bounds how stale it can be).
	if code, err := call("DELETE", b.URL+"/v1/services/shop/orders/instances/o-1", nil, nil); err != nil || code != 200 {
		t.Fatalf("deregister: %d %v", code, err)
	}
	if got := digShort(t, b.DNS, "orders.shop.svc.cluster-b.local", "A"); got != "" {
		t.Fatalf("B after deregistration: %q", got)
	}
	eventually(t, 10*time.Second, "A sees B's deregistration after the TTL", func() (bool, string) {
		got := digShort(t, a.DNS, "orders.shop.svc.cluster-b.local", "A")
		return got == "", fmt.Sprintf("%q", got)
	})
}
