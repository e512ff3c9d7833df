package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

const (
	defaultWait = 60 * time.Second
	maxWait     = 10 * time.Minute
	// writeTimeout bounds one write to a watch stream: a client that takes
	// longer to read is cut off (it reconnects with Last-Event-ID).
	writeTimeout = 30 * time.Second
)

// block implements blocking queries of services and instances: with
// ?index=N it returns once an event after N concerns a service f covers,
// or when ?wait passes. Wakeups are per service, so a filtered read
// (healthy=true) may return with data that did not change; clients compare
// and wait again, as with Consul. Config events do not wake them.
func (s *Server) block(r *http.Request, f registry.Filter) error {
	return s.blockOn(r, func(e *registry.Event) bool { return e.Kind != registry.KindConfig && f.MatchEvent(e) })
}

// blockOn is block for any read: it returns once an event after ?index
// passes match, or when ?wait passes.
func (s *Server) blockOn(r *http.Request, match func(*registry.Event) bool) error {
	q := r.URL.Query()
	iv := q.Get("index")
	if iv == "" {
		if q.Get("wait") != "" {
			return badRequest("wait", "only applies with index")
		}
		return nil
	}
	index, err := strconv.ParseInt(iv, 10, 64)
	if err != nil || index < 0 {
		return badRequest("index", "must be a non-negative integer")
	}
	wait := defaultWait
	if v := q.Get("wait"); v != "" {
		if wait, err = registry.ParseDuration(v); err != nil {
			return badRequest("wait", "%v", err)
		}
	}
	wait = min(wait, maxWait)
	if index == 0 || index > s.reg.Revision() || !sameEpoch(r, s.reg.Epoch()) {
		return nil // a first read, or an index from another history
	}
	feed := s.reg.Feed()
	cur := feed.Subscribe(index)
	defer cur.Close()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	after := index
	for {
		evs, _, notify, err := feed.Since(after, 4096)
		if errors.Is(err, registry.ErrCompacted) {
			return nil
		}
		for i := range evs {
			if match(&evs[i]) {
				return nil
			}
		}
		if len(evs) > 0 {
			after = evs[len(evs)-1].Revision
			cur.Set(after)
			continue
		}
		select {
		case <-notify:
		case <-timer.C:
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

// sameEpoch reports whether the request's ?epoch (if any) is the registry's:
// revisions of another epoch (a server that lost its data and started a new
// history) cannot be compared, so readers holding one must start over.
func sameEpoch(r *http.Request, epoch string) bool {
	e := r.URL.Query().Get("epoch")
	return e == "" || e == epoch
}

type watchSnapshot struct {
	*registry.Snapshot
	Resync bool `json:"resync"`
}

// watch streams the change feed as Server-Sent Events (docs/api.md).
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := registry.Filter{Namespace: q.Get("namespace"), Service: q.Get("service")}
	for _, p := range []struct{ field, v string }{{"namespace", f.Namespace}, {"service", f.Service}} {
		if p.v != "" {
			if fe := registry.ValidateName(p.field, p.v); fe != nil {
				s.writeError(w, fe)
				return
			}
		}
	}
	from := int64(0)
	fv := q.Get("from")
	field := "from"
	if fv == "" {
		fv, field = r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	}
	if fv != "" {
		v, err := strconv.ParseInt(fv, 10, 64)
		if err != nil || v < 0 {
			s.writeError(w, badRequest(field, "must be a non-negative integer"))
			return
		}
		from = v
	}

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)

	feed := s.reg.Feed()
	cur := feed.Subscribe(from)
	defer cur.Close()
	ping := time.NewTicker(s.ping)
	defer ping.Stop()

	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if bw.Flush() != nil || rc.Flush() != nil {
			return false
		}
		return true
	}
	snapshot := func(resync bool) (int64, bool) {
		snap := s.reg.Snapshot(f)
		writeEvent(bw, "snapshot", snap.Revision, watchSnapshot{Snapshot: snap, Resync: resync})
		cur.Set(snap.Revision)
		return snap.Revision, flush()
	}

	after := from
	ok := flush() // headers now: a resumed stream with nothing new must not look dead
	if from == 0 || from > s.reg.Revision() || !sameEpoch(r, s.reg.Epoch()) {
		after, ok = snapshot(from != 0)
	}
	for ok {
		evs, _, notify, err := feed.Since(after, 1024)
		if errors.Is(err, registry.ErrCompacted) {
			after, ok = snapshot(true)
			continue
		}
		if len(evs) > 0 {
			for i := range evs {
				if !f.MatchEvent(&evs[i]) {
					continue
				}
				// The SSE id goes on the last event of a revision only, so a
				// reader cut off inside a revision resumes before it and
				// gets the whole revision again, never half of it.
				id := int64(-1)
				if i == len(evs)-1 || evs[i+1].Revision != evs[i].Revision {
					id = evs[i].Revision
				}
				writeEvent(bw, "change", id, &evs[i])
			}
			after = evs[len(evs)-1].Revision
			cur.Set(after)
			ok = flush()
			continue
		}
		select {
		case <-notify:
		case <-ping.C:
			_, _ = bw.WriteString(": ping\n\n")
			ok = flush()
		case <-r.Context().Done():
			return
		}
	}
}

func writeEvent(bw *bufio.Writer, event string, id int64, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return // plain data; cannot happen
	}
	bw.WriteString("event: ")
	bw.WriteString(event)
	if id >= 0 {
		bw.WriteString("\nid: ")
		bw.WriteString(strconv.FormatInt(id, 10))
	}
	bw.WriteString("\ndata: ")
	bw.Write(b) // JSON holds no raw newlines
	bw.WriteString("\n\n")
}
