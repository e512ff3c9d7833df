package dns

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
	mdns "github.com/miekg/dns"
)

// index is what DNS answers come from: an immutable picture of the
// registry at one revision. The follower builds a new one after each batch
// of changes and swaps it in; queries load it with no lock.
type index struct {
	rev        int64
	services   map[registry.ServiceKey]*svcNode
	namespaces map[string]int // services per namespace, for <ns>.svc.Z
}

// svcNode is one service's healthy instances, in id order.
type svcNode struct {
	insts []target
}

// target is an instance as DNS shows it.
type target struct {
	in    *registry.Instance
	ip    net.IP // nil when the address is a host name
	v4    bool
	label string // its name under the service: <label>.<svc>.<ns>.svc.Z
	// rr holds, per zone, its A or AAAA record owned by the service's
	// lower-case name: answers to that name (nearly every query) share
	// these immutable records instead of making new ones.
	rr []mdns.RR
}

func (n *svcNode) byLabel(l string) *target {
	for i := range n.insts {
		if n.insts[i].label == l {
			return &n.insts[i]
		}
	}
	return nil
}

// follower keeps an index current from the change feed.
type follower struct {
	reg   *registry.Registry
	zones []string // fully qualified, the Server's order
	ttl   uint32
	cur   atomic.Pointer[index]
	state map[registry.ServiceKey]map[string]*registry.Instance
	rev   int64
	// published is closed and replaced at each swap (tests wait on it).
	swaps atomic.Int64
}

func newFollower(reg *registry.Registry, zones []string, ttl uint32) *follower {
	f := &follower{reg: reg, zones: zones, ttl: ttl}
	f.resync()
	return f
}

func (f *follower) load() *index { return f.cur.Load() }

// resync loads the whole registry from a snapshot.
func (f *follower) resync() {
	snap := f.reg.Snapshot(registry.Filter{})
	f.state = map[registry.ServiceKey]map[string]*registry.Instance{}
	for _, s := range snap.Services {
		f.state[s.Key()] = map[string]*registry.Instance{}
	}
	for _, in := range snap.Instances {
		k := in.Key().ServiceKey()
		if f.state[k] == nil {
			f.state[k] = map[string]*registry.Instance{}
		}
		f.state[k][in.ID] = in
	}
	f.rev = snap.Revision
	ix := &index{rev: f.rev, services: make(map[registry.ServiceKey]*svcNode, len(f.state)), namespaces: map[string]int{}}
	for k, insts := range f.state {
		ix.services[k] = f.buildNode(k, insts)
		ix.namespaces[k.Namespace]++
	}
	f.cur.Store(ix)
	f.swaps.Add(1)
}

// run applies the feed until ctx ends, publishing a new index after each
// batch of events.
func (f *follower) run(ctx context.Context) {
	for {
		evs, _, notify, err := f.reg.Feed().Since(f.rev, 0)
		if errors.Is(err, registry.ErrCompacted) {
			f.resync()
			continue
		}
		if len(evs) > 0 {
			f.apply(evs)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-notify:
		}
	}
}

func (f *follower) apply(evs []registry.Event) {
	dirty := map[registry.ServiceKey]bool{}
	nsChanged := false
	for i := range evs {
		ev := &evs[i]
		switch ev.Kind {
		case registry.KindService:
			k := ev.Service.Key()
			if ev.Type == registry.EventDeleted {
				delete(f.state, k)
			} else if f.state[k] == nil {
				f.state[k] = map[string]*registry.Instance{}
			}
			dirty[k], nsChanged = true, true
		case registry.KindInstance:
			k := ev.Instance.Key().ServiceKey()
			m := f.state[k]
			if ev.Type == registry.EventDeleted {
				if m != nil {
					delete(m, ev.Instance.ID)
				}
			} else {
				if m == nil {
					m = map[string]*registry.Instance{}
					f.state[k] = m
					nsChanged = true
				}
				m[ev.Instance.ID] = ev.Instance
			}
			dirty[k] = true
		}
		f.rev = ev.Revision
	}
	old := f.cur.Load()
	ix := &index{rev: f.rev, services: make(map[registry.ServiceKey]*svcNode, len(f.state)), namespaces: old.namespaces}
	for k, n := range old.services {
		if !dirty[k] {
			ix.services[k] = n
		}
	}
	for k := range dirty {
		if insts, ok := f.state[k]; ok {
			ix.services[k] = f.buildNode(k, insts)
		}
	}
	if nsChanged {
		ix.namespaces = map[string]int{}
		for k := range ix.services {
			ix.namespaces[k.Namespace]++
		}
	}
	f.cur.Store(ix)
	f.swaps.Add(1)
}

// buildNode keeps the healthy instances of a service, in id order, and
// names each: its id when that is a DNS label, else its address with
// dashes (10-0-0-5), made unique within the service.
func (f *follower) buildNode(k registry.ServiceKey, insts map[string]*registry.Instance) *svcNode {
	n := &svcNode{}
	for _, in := range insts {
		if in.Healthy() {
			n.insts = append(n.insts, target{in: in})
		}
	}
	slices.SortFunc(n.insts, func(a, b target) int { return strings.Compare(a.in.ID, b.in.ID) })
	used := map[string]bool{}
	for i := range n.insts {
		t := &n.insts[i]
		if ip := net.ParseIP(t.in.Address); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				t.ip, t.v4 = v4, true
			} else {
				t.ip = ip
			}
		}
		if id := strings.ToLower(t.in.ID); isLabel(id) && !used[id] {
			t.label = id
		}
	}
	for i := range n.insts {
		t := &n.insts[i]
		if t.label != "" {
			used[t.label] = true
		}
	}
	for i := range n.insts {
		t := &n.insts[i]
		if t.label != "" {
			continue
		}
		base := addrLabel.Replace(strings.ToLower(t.in.Address))
		base = strings.Trim(base, "-")
		if len(base) > 56 || !isLabel(base) {
			base = "i"
		}
		l := base
		for j := 2; used[l]; j++ {
			l = base + "-" + strconv.Itoa(j)
		}
		t.label = l
		used[l] = true
	}
	for zi, z := range f.zones {
		name := k.Name + "." + k.Namespace + ".svc." + z
		for i := range n.insts {
			t := &n.insts[i]
			if zi == 0 {
				t.rr = make([]mdns.RR, len(f.zones))
			}
			hdr := mdns.RR_Header{Name: name, Class: mdns.ClassINET, Ttl: f.ttl}
			switch {
			case t.ip == nil:
			case t.v4:
				hdr.Rrtype = mdns.TypeA
				t.rr[zi] = &mdns.A{Hdr: hdr, A: t.ip}
			default:
				hdr.Rrtype = mdns.TypeAAAA
				t.rr[zi] = &mdns.AAAA{Hdr: hdr, AAAA: t.ip}
			}
		}
	}
	return n
}

// addrLabel turns an address into a label: 10.0.1.2 -> 10-0-1-2.
var addrLabel = strings.NewReplacer(".", "-", ":", "-")

// waitRevision waits until the published index holds rev (tests).
func (f *follower) waitRevision(ctx context.Context, rev int64) error {
	for {
		if f.load().rev >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
