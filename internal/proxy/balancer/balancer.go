// Package balancer picks the backend endpoint for each proxied request:
// round robin, random, least request (power of two choices), latency-aware
// (power of two choices over a peak EWMA of latency, as Finagle and Linkerd
// do) and consistent hashing (a ring, as Envoy's ring_hash), all honouring
// endpoint weights, preferring the proxy's own zone, and skipping endpoints
// that outlier detection has ejected.
//
// A Balancer is immutable and built once per endpoint set; picking takes no
// lock and allocates nothing. The per-endpoint counters (requests in
// flight, latency) live in Endpoint, which the caller keeps across
// endpoint-set changes, so a new Balancer starts with what is known.
package balancer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Endpoint is one backend instance.
type Endpoint struct {
	Addr   string
	Weight int // ≥ 1; 0 is read as 1
	Zone   string
	// Owner is the caller's state for the endpoint (the proxy's connection
	// pool), so a pick leads to it without a map lookup.
	Owner any

	active   atomic.Int64  // requests in flight
	ewma     atomic.Uint64 // float64 bits: peak EWMA of latency, in ns
	stamp    atomic.Int64  // when ewma was last updated, Unix ns
	ejection atomic.Int64  // ejected until this Unix ns; 0: not ejected

	failures  atomic.Int32 // consecutive failures (outlier detection)
	ejections atomic.Int32 // times ejected, less the quiet periods since (outlier detection)
}

// NewEndpoint returns an endpoint.
func NewEndpoint(addr string, weight int, zone string) *Endpoint {
	return &Endpoint{Addr: addr, Weight: max(weight, 1), Zone: zone}
}

func (e *Endpoint) weight() int { return max(e.Weight, 1) }

// Active returns the requests in flight.
func (e *Endpoint) Active() int64 { return e.active.Load() }

// Start counts a request in flight; call the returned function once when
// it ends, with its latency (to the response headers) and whether it got
// an answer (failures do not feed the latency average).
func (e *Endpoint) Start() func(latency time.Duration, ok bool) {
	e.active.Add(1)
	var done atomic.Bool
	return func(latency time.Duration, ok bool) {
		if !done.CompareAndSwap(false, true) {
			return
		}
		e.active.Add(-1)
		if ok {
			e.Observe(latency, time.Now())
		}
	}
}

// Begin counts a request in flight; End must follow once. Unlike Start it
// allocates nothing.
func (e *Endpoint) Begin() { e.active.Add(1) }

// End ends a request Begin counted, with its latency (to the response
// headers) and whether it got an answer.
func (e *Endpoint) End(latency time.Duration, ok bool, now time.Time) {
	e.active.Add(-1)
	if ok {
		e.Observe(latency, now)
	}
}

// decay is the time constant of the latency average: a sample's weight
// halves about every 7 s (Finagle's default is 10 s).
const decay = 10 * time.Second

// Observe folds a latency sample into the peak EWMA: a sample above the
// average replaces it at once (react to a slowdown immediately), one below
// is averaged in with a weight that grows with the time since the last.
func (e *Endpoint) Observe(latency time.Duration, now time.Time) {
	rtt := float64(latency)
	for {
		old := e.ewma.Load()
		prev := math.Float64frombits(old)
		last := e.stamp.Load()
		var next float64
		switch {
		case old == 0 || rtt > prev:
			next = rtt
		default:
			w := math.Exp(-float64(now.UnixNano()-last) / float64(decay))
			next = prev*w + rtt*(1-w)
		}
		if e.ewma.CompareAndSwap(old, math.Float64bits(next)) {
			e.stamp.Store(now.UnixNano())
			return
		}
	}
}

// Latency returns the current latency average (0: no sample yet).
func (e *Endpoint) Latency() time.Duration {
	return time.Duration(math.Float64frombits(e.ewma.Load()))
}

// Eject takes the endpoint out of rotation until the given time.
func (e *Endpoint) Eject(until time.Time) { e.ejection.Store(until.UnixNano()) }

// Restore puts an ejected endpoint back.
func (e *Endpoint) Restore() { e.ejection.Store(0) }

// Ejected reports whether the endpoint is out of rotation at now.
func (e *Endpoint) Ejected(now time.Time) bool {
	u := e.ejection.Load()
	return u != 0 && now.UnixNano() < u
}

// Policy names a balancing algorithm.
type Policy string

const (
	RoundRobin   Policy = "round_robin"
	Random       Policy = "random"
	LeastRequest Policy = "least_request"
	EWMA         Policy = "ewma"
	RingHash     Policy = "ring_hash"
)

// Valid reports whether p names a policy.
func (p Policy) Valid() bool {
	switch p {
	case RoundRobin, Random, LeastRequest, EWMA, RingHash:
		return true
	}
	return false
}

// Balancer picks endpoints.
type Balancer struct {
	policy Policy
	local  *pool // the proxy's own zone; nil when it has no endpoints
	all    *pool
}

// pool is a set of endpoints with what each policy needs precomputed.
type pool struct {
	eps      []*Endpoint
	schedule []uint32 // round robin: endpoint indexes, interleaved by weight
	next     atomic.Uint64
	cum      []int // random: cumulative weights
	total    int
	ring     []ringPoint // ring hash: sorted
}

type ringPoint struct {
	hash uint64
	ep   uint32
}

