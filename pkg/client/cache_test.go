package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// scriptedWatch serves one script per watch connection: its body, then
// either the end of the stream or, for the last script, a held stream.
type scriptedWatch struct {
	scripts chan string
	froms   chan string // the from parameter of each connection
}

func newScriptedWatch(t *testing.T, scripts ...string) (*scriptedWatch, *Client) {
	t.Helper()
	s := &scriptedWatch{scripts: make(chan string, len(scripts)+8), froms: make(chan string, 64)}
	stop := make(chan struct{})
	for _, sc := range scripts {
		s.scripts <- sc
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/watch" || r.URL.Query().Get("namespace") != "default" {
			http.Error(w, `{"error":"bad watch"}`, 400)
			return
		}
		select {
		case s.froms <- r.URL.Query().Get("from"):
		default:
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case body := <-s.scripts:
			io.WriteString(w, body)
			w.(http.Flusher).Flush()
			if len(s.scripts) > 0 {
				return // the connection breaks; the next script serves the reconnection
			}
		case <-r.Context().Done():
			return
		case <-stop:
			return
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // runs first: held streams end, so Close does not wait for them
	c, _ := New(srv.URL)
	return s, c
}

func newTestCache(t *testing.T, c *Client) *Cache {
	t.Helper()
	k := NewCache(c, CacheOptions{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	t.Cleanup(k.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	return k
}

func ids(ins []Instance) []string {
	out := []string{}
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

func TestCacheAppliesSnapshotAndChanges(t *testing.T) {
	_, c := newScriptedWatch(t, snapshotEvent(10, false, instJSON("a", StatusUp), instJSON("b", StatusDown)))
	k := newTestCache(t, c)
	if got := ids(k.Instances("web", false)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("all: %v", got)
	}
	if got := ids(k.Instances("web", true)); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("healthy: %v", got)
	}
	if k.Revision() != 10 || !k.Synced() || len(k.Services()) != 1 || len(k.Instances("other", false)) != 0 {
		t.Fatalf("revision %d services %v", k.Revision(), k.Services())
	}
	// Copies: changing what a reader got changes nothing in the cache.
	got := k.Instances("web", false)
	got[0].Address = "changed"
	if in, _ := k.Instance("web", "a"); in.Address != "10.0.0.1" {
		t.Fatal("the cache handed out its own instance")
	}
}

func TestCacheResumesAndResyncs(t *testing.T) {
	w, c := newScriptedWatch(t,
		// Connection 1: a snapshot and a change, then the connection breaks.
		snapshotEvent(10, false, instJSON("a", StatusUp))+changeEvent(11, EventAdded, instJSON("b", StatusUp)),
		// Connection 2 resumes before 11: 11 comes again, then 12.
		changeEvent(11, EventAdded, instJSON("b", StatusUp))+changeEvent(12, EventDeleted, instJSON("a", StatusUp)),
		// Connection 3: the server lost track (restart): a resync snapshot.
		snapshotEvent(3, true, instJSON("z", StatusUp)),
	)
	k := NewCache(c, CacheOptions{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	t.Cleanup(k.Close)
	updates, cancel := k.Subscribe()
	defer cancel()
	for i, want := range []string{"", "10", "11"} {
		select {
		case from := <-w.froms:
			if from != want {
				t.Fatalf("connection %d: from=%q, want %q", i+1, from, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d never came", i+1)
		}
	}
	eventually(t, 5*time.Second, "the resync", func() bool { return k.Revision() == 3 })
	if got := ids(k.Instances("web", false)); !slices.Equal(got, []string{"z"}) {
		t.Fatalf("after resync: %v", got)
	}
	// The subscriber saw at least the last update: a resync.
	var last CacheUpdate
	deadline := time.After(5 * time.Second)
	for last.Revision != 3 {
		select {
		case last = <-updates:
		case <-deadline:
			t.Fatalf("last update %+v", last)
		}
	}
	if !last.Resync {
		t.Fatalf("last update %+v", last)
	}
}

func TestCacheChangeBeforeSnapshotReconnectsFromScratch(t *testing.T) {
	w, c := newScriptedWatch(t,
		changeEvent(11, EventAdded, instJSON("b", StatusUp)),
		snapshotEvent(12, false, instJSON("a", StatusUp)))
	k := newTestCache(t, c)
	<-w.froms
	if from := <-w.froms; from != "" {
		t.Fatalf("reconnected with from=%q", from)
	}
	if got := ids(k.Instances("web", false)); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("got %v", got)
	}
}

func TestCacheSubscribersCoalesce(t *testing.T) {
	k := &Cache{subs: map[*subscription]struct{}{}}
	ch, cancel := k.Subscribe()
	for i, svc := range []string{"web", "api", "web", "db"} {
		k.publish(CacheUpdate{Revision: int64(i + 1), Services: []string{svc}})
	}
	u := <-ch
	if u.Revision != 4 || !slices.Equal(u.Services, []string{"api", "db", "web"}) || u.Resync {
		t.Fatalf("merged %+v", u)
	}
	k.publish(CacheUpdate{Revision: 5, Services: []string{"web"}})
	k.publish(CacheUpdate{Revision: 6, Resync: true})
	if u := <-ch; u.Revision != 6 || !u.Resync || len(u.Services) != 0 {
		t.Fatalf("merged with resync %+v", u)
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
}

func TestCacheSubscribeAfterSyncGetsTheState(t *testing.T) {
	_, c := newScriptedWatch(t, snapshotEvent(10, false, instJSON("a", StatusUp)))
	k := newTestCache(t, c)
	ch, cancel := k.Subscribe()
	defer cancel()
	select {
	case u := <-ch:
		if u.Revision != 10 || !u.Resync {
			t.Fatalf("first update %+v", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no update for the state held")
	}
}

func TestCacheOnChangeAndClose(t *testing.T) {
	_, c := newScriptedWatch(t, snapshotEvent(10, false, instJSON("a", StatusUp)))
	k := NewCache(c, CacheOptions{})
	t.Cleanup(k.Close)
	got := make(chan CacheUpdate, 16)
	k.OnChange(func(u CacheUpdate) { got <- u })
	select {
	case u := <-got:
		if u.Revision != 10 || !u.Resync {
			t.Fatalf("update %+v", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no update")
	}
	if !k.Connected() {
		t.Fatal("not connected")
	}
	k.Close()
	if k.Connected() {
		t.Fatal("connected after Close")
	}
	ch, _ := k.Subscribe()
	if _, ok := <-ch; ok {
		t.Fatal("subscription after Close is open")
	}
	if len(k.Instances("web", false)) != 1 {
		t.Fatal("a closed cache forgot its state")
	}
}

func TestCacheWaitSyncedReportsTheError(t *testing.T) {
	c, _ := newRecorded(t, 400, `{"error":"namespace: must be a lowercase DNS label","field":"namespace"}`)
	k := NewCache(c, CacheOptions{Namespace: "Bad", MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := k.WaitSynced(ctx)
	if err == nil || StatusCode(err) != 400 {
		t.Fatalf("got %v", err)
	}
}
