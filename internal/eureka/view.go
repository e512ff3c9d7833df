package eureka

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
)

// view is the registry as Eureka clients see it: applications of rendered
// instances, status counts for apps__hashcode, and the recent changes that
// /apps/delta serves. It follows the change feed; every request first
// applies whatever the feed holds beyond the view's revision, so an answer
// is never older than the registration the client just made. Documents are
// encoded at most once per revision and format, and only when asked for.
type view struct {
	reg    *registry.Registry
	ns     string
	window time.Duration
	now    func() time.Time

	mu     sync.Mutex
	rev    int64
	apps   map[string]*app // by Eureka app name
	names  []string        // sorted app names; nil when the set changed
	counts map[registry.Status]int
	// recent holds the changes of the delta window, oldest first. Only an
	// instance's latest change is live: older ones are cleared (e == nil)
	// when it changes again, so the window holds at most one entry per
	// instance however busy the registry is, and is compacted lazily.
	recent []change
	latest map[registry.InstanceKey]int // key -> index in recent of its live change
	dead   int
	byID   map[string]map[registry.ServiceKey]*einst

	fullDoc  docCache
	deltaDoc docCache

	rebuilds int64
	encodes  *prometheus.CounterVec // by document and format
}

type app struct {
	name  string
	insts map[string]*einst // by instance id
	ids   []string          // sorted; nil when the set changed
}

type change struct {
	at     time.Time
	action registry.EventType
	key    registry.InstanceKey
	e      *einst
}

// Formats of an encoded document.
type format int

const (
	formatJSON format = iota
	formatXML
)

func (f format) String() string {
	if f == formatJSON {
		return "json"
	}
	return "xml"
}

// docCache holds one document's encodings for one revision.
type docCache struct {
	rev   int64
	valid bool
	plain [2][]byte // by format
	gz    [2][]byte
}

func (c *docCache) reset(rev int64) {
	*c = docCache{rev: rev, valid: true}
}

func newView(reg *registry.Registry, ns string, window time.Duration) *view {
	v := &view{reg: reg, ns: ns, window: window, now: time.Now,
		encodes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_eureka_documents_encoded_total",
			Help: "Eureka /apps and /apps/delta documents encoded: at most one per registry revision and format, however many clients ask.",
		}, []string{"document", "format"})}
	v.mu.Lock()
	v.rebuildLocked()
	v.mu.Unlock()
	return v
}

// run keeps the view following the feed between requests, so that the
// recent-change window survives a quiet spell of Eureka traffic.
func (v *view) run(ctx context.Context) {
	tick := time.NewTicker(v.window / 6)
	defer tick.Stop()
	for {
		v.mu.Lock()
		_, _, notify, _ := v.reg.Feed().Since(v.rev, 1)
		v.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-notify:
		case <-tick.C:
		}
		v.mu.Lock()
		v.syncLocked()
		v.mu.Unlock()
	}
}

// rebuildLocked loads the view from a snapshot. The recent-change window
// starts empty: clients whose delta then misses changes see a hash
// mismatch and fetch the full registry, as Eureka's protocol intends.
func (v *view) rebuildLocked() {
	snap := v.reg.Snapshot(registry.Filter{})
	v.rev = snap.Revision
	v.apps = map[string]*app{}
	v.names = nil
	v.counts = map[registry.Status]int{}
	v.byID = map[string]map[registry.ServiceKey]*einst{}
	v.recent, v.latest, v.dead = nil, map[registry.InstanceKey]int{}, 0
	v.fullDoc.valid, v.deltaDoc.valid = false, false
	for _, in := range snap.Instances {
		v.putLocked(v.render(in))
	}
	v.rebuilds++
}

// syncLocked applies the feed's events beyond the view's revision.
func (v *view) syncLocked() {
	evs, head, _, err := v.reg.Feed().Since(v.rev, 0)
	if errors.Is(err, registry.ErrCompacted) {
		v.rebuildLocked()
		return
	}
	now := v.now()
	for i := range evs {
		ev := &evs[i]
		if ev.Kind != registry.KindInstance {
			continue
		}
		k := ev.Instance.Key()
		old := v.lookupLocked(k)
		var e *einst
		if ev.Type == registry.EventDeleted {
			if old == nil {
				continue
			}
			v.removeLocked(old)
			e = v.render(ev.Instance)
		} else {
			if old != nil {
				v.removeLocked(old)
			}
			e = v.render(ev.Instance)
			v.putLocked(e)
		}
		v.noteLocked(change{at: now, action: ev.Type, key: k, e: e})
	}
	if head > v.rev {
		v.rev = head
	}
	v.pruneLocked(now)
}

// noteLocked records a change, clearing the instance's previous one.
func (v *view) noteLocked(c change) {
	if i, ok := v.latest[c.key]; ok {
		v.recent[i].e = nil
		v.dead++
	}
	v.latest[c.key] = len(v.recent)
	v.recent = append(v.recent, c)
	if v.dead > 1024 && v.dead > len(v.recent)/2 {
		v.compactLocked(0)
	}
}

