package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// sseHandler streams body, flushing it, then waits (hold) or ends.
func sseHandler(t *testing.T, body string, hold bool, seen chan<- string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen <- r.URL.RawQuery
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		io.WriteString(w, body)
		w.(http.Flusher).Flush()
		if hold {
			<-r.Context().Done()
		}
	})
}

func snapshotEvent(rev int64, resync bool, instances ...string) string {
	list := ""
	for i, in := range instances {
		if i > 0 {
			list += ","
		}
		list += in
	}
	return fmt.Sprintf("event: snapshot\nid: %d\ndata: {\"revision\":%d,\"resync\":%v,\"services\":[{\"namespace\":\"default\",\"name\":\"web\"}],\"instances\":[%s]}\n\n", rev, rev, resync, list)
}

func instJSON(id string, status Status) string {
	return fmt.Sprintf(`{"id":%q,"namespace":"default","service":"web","address":"10.0.0.1","status":%q,"health":"none","ttl":"90s"}`, id, status)
}

func changeEvent(rev int64, typ EventType, inst string) string {
	return fmt.Sprintf("event: change\nid: %d\ndata: {\"revision\":%d,\"type\":%q,\"kind\":\"instance\",\"reason\":\"register\",\"instance\":%s}\n\n", rev, rev, typ, inst)
}

func TestWatchStream(t *testing.T) {
	body := snapshotEvent(42, false, instJSON("a", StatusUp)) + ": ping\n\n" +
		"event: future\ndata: {}\n\n" +
		changeEvent(43, EventAdded, instJSON("b", StatusUp)) + changeEvent(43, EventModified, instJSON("a", StatusDown))
	seen := make(chan string, 1)
	srv := httptest.NewServer(sseHandler(t, body, false, seen))
	defer srv.Close()
	c, _ := New(srv.URL)
	s, err := c.Watch(context.Background(), WatchOptions{Namespace: "default", Service: "web", From: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if q := <-seen; q != "from=7&namespace=default&service=web" {
		t.Fatalf("query %q", q)
	}
	ev, err := s.Next()
	if err != nil || ev.Type != WatchSnapshot || ev.Revision != 42 || len(ev.Snapshot.Instances) != 1 || s.ResumeFrom() != 42 {
		t.Fatalf("first: %+v %v resume %d", ev, err, s.ResumeFrom())
	}
	ev, err = s.Next()
	if err != nil || ev.Type != WatchChange || ev.Change.Instance.ID != "b" || s.Revision() != 43 || s.ResumeFrom() != 42 {
		t.Fatalf("second: %+v %v", ev, err)
	}
	ev, err = s.Next()
	if err != nil || ev.Change.Type != EventModified || ev.Change.Instance.Status != StatusDown {
		t.Fatalf("third: %+v %v", ev, err)
	}
	if _, err = s.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

func TestWatchErrors(t *testing.T) {
	t.Run("rejected", func(t *testing.T) {
		c, _ := newRecorded(t, 400, `{"error":"from: must be a non-negative integer","field":"from"}`)
		_, err := c.Watch(context.Background(), WatchOptions{})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Field != "from" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bad JSON", func(t *testing.T) {
		srv := httptest.NewServer(sseHandler(t, "event: change\nid: 3\ndata: {nope\n\n", false, nil))
		defer srv.Close()
		c, _ := New(srv.URL)
		s, err := c.Watch(context.Background(), WatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Next(); err == nil {
			t.Fatal("bad JSON accepted")
		}
	})
	t.Run("idle", func(t *testing.T) {
		srv := httptest.NewServer(sseHandler(t, ": ping\n\n", true, nil))
		defer srv.Close()
		c, _ := New(srv.URL)
		s, err := c.Watch(context.Background(), WatchOptions{IdleTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Next(); !errors.Is(err, ErrIdle) {
			t.Fatalf("got %v, want ErrIdle", err)
		}
	})
	t.Run("idle before the headers", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // never answers
		}))
		defer srv.Close()
		c, _ := New(srv.URL)
		if _, err := c.Watch(context.Background(), WatchOptions{IdleTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrIdle) {
			t.Fatalf("got %v, want ErrIdle", err)
		}
	})
	t.Run("close unblocks Next", func(t *testing.T) {
		srv := httptest.NewServer(sseHandler(t, "", true, nil))
		defer srv.Close()
		c, _ := New(srv.URL)
		s, err := c.Watch(context.Background(), WatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		go func() { time.Sleep(50 * time.Millisecond); s.Close() }()
		if _, err := s.Next(); err == nil {
			t.Fatal("Next returned no error after Close")
		}
		s.Close()
	})
	t.Run("context ends the stream", func(t *testing.T) {
		srv := httptest.NewServer(sseHandler(t, "", true, nil))
		defer srv.Close()
		c, _ := New(srv.URL)
		ctx, cancel := context.WithCancel(context.Background())
		s, err := c.Watch(ctx, WatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		cancel()
		if _, err := s.Next(); err == nil {
			t.Fatal("Next returned no error after cancel")
		}
	})
}
