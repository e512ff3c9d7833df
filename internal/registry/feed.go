package registry

import (
	"errors"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cairnhq/cairn/internal/config"
)

// EventType says what happened to an object. The names are those of
// Kubernetes watches and Eureka deltas.
type EventType string

const (
	EventAdded    EventType = "ADDED"
	EventModified EventType = "MODIFIED"
	EventDeleted  EventType = "DELETED"
)

// Kind is the kind of object an event carries.
type Kind string

const (
	KindService  Kind = "service"
	KindInstance Kind = "instance"
	KindConfig   Kind = "config" // a declarative document (config.Document): a Route, ...
)

// Reasons an event carries (Event.Reason).
const (
	ReasonRegister      = "register"
	ReasonDeregister    = "deregister"
	ReasonEvict         = "evict"
	ReasonOverride      = "override"
	ReasonStatus        = "status"
	ReasonHealth        = "health"
	ReasonMetadata      = "metadata"
	ReasonPut           = "put"
	ReasonDeleteService = "delete-service"
	ReasonApply         = "apply"  // a config document created or changed
	ReasonDelete        = "delete" // a config document deleted
)

// Event is one change. Exactly one of Service, Instance and Config is set
// (as Kind says); for a deletion it is the last state of the object.
// Several events may share a revision when one mutation changes several
// objects (a registration that creates its service, an apply of several
// documents).
type Event struct {
	Revision int64            `json:"revision"`
	Type     EventType        `json:"type"`
	Kind     Kind             `json:"kind"`
	Reason   string           `json:"reason,omitempty"` // register, deregister, evict, override, health, apply, ...
	Service  *Service         `json:"service,omitempty"`
	Instance *Instance        `json:"instance,omitempty"`
	Config   *config.Document `json:"config,omitempty"`
}

// Namespace returns the namespace of the object the event concerns.
func (e *Event) Namespace() string {
	switch {
	case e.Instance != nil:
		return e.Instance.Namespace
	case e.Service != nil:
		return e.Service.Namespace
	case e.Config != nil:
		return e.Config.Metadata.Namespace
	}
	return ""
}

// ServiceName returns the service the event concerns; "" for a config event.
func (e *Event) ServiceName() string {
	switch {
	case e.Instance != nil:
		return e.Instance.Service
	case e.Service != nil:
		return e.Service.Name
	}
	return ""
}

// ErrCompacted is returned to a reader whose position is older than the
// oldest event the feed still holds; it must resync from a snapshot.
var ErrCompacted = errors.New("registry: revision compacted, resync required")

// Feed is the change feed: a bounded ring of the most recent events.
//
// Readers pull: they ask for events after a revision and, when there are
// none, wait on a channel that is closed at the next publish. A writer never
// waits for a reader, however slow; a reader that falls further behind than
// the ring holds gets ErrCompacted and resyncs.
type Feed struct {
	mu     sync.Mutex
	ring   []Event
	start  int // index of the oldest event in ring
	n      int // number of events held
	head   int64
	notify chan struct{}

	subscribers atomic.Int64
	cursors     sync.Map // *Cursor -> struct{}
}

// NewFeed returns a feed holding at most capacity events, starting after rev.
func NewFeed(capacity int, rev int64) *Feed {
	if capacity < 16 {
		capacity = 16
	}
	return &Feed{ring: make([]Event, capacity), head: rev, notify: make(chan struct{})}
}

// Publish appends events (in revision order) and wakes every waiting reader.
func (f *Feed) Publish(evs ...Event) {
	if len(evs) == 0 {
		return
	}
	f.mu.Lock()
	for _, e := range evs {
		i := (f.start + f.n) % len(f.ring)
		if f.n == len(f.ring) {
			f.start = (f.start + 1) % len(f.ring)
		} else {
			f.n++
		}
		f.ring[i] = e
		f.head = e.Revision
	}
	ch := f.notify
	f.notify = make(chan struct{})
	f.mu.Unlock()
	close(ch)
}

// Head returns the revision of the newest published event.
func (f *Feed) Head() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head
}

// Since returns up to max events with a revision above after, the head, and
// a channel closed at the next publish. It returns ErrCompacted when events
// after `after` have already left the ring.
func (f *Feed) Since(after int64, max int) ([]Event, int64, <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if after >= f.head {
		return nil, f.head, f.notify, nil
	}
	if f.n == 0 || f.at(0).Revision > after+1 {
		// The event right after `after` is gone (or was never held: a
		// feed restored from disk starts empty).
		return nil, f.head, f.notify, ErrCompacted
	}
	// First index with Revision > after.
	i := sort.Search(f.n, func(i int) bool { return f.at(i).Revision > after })
	cnt := f.n - i
	if max > 0 && cnt > max {
		cnt = max
		// Never split the events of one revision across calls.
		for cnt < f.n-i && f.at(i+cnt).Revision == f.at(i+cnt-1).Revision {
			cnt++
		}
	}
	out := make([]Event, cnt)
	for j := range out {
		out[j] = f.at(i + j)
	}
	return out, f.head, f.notify, nil
}

func (f *Feed) at(i int) Event { return f.ring[(f.start+i)%len(f.ring)] }

// Oldest returns the revision of the oldest event held, or 0.
func (f *Feed) Oldest() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return 0
	}
	return f.at(0).Revision
}

// Cursor tracks one subscriber's position for the subscriber and lag metrics.
type Cursor struct {
	feed *Feed
	pos  atomic.Int64
}

// Subscribe registers a reader at position rev; call Close when done.
func (f *Feed) Subscribe(rev int64) *Cursor {
	c := &Cursor{feed: f}
	c.pos.Store(rev)
	f.cursors.Store(c, struct{}{})
	f.subscribers.Add(1)
	return c
}

// Set records the reader's position.
func (c *Cursor) Set(rev int64) { c.pos.Store(rev) }

// Close unregisters the reader.
func (c *Cursor) Close() {
	if _, loaded := c.feed.cursors.LoadAndDelete(c); loaded {
		c.feed.subscribers.Add(-1)
	}
}

// Subscribers returns the number of readers and the largest lag (head minus
// position) among them.
func (f *Feed) Subscribers() (n int64, maxLag int64) {
	head := f.Head()
	f.cursors.Range(func(k, _ any) bool {
		if lag := head - k.(*Cursor).pos.Load(); lag > maxLag {
			maxLag = lag
		}
		return true
	})
	return f.subscribers.Load(), maxLag
}
