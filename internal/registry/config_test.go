package registry

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/cairnhq/cairn/internal/config"
)

func route(ns, name, spec string) config.Document {
	return config.Document{Kind: "route", Metadata: config.Metadata{Name: name, Namespace: ns}, Spec: []byte(spec)}
}

const (
	specA = `{"backends":[{"service":"orders"}]}`
	specB = `{"backends":[{"service":"orders","weight":90},{"service":"orders-v2","weight":10}]}`
)

// canonical returns a spec as the registry stores it.
func canonical(t *testing.T, spec string) string {
	t.Helper()
	d := route("", "x", spec)
	if fe := d.Normalize(); fe != nil {
		t.Fatal(fe)
	}
	return string(d.Spec)
}

func actions(res ApplyResult) []string {
	var out []string
	for _, a := range res.Results {
		out = append(out, a.Kind+"/"+a.Namespace+"/"+a.Name+" "+a.Action)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestApplyConfig(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	ctx := context.Background()
	r.Register(ctx, inst("orders", "a")) // rev 1

	res, err := r.ApplyConfig(ctx, []config.Document{route("", "orders", specA), route("shop", "cart", specA)}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != 2 || !equal(actions(res), []string{"Route/default/orders created", "Route/shop/cart created"}) {
		t.Fatalf("first apply: %+v", res)
	}
	d, rev, err := r.ConfigDoc(config.Key{Kind: "routes", Name: "orders"})
	if err != nil || rev != 2 || d.Metadata.CreateRevision != 2 || d.Metadata.ModifyRevision != 2 || d.APIVersion != config.APIVersion {
		t.Fatalf("ConfigDoc: %+v %d %v", d, rev, err)
	}

	// One revision for the whole apply, one event per document that changed.
	evs, _, _, _ := r.Feed().Since(1, 0)
	if len(evs) != 2 || evs[0].Revision != 2 || evs[1].Revision != 2 || evs[0].Kind != KindConfig ||
		evs[0].Type != EventAdded || evs[0].Reason != ReasonApply || evs[0].Config.Metadata.Name != "orders" ||
		evs[1].Namespace() != "shop" || evs[1].ServiceName() != "" {
		t.Fatalf("events: %+v", evs)
	}

	// The same documents again: nothing changes, no revision, no event.
	res, err = r.ApplyConfig(ctx, []config.Document{route("default", "orders", specA), route("shop", "cart", specA)}, nil, false)
	if err != nil || res.Revision != 2 || !equal(actions(res), []string{"Route/default/orders unchanged", "Route/shop/cart unchanged"}) {
		t.Fatalf("unchanged apply: %+v %v", res, err)
	}
	if r.Revision() != 2 {
		t.Fatalf("an unchanged apply spent a revision: %d", r.Revision())
	}

	// A dry run reports and changes nothing.
	res, err = r.ApplyConfig(ctx, []config.Document{route("", "orders", specB)}, []config.Key{{Kind: "Route", Namespace: "shop", Name: "cart"}}, true)
	if err != nil || !res.DryRun || res.Revision != 2 || !equal(actions(res), []string{"Route/default/orders configured", "Route/shop/cart deleted"}) {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if docs, rev := r.ConfigDocs("", ""); len(docs) != 2 || rev != 2 || string(docs[0].Spec) != canonical(t, specA) {
		t.Fatalf("after the dry run: %d docs at %d", len(docs), rev)
	}

	// Change one, delete the other, keep a third unchanged: one revision.
	res, err = r.ApplyConfig(ctx, []config.Document{route("", "orders", specB)}, []config.Key{{Kind: "route", Namespace: "shop", Name: "cart"}}, false)
	if err != nil || res.Revision != 3 || !equal(actions(res), []string{"Route/default/orders configured", "Route/shop/cart deleted"}) {
		t.Fatalf("configure+delete: %+v %v", res, err)
	}
	d, _, _ = r.ConfigDoc(config.Key{Kind: "Route", Namespace: "default", Name: "orders"})
	if d.Metadata.CreateRevision != 2 || d.Metadata.ModifyRevision != 3 {
		t.Fatalf("revisions after configure: %+v", d.Metadata)
	}
	evs, _, _, _ = r.Feed().Since(2, 0)
	if len(evs) != 2 || evs[0].Type != EventModified || evs[1].Type != EventDeleted || evs[1].Reason != ReasonDelete ||
		evs[1].Config.Metadata.Name != "cart" {
		t.Fatalf("events of revision 3: %+v", evs)
	}
	if docs, _ := r.ConfigDocs("route", "shop"); len(docs) != 0 {
		t.Fatalf("deleted document still listed: %+v", docs)
	}
	if st := r.Stats(); st.Configs != 1 {
		t.Fatalf("stats count %d documents", st.Configs)
	}

	// DeleteConfig and not-found.
	if _, err := r.DeleteConfig(ctx, config.Key{Kind: "route", Namespace: "shop", Name: "cart"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a missing document: %v", err)
	}
	if _, _, err := r.ConfigDoc(config.Key{Kind: "route", Name: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing document: %v", err)
	}
	rev, err = r.DeleteConfig(ctx, config.Key{Kind: "route", Name: "orders"})
	if err != nil || rev != 4 {
		t.Fatalf("DeleteConfig: %d %v", rev, err)
	}
}

// A rejected apply changes nothing, whichever document is at fault.
func TestApplyConfigIsAtomic(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	ctx := context.Background()
	if _, err := r.ApplyConfig(ctx, []config.Document{route("", "keep", specA)}, nil, false); err != nil {
		t.Fatal(err)
	}
	rev := r.Revision()
	cases := []struct {
		name    string
		puts    []config.Document
		deletes []config.Key
		field   string
	}{
		{"bad second document", []config.Document{route("", "new", specA), route("", "bad", `{"backends":[{"service":"o","weight":-1}]}`)}, nil,
			"documents[1].spec.backends[0].weight"},
		{"unknown kind", []config.Document{{Kind: "Gateway", Metadata: config.Metadata{Name: "g"}, Spec: []byte(specA)}}, nil, "documents[0].kind"},
		{"bad name", []config.Document{route("", "Bad_Name", specA)}, nil, "documents[0].metadata.name"},
		{"twice", []config.Document{route("", "new", specA), route("default", "new", specB)}, nil, "documents[1].metadata.name"},
		{"put and delete", []config.Document{route("", "keep", specB)}, []config.Key{{Kind: "route", Name: "keep"}}, "delete[0].name"},
		{"bad delete kind", []config.Document{route("", "new", specA)}, []config.Key{{Kind: "nope", Name: "x"}}, "delete[0].kind"},
		{"nothing", nil, nil, "documents"},
	}
	for _, c := range cases {
		_, err := r.ApplyConfig(ctx, c.puts, c.deletes, false)
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want a field error on %s", c.name, err, c.field)
		}
	}
	// A missing deletion fails the whole apply.
	_, err := r.ApplyConfig(ctx, []config.Document{route("", "new", specA), route("", "keep", specB)}, []config.Key{{Kind: "route", Name: "gone"}}, false)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing deletion: %v", err)
	}
	if r.Revision() != rev {
		t.Fatalf("revision moved from %d to %d", rev, r.Revision())
	}
	docs, _ := r.ConfigDocs("", "")
	if len(docs) != 1 || docs[0].Metadata.Name != "keep" || string(docs[0].Spec) != canonical(t, specA) {
		t.Fatalf("documents after rejected applies: %+v", docs)
	}
	// The caller's documents are not modified.
	in := []config.Document{route("", "x", specA)}
	r.ApplyConfig(ctx, in, nil, false)
	if in[0].Kind != "route" || in[0].Metadata.Namespace != "" || in[0].Metadata.ModifyRevision != 0 {
		t.Fatalf("input modified: %+v", in[0])
	}
}

func TestSnapshotAndFilterCarryConfigs(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	ctx := context.Background()
	r.Register(ctx, inst("web", "a"))
	r.ApplyConfig(ctx, []config.Document{route("", "a", specA), route("shop", "b", specA)}, nil, false)
	if s := r.Snapshot(Filter{}); len(s.Configs) != 2 || len(s.Instances) != 1 {
		t.Fatalf("full snapshot: %d configs, %d instances", len(s.Configs), len(s.Instances))
	}
	if s := r.Snapshot(Filter{Namespace: "shop"}); len(s.Configs) != 1 || s.Configs[0].Metadata.Name != "b" {
		t.Fatalf("namespace snapshot: %+v", s.Configs)
	}
	if s := r.Snapshot(Filter{Service: "web"}); len(s.Configs) != 0 || s.Configs == nil {
		t.Fatalf("service snapshot: %+v", s.Configs)
	}
	evs, _, _, _ := r.Feed().Since(1, 0)
	for _, c := range []struct {
		f    Filter
		want int
	}{{Filter{}, 2}, {Filter{Namespace: "shop"}, 1}, {Filter{Service: "web"}, 0}, {Filter{Namespace: "shop", Service: "b"}, 0}} {
		n := 0
		for i := range evs {
			if c.f.MatchEvent(&evs[i]) {
				n++
			}
		}
		if n != c.want {
			t.Errorf("filter %+v matches %d config events, want %d", c.f, n, c.want)
		}
	}
	// An event without an object has no namespace and no service, and no panic.
	var e Event
	if e.Namespace() != "" || e.ServiceName() != "" {
		t.Fatal("empty event")
	}
}

func TestConfigSurvivesRestartAndCompaction(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r := openReg(t, dir, Config{})
	r.Register(ctx, inst("web", "a"))
	r.ApplyConfig(ctx, []config.Document{route("", "a", specA), route("", "b", specA), route("shop", "c", specA)}, nil, false)
	if err := r.Compact(); err != nil {
		t.Fatal(err)
	}
	// After the snapshot, in the log: a change and a deletion.
	r.ApplyConfig(ctx, []config.Document{route("", "a", specB)}, []config.Key{{Kind: "route", Name: "b"}}, false)
	rev := r.Revision()
	want, _ := r.ConfigDocs("", "")
	r.Close()

	check := func(r2 *Registry) {
		t.Helper()
		if r2.Revision() != rev {
			t.Fatalf("restored revision %d, want %d", r2.Revision(), rev)
		}
		got, _ := r2.ConfigDocs("", "")
		if len(got) != len(want) {
			t.Fatalf("restored %d documents, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i].Key() != want[i].Key() || string(got[i].Spec) != string(want[i].Spec) || !reflect.DeepEqual(got[i].Metadata, want[i].Metadata) {
				t.Fatalf("restored %+v, want %+v", got[i], want[i])
			}
		}
		// Applying the same document after the restart changes nothing.
		res, err := r2.ApplyConfig(ctx, []config.Document{route("", "a", specB)}, nil, false)
		if err != nil || res.Results[0].Action != ActionUnchanged || r2.Revision() != rev {
			t.Fatalf("re-apply after restart: %+v %v", res, err)
		}
	}
	r2 := openReg(t, dir, Config{})
	check(r2)
	if err := r2.Compact(); err != nil { // now everything is in the snapshot
		t.Fatal(err)
	}
	r2.Close()
	r3 := openReg(t, dir, Config{})
	defer r3.Close()
	check(r3)
	if got, _ := r3.Instances(Filter{}); len(got) != 1 {
		t.Fatalf("instances after restore: %d", len(got))
	}
}
