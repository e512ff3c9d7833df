package proxy

import (
	"hash/maphash"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/internal/config"
)

// Local rate limiting: each route with a rateLimit has a token bucket in
// this process (or one per client IP address), as Envoy's local_ratelimit.
// A bucket is kept as GCRA (the generic cell rate algorithm) keeps it: one
// number, the time at which the bucket would be full again ("theoretical
// arrival time", tat). A request costs one interval (period / requests);
// it passes while tat stays within burst intervals of now. That is a token
// bucket of burst tokens refilled smoothly, in one atomic word, and the
// wait for the next token (Retry-After) falls out of the same sum.

// limiterEpoch is the origin of the limiters' clock: nanoseconds on the
// monotonic clock since the process started.
var limiterEpoch = time.Now()

// Per-client buckets of one route are bounded: clientShards maps of at
// most clientsPerShard addresses each.
const (
	clientShards    = 16
	clientsPerShard = 4096
)

// rateLimiter is a route's rate limit. Its state outlives config swaps
// that leave the route's rateLimit as it was (Engine.limiters).
type rateLimiter struct {
	policy    config.RateLimitPolicy
	interval  int64 // ns a request costs
	tolerance int64 // burst × interval: how far ahead of now tat may run

	tat     atomic.Int64  // the route's bucket, unless perClient
	clients []clientShard // perClient: a bucket per client address
	seed    maphash.Seed  // spreads addresses over the shards
}

type clientShard struct {
	mu  sync.Mutex
	tat map[netip.Addr]int64
}

func newRateLimiter(p config.RateLimitPolicy) *rateLimiter {
	l := &rateLimiter{policy: p, interval: max(int64(p.Period)/int64(p.Requests), 1)}
	l.tolerance = int64(p.Burst) * l.interval
	if p.PerClient {
		l.seed = maphash.MakeSeed()
		l.clients = make([]clientShard, clientShards)
		for i := range l.clients {
			l.clients[i].tat = map[netip.Addr]int64{}
		}
	}
	return l
}

// allow takes a token for a request from the client at remoteAddr
// (host:port) at now; when there is none it returns how long until there
// is one.
func (l *rateLimiter) allow(remoteAddr string, now time.Time) (ok bool, wait time.Duration) {
	t := int64(now.Sub(limiterEpoch))
	var w int64
	if l.clients == nil {
		w = l.takeShared(t)
	} else {
		w = l.takeClient(clientAddr(remoteAddr), t)
	}
	if w > 0 {
		return false, time.Duration(w)
	}
	return true, 0
}

// takeShared takes a token from the route's bucket: 0, or the wait in ns.
func (l *rateLimiter) takeShared(now int64) int64 {
	for {
		old := l.tat.Load()
		next, wait := l.step(old, now)
		if wait > 0 {
			return wait
		}
		if l.tat.CompareAndSwap(old, next) {
			return 0
		}
	}
}

// step is GCRA's rule: from tat at now, the next tat, or the wait.
func (l *rateLimiter) step(tat, now int64) (next, wait int64) {
	next = max(tat, now) + l.interval
	if over := next - now - l.tolerance; over > 0 {
		return tat, over
	}
	return next, 0
}

func (l *rateLimiter) takeClient(addr netip.Addr, now int64) int64 {
	s := &l.clients[maphash.Comparable(l.seed, addr)%clientShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, known := s.tat[addr]
	next, wait := l.step(tat, now)
	if wait > 0 {
		return wait
	}
	if !known && len(s.tat) >= clientsPerShard {
		s.makeRoom(now)
	}
	s.tat[addr] = next
	return 0
}

// makeRoom frees entries of a full shard: first the clients whose bucket
// has filled up again (tat in the past: forgetting them changes nothing),
// then, if that freed less than an eighth, clients at random (they start
// again with a full bucket). Freeing an eighth at a time keeps the cost of
// a sweep shared by the many inserts it makes room for.
func (s *clientShard) makeRoom(now int64) {
	for a, tat := range s.tat {
		if tat <= now {
			delete(s.tat, a)
		}
	}
	for a := range s.tat { // map order is random
		if len(s.tat) <= clientsPerShard-clientsPerShard/8 {
			break
		}
		delete(s.tat, a)
	}
}

// clientAddr is the IP address of a request's connection (X-Forwarded-For
// is the client's to write, so it is not trusted). Addresses that do not
// parse share the zero address's bucket.
func clientAddr(remoteAddr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(remoteAddr); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// limiterFor returns the rate limiter of route name for a config being
// built (e.mu held): the running one when its policy is unchanged, so a
// config swap keeps the buckets' state, else a new one; nil when the route
// has no rate limit.
func (e *Engine) limiterFor(name string, spec *config.RouteSpec) *rateLimiter {
	p, ok := spec.RateLimitOrDefault()
	if !ok {
		return nil
	}
	if l := e.limiters[name]; l != nil && l.policy == p {
		return l
	}
	return newRateLimiter(p)
}

// keepLimiters records the limiters of the config just swapped in (e.mu
// held): those of routes that went, or whose limit changed, are dropped.
func (e *Engine) keepLimiters(st *state) {
	m := make(map[string]*rateLimiter)
	for _, r := range st.routes {
		if r.limit != nil {
			m[r.name] = r.limit
		}
	}
	e.limiters = m
}

// admit applies the route's rate limit to a request begun at start. A
// request over the limit is answered here: 429 with Retry-After (whole
// seconds, at least 1) and a JSON error, logged and counted.
func (e *Engine) admit(w http.ResponseWriter, r *http.Request, rt *route, rec *logRecord, start time.Time) bool {
	ok, wait := rt.limit.allow(r.RemoteAddr, start)
	if ok {
		return true
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	w.Header()["Retry-After"] = []string{strconv.FormatInt(max(secs, 1), 10)}
	if rt.metrics != nil {
		rt.metrics.limited.Inc()
	}
	e.finishError(w, r, rt, rec, nil, http.StatusTooManyRequests, "rate limit exceeded")
	return false
}
