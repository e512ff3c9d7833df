package eureka

import (
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
	recent []*change
	latest map[registry.InstanceKey]int // key -> index in recent of its live change
	dead   int
	seq    int64
	byID   map[string]map[registry.ServiceKey]*einst

	fullDocs  [2]docState // by format
	deltaDocs [2]docState
	deltaApps map[string]*deltaApp // each app's delta encodings, while valid
	defl      deflater

	rebuilds int64
	encodes  *prometheus.CounterVec // documents composed, by document and format
	appEncs  prometheus.Counter     // application encodings
}

type app struct {
	name  string
	insts map[string]*einst // by instance id
	ids   []string          // sorted; nil when the set changed
	enc   [2]*encoded       // by format; nil when the app changed
}

// encoded is one application's encoding, and its DEFLATE segment once a
// gzip answer needed it.
type encoded struct {
	plain []byte
	seg   []byte
}

type change struct {
	seq    int64
	at     time.Time
	action registry.EventType
	key    registry.InstanceKey
	e      *einst
	frag   [2][]byte // the instance with this change's actionType, by format
}

// deltaApp holds one application's part of the delta; sig tells whether
// the app's live changes are still the ones it was made from.
type deltaApp struct {
	sig [3]int64 // count, first and last seq of the app's live changes
	enc [2]*encoded
}

// docState is one document for one revision and format.
type docState struct {
	rev   int64
	valid bool
	doc   composed
	plain *parts
	gz    *parts
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

func newView(reg *registry.Registry, ns string, window time.Duration) *view {
	v := &view{reg: reg, ns: ns, window: window, now: time.Now,
		encodes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_eureka_documents_encoded_total",
			Help: "Eureka /apps and /apps/delta documents composed: at most one per registry revision and format, however many clients ask.",
		}, []string{"document", "format"}),
		appEncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_eureka_app_encodings_total",
			Help: "Applications encoded for Eureka documents: once per change of an application and format.",
		})}
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
	v.fullDocs, v.deltaDocs, v.deltaApps = [2]docState{}, [2]docState{}, map[string]*deltaApp{}
	for _, in := range snap.Instances {
		action := registry.EventAdded
		if in.ModifyRevision != in.CreateRevision {
			action = registry.EventModified
		}
		v.putLocked(v.render(in, action, time.Time{}))
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
			e = v.render(ev.Instance, ev.Type, now)
		} else {
			if old != nil {
				v.removeLocked(old)
			}
			e = v.render(ev.Instance, ev.Type, now)
			v.putLocked(e)
		}
		v.seq++
		v.noteLocked(&change{seq: v.seq, at: now, action: ev.Type, key: k, e: e})
	}
	if head > v.rev {
		v.rev = head
	}
	v.pruneLocked(now)
}

// noteLocked records a change, clearing the instance's previous one.
func (v *view) noteLocked(c *change) {
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
		v.deltaDocs[formatJSON].valid, v.deltaDocs[formatXML].valid = false, false
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
	a.ids, a.enc = nil, [2]*encoded{}
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
	a.ids, a.enc = nil, [2]*encoded{}
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

// hashOf is apps__hashcode: STATUS_count_ for each status, by name.
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

// group is one application of a document.
type group struct {
	name  string
	insts []*einst
	// changes, when set, gives the instances with their delta actionTypes.
	changes []*change
}

func (g *group) appendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, g.name)
	b = append(b, `,"instance":[`...)
	for i, e := range g.insts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.fragment(formatJSON)...)
	}
	for i, c := range g.changes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, c.fragment(formatJSON)...)
	}
	return append(b, "]}"...)
}

func (g *group) appendXML(b []byte) []byte {
	b = append(b, "<application>"...)
	b = appendXMLElem(b, "name", g.name)
	for _, e := range g.insts {
		b = append(b, e.fragment(formatXML)...)
	}
	for _, c := range g.changes {
		b = append(b, c.fragment(formatXML)...)
	}
	return append(b, "</application>"...)
}

func (g *group) encode(f format) []byte {
	n := 64
	for _, e := range g.insts {
		n += len(e.fragment(f)) + 1
	}
	for _, c := range g.changes {
		n += len(c.fragment(f)) + 1
	}
	b := make([]byte, 0, n)
	if f == formatJSON {
		return g.appendJSON(b)
	}
	return g.appendXML(b)
}

