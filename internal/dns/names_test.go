package dns

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/internal/registry"
	mdns "github.com/miekg/dns"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want query
	}{
		{"cairn.", query{kind: kindApex}},
		{"svc.cairn.", query{kind: kindEmpty}},
		{"default.svc.cairn.", query{kind: kindEmpty, namespace: "default"}},
		{"web.default.svc.cairn.", query{kind: kindService, namespace: "default", service: "web"}},
		{"_http._tcp.web.default.svc.cairn.", query{kind: kindService, namespace: "default", service: "web", port: "http", proto: "tcp"}},
		{"z1.zone.web.default.svc.cairn.", query{kind: kindService, namespace: "default", service: "web", subset: "zone", value: "z1"}},
		{"_dns._udp.blue.tag.web.default.svc.cairn.", query{kind: kindService, namespace: "default", service: "web", port: "dns", proto: "udp", subset: "tag", value: "blue"}},
		{"web-1.web.default.svc.cairn.", query{kind: kindInstance, namespace: "default", service: "web", instance: "web-1"}},
		{"_http._sctp.web.default.svc.cairn.", query{}},
		{"a.b.c.web.default.svc.cairn.", query{}},
		{"web.default.cairn.", query{}},
		{"web_x.default.svc.cairn.", query{}},
	} {
		got, ok := parseName(tc.name, "cairn.")
		tc.want.zone = "cairn."
		if !ok || got != tc.want {
			t.Errorf("parseName(%q) = %+v, %v; want %+v", tc.name, got, ok, tc.want)
		}
	}
	if _, ok := parseName("web.default.svc.other.", "cairn."); ok {
		t.Error("a name of another zone parsed")
	}
	if _, ok := parseName("xcairn.", "cairn."); ok {
		t.Error("a name that only ends like the zone parsed")
	}
}

// FuzzParseName: any name either parses into labels that are valid and
// rebuild the same name, or is refused; nothing panics.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"web.default.svc.cairn.", "_http._tcp.web.default.svc.cairn.", "z1.zone.web.default.svc.cairn.",
		"a.b.c.svc.cairn.", "..cairn.", "cairn.", "_._.x.y.svc.cairn.", "\\000.svc.cairn."} {
		f.Add(s)
	}
	reg, err := registry.New(registry.Config{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer reg.Close()
	reg.Register(context.Background(), registry.Instance{Namespace: "default", Service: "web", ID: "web-1", Address: "10.0.0.1",
		Ports: []registry.Port{{Name: "http", Port: 80}}})
	srv, err := New(Options{Registry: reg})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		// The server answers any name a query can carry without panicking,
		// with a message that packs.
		if _, ok := mdns.IsDomainName(name); !ok || len(name) > 253 || !mdns.IsFqdn(name) {
			return
		}
		req := new(mdns.Msg)
		req.SetQuestion(name, mdns.TypeANY)
		if resp := srv.answer(fakeWriter{}, req); resp == nil || resp.Id != req.Id {
			t.Fatalf("%q: answer %v", name, resp)
		} else if _, err := resp.Pack(); err != nil {
			t.Fatalf("%q: answer does not pack: %v", name, err)
		}
		name = strings.ToLower(name)
		q, ok := parseName(name, "cairn.")
		if !ok {
			if strings.HasSuffix(name, ".cairn.") && name != ".cairn." || name == "cairn." {
				t.Fatalf("%q is under the zone but did not parse", name)
			}
			return
		}
		switch q.kind {
		case kindService, kindInstance:
			if !isLabel(q.service) || !isLabel(q.namespace) {
				t.Fatalf("%q: bad labels %+v", name, q)
			}
			var b strings.Builder
			if q.port != "" {
				b.WriteString("_" + q.port + "._" + q.proto + ".")
			}
			if q.subset != "" {
				b.WriteString(q.value + "." + q.subset + ".")
			}
			if q.instance != "" {
				b.WriteString(q.instance + ".")
			}
			b.WriteString(q.service + "." + q.namespace + ".svc.cairn.")
			if b.String() != name {
				t.Fatalf("%q parsed as %+v, which names %q", name, q, b.String())
			}
		}
	})
}

// fakeWriter is a UDP client for answer's truncation rules.
type fakeWriter struct{ mdns.ResponseWriter }

func (fakeWriter) RemoteAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353} }
