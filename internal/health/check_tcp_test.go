package health

import (
	"net"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/internal/registry"
)

// TestTCP checks a listener that accepts, then the same port once closed.
func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()

	reg := newRegistry(t, registry.Config{})
	c := New(reg, testLogger(t))
	runChecker(t, c)
	check := &registry.CheckSpec{Type: "tcp", Interval: roomyInterval, UnhealthyThreshold: 1}
	register(t, reg, instance("db", check, registry.Port{Name: "pg", Port: portOf(t, ln.Addr())}))
	if out := waitHealth(t, reg, "db", registry.HealthPassing); out != "TCP connect OK" {
		t.Errorf("output = %q", out)
	}

	ln.Close()
	out := waitHealth(t, reg, "db", registry.HealthFailing)
	if !strings.Contains(out, "dial tcp") || !strings.Contains(out, "connection refused") {
		t.Errorf("output = %q, want a refused dial", out)
	}
	if st := c.Stats(); st.Failures < 1 || st.Checks < 2 {
		t.Errorf("stats = %+v", st)
	}
}