// fragment returns the instance's encoding with its last action, making
// it on first use.
func (e *einst) fragment(f format) []byte {
	if f == formatJSON {
		if e.json == nil {
			e.json = e.appendJSON(nil, e.action)
		}
		return e.json
	}
	if e.xml == nil {
		e.xml = e.appendXML(nil, e.action)
	}
	return e.xml
}

// fragment returns the changed instance with the change's actionType.
func (c *change) fragment(f format) []byte {
	if c.action == c.e.action {
		return c.e.fragment(f)
	}
	if c.frag[f] == nil {
		if f == formatJSON {
			c.frag[f] = c.e.appendJSON(nil, c.action)
		} else {
			c.frag[f] = c.e.appendXML(nil, c.action)
		}
	}
	return c.frag[f]
}

const xmlDecl = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n"

// appsHeader and appsFooter wrap the applications of an <applications>
// document.
func appsHeader(f format, rev int64, hash string) []byte {
	var b []byte
	if f == formatJSON {
		b = append(b, `{"applications":{"versions__delta":"`...)
		b = strconv.AppendInt(b, rev, 10)
		b = append(b, `","apps__hashcode":`...)
		b = appendJSONString(b, hash)
		return append(b, `,"application":[`...)
	}
	b = append(b, xmlDecl+"<applications><versions__delta>"...)
	b = strconv.AppendInt(b, rev, 10)
	b = append(b, "</versions__delta>"...)
	return appendXMLElem(b, "apps__hashcode", hash)
}

var (
	appsFooter = [2][]byte{formatJSON: []byte("]}}"), formatXML: []byte("</applications>")}
	comma      = []byte(",")
)

// composeApps makes an <applications> document of encoded applications.
func composeApps(f format, rev int64, hash string, apps []*encoded) composed {
	var c composed
	c.add(appsHeader(f, rev, hash), nil)
	for i, a := range apps {
		if i > 0 && f == formatJSON {
			c.add(comma, nil)
		}
		c.add(a.plain, a)
	}
	c.add(appsFooter[f], nil)
	return c
}

// appEncLocked returns the application's encoding, making it if the app
// changed since the last one.
func (v *view) appEncLocked(a *app, f format) *encoded {
	if a.enc[f] == nil {
		a.enc[f] = &encoded{plain: (&group{name: a.name, insts: a.sorted()}).encode(f)}
		v.appEncs.Inc()
	}
	return a.enc[f]
}

// outputLocked returns the document's parts, plain or gzip, deriving and
// keeping them on first use. Documents up to joinLimit are joined into one
// buffer: written piece by piece, a gzip /apps of 100 applications took
// some 200 write calls and served at a third of the rate.
func (v *view) outputLocked(d *docState, gz bool) parts {
	out := &d.plain
	if gz {
		out = &d.gz
	}
	if *out == nil {
		var p parts
		if gz {
			p = d.doc.gzipParts(v.segLocked)
		} else {
			p = d.doc.plainParts()
		}
		if len(p.bufs) > 1 && p.size <= joinLimit {
			p.bufs = [][]byte{p.bytes()}
		}
		*out = &p
	}
	return **out
}

// joinLimit is the largest document joined into one buffer; larger ones
// are written in their pieces, each big enough to amortize its write.
const joinLimit = 4 << 20

// segLocked returns e's DEFLATE segment, compressing it on first use.
func (v *view) segLocked(e *encoded) []byte {
	if e.seg == nil {
		e.seg = v.defl.segment(e.plain)
	}
	return e.seg
}

// full returns the /apps document. A new revision composes it from the
// applications' encodings, re-encoding only the applications that changed.
func (v *view) full(f format, gz bool) parts {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	d := &v.fullDocs[f]
	if !d.valid || d.rev != v.rev {
		names := v.sortedNamesLocked()
		apps := make([]*encoded, len(names))
		for i, n := range names {
			apps[i] = v.appEncLocked(v.apps[n], f)
		}
		*d = docState{rev: v.rev, valid: true, doc: composeApps(f, v.rev, hashOf(v.counts), apps)}
		v.encodes.WithLabelValues("apps", f.String()).Inc()
	}
	return v.outputLocked(d, gz)
}

