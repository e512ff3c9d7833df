package kube

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// The mapping of a Kubernetes Service and its EndpointSlices onto the
// registry (docs/kubernetes-sync.md has the user's version):
//
//	Service ns/name                    → registry service ns/name (explicit, metadata below)
//	ready endpoint address             → instance, source "kubernetes", no lease, status UP
//	  targetRef Pod name (else address) → instance id
//	  slice ports                       → named ports (unnamed: "default"), number = target port
//	  zone                              → zone
//	  nodeName, hostname, Pod name      → metadata kubernetes.node, .hostname, .pod
//	Service labels + annotations       → metadata of the service and of each instance
const (
	// importMetaSource marks a registry service the importer made
	// (explicit, mirroring a Kubernetes Service); only such a service is
	// deleted when the Kubernetes Service goes.
	importMetaSource      = "cairn.dev/source"
	importMetaServiceType = "kubernetes.service-type"
	importMetaPod         = "kubernetes.pod"
	importMetaNode        = "kubernetes.node"
	importMetaHostname    = "kubernetes.hostname"

	// importAnnotation set to "false" on a Service keeps it out of the
	// registry (as consul.hashicorp.com/service-sync does for Consul).
	importAnnotation = "cairn.dev/import"
	// importUnnamedPort names the port of a single-port Service whose
	// port has no name, as the registry names a sole unnamed port.
	importUnnamedPort = "default"

	lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

	// The registry's limits (internal/registry/validate.go).
	importMaxMeta      = 64
	importMaxMetaKey   = 128
	importMaxMetaValue = 1024
	importMaxPorts     = 32
	importMaxID        = 253
)

// importedService is what one Kubernetes Service becomes in the registry.
type importedService struct {
	meta      map[string]string            // metadata of the registry service
	instances map[string]registry.Instance // by id, normalized (registry.NormalizeInstance)
	dropped   []string                     // what could not be imported, and why (for the log)
}

// importSkipReason says why a Service is not imported, or "" when it is.
func importSkipReason(svc *corev1.Service) string {
	switch {
	case svc.Labels[config.LabelManagedBy] == ManagedByCairn:
		return "exported by Cairn" // importing it back would make a loop
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return "ExternalName Service: a DNS alias without endpoints"
	case strings.EqualFold(svc.Annotations[importAnnotation], "false"):
		return importAnnotation + "=false"
	}
	return ""
}

// importSliceSkipped reports whether a slice is not imported: those Cairn
// itself writes for exported services.
func importSliceSkipped(s *discoveryv1.EndpointSlice) bool {
	return s.Labels[discoveryv1.LabelManagedBy] == exportSliceController
}

