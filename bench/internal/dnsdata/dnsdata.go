// Package dnsdata is the record set of the DNS benchmark: the services and
// instances registered in Cairn, and the same records as a zone file for
// CoreDNS's file plugin, so that both servers answer the same questions
// with the same records.
package dnsdata

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
)

const (
	// Apex is the zone Cairn's DNS answers for (one of its default
	// --dns-domain zones), and the origin of the zone file: an unknown name
	// gets the SOA of cairn. in both servers' NXDOMAIN answers.
	Apex = "cairn."
	// Zone is the part of it that holds services: <svc>.<ns>.svc.cairn.
	Zone = "svc." + Apex
	// Namespace holds every benchmark service.
	Namespace = "default"
	// PortName and Port are every instance's one port: its SRV record is
	// _http._tcp.<service>.<namespace>.svc.cairn.
	PortName = "http"
	Port     = 8080
	// BigService is the service with many instances (a large answer).
	BigService = "big"
	// ProbeService is where the propagation runs register their instances.
	ProbeService = "probe"
)

// Set is the record set: Services services of Instances instances each,
// plus one service of Big instances (none if Big is 0).
type Set struct {
	Services, Instances, Big int
	TTL                      int // answer TTL in seconds, as cairn's --dns-ttl
}

// Instance is one registered instance.
type Instance struct {
	Service, ID string
	Addr        netip.Addr
}

// ServiceName returns the name of small service s.
func ServiceName(s int) string { return fmt.Sprintf("svc-%04d", s) }

// Name returns the fully qualified A name of a service.
func Name(service string) string { return service + "." + Namespace + "." + Zone }

// SRVName returns the fully qualified SRV name of a service's port.
func SRVName(service string) string { return "_" + PortName + "._tcp." + Name(service) }

// addr returns 10.<net>.x.y for index i (from 1, so never a .0.0 address).
func addr(net byte, i int) netip.Addr {
	i++
	return netip.AddrFrom4([4]byte{10, net + byte(i>>16), byte(i >> 8), byte(i)})
}

// ProbeAddr returns the address of propagation probe instance i.
func ProbeAddr(i int) netip.Addr { return addr(200, i) }

// All returns every instance of the set: the small services' first,
// service by service, then the big service's.
func (s Set) All() []Instance {
	out := make([]Instance, 0, s.Services*s.Instances+s.Big)
	for sv := range s.Services {
		for k := range s.Instances {
			out = append(out, Instance{Service: ServiceName(sv), ID: fmt.Sprintf("i-%d", k), Addr: addr(1, sv*s.Instances+k)})
		}
	}
	for k := range s.Big {
		out = append(out, Instance{Service: BigService, ID: fmt.Sprintf("i-%d", k), Addr: addr(2, k)})
	}
	return out
}

// Body returns the native API registration body of an instance: no lease
// (ttl 0s), so nothing expires during the run.
func Body(addr netip.Addr) []byte {
	return fmt.Appendf(nil, `{"address":%q,"ports":[{"name":%q,"port":%d,"protocol":"http"}],"ttl":"0s"}`,
		addr.String(), PortName, Port)
}

// SRVTarget is the target name of an instance's SRV record, as Cairn names
// it when the instance id is a DNS label: <id>.<service>.<namespace>.svc.cairn.,
// with an A record of its own.
func SRVTarget(in Instance) string { return in.ID + "." + Name(in.Service) }

// WriteZone writes the set as a zone file for cairn., shaped as Cairn
// answers: an SOA (negative TTL = TTL) and an NS at the apex; per service
// the A records of its instances, the SRV record of its port pointing at
// each instance (priority 0, weight 1: Cairn's default instance weight),
// and each instance's own A name.
func (s Set) WriteZone(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "$ORIGIN %s\n$TTL %d\n", Apex, s.TTL)
	fmt.Fprintf(bw, "@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 %d\n", Apex, Apex, s.TTL)
	fmt.Fprintf(bw, "@ IN NS ns.%s\n", Apex)
	for _, in := range s.All() {
		fmt.Fprintf(bw, "%s IN A %s\n", Name(in.Service), in.Addr)
		fmt.Fprintf(bw, "%s IN SRV 0 1 %d %s\n", SRVName(in.Service), Port, SRVTarget(in))
		fmt.Fprintf(bw, "%s IN A %s\n", SRVTarget(in), in.Addr)
	}
	return bw.Flush()
}

// Query is one line of a dnsperf query file.
type Query struct{ Name, Type string }

// WriteQueries writes qs in dnsperf's format ("name type" per line).
func WriteQueries(w io.Writer, qs []Query) error {
	bw := bufio.NewWriter(w)
	for _, q := range qs {
		fmt.Fprintf(bw, "%s %s\n", q.Name, q.Type)
	}
	return bw.Flush()
}

// RandomA returns n A queries for small services picked at random (the
// same sequence every run).
func (s Set) RandomA(n int) []Query {
	rng := rand.New(rand.NewPCG(4, 4))
	qs := make([]Query, n)
	for i := range qs {
		qs[i] = Query{Name(ServiceName(rng.IntN(s.Services))), "A"}
	}
	return qs
}

// Missing returns n A queries for names under the namespace that do not
// exist (NXDOMAIN), mostly distinct.
func Missing(n int) []Query {
	rng := rand.New(rand.NewPCG(5, 5))
	qs := make([]Query, n)
	for i := range qs {
		qs[i] = Query{Name(fmt.Sprintf("nosuch-%07d", rng.IntN(10_000_000))), "A"}
	}
	return qs
}