// delta returns the /apps/delta document: the latest change of every
// instance changed within the window, with the full registry's hash.
// Each application's part is kept until its changes in the window change.
func (v *view) delta(f format, gz bool) parts {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	d := &v.deltaDocs[f]
	if !d.valid || d.rev != v.rev {
		byApp := map[string][]*change{}
		var names []string
		for _, c := range v.recent {
			if c.e == nil {
				continue // superseded by a later change of the same instance
			}
			if _, ok := byApp[c.e.app]; !ok {
				names = append(names, c.e.app)
			}
			byApp[c.e.app] = append(byApp[c.e.app], c)
		}
		slices.Sort(names)
		apps := make([]*encoded, len(names))
		for i, n := range names {
			cs := byApp[n]
			sig := [3]int64{int64(len(cs)), cs[0].seq, cs[len(cs)-1].seq}
			da := v.deltaApps[n]
			if da == nil || da.sig != sig {
				da = &deltaApp{sig: sig}
				v.deltaApps[n] = da
			}
			if da.enc[f] == nil {
				da.enc[f] = &encoded{plain: (&group{name: n, changes: cs}).encode(f)}
				v.appEncs.Inc()
			}
			apps[i] = da.enc[f]
		}
		for n := range v.deltaApps {
			if _, ok := byApp[n]; !ok {
				delete(v.deltaApps, n)
			}
		}
		*d = docState{rev: v.rev, valid: true, doc: composeApps(f, v.rev, hashOf(v.counts), apps)}
		v.encodes.WithLabelValues("delta", f.String()).Inc()
	}
	return v.outputLocked(d, gz)
}

// oneLocked makes a small document (one application or instance) between
// a prefix and a suffix.
func (v *view) oneLocked(body []byte, prefix, suffix string, gz bool) parts {
	var c composed
	c.add([]byte(prefix), nil)
	c.add(body, &encoded{plain: body})
	c.add([]byte(suffix), nil)
	d := docState{doc: c}
	return v.outputLocked(&d, gz)
}

// app returns one application's document, or false if it has no instances.
func (v *view) app(name string, f format, gz bool) (parts, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	a := v.apps[name]
	if a == nil {
		return parts{}, false
	}
	body := v.appEncLocked(a, f).plain
	if f == formatJSON {
		return v.oneLocked(body, `{"application":`, "}", gz), true
	}
	return v.oneLocked(body, xmlDecl, "", gz), true
}

func (v *view) instanceDocLocked(e *einst, f format, gz bool) parts {
	if f == formatJSON {
		return v.oneLocked(e.fragment(f), `{"instance":`, "}", gz)
	}
	return v.oneLocked(e.fragment(f), xmlDecl, "", gz)
}

// instance returns one instance's document.
func (v *view) instance(appName, id string, f format, gz bool) (parts, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	a := v.apps[appName]
	if a == nil || a.insts[id] == nil {
		return parts{}, false
	}
	return v.instanceDocLocked(a.insts[id], f, gz), true
}

// instanceByID finds an instance by id alone (/instances/{id}); with the
// same id in several services the first by app name wins.
func (v *view) instanceByID(id string, f format, gz bool) (parts, bool) {
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
		return parts{}, false
	}
	return v.instanceDocLocked(best, f, gz), true
}

// vip returns the applications whose instances have the given (secure)
// vipAddress. A vipAddress may list several addresses separated by commas,
// as in Eureka. With none, the answer is an empty list, as from Netflix's
// server (its VIP cache answers 200 with no applications), so that clients
// following one VIP see it empty rather than keep their last list.
func (v *view) vip(addr string, secure bool, f format, gz bool) parts {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncLocked()
	counts := map[registry.Status]int{}
	var apps []*encoded
	for _, n := range v.sortedNamesLocked() {
		g := group{name: n}
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
			apps = append(apps, &encoded{plain: g.encode(f)})
		}
	}
	d := docState{doc: composeApps(f, v.rev, hashOf(counts), apps)}
	return v.outputLocked(&d, gz)
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