// mapService turns a Service and its EndpointSlices into registry
// instances. It never fails: what cannot be represented is left out and
// named in dropped.
func mapService(svc *corev1.Service, endpointSlices []*discoveryv1.EndpointSlice) importedService {
	out := importedService{instances: map[string]registry.Instance{}}
	base := importUserMeta(svc, importMaxMeta-3) // room for the facts of an instance
	// Facts go in last: a label of the same key must not hide them (the
	// source marker decides what the importer may delete).
	out.meta = importUserMeta(svc, importMaxMeta-2)
	out.meta[importMetaSource] = Source
	out.meta[importMetaServiceType] = string(cmp.Or(svc.Spec.Type, corev1.ServiceTypeClusterIP))

	// Slices in name order, so merges and id choices do not depend on the
	// order the cache lists them in.
	sorted := slices.Clone(endpointSlices)
	slices.SortFunc(sorted, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	byAddr := map[string]*importEndpoint{}
	for _, s := range sorted {
		if importSliceSkipped(s) {
			continue
		}
		ports := importPorts(s, &out.dropped)
		for _, ep := range s.Endpoints {
			if !endpointReady(ep) || len(ep.Addresses) == 0 {
				continue
			}
			// Only the first address has a meaning (the API's rule; kube-proxy
			// ignores the others).
			addr, family, ok := importAddress(s.AddressType, ep.Addresses[0])
			if !ok {
				out.dropped = append(out.dropped, "address "+quoteTrunc(ep.Addresses[0])+" of slice "+s.Name+": not a valid "+string(s.AddressType)+" address")
				continue
			}
			e := byAddr[addr]
			if e == nil {
				e = &importEndpoint{addr: addr, family: family, ports: map[string]registry.Port{}}
				byAddr[addr] = e
			}
			e.merge(ep, ports)
		}
	}

	eps := slices.Collect(maps.Values(byAddr))
	slices.SortFunc(eps, func(a, b *importEndpoint) int {
		return cmp.Or(cmp.Compare(a.family, b.family), strings.Compare(a.addr, b.addr))
	})
	for _, e := range eps {
		id := importID(e, out.instances)
		if id == "" {
			out.dropped = append(out.dropped, "address "+e.addr+": no usable instance id")
			continue
		}
		in := e.instance(svc, id, base)
		if len(e.ports) > importMaxPorts {
			out.dropped = append(out.dropped, fmt.Sprintf("address %s: %d ports, the registry holds %d", e.addr, len(e.ports), importMaxPorts))
		}
		fe := registry.NormalizeInstance(&in)
		if fe != nil && fe.Field == "zone" {
			// A zone the registry cannot hold: keep the instance without it.
			out.dropped = append(out.dropped, "zone "+quoteTrunc(in.Zone)+" of address "+e.addr+": "+fe.Message)
			in.Zone = ""
			fe = registry.NormalizeInstance(&in)
		}
		if fe != nil {
			out.dropped = append(out.dropped, "address "+e.addr+": "+fe.Error())
			continue
		}
		out.instances[id] = in
	}
	return out
}

// endpointReady applies the EndpointSlice API's rules: a nil ready
// condition counts as ready, and a terminating endpoint is not ready.
func endpointReady(ep discoveryv1.Endpoint) bool {
	c := ep.Conditions
	if c.Terminating != nil && *c.Terminating {
		return false
	}
	return c.Ready == nil || *c.Ready
}

// importAddress checks an endpoint address against its slice's address
// type and returns it in canonical form with an order for its family
// (IPv4 first, then IPv6, then host names).
func importAddress(typ discoveryv1.AddressType, s string) (string, int, bool) {
	switch typ {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return "", 0, false
		}
		a = a.Unmap()
		if typ == discoveryv1.AddressTypeIPv4 && a.Is4() {
			return a.String(), 0, true
		}
		if typ == discoveryv1.AddressTypeIPv6 && a.Is6() {
			return a.String(), 1, true
		}
		return "", 0, false
	case discoveryv1.AddressTypeFQDN:
		h := strings.ToLower(strings.TrimSuffix(s, "."))
		if registry.ValidateAddress("address", h) != nil {
			return "", 0, false
		}
		return h, 2, true
	}
	return "", 0, false
}

// importPorts maps a slice's ports onto registry ports, leaving out (and
// naming in dropped) those the registry cannot hold.
func importPorts(s *discoveryv1.EndpointSlice, dropped *[]string) []registry.Port {
	var out []registry.Port
	for _, p := range s.Ports {
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if name == "" {
			name = importUnnamedPort
		}
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		why := ""
		switch {
		case p.Port == nil:
			why = "no port number (a slice port without one means all ports)"
		case *p.Port < 1 || *p.Port > 65535:
			why = "port number out of range"
		case registry.ValidateName("name", name) != nil:
			why = "the name is not a DNS label"
		case proto != corev1.ProtocolTCP && proto != corev1.ProtocolUDP:
			why = "protocol " + string(proto) + " has no registry equivalent"
		}
		if why != "" {
			*dropped = append(*dropped, "port "+quoteTrunc(name)+" of slice "+s.Name+": "+why)
			continue
		}
		out = append(out, registry.Port{Name: name, Port: int(*p.Port), Protocol: importProtocol(name, proto, p.AppProtocol)})
	}
	return out
}

