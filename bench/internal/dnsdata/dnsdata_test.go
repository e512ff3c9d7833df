package dnsdata

import (
	"strings"
	"testing"
)

func TestSet(t *testing.T) {
	s := Set{Services: 3, Instances: 2, Big: 4, TTL: 5}
	all := s.All()
	if len(all) != 10 {
		t.Fatalf("%d instances, want 10", len(all))
	}
	seen := map[string]bool{}
	for _, in := range all {
		if seen[in.Addr.String()] {
			t.Errorf("address %s twice", in.Addr)
		}
		seen[in.Addr.String()] = true
	}
	if all[0].Service != "svc-0000" || all[0].Addr.String() != "10.1.0.1" || all[5].Addr.String() != "10.1.0.6" {
		t.Errorf("first small instances: %+v, %+v", all[0], all[5])
	}
	if all[6].Service != BigService || all[6].Addr.String() != "10.2.0.1" {
		t.Errorf("first big instance: %+v", all[6])
	}
	if got := string(Body(all[0].Addr)); got != `{"address":"10.1.0.1","ports":[{"name":"http","port":8080,"protocol":"http"}],"ttl":"0s"}` {
		t.Errorf("body %s", got)
	}

	var b strings.Builder
	if err := s.WriteZone(&b); err != nil {
		t.Fatal(err)
	}
	z := b.String()
	for _, want := range []string{
		"$ORIGIN cairn.\n$TTL 5\n@ IN SOA ns.cairn. hostmaster.cairn. 1 3600 600 86400 5\n",
		"svc-0002.default.svc.cairn. IN A 10.1.0.6\n",
		"_http._tcp.svc-0002.default.svc.cairn. IN SRV 0 1 8080 i-1.svc-0002.default.svc.cairn.\n",
		"i-1.svc-0002.default.svc.cairn. IN A 10.1.0.6\n",
		"big.default.svc.cairn. IN A 10.2.0.4\n",
	} {
		if !strings.Contains(z, want) {
			t.Errorf("zone lacks %q", want)
		}
	}

	qs := s.RandomA(100)
	for _, q := range qs {
		if q.Type != "A" || !strings.HasPrefix(q.Name, "svc-000") || !strings.HasSuffix(q.Name, ".default.svc.cairn.") {
			t.Fatalf("query %+v", q)
		}
	}
	if s.RandomA(5)[3] != qs[3] {
		t.Error("RandomA differs between calls")
	}
	b.Reset()
	if err := WriteQueries(&b, Missing(2)); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(b.String()), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "nosuch-") || !strings.HasSuffix(lines[0], ".default.svc.cairn. A") {
		t.Errorf("query file %q", b.String())
	}
}