// pruneLocked drops changes older than the window.
func (v *view) pruneLocked(now time.Time) {
	cut := now.Add(-v.window)
	i := 0
	for i < len(v.recent) && v.recent[i].at.Before(cut) {
		i++
	}
	if i > 0 {
		v.compactLocked(i)
		v.deltaDoc.valid = false
	}
}

// compactLocked drops the first n changes and every cleared one.
func (v *view) compactLocked(n int) {
	kept := v.recent[:0]
	for j := range v.recent {
		c := v.recent[j]
		if j < n || c.e == nil {
			if j < n && c.e != nil {
				delete(v.latest, c.key)
			}
			continue
		}
		v.latest[c.key] = len(kept)
		kept = append(kept, c)
	}
	clear(v.recent[len(kept):]) // let dropped instances be collected
	v.recent, v.dead = kept, 0
}

func (v *view) lookupLocked(k registry.InstanceKey) *einst {
	a := v.apps[v.appName(k.ServiceKey())]
	if a == nil {
		return nil
	}
	return a.insts[k.ID]
}

func (v *view) putLocked(e *einst) {
	a := v.apps[e.app]
	if a == nil {
		a = &app{name: e.app, insts: map[string]*einst{}}
		v.apps[e.app] = a
		v.names = nil
	}
	a.insts[e.in.ID] = e
	a.ids = nil
	v.counts[e.status]++
	sk := e.in.Key().ServiceKey()
	m := v.byID[e.in.ID]
	if m == nil {
		m = map[registry.ServiceKey]*einst{}
		v.byID[e.in.ID] = m
	}
	m[sk] = e
}

func (v *view) removeLocked(e *einst) {
	a := v.apps[e.app]
	delete(a.insts, e.in.ID)
	a.ids = nil
	if len(a.insts) == 0 {
		delete(v.apps, e.app)
		v.names = nil
	}
	if v.counts[e.status]--; v.counts[e.status] == 0 {
		delete(v.counts, e.status)
	}
	m := v.byID[e.in.ID]
	delete(m, e.in.Key().ServiceKey())
	if len(m) == 0 {
		delete(v.byID, e.in.ID)
	}
}

// hashLocked is apps__hashcode: STATUS_count_ for each status, by name.
func (v *view) hashLocked() string {
	return hashOf(v.counts)
}

func hashOf(counts map[registry.Status]int) string {
	keys := make([]string, 0, len(counts))
	for s, n := range counts {
		if n > 0 {
			keys = append(keys, string(s))
		}
	}
	slices.Sort(keys)
	var b []byte
	for _, s := range keys {
		b = append(b, s...)
		b = append(b, '_')
		b = strconv.AppendInt(b, int64(counts[registry.Status(s)]), 10)
		b = append(b, '_')
	}
	return string(b)
}

func (v *view) sortedNamesLocked() []string {
	if v.names == nil {
		v.names = make([]string, 0, len(v.apps))
		for n := range v.apps {
			v.names = append(v.names, n)
		}
		slices.Sort(v.names)
	}
	return v.names
}

func (a *app) sorted() []*einst {
	if a.ids == nil {
		a.ids = make([]string, 0, len(a.insts))
		for id := range a.insts {
			a.ids = append(a.ids, id)
		}
		slices.Sort(a.ids)
	}
	out := make([]*einst, len(a.ids))
	for i, id := range a.ids {
		out[i] = a.insts[id]
	}
	return out
}

// fragment returns the instance's encoding with actionType ADDED, making
// it on first use.
func (e *einst) fragment(f format) []byte {
	if f == formatJSON {
		if e.json == nil {
			e.json = e.appendJSON(nil, registry.EventAdded)
		}
		return e.json
	}
	if e.xml == nil {
		e.xml = e.appendXML(nil, registry.EventAdded)
	}
	return e.xml
}

// group is one application of a document.
type group struct {
	name  string
	insts []*einst
	// actions, when set, gives each instance's actionType (delta).
	actions []registry.EventType
}