// importProtocol chooses the registry protocol of a port: UDP is udp;
// for TCP the appProtocol decides (http, https, h2c/http2, grpc, the
// kubernetes.io/ standard names; anything else is plain tcp); without
// one, the port name does as in Istio's convention ("http", "http-web",
// "grpc-api", ...); else tcp.
func importProtocol(name string, proto corev1.Protocol, appProtocol *string) string {
	if proto == corev1.ProtocolUDP {
		return "udp"
	}
	if appProtocol != nil && *appProtocol != "" {
		switch strings.ToLower(*appProtocol) {
		case "http", "kubernetes.io/ws":
			return "http"
		case "https", "kubernetes.io/wss":
			return "https"
		case "http2", "h2c", "kubernetes.io/h2c":
			return "http2"
		case "grpc":
			return "grpc"
		}
		return "tcp"
	}
	for _, p := range []string{"grpc", "http2", "h2c", "https", "http"} {
		if name == p || strings.HasPrefix(name, p+"-") {
			if p == "h2c" {
				return "http2"
			}
			return p
		}
	}
	return "tcp"
}

// importEndpoint is one address of a Service, merged over its slices.
type importEndpoint struct {
	addr           string
	family         int
	pod, node, hst string
	zone           string
	ports          map[string]registry.Port
}

func (e *importEndpoint) merge(ep discoveryv1.Endpoint, ports []registry.Port) {
	if e.pod == "" && ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
		e.pod = ep.TargetRef.Name
	}
	if e.node == "" && ep.NodeName != nil {
		e.node = *ep.NodeName
	}
	if e.hst == "" && ep.Hostname != nil {
		e.hst = *ep.Hostname
	}
	if e.zone == "" && ep.Zone != nil {
		e.zone = *ep.Zone
	}
	for _, p := range ports {
		if _, ok := e.ports[p.Name]; !ok { // first slice (by name) wins
			e.ports[p.Name] = p
		}
	}
}

// importID picks the instance id of an endpoint: the Pod's name, else the
// address. Endpoints are visited IPv4 first, so the IPv4 address of a
// dual-stack Pod keeps the Pod's name and its IPv6 address gets
// "pod@address".
func importID(e *importEndpoint, taken map[string]registry.Instance) string {
	free := func(id string) bool {
		_, used := taken[id]
		return !used && registry.ValidateID("id", id) == nil
	}
	if e.pod != "" {
		if free(e.pod) {
			return e.pod
		}
		if id := e.pod + "@" + e.addr; len(id) <= importMaxID && free(id) {
			return id
		}
	}
	if free(e.addr) {
		return e.addr
	}
	return ""
}

func (e *importEndpoint) instance(svc *corev1.Service, id string, base map[string]string) registry.Instance {
	meta := maps.Clone(base)
	if meta == nil {
		meta = map[string]string{}
	}
	for k, v := range map[string]string{importMetaPod: e.pod, importMetaNode: e.node, importMetaHostname: e.hst} {
		if v != "" && len(v) <= importMaxMetaValue {
			meta[k] = v
		}
	}
	ports := slices.Collect(maps.Values(e.ports))
	slices.SortFunc(ports, func(a, b registry.Port) int { return strings.Compare(a.Name, b.Name) })
	if len(ports) > importMaxPorts {
		ports = ports[:importMaxPorts]
	}
	return registry.Instance{
		ID:        id,
		Namespace: svc.Namespace,
		Service:   svc.Name,
		Address:   e.addr,
		Ports:     ports,
		Zone:      e.zone,
		Metadata:  meta,
		Source:    Source,
		Status:    registry.StatusUp,
		TTL:       0, // no lease: the EndpointSlices decide when it goes
	}
}

// importUserMeta is the Service's labels, then its annotations (a label
// wins over an annotation of the same key), in key order, keeping at most
// max entries and leaving out kubectl's copy of the last applied object
// and anything over the registry's size limits.
func importUserMeta(svc *corev1.Service, max int) map[string]string {
	out := map[string]string{}
	for _, m := range []map[string]string{svc.Labels, svc.Annotations} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if len(out) >= max {
				return out
			}
			v := m[k]
			if _, dup := out[k]; dup || k == lastAppliedAnnotation || !importMetaKeyOK(k) || len(v) > importMaxMetaValue {
				continue
			}
			out[k] = v
		}
	}
	return out
}

// importMetaKeyOK reports whether the registry accepts k as a metadata key.
func importMetaKeyOK(k string) bool {
	return k != "" && len(k) <= importMaxMetaKey && !strings.ContainsAny(k, " \t\r\n=")
}

// quoteTrunc quotes s for a log line, cut to 64 bytes.
func quoteTrunc(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}
