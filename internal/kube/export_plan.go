package kube

import (
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	// ManagedByCairn is the value of the app.kubernetes.io/managed-by
	// label (config.LabelManagedBy) on the Services and EndpointSlices
	// Cairn writes. Cairn touches no object without it, and never imports
	// one with it.
	ManagedByCairn = "cairn"
	// exportSliceController is the endpointslice.kubernetes.io/managed-by
	// value of Cairn's EndpointSlices, so that the EndpointSlice
	// controllers leave them alone. A label value cannot hold a '/': the
	// name follows Kubernetes' own "endpointslice-controller.k8s.io".
	exportSliceController = "controller.cairn.dev"
	// exportMaxEndpoints is the most endpoints one EndpointSlice holds
	// (the API's limit).
	exportMaxEndpoints = 1000
)

// exportPlan is what one registry service becomes in Kubernetes.
type exportPlan struct {
	ports     []corev1.ServicePort
	slices    []*discoveryv1.EndpointSlice // without owner references
	endpoints int
	// skipped names the instances (and ports) that cannot be written, and why.
	skipped []string
}

// selects reports whether the rule opts a registry service in: its
// namespace is listed, its name starts with a listed prefix (an empty
// prefix means nothing), or the service or one of its instances (of a
// source other than Kubernetes) has the label set to "true".
func (r *ExportRule) selects(k registry.ServiceKey, svc *registry.Service, insts map[string]*registry.Instance) bool {
	if slices.Contains(r.Namespaces, k.Namespace) {
		return true
	}
	for _, p := range r.Prefixes {
		if p != "" && strings.HasPrefix(k.Name, p) {
			return true
		}
	}
	if r.Label == "" {
		return false
	}
	if svc != nil && strings.EqualFold(svc.Metadata[r.Label], "true") {
		return true
	}
	for _, in := range insts {
		if in.Source != Source && strings.EqualFold(in.Metadata[r.Label], "true") {
			return true
		}
	}
	return false
}

// exportable is an instance reduced to what an EndpointSlice holds.
type exportable struct {
	addr   netip.Addr
	ready  bool
	zone   string
	ports  []registry.Port // sorted by name
	family discoveryv1.AddressType
}

// planExport computes the Service and EndpointSlices of a selected
// registry service from its instances of sources other than Kubernetes
// (imported instances are never written back). It returns nil when there
// is nothing to write, with a problem to report when that is not simply
// because no such instance exists: none has an IP address or a port, or
// the name is not one Kubernetes accepts.
func planExport(k registry.ServiceKey, insts map[string]*registry.Instance) (*exportPlan, string) {
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(insts)) {
		if insts[id].Source != Source {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, ""
	}
	if errs := validation.IsDNS1035Label(k.Name); len(errs) > 0 {
		return nil, "the name is not a valid Kubernetes Service name: " + strings.Join(errs, "; ")
	}
	p := &exportPlan{}
	var eps []exportable
	for _, id := range ids {
		in := insts[id]
		a, fam, ok := exportAddress(in.Address)
		if !ok {
			p.skipped = append(p.skipped, fmt.Sprintf("instance %s: address %q is not an IP address an EndpointSlice accepts", id, in.Address))
			continue
		}
		ports := slices.Clone(in.Ports)
		slices.SortFunc(ports, func(a, b registry.Port) int { return strings.Compare(a.Name, b.Name) })
		eps = append(eps, exportable{addr: a, ready: in.Healthy(), zone: in.Zone, ports: ports, family: fam})
	}
	if len(eps) == 0 {
		return nil, "no instance has an IP address: " + exportSummary(p.skipped)
	}
	p.ports = exportServicePorts(eps, &p.skipped)
	if len(p.ports) == 0 {
		return nil, "the instances have no ports"
	}
	served := map[string]bool{}
	for _, sp := range p.ports {
		served[sp.Name] = true
	}

	// Endpoints with the same address family and ports share slices, as
	// the EndpointSlice controller groups them.
	type group struct {
		family discoveryv1.AddressType
		ports  []registry.Port
		eps    map[netip.Addr]*discoveryv1.Endpoint
	}
	groups := map[string]*group{}
	for _, e := range eps {
		ports := slices.DeleteFunc(slices.Clone(e.ports), func(p registry.Port) bool { return !served[p.Name] })
		sig := string(e.family) + "|" + exportPortSig(ports)
		g := groups[sig]
		if g == nil {
			g = &group{family: e.family, ports: ports, eps: map[netip.Addr]*discoveryv1.Endpoint{}}
			groups[sig] = g
		}
		if ep := g.eps[e.addr]; ep != nil { // one address registered twice: ready if either is
			if e.ready {
				*ep = exportEndpoint(e)
			}
			continue
		}
		ep := exportEndpoint(e)
		g.eps[e.addr] = &ep
	}
	for _, sig := range slices.Sorted(maps.Keys(groups)) {
		g := groups[sig]
		addrs := slices.SortedFunc(maps.Keys(g.eps), func(a, b netip.Addr) int { return a.Compare(b) })
		base := fmt.Sprintf("%s-%s-%s", k.Name, strings.ToLower(string(g.family)), exportHash(sig))
		for i := 0; i < len(addrs); i += exportMaxEndpoints {
			name := base
			if i > 0 {
				name = fmt.Sprintf("%s-%d", base, i/exportMaxEndpoints)
			}
			s := &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: k.Namespace, Labels: exportSliceLabels(k.Name)},
				AddressType: g.family,
				Ports:       exportSlicePorts(g.ports),
			}
			for _, a := range addrs[i:min(i+exportMaxEndpoints, len(addrs))] {
				s.Endpoints = append(s.Endpoints, *g.eps[a])
			}
			p.endpoints += len(s.Endpoints)
			p.slices = append(p.slices, s)
		}
	}
	return p, ""
}

