package dns

import (
	"context"
	"fmt"
	"testing"

	"github.com/cairnhq/cairn/internal/registry"
	mdns "github.com/miekg/dns"
)

type discardWriter struct{ fakeWriter }

func (discardWriter) WriteMsg(*mdns.Msg) error { return nil }

// BenchmarkServeDNS is the query path without the network: 1,000 services
// of 3 instances, A queries.
func BenchmarkServeDNS(b *testing.B) {
	reg, err := registry.New(registry.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	for s := 0; s < 1000; s++ {
		for i := 0; i < 3; i++ {
			reg.Register(context.Background(), inst(fmt.Sprint("svc-", s), fmt.Sprint("i-", i), fmt.Sprintf("10.%d.%d.%d", s/250, s%250, i+1)))
		}
	}
	for i := 0; i < 100; i++ {
		reg.Register(context.Background(), inst("big", fmt.Sprint("b-", i), fmt.Sprintf("10.9.0.%d", i+1)))
	}
	srv, err := New(Options{Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, q string }{
		{"A", "svc-500.default.svc.cairn."},
		{"NXDOMAIN", "nope.default.svc.cairn."},
		{"A-100", "big.default.svc.cairn."},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := new(mdns.Msg)
			req.SetQuestion(tc.q, mdns.TypeA)
			b.ReportAllocs()
			for b.Loop() {
				srv.ServeDNS(discardWriter{}, req)
			}
		})
	}
}
