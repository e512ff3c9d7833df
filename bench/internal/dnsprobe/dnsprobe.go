// Package dnsprobe asks a DNS server single questions with
// github.com/miekg/dns: to check that two servers give the same answers,
// and to poll one name in a tight loop over one UDP socket.
package dnsprobe

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Transport is how a question is asked.
type Transport string

const (
	UDP     Transport = "udp"      // no EDNS0: answers are cut at 512 bytes (TC set)
	UDPEDNS Transport = "udp-edns" // EDNS0 with a 4096-byte buffer, as dnsperf -e asks
	TCP     Transport = "tcp"
)

// EDNSSize is the UDP buffer size advertised with UDPEDNS, dnsperf -e's.
const EDNSSize = 4096

// Answer is what one question got, normalised for comparison.
type Answer struct {
	Rcode     string   `json:"rcode"`
	TC        bool     `json:"tc,omitempty"`
	AA        bool     `json:"aa"`
	A         []string `json:"a,omitempty"`         // sorted addresses
	SRV       []string `json:"srv,omitempty"`       // sorted "priority weight port target"
	TTLs      []uint32 `json:"ttls,omitempty"`      // distinct answer TTLs
	Authority []string `json:"authority,omitempty"` // record types in the authority section
	Size      int      `json:"size"`                // bytes on the wire (Ask), or packed without compression (Normalise)
}

// Ask sends one question for name (fully qualified) of type qtype over t,
// on a new socket, and reads the answer as it came on the wire.
func Ask(ctx context.Context, server, name string, qtype uint16, t Transport) (Answer, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	switch t {
	case UDPEDNS:
		m.SetEdns0(EDNSSize, false)
	case TCP:
		c.Net = "tcp"
	}
	fail := func(err error) (Answer, error) {
		return Answer{}, fmt.Errorf("%s %s over %s: %w", name, dns.TypeToString[qtype], t, err)
	}
	co, err := c.DialContext(ctx, server)
	if err != nil {
		return fail(err)
	}
	defer co.Close()
	co.UDPSize = dns.MaxMsgSize // read whatever the server sends
	deadline := time.Now().Add(c.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	co.SetDeadline(deadline)
	if err := co.WriteMsg(m); err != nil {
		return fail(err)
	}
	p, err := co.ReadMsgHeader(nil)
	if err != nil {
		return fail(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(p); err != nil {
		return fail(err)
	}
	if r.Id != m.Id {
		return fail(fmt.Errorf("answer id %d, question id %d", r.Id, m.Id))
	}
	a := Normalise(r)
	a.Size = len(p)
	return a, nil
}

// Normalise turns a DNS answer into an Answer.
func Normalise(r *dns.Msg) Answer {
	a := Answer{Rcode: dns.RcodeToString[r.Rcode], TC: r.Truncated, AA: r.Authoritative, Size: r.Len()}
	for _, rr := range r.Answer {
		if !slices.Contains(a.TTLs, rr.Header().Ttl) {
			a.TTLs = append(a.TTLs, rr.Header().Ttl)
		}
		switch v := rr.(type) {
		case *dns.A:
			a.A = append(a.A, v.A.String())
		case *dns.SRV:
			a.SRV = append(a.SRV, fmt.Sprintf("%d %d %d %s", v.Priority, v.Weight, v.Port, v.Target))
		}
	}
	for _, rr := range r.Ns {
		a.Authority = append(a.Authority, dns.TypeToString[rr.Header().Rrtype])
	}
	slices.Sort(a.A)
	slices.Sort(a.SRV)
	slices.Sort(a.TTLs)
	return a
}

// Poller asks for the A records of one name over one UDP socket (EDNS0,
// 4096 bytes), one question at a time.
type Poller struct {
	name string
	c    *dns.Client
	conn *dns.Conn
}

// NewPoller dials server for polls of name.
func NewPoller(server, name string) (*Poller, error) {
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	conn, err := c.Dial(server)
	if err != nil {
		return nil, err
	}
	return &Poller{name: name, c: c, conn: conn}, nil
}

// Close closes the socket.
func (p *Poller) Close() error { return p.conn.Close() }

// A asks once and returns the addresses in the answer.
func (p *Poller) A(ctx context.Context) ([]netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(p.name, dns.TypeA)
	m.SetEdns0(EDNSSize, false)
	r, _, err := p.c.ExchangeWithConnContext(ctx, m, p.conn)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s: %s", p.name, dns.RcodeToString[r.Rcode])
	}
	out := make([]netip.Addr, 0, len(r.Answer))
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				out = append(out, ip)
			}
		}
	}
	return out, nil
}

// Dig asks for the A records of name by running `dig +short` (a new
// process per question, as a person at a shell would) against server
// (host:port) and returns the addresses it printed.
func Dig(ctx context.Context, server, name string) ([]netip.Addr, error) {
	host, port, ok := strings.Cut(server, ":")
	if !ok {
		return nil, fmt.Errorf("server %q: want host:port", server)
	}
	out, err := exec.CommandContext(ctx, "dig", "+short", "+tries=1", "+time=1", "@"+host, "-p", port, name, "A").Output()
	if err != nil {
		return nil, fmt.Errorf("dig %s: %w", name, err)
	}
	var addrs []netip.Addr
	for f := range strings.FieldsSeq(string(out)) {
		if ip, err := netip.ParseAddr(f); err == nil {
			addrs = append(addrs, ip)
		} else if strings.HasPrefix(f, ";;") {
			return nil, fmt.Errorf("dig %s: %s", name, strings.TrimSpace(string(out)))
		}
	}
	return addrs, nil
}
