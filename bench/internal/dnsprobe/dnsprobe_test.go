package dnsprobe

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// serve answers every A question with n records, compressed or not, on a
// UDP socket of its own.
func serve(t *testing.T, n int, compress bool) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		for i := range n {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
				A: net.IPv4(10, 0, 0, byte(n-i))})
		}
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
			m.SetEdns0(o.UDPSize(), false)
		}
		m.Truncate(size)
		if compress {
			m.Compress = true
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestAsk(t *testing.T) {
	const name = "web.default.svc.cairn."
	plain, packed := serve(t, 40, false), serve(t, 40, true)
	ctx := context.Background()
	a, err := Ask(ctx, plain, name, dns.TypeA, UDPEDNS)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Ask(ctx, packed, name, dns.TypeA, UDPEDNS)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.A) != 40 || a.A[0] != "10.0.0.1" || a.TC || a.Rcode != "NOERROR" || len(a.TTLs) != 1 || a.TTLs[0] != 5 {
		t.Errorf("answer %+v", a)
	}
	// The size is what came on the wire: compressed names are smaller.
	if a.Size <= b.Size || b.Size > 12+len(name)+5+11+40*16 {
		t.Errorf("sizes: plain %d, compressed %d", a.Size, b.Size)
	}
	u, err := Ask(ctx, plain, name, dns.TypeA, UDP)
	if err != nil {
		t.Fatal(err)
	}
	if !u.TC || len(u.A) >= 40 || u.Size > dns.MinMsgSize {
		t.Errorf("no EDNS0: %+v", u)
	}

	p, err := NewPoller(packed, name)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	addrs, err := p.A(ctx)
	if err != nil || len(addrs) != 40 || addrs[39] != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("poll: %v, %v", addrs, err)
	}
}
