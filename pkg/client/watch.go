package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// WatchOptions says what a watch stream follows and from where.
type WatchOptions struct {
	Namespace string // "" follows every namespace
	Service   string // "" follows every service (of Namespace)

	// From resumes after this revision: the stream sends every change after
	// it, or a snapshot with Resync set when the server no longer holds
	// them. Zero opens with a snapshot of the current state. Resume a broken
	// stream with its ResumeFrom.
	From int64

	// Epoch is the server history From belongs to (Stream.Epoch of the
	// stream being resumed). A server with another history (it lost its
	// data) answers with a resync snapshot instead of changes that would not
	// fit the reader's state.
	Epoch string

	// IdleTimeout ends the stream with ErrIdle when nothing (not even a
	// keep-alive ping, sent every 15s) arrives for this long: the
	// connection is dead. Zero means no limit.
	IdleTimeout time.Duration

	// MaxEventSize bounds one event (a snapshot is one event); default 256 MiB.
	MaxEventSize int
}

// ErrIdle ends a watch stream on which nothing arrived for its IdleTimeout.
var ErrIdle = errors.New("client: watch stream idle for too long")

// WatchEventType tells snapshots from changes.
type WatchEventType string

// The kinds of watch events.
const (
	WatchSnapshot WatchEventType = "snapshot"
	WatchChange   WatchEventType = "change"
)

// WatchEvent is one event of a watch stream: a Snapshot or a Change.
type WatchEvent struct {
	Type     WatchEventType
	Revision int64     // the event's revision (its SSE id)
	Snapshot *Snapshot // Type == WatchSnapshot
	Change   *Event    // Type == WatchChange
}

// Stream is an open watch stream. Next is called from one goroutine at a
// time; Close may be called from any goroutine, also while Next waits.
type Stream struct {
	body    io.ReadCloser
	sse     *sseReader
	cancel  context.CancelFunc
	idle    *idleReader
	closed  sync.Once
	lastRev atomic.Int64
	resume  atomic.Int64
	epoch   string
}

const defaultMaxEventSize = 256 << 20

// Watch opens a watch stream (GET /v1/watch) and returns once the server
// has accepted it; read events with Next. The stream ends when ctx ends,
// on Close, or when the connection breaks; resume with
// WatchOptions{From: s.ResumeFrom()}.
func (c *Client) Watch(ctx context.Context, o WatchOptions) (*Stream, error) {
	v := url.Values{}
	if o.Namespace != "" {
		v.Set("namespace", o.Namespace)
	}
	if o.Service != "" {
		v.Set("service", o.Service)
	}
	if o.From > 0 {
		v.Set("from", strconv.FormatInt(o.From, 10))
		if o.Epoch != "" {
			v.Set("epoch", o.Epoch)
		}
	}
	if o.MaxEventSize <= 0 {
		o.MaxEventSize = defaultMaxEventSize
	}
	ctx, cancel := context.WithCancel(ctx)
	var idle *idleReader
	if o.IdleTimeout > 0 {
		// The server may send the headers only with the first event or
		// ping: the idle limit covers the wait for them too.
		idle = newIdleReader(o.IdleTimeout, cancel)
	}
	resp, sendCancel, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/watch", query: v, stream: true})
	if err != nil {
		cancel()
		if idle != nil {
			idle.stop()
			if idle.fired.Load() {
				return nil, ErrIdle
			}
		}
		return nil, err
	}
	s := &Stream{body: resp.Body, idle: idle, cancel: func() { sendCancel(); cancel() },
		epoch: resp.Header.Get("X-Cairn-Epoch")}
	var r io.Reader = resp.Body
	if idle != nil {
		idle.r = resp.Body
		idle.timer.Reset(o.IdleTimeout)
		r = idle
	}
	s.sse = newSSEReader(r, o.MaxEventSize)
	s.lastRev.Store(o.From)
	s.resume.Store(o.From)
	return s, nil
}

// Next returns the next snapshot or change. Comments (keep-alive pings)
// and events of unknown types are skipped. Any error ends the stream: io.EOF
// when the server closed it cleanly, ErrIdle, the context's error, or
// another read or decoding error.
func (s *Stream) Next() (*WatchEvent, error) {
	for {
		ev, err := s.sse.next()
		if err != nil {
			if s.idle != nil && s.idle.fired.Load() {
				err = ErrIdle
			}
			return nil, err
		}
		we := &WatchEvent{Type: WatchEventType(ev.Event)}
		switch we.Type {
		case WatchSnapshot:
			we.Snapshot = &Snapshot{}
			err = json.Unmarshal([]byte(ev.Data), we.Snapshot)
			if err == nil {
				we.Revision = we.Snapshot.Revision
			}
		case WatchChange:
			we.Change = &Event{}
			err = json.Unmarshal([]byte(ev.Data), we.Change)
			if err == nil {
				we.Revision = we.Change.Revision
			}
		default:
			continue // a newer server's event type
		}
		if err != nil {
			return nil, fmt.Errorf("client: watch: decoding %s event (id %q): %w", ev.Event, ev.ID, err)
		}
		s.lastRev.Store(we.Revision)
		if we.Type == WatchSnapshot {
			s.resume.Store(we.Revision)
		} else {
			// Events of one revision arrive together, but a broken
			// connection may cut them apart: resuming just before the
			// revision gets all of them again (applying them is idempotent).
			s.resume.Store(we.Revision - 1)
		}
		return we, nil
	}
}

// Epoch returns the server history the stream's revisions belong to
// (resume with WatchOptions{From: s.ResumeFrom(), Epoch: s.Epoch()}).
func (s *Stream) Epoch() string { return s.epoch }

// Revision returns the revision of the last event read (or the From the
// stream was opened with).
func (s *Stream) Revision() int64 { return s.lastRev.Load() }

// ResumeFrom returns the revision to resume a broken stream from
// (WatchOptions.From) without missing a change: the last snapshot's
// revision, or the revision before the last change, since several changes
// may share a revision and the connection may have broken between them.
// Changes of that last revision are then sent again.
func (s *Stream) ResumeFrom() int64 { return s.resume.Load() }

// Close ends the stream. It is safe to call more than once, from any goroutine.
func (s *Stream) Close() error {
	s.closed.Do(func() {
		s.cancel()
		s.body.Close()
		if s.idle != nil {
			s.idle.stop()
		}
	})
	return nil
}

// idleReader cancels the stream when no byte arrives for a while.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	timer *time.Timer
	fired atomic.Bool
}

// newIdleReader starts the timer; set r before the first Read.
func newIdleReader(d time.Duration, cancel context.CancelFunc) *idleReader {
	ir := &idleReader{d: d}
	ir.timer = time.AfterFunc(d, func() {
		ir.fired.Store(true)
		cancel()
	})
	return ir
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.timer.Reset(ir.d)
	}
	return n, err
}

func (ir *idleReader) stop() { ir.timer.Stop() }