// New builds a balancer over eps. localZone, when some endpoints are in
// it, is preferred: requests go to the local zone while it has endpoints
// that are not ejected.
func New(policy Policy, eps []*Endpoint, localZone string) (*Balancer, error) {
	if !policy.Valid() {
		return nil, fmt.Errorf("unknown policy %q: want round_robin, random, least_request, ewma or ring_hash", policy)
	}
	b := &Balancer{policy: policy, all: newPool(policy, eps)}
	if localZone != "" {
		var local []*Endpoint
		for _, e := range eps {
			if e.Zone == localZone {
				local = append(local, e)
			}
		}
		if len(local) > 0 && len(local) < len(eps) {
			b.local = newPool(policy, local)
		}
	}
	return b, nil
}

// Len returns the number of endpoints.
func (b *Balancer) Len() int { return len(b.all.eps) }

// Pick returns the endpoint for a request, or nil when there is none.
// key is the request's hash key (ring hash; others ignore it); hasKey false
// makes ring hash pick at random. Ejected endpoints are skipped; when every
// endpoint is ejected, all are used (Envoy's panic mode: better some
// traffic to a maybe-bad endpoint than none).
func (b *Balancer) Pick(key uint64, hasKey bool) *Endpoint {
	return b.PickAt(key, hasKey, time.Now())
}

// PickAt is Pick for a caller that has read the clock (ejections end at
// a time).
func (b *Balancer) PickAt(key uint64, hasKey bool, now time.Time) *Endpoint {
	if b.local != nil {
		if e := b.local.pick(b.policy, key, hasKey, now, true); e != nil {
			return e
		}
	}
	if e := b.all.pick(b.policy, key, hasKey, now, true); e != nil {
		return e
	}
	return b.all.pick(b.policy, key, hasKey, now, false)
}

func newPool(policy Policy, eps []*Endpoint) *pool {
	p := &pool{eps: eps}
	switch policy {
	case RoundRobin:
		p.schedule = schedule(eps)
		p.next.Store(rand.Uint64()) // proxies started together do not all begin with the first endpoint
	case Random, LeastRequest, EWMA:
		p.cum = make([]int, len(eps))
		for i, e := range eps {
			p.total += e.weight()
			p.cum[i] = p.total
		}
	case RingHash:
		p.ring = buildRing(eps)
	}
	return p
}

// attempts bounds the tries to find an endpoint that is not ejected
// before a pool gives up (then the caller falls back).
const attempts = 8

func (p *pool) pick(policy Policy, key uint64, hasKey bool, now time.Time, skipEjected bool) *Endpoint {
	n := len(p.eps)
	if n == 0 {
		return nil
	}
	ok := func(e *Endpoint) bool { return !skipEjected || !e.Ejected(now) }
	switch policy {
	case RoundRobin:
		for range min(attempts, len(p.schedule)) {
			e := p.eps[p.schedule[p.next.Add(1)%uint64(len(p.schedule))]]
			if ok(e) {
				return e
			}
		}
		return p.scan(ok)
	case Random:
		for range attempts {
			if e := p.weighted(); ok(e) {
				return e
			}
		}
		return p.scan(ok)
	case LeastRequest, EWMA:
		// Power of two choices: two picks by weight, the less loaded wins.
		var best *Endpoint
		bestCost := math.Inf(1)
		for tries, picked := 0, 0; tries < attempts && picked < 2; tries++ {
			e := p.weighted()
			if !ok(e) || (picked == 1 && e == best && n > 1) {
				continue
			}
			picked++
			if c := cost(policy, e); c < bestCost {
				best, bestCost = e, c
			}
		}
		if best != nil {
			return best
		}
		return p.scan(ok)
	case RingHash:
		if !hasKey {
			key = rand.Uint64()
		}
		i := p.ringIndex(key)
		for j := range min(len(p.ring), attempts*4) {
			if e := p.eps[p.ring[(i+j)%len(p.ring)].ep]; ok(e) {
				return e
			}
		}
		return p.scan(ok)
	}
	return nil
}

// cost is what power of two choices compares: requests in flight per unit
// of weight (least request), or latency times requests in flight plus one
// (peak EWMA; an endpoint with no sample yet costs as little as possible
// so that it gets tried).
func cost(policy Policy, e *Endpoint) float64 {
	active := float64(e.active.Load())
	if policy == LeastRequest {
		return active / float64(e.weight())
	}
	return float64(e.Latency()) * (active + 1) / float64(e.weight())
}

// weighted picks an endpoint at random in proportion to weight.
func (p *pool) weighted() *Endpoint {
	if len(p.eps) == 1 {
		return p.eps[0]
	}
	r := rand.IntN(p.total)
	lo, hi := 0, len(p.cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if p.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return p.eps[lo]
}

// scan returns the first acceptable endpoint from a random start.
func (p *pool) scan(ok func(*Endpoint) bool) *Endpoint {
	n := len(p.eps)
	start := rand.IntN(n)
	for i := range n {
		if e := p.eps[(start+i)%n]; ok(e) {
			return e
		}
	}
	return nil
}

// schedule interleaves endpoint indexes by weight with nginx's smooth
// weighted round robin, so that heavy endpoints do not get bursts. Weights
// are scaled down to keep the schedule at most maxSchedule long.
func schedule(eps []*Endpoint) []uint32 {
	const maxSchedule = 4096
	total := 0
	for _, e := range eps {
		total += e.weight()
	}
	scale := 1.0
	if total > maxSchedule {
		scale = float64(maxSchedule) / float64(total)
	}
	w := make([]int, len(eps))
	sum := 0
	for i, e := range eps {
		w[i] = max(int(float64(e.weight())*scale), 1)
		sum += w[i]
	}
	cur := make([]int, len(eps))
	out := make([]uint32, 0, sum)
	for range sum {
		best := 0
		for i := range eps {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		out = append(out, uint32(best))
	}
	return out
}
