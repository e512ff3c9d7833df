package registry

import (
	"errors"
	"testing"
	"time"
)

func ev(rev int64) Event {
	return Event{Revision: rev, Type: EventAdded, Kind: KindService, Service: &Service{Namespace: "default", Name: "s"}}
}

func TestFeedSinceAndCompaction(t *testing.T) {
	f := NewFeed(16, 0)
	for i := int64(1); i <= 10; i++ {
		f.Publish(ev(i))
	}
	evs, head, _, err := f.Since(5, 0)
	if err != nil || head != 10 || len(evs) != 5 || evs[0].Revision != 6 {
		t.Fatalf("Since(5) = %d events from %v, head %d, err %v", len(evs), evs, head, err)
	}
	evs, _, _, _ = f.Since(5, 2)
	if len(evs) != 2 || evs[1].Revision != 7 {
		t.Fatalf("max not honoured: %v", evs)
	}
	for i := int64(11); i <= 30; i++ {
		f.Publish(ev(i))
	}
	if _, _, _, err := f.Since(5, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("reader behind the ring: err = %v, want ErrCompacted", err)
	}
	if f.Oldest() != 15 {
		t.Fatalf("oldest = %d, want 15", f.Oldest())
	}
	if evs, _, _, err := f.Since(14, 0); err != nil || len(evs) != 16 {
		t.Fatalf("reader at the edge: %d events, %v", len(evs), err)
	}
}

func TestFeedKeepsRevisionTogether(t *testing.T) {
	f := NewFeed(16, 0)
	f.Publish(ev(1), ev(2), ev(2), ev(2), ev(3))
	evs, _, _, _ := f.Since(0, 2)
	if len(evs) != 4 {
		t.Fatalf("got %d events; the three of revision 2 must come together", len(evs))
	}
}

func TestFeedNotifyAndRestoredStart(t *testing.T) {
	f := NewFeed(16, 100) // restored at revision 100, nothing held
	if _, _, _, err := f.Since(50, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("a reader older than a restored feed must resync, got %v", err)
	}
	evs, _, notify, err := f.Since(100, 0)
	if err != nil || len(evs) != 0 {
		t.Fatal(evs, err)
	}
	go f.Publish(ev(101))
	select {
	case <-notify:
	case <-time.After(5 * time.Second):
		t.Fatal("publish did not wake the reader")
	}
	c := f.Subscribe(100)
	if n, lag := f.Subscribers(); n != 1 || lag != 1 {
		t.Fatalf("subscribers %d lag %d", n, lag)
	}
	c.Close()
	c.Close()
	if n, _ := f.Subscribers(); n != 0 {
		t.Fatalf("subscribers after close: %d", n)
	}
}

// A writer never waits for a reader: publishing far past the ring with no
// reader draining completes at once.
func TestFeedSlowReaderNeverBlocksWriter(t *testing.T) {
	f := NewFeed(64, 0)
	c := f.Subscribe(0)
	defer c.Close()
	done := make(chan struct{})
	go func() {
		for i := int64(1); i <= 100000; i++ {
			f.Publish(ev(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writer blocked")
	}
	if _, lag := f.Subscribers(); lag != 100000 {
		t.Fatalf("lag = %d", lag)
	}
}
