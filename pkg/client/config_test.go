package client_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
	"github.com/cairnhq/cairn/pkg/client"
)

func routeDoc(ns, name, backend string) client.ConfigDocument {
	return client.ConfigDocument{Kind: "Route", Metadata: client.ConfigMetadata{Name: name, Namespace: ns},
		Spec: json.RawMessage(`{"backends":[{"service":"` + backend + `"}]}`)}
}

func actionsOf(r *client.ApplyResult) []string {
	out := []string{}
	for _, a := range r.Results {
		out = append(out, a.Kind+"/"+a.Namespace+"/"+a.Name+" "+a.Action)
	}
	return out
}

func TestE2EConfig(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", registry.Config{})
	c := newClient(t, s.addr)
	ctx := ctxFor(t)

	res, err := c.ApplyConfig(ctx, []client.ConfigDocument{routeDoc("", "a", "web"), routeDoc("shop", "b", "cart")}, nil, true)
	if err != nil || !res.DryRun || res.Revision != 0 || !slices.Equal(actionsOf(res), []string{"Route/default/a created", "Route/shop/b created"}) {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	res, err = c.ApplyConfig(ctx, []client.ConfigDocument{routeDoc("", "a", "web"), routeDoc("shop", "b", "cart")}, nil, false)
	if err != nil || res.Revision != 1 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	res, err = c.ApplyConfig(ctx, []client.ConfigDocument{routeDoc("", "a", "web")}, []client.ConfigKey{{Kind: "routes", Namespace: "shop", Name: "b"}}, false)
	if err != nil || res.Revision != 2 || !slices.Equal(actionsOf(res), []string{"Route/default/a unchanged", "Route/shop/b deleted"}) {
		t.Fatalf("unchanged + delete: %+v %v", res, err)
	}

	d, err := c.ConfigDoc(ctx, "route", "", "a")
	if err != nil || d.Kind != "Route" || d.APIVersion != "cairn.dev/v1" || d.Metadata.Namespace != "default" || d.Metadata.CreateRevision != 1 {
		t.Fatalf("ConfigDoc: %+v %v", d, err)
	}
	d.Spec = json.RawMessage(`{"backends":[{"service":"web","weight":5}]}`)
	put, err := c.PutConfig(ctx, *d) // a document read back is accepted as it is
	if err != nil || put.Metadata.ModifyRevision != 3 || put.Metadata.CreateRevision != 1 {
		t.Fatalf("PutConfig: %+v %v", put, err)
	}
	if _, err := c.PutConfig(ctx, routeDoc("shop", "c", "cart")); err != nil {
		t.Fatal(err)
	}
	docs, rev, err := c.ConfigDocs(ctx, "Route", "")
	if err != nil || rev != 4 || len(docs) != 2 || docs[0].Metadata.Name != "a" || docs[1].Metadata.Name != "c" {
		t.Fatalf("ConfigDocs: %+v %d %v", docs, rev, err)
	}
	if docs, _, _ := c.ConfigDocs(ctx, "", "shop"); len(docs) != 1 {
		t.Fatalf("ConfigDocs of shop: %+v", docs)
	}

	// Errors name the document's field; a rejected apply changes nothing.
	bad := routeDoc("", "bad", "web")
	bad.Spec = json.RawMessage(`{"backends":[{"service":"web","weight":-1}]}`)
	_, err = c.ApplyConfig(ctx, []client.ConfigDocument{routeDoc("", "new", "web"), bad}, nil, false)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Field != "documents[1].spec.backends[0].weight" {
		t.Fatalf("bad apply: %v", err)
	}
	if _, err := c.ApplyConfig(ctx, nil, []client.ConfigKey{{Kind: "route", Name: "missing"}}, false); !client.IsNotFound(err) {
		t.Fatalf("deleting a missing document: %v", err)
	}
	if _, err := c.ConfigDoc(ctx, "route", "default", "new"); !client.IsNotFound(err) {
		t.Fatalf("a rejected apply stored a document: %v", err)
	}
	if _, err := c.ConfigDoc(ctx, "widget", "default", "a"); !client.IsNotFound(err) || !errors.As(err, &ae) || ae.Field != "kind" {
		t.Fatalf("unknown kind: %v", err)
	}

	rev, err = c.DeleteConfig(ctx, "route", "", "a")
	if err != nil || rev != 5 {
		t.Fatalf("DeleteConfig: %d %v", rev, err)
	}
	if _, err := c.DeleteConfig(ctx, "route", "", "a"); !client.IsNotFound(err) {
		t.Fatalf("deleting twice: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Configs != 1 {
		t.Fatalf("status: %+v %v", st, err)
	}
}

// The watch stream carries documents in its snapshot and as changes, and
// a Cache following it ignores them.
func TestE2EWatchAndCacheWithConfig(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", registry.Config{})
	c := newClient(t, s.addr)
	ctx := ctxFor(t)
	if _, err := c.ApplyConfig(ctx, []client.ConfigDocument{routeDoc("", "a", "web")}, nil, false); err != nil {
		t.Fatal(err)
	}
	cache := client.NewCache(c, client.CacheOptions{MinBackoff: 10 * time.Millisecond})
	defer cache.Close()
	if err := cache.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Watch(ctx, client.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ev, err := st.Next()
	if err != nil || ev.Type != client.WatchSnapshot || len(ev.Snapshot.Configs) != 1 || ev.Snapshot.Configs[0].Metadata.Name != "a" {
		t.Fatalf("snapshot: %+v %v", ev, err)
	}

	if _, err := c.ApplyConfig(ctx, []client.ConfigDocument{routeDoc("", "b", "web")}, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, webInstance("web-1")); err != nil {
		t.Fatal(err)
	}
	ev, err = st.Next()
	if err != nil || ev.Type != client.WatchChange || ev.Change.Kind != client.KindConfig || ev.Change.Config == nil ||
		ev.Change.Config.Metadata.Name != "b" || ev.Change.Type != client.EventAdded || ev.Change.Reason != "apply" {
		t.Fatalf("config change: %+v %v", ev.Change, err)
	}
	eventually(t, "the instance in the cache", func() bool {
		return slices.Equal(idsOf(cache.Instances("web", true)), []string{"web-1"}) && cache.Revision() == 3
	})
	if err := cache.Err(); err != nil {
		t.Fatalf("cache error: %v", err)
	}
}