// encodeApps writes an <applications> document.
func encodeApps(f format, rev int64, hash string, groups []group) []byte {
	size := 128
	for _, g := range groups {
		size += 64 + 1400*len(g.insts)
	}
	b := make([]byte, 0, size)
	if f == formatJSON {
		b = append(b, `{"applications":{"versions__delta":"`...)
		b = strconv.AppendInt(b, rev, 10)
		b = append(b, `","apps__hashcode":`...)
		b = appendJSONString(b, hash)
		b = append(b, `,"application":[`...)
		for i, g := range groups {
			if i > 0 {
				b = append(b, ',')
			}
			b = g.appendJSON(b)
		}
		return append(b, "]}}"...)
	}
	b = append(b, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`+"\n<applications><versions__delta>"...)
	b = strconv.AppendInt(b, rev, 10)
	b = append(b, "</versions__delta>"...)
	b = appendXMLElem(b, "apps__hashcode", hash)
	for _, g := range groups {
		b = g.appendXML(b)
	}
	return append(b, "</applications>"...)
}

func (g *group) appendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, g.name)
	b = append(b, `,"instance":[`...)
	for i, e := range g.insts {
		if i > 0 {
			b = append(b, ',')
		}
		if g.actions != nil {
			b = e.appendJSON(b, g.actions[i])
		} else {
			b = append(b, e.fragment(formatJSON)...)
		}
	}
	return append(b, "]}"...)
}

func (g *group) appendXML(b []byte) []byte {
	b = append(b, "<application>"...)
	b = appendXMLElem(b, "name", g.name)
	for i, e := range g.insts {
		if g.actions != nil {
			b = e.appendXML(b, g.actions[i])
		} else {
			b = append(b, e.fragment(formatXML)...)
		}
	}
	return append(b, "</application>"...)
}

// encodeApp writes one <application> document.
func encodeApp(f format, g group) []byte {
	if f == formatJSON {
		b := append([]byte(`{"application":`), g.appendJSON(nil)...)
		return append(b, '}')
	}
	b := []byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n")
	return g.appendXML(b)
}

// encodeInstance writes one <instance> document.
func encodeInstance(f format, e *einst) []byte {
	if f == formatJSON {
		b := append([]byte(`{"instance":`), e.fragment(formatJSON)...)
		return append(b, '}')
	}
	b := []byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n")
	return append(b, e.fragment(formatXML)...)
}

// full returns the /apps document, encoding it if this revision has not
// been encoded in this format yet.
func (v *view) full(f format, gz bool) []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	if !v.fullDoc.valid || v.fullDoc.rev != v.rev {
		v.fullDoc.reset(v.rev)
	}
	if v.fullDoc.plain[f] == nil {
		names := v.sortedNamesLocked()
		groups := make([]group, len(names))
		for i, n := range names {
			groups[i] = group{name: n, insts: v.apps[n].sorted()}
		}
		v.fullDoc.plain[f] = encodeApps(f, v.rev, v.hashLocked(), groups)
		v.encodes.WithLabelValues("apps", f.String()).Inc()
	}
	return v.fullDoc.gzipped(f, gz)
}

// delta returns the /apps/delta document: the last change of every
// instance changed within the window, with the full registry's hash.
func (v *view) delta(f format, gz bool) []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	if !v.deltaDoc.valid || v.deltaDoc.rev != v.rev {
		v.deltaDoc.reset(v.rev)
	}
	if v.deltaDoc.plain[f] == nil {
		byApp := map[string]*group{}
		var names []string
		for _, c := range v.recent {
			if c.e == nil {
				continue // superseded by a later change of the same instance
			}
			g := byApp[c.e.app]
			if g == nil {
				g = &group{name: c.e.app, actions: []registry.EventType{}}
				byApp[c.e.app] = g
				names = append(names, c.e.app)
			}
			g.insts = append(g.insts, c.e)
			g.actions = append(g.actions, c.action)
		}
		slices.Sort(names)
		groups := make([]group, len(names))
		for i, n := range names {
			groups[i] = *byApp[n]
		}
		v.deltaDoc.plain[f] = encodeApps(f, v.rev, v.hashLocked(), groups)
		v.encodes.WithLabelValues("delta", f.String()).Inc()
	}
	return v.deltaDoc.gzipped(f, gz)
}

func (c *docCache) gzipped(f format, gz bool) []byte {
	if !gz {
		return c.plain[f]
	}
	if c.gz[f] == nil {
		c.gz[f] = gzipBytes(c.plain[f])
	}
	return c.gz[f]
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b) / 6)
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// app returns one application's document, or false if it has no instances.
func (v *view) app(name string, f format) ([]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	a := v.apps[name]
	if a == nil {
		return nil, false
	}
	return encodeApp(f, group{name: a.name, insts: a.sorted()}), true
}

// instance returns one instance's document.
func (v *view) instance(appName, id string, f format) ([]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	a := v.apps[appName]
	if a == nil || a.insts[id] == nil {
		return nil, false
	}
	return encodeInstance(f, a.insts[id]), true
}

// instanceByID finds an instance by id alone (/instances/{id}); with the
// same id in several services the first by app name wins.
func (v *view) instanceByID(id string, f format) ([]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	var best *einst
	for _, e := range v.byID[id] {
		if best == nil || e.app < best.app {
			best = e
		}
	}
	if best == nil {
		return nil, false
	}
	return encodeInstance(f, best), true
}

// vip returns the applications whose instances have the given (secure)
// vipAddress, or false if none has. A vipAddress may list several
// addresses separated by commas, as in Eureka.
func (v *view) vip(addr string, secure bool, f format) ([]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	counts := map[registry.Status]int{}
	var groups []group
	for _, n := range v.sortedNamesLocked() {
		var g group
		for _, e := range v.apps[n].sorted() {
			list := e.vip
			if secure {
				list = e.svip
			}
			if hasVIP(list, addr) {
				g.insts = append(g.insts, e)
				counts[e.status]++
			}
		}
		if len(g.insts) > 0 {
			g.name = n
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		return nil, false
	}
	return encodeApps(f, v.rev, hashOf(counts), groups), true
}

func hasVIP(list, addr string) bool {
	for list != "" {
		var one string
		one, list, _ = strings.Cut(list, ",")
		if strings.EqualFold(strings.TrimSpace(one), addr) {
			return true
		}
	}
	return false
}
