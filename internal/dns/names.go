package dns

import (
	"strings"

	"github.com/cairnhq/cairn/internal/config"
)

// Names Cairn answers, under each of its zones Z (--dns-domain, default
// "cairn" and "cluster.local"):
//
//	<svc>.<ns>.svc.Z                     A/AAAA: every healthy instance; SRV: every named port
//	_<port>._<proto>.<svc>.<ns>.svc.Z    SRV: that named port of every healthy instance
//	<value>.zone.<svc>.<ns>.svc.Z        the instances in one zone (A/AAAA/SRV, and _port._proto. in front)
//	<value>.tag.<svc>.<ns>.svc.Z         the instances with one tag
//	<instance>.<svc>.<ns>.svc.Z          one instance (the targets of SRV answers)
//	<ns>.svc.Z, svc.Z                    exist (NODATA), so that resolvers do not cache a parent as absent
//	Z                                    SOA and NS
//
// The shape is Kubernetes' (<svc>.<ns>.svc.cluster.local), so the names
// its users already type work.

// queryKind is what a name asks for.
type queryKind int

const (
	kindNone     queryKind = iota // not a Cairn name: NXDOMAIN
	kindApex                      // the zone itself
	kindEmpty                     // svc.Z or <ns>.svc.Z: exists, holds no records
	kindService                   // a service, maybe a subset, maybe one port
	kindInstance                  // one instance's target name
)

// query is a parsed name under one of Cairn's zones.
type query struct {
	kind      queryKind
	zone      string // the zone, with its trailing dot
	namespace string
	service   string
	port      string // SRV: the port name, without '_'
	proto     string // SRV: tcp or udp, without '_'
	subset    string // "zone" or "tag"
	value     string // the zone or tag
	instance  string // an instance's label
}

// parseName reads a lowercase, fully qualified name (with the trailing
// dot) under zone. ok is false when the name is not under zone.
func parseName(name, zone string) (q query, ok bool) {
	if name == zone {
		return query{kind: kindApex, zone: zone}, true
	}
	rest, found := strings.CutSuffix(name, "."+zone)
	if !found || rest == "" {
		return query{}, false
	}
	q.zone = zone
	labels := strings.Split(rest, ".")
	n := len(labels)
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return q, true // kindNone
		}
	}
	if labels[n-1] != "svc" {
		return q, true
	}
	switch n {
	case 1:
		q.kind = kindEmpty
		return q, true
	case 2:
		if !isLabel(labels[0]) {
			return q, true
		}
		q.kind, q.namespace = kindEmpty, labels[0]
		return q, true
	}
	q.namespace, q.service = labels[n-2], labels[n-3]
	if !isLabel(q.namespace) || !isLabel(q.service) {
		return query{zone: zone}, true
	}
	p := labels[:n-3]
	// An SRV prefix: _port._proto.
	if len(p) >= 2 && strings.HasPrefix(p[0], "_") && strings.HasPrefix(p[1], "_") {
		q.port, q.proto = p[0][1:], p[1][1:]
		if !isLabel(q.port) || (q.proto != "tcp" && q.proto != "udp") {
			return query{zone: zone}, true
		}
		p = p[2:]
	}
	switch {
	case len(p) == 0:
		q.kind = kindService
	case len(p) == 2 && (p[1] == "zone" || p[1] == "tag") && p[0] != "" && !strings.HasPrefix(p[0], "_"):
		q.kind, q.subset, q.value = kindService, p[1], p[0]
	case len(p) == 1 && q.port == "" && isLabel(p[0]):
		q.kind, q.instance = kindInstance, p[0]
	default:
		return query{zone: zone}, true
	}
	return q, true
}

// isLabel reports whether s is a lowercase DNS label of at most 63 bytes.
func isLabel(s string) bool { return len(s) <= 63 && config.IsLabel(s) }
