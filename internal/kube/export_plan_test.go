package kube

import (
	"fmt"
	"testing"

	"github.com/cairnhq/cairn/internal/registry"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func testInstances(ins ...*registry.Instance) map[string]*registry.Instance {
	m := map[string]*registry.Instance{}
	for _, in := range ins {
		if in.Source == "" {
			in.Source = "eureka"
		}
		if in.Status == "" {
			in.Status = registry.StatusUp
		}
		if in.Health == "" {
			in.Health = registry.HealthNone
		}
		m[in.ID] = in
	}
	return m
}

func TestExportPlanRule(t *testing.T) {
	k := registry.ServiceKey{Namespace: "shop", Name: "pay-api"}
	labelled := testInstances(&registry.Instance{ID: "a", Metadata: map[string]string{"cairn.dev/export": "true"}})
	importedLabelled := testInstances(&registry.Instance{ID: "a", Source: Source, Metadata: map[string]string{"cairn.dev/export": "true"}})
	cases := []struct {
		desc  string
		rule  ExportRule
		svc   *registry.Service
		insts map[string]*registry.Instance
		want  bool
	}{
		{"empty rule", ExportRule{}, nil, labelled, false},
		{"namespace", ExportRule{Namespaces: []string{"shop"}}, nil, nil, true},
		{"other namespace", ExportRule{Namespaces: []string{"default"}}, nil, nil, false},
		{"prefix", ExportRule{Prefixes: []string{"pay-"}}, nil, nil, true},
		{"empty prefix is nothing", ExportRule{Prefixes: []string{""}}, nil, nil, false},
		{"instance label", ExportRule{Label: "cairn.dev/export"}, nil, labelled, true},
		{"service label", ExportRule{Label: "cairn.dev/export"}, &registry.Service{Metadata: map[string]string{"cairn.dev/export": "TRUE"}}, nil, true},
		{"label false", ExportRule{Label: "cairn.dev/export"}, &registry.Service{Metadata: map[string]string{"cairn.dev/export": "false"}}, nil, false},
		{"label of an imported instance", ExportRule{Label: "cairn.dev/export"}, nil, importedLabelled, false},
	}
	for _, c := range cases {
		if got := c.rule.selects(k, c.svc, c.insts); got != c.want {
			t.Errorf("%s: selects = %v, want %v", c.desc, got, c.want)
		}
	}
}

func TestExportPlanPortsAndSlices(t *testing.T) {
	k := registry.ServiceKey{Namespace: "shop", Name: "orders"}
	http := func(port int) []registry.Port { return []registry.Port{{Name: "http", Port: port, Protocol: "http"}} }
	p, why := planExport(k, testInstances(
		&registry.Instance{ID: "a", Address: "10.0.0.1", Ports: http(8080), Zone: "z1"},
		&registry.Instance{ID: "b", Address: "10.0.0.2", Ports: http(8080), Status: registry.StatusDown},
		&registry.Instance{ID: "c", Address: "10.0.0.3", Ports: http(9090)},
		&registry.Instance{ID: "d", Address: "fd00::1", Ports: http(8080)},
		&registry.Instance{ID: "e", Address: "db.example.com", Ports: http(8080)},
		&registry.Instance{ID: "f", Address: "10.0.0.6", Ports: http(8080), Source: Source},
		&registry.Instance{ID: "g", Address: "127.0.0.1", Ports: http(8080)},
	))
	if p == nil {
		t.Fatal(why)
	}
	// The Service's port is the number most instances use.
	if len(p.ports) != 1 || p.ports[0].Name != "http" || p.ports[0].Port != 8080 || p.ports[0].Protocol != corev1.ProtocolTCP ||
		p.ports[0].AppProtocol == nil || *p.ports[0].AppProtocol != "http" {
		t.Errorf("service ports = %+v", p.ports)
	}
	// One slice per address family and port set: IPv4 8080 (a, b), IPv4
	// 9090 (c), IPv6 8080 (d). The host name, the imported and the
	// loopback instances are not written.
	byAddr := map[string]discoveryv1.Endpoint{}
	families := map[discoveryv1.AddressType]int{}
	for _, s := range p.slices {
		families[s.AddressType]++
		if s.Labels[discoveryv1.LabelServiceName] != "orders" || s.Labels[discoveryv1.LabelManagedBy] != exportSliceController {
			t.Errorf("slice %s labels = %v", s.Name, s.Labels)
		}
		for _, ep := range s.Endpoints {
			byAddr[ep.Addresses[0]] = ep
		}
	}
	if len(p.slices) != 3 || families[discoveryv1.AddressTypeIPv4] != 2 || families[discoveryv1.AddressTypeIPv6] != 1 {
		t.Errorf("slices: %d, families %v", len(p.slices), families)
	}
	if len(byAddr) != 4 || p.endpoints != 4 {
		t.Errorf("endpoints = %v (%d)", byAddr, p.endpoints)
	}
	if ep := byAddr["10.0.0.1"]; !*ep.Conditions.Ready || ep.Zone == nil || *ep.Zone != "z1" {
		t.Errorf("endpoint a = %+v", ep)
	}
	if ep := byAddr["10.0.0.2"]; *ep.Conditions.Ready {
		t.Error("a DOWN instance is ready")
	}
	if len(p.skipped) != 2 {
		t.Errorf("skipped = %q, want the host name and the loopback address", p.skipped)
	}
}

// More than 1000 endpoints spread over several slices.
func TestExportPlanChunks(t *testing.T) {
	var ins []*registry.Instance
	for i := range 2500 {
		ins = append(ins, &registry.Instance{ID: fmt.Sprint(i), Address: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1),
			Ports: []registry.Port{{Name: "http", Port: 80, Protocol: "tcp"}}})
	}
	p, why := planExport(registry.ServiceKey{Namespace: "ns", Name: "big"}, testInstances(ins...))
	if p == nil {
		t.Fatal(why)
	}
	if len(p.slices) != 3 || len(p.slices[0].Endpoints) != exportMaxEndpoints || len(p.slices[2].Endpoints) != 500 {
		t.Fatalf("slices = %d", len(p.slices))
	}
	names := map[string]bool{}
	for _, s := range p.slices {
		names[s.Name] = true
	}
	if len(names) != 3 {
		t.Errorf("slice names are not distinct: %v", names)
	}
}

func TestExportPlanNothingToWrite(t *testing.T) {
	http := []registry.Port{{Name: "http", Port: 80}}
	cases := []struct {
		desc    string
		name    string
		insts   map[string]*registry.Instance
		problem bool // worth reporting: something to export cannot be
	}{
		{"no instances", "svc", nil, false},
		{"only imported instances", "svc", testInstances(&registry.Instance{ID: "a", Address: "10.0.0.1", Source: Source, Ports: http}), false},
		{"no ports", "svc", testInstances(&registry.Instance{ID: "a", Address: "10.0.0.1"}), true},
		{"only host names", "svc", testInstances(&registry.Instance{ID: "a", Address: "a.example.com", Ports: http}), true},
		{"not a Service name", "1svc", testInstances(&registry.Instance{ID: "a", Address: "10.0.0.1", Ports: http}), true},
	}
	for _, c := range cases {
		p, problem := planExport(registry.ServiceKey{Namespace: "ns", Name: c.name}, c.insts)
		if p != nil || (problem != "") != c.problem {
			t.Errorf("%s: plan = %+v, problem %q", c.desc, p, problem)
		}
	}
}