// exportAddress parses an instance address as an IP an EndpointSlice
// accepts: not a host name, not unspecified, loopback or link-local (the
// API server rejects those).
func exportAddress(s string) (netip.Addr, discoveryv1.AddressType, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, "", false
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
		return netip.Addr{}, "", false
	}
	if a.Is4() {
		return a, discoveryv1.AddressTypeIPv4, true
	}
	return a, discoveryv1.AddressTypeIPv6, true
}

// exportServicePorts is the union of the instances' ports by name. When
// instances disagree on a port's number, the Service takes the number most
// of them use (the smallest on a tie); each slice still carries its
// endpoints' own numbers, which is what traffic goes to. A name whose
// number and protocol another name already has is left out (a Service
// cannot list both).
func exportServicePorts(eps []exportable, skipped *[]string) []corev1.ServicePort {
	type choice struct {
		port  registry.Port
		count int
	}
	counts := map[string]map[int]*choice{}
	for _, e := range eps {
		for _, p := range e.ports {
			if counts[p.Name] == nil {
				counts[p.Name] = map[int]*choice{}
			}
			if c := counts[p.Name][p.Port]; c != nil {
				c.count++
			} else {
				counts[p.Name][p.Port] = &choice{port: p, count: 1}
			}
		}
	}
	var out []corev1.ServicePort
	used := map[string]string{} // "port/protocol" -> name
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		var best *choice
		for _, c := range counts[name] {
			if best == nil || c.count > best.count || (c.count == best.count && c.port.Port < best.port.Port) {
				best = c
			}
		}
		sp := exportServicePort(best.port)
		k := fmt.Sprintf("%d/%s", sp.Port, sp.Protocol)
		if other, dup := used[k]; dup {
			*skipped = append(*skipped, fmt.Sprintf("port %s: port %s is already the Service's port %s", name, k, other))
			continue
		}
		used[k] = name
		out = append(out, sp)
	}
	return out
}

func exportServicePort(p registry.Port) corev1.ServicePort {
	proto, app := exportProtocol(p.Protocol)
	return corev1.ServicePort{Name: p.Name, Port: int32(p.Port), TargetPort: intstr.FromInt32(int32(p.Port)), Protocol: proto, AppProtocol: app}
}

// exportProtocol maps a registry protocol onto a Kubernetes protocol and
// appProtocol (the standard names; http2 is h2c, cleartext HTTP/2).
func exportProtocol(p string) (corev1.Protocol, *string) {
	app := ""
	switch p {
	case "udp":
		return corev1.ProtocolUDP, nil
	case "http", "https", "grpc":
		app = p
	case "http2":
		app = "kubernetes.io/h2c"
	default:
		return corev1.ProtocolTCP, nil
	}
	return corev1.ProtocolTCP, &app
}

func exportSlicePorts(ports []registry.Port) []discoveryv1.EndpointPort {
	out := make([]discoveryv1.EndpointPort, 0, len(ports))
	for _, p := range ports {
		proto, app := exportProtocol(p.Protocol)
		out = append(out, discoveryv1.EndpointPort{Name: syncPtr(p.Name), Port: syncPtr(int32(p.Port)), Protocol: &proto, AppProtocol: app})
	}
	return out
}

func exportEndpoint(e exportable) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{
		Addresses: []string{e.addr.String()},
		// Serving follows ready: a registry instance is either in service
		// or not; terminating has no registry equivalent.
		Conditions: discoveryv1.EndpointConditions{Ready: syncPtr(e.ready), Serving: syncPtr(e.ready), Terminating: syncPtr(false)},
	}
	if e.zone != "" {
		ep.Zone = syncPtr(e.zone)
	}
	return ep
}

func exportPortSig(ports []registry.Port) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "%s:%d:%s,", p.Name, p.Port, p.Protocol)
	}
	return b.String()
}

// exportHash is a short stable hash naming a slice after its group.
func exportHash(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// exportServiceLabels and exportSliceLabels are the labels Cairn sets (and
// keeps set) on what it writes.
func exportServiceLabels() map[string]string {
	return map[string]string{config.LabelManagedBy: ManagedByCairn}
}

func exportSliceLabels(service string) map[string]string {
	return map[string]string{
		config.LabelManagedBy:        ManagedByCairn,
		discoveryv1.LabelServiceName: service,
		discoveryv1.LabelManagedBy:   exportSliceController,
	}
}

// syncPtr returns a pointer to a copy of v.
func syncPtr[T any](v T) *T { return &v }

// exportSummary joins problems for a log line, naming at most five.
func exportSummary(problems []string) string {
	if len(problems) <= 5 {
		return strings.Join(problems, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(problems[:5], "; "), len(problems)-5)
}
