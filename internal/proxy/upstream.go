package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairnhq/cairn/internal/proxy/balancer"
)

// upstream is one backend instance (an address) as the proxy talks to it:
// its balancer endpoint (load, latency, ejection), its pool of HTTP/1.1
// connections and its circuit-breaking limits. Upstreams are kept across
// config changes by key, so a new config keeps the connections, the
// latency averages and the ejections of the old one.
type upstream struct {
	key  string // addr, plus "|tls" and "|h2" when those are on
	addr string
	ip   netip.AddrPort // addr when it is an IP address and port; else zero
	tls  bool
	h2   bool
	ep   *balancer.Endpoint

	// Limits (circuit breaking), set when a config is built: the smallest
	// any route using this instance asks for.
	maxConns    atomic.Int64
	maxPending  atomic.Int64
	maxRequests atomic.Int64
	connectTO   atomic.Int64 // ns

	conns    atomic.Int64 // open connections (HTTP/1.1 pool, and tunnels)
	pending  atomic.Int64 // requests waiting for a connection
	requests atomic.Int64 // requests in flight

	mu    sync.Mutex
	idle  []*upConn // LIFO: the most recently used is warmest
	avail chan struct{}

	retired atomic.Bool // no longer in any config: close connections as they come back

	rt http.RoundTripper // TLS or HTTP/2 backends: the standard transport
}

// maxIdlePerUpstream bounds the idle connections kept per instance.
const (
	maxIdlePerUpstream = 512
	idleConnTimeout    = 90 * time.Second
	// probeIdle: a connection idle this long is checked before reuse, as
	// backends close idle connections on their own timeouts (gunicorn
	// after 2s, Node after 5s) and a request sent on one fails unless it
	// can be sent again. Busy connections are reused unchecked.
	probeIdle = 200 * time.Millisecond
)

func newUpstream(key, addr string, useTLS, h2 bool, zone string, weight int) *upstream {
	u := &upstream{key: key, addr: addr, tls: useTLS, h2: h2, avail: make(chan struct{}, 1)}
	u.ip, _ = netip.ParseAddrPort(addr)
	u.ep = balancer.NewEndpoint(addr, weight, zone)
	u.ep.Owner = u
	u.maxConns.Store(1024)
	u.maxPending.Store(1024)
	u.maxRequests.Store(1024)
	u.connectTO.Store(int64(2 * time.Second))
	if useTLS || h2 {
		u.rt = u.stdTransport()
	}
	return u
}

// stdTransport is the round tripper for TLS and HTTP/2 backends (gRPC).
// The HTTP/1.1 fast path below does not cover them.
func (u *upstream) stdTransport() http.RoundTripper {
	t := &http.Transport{
		DialContext:         u.dial,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     idleConnTimeout,
		ForceAttemptHTTP2:   u.h2,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		DisableCompression:  true,
		// Redirects are the client's business, and so is the body's
		// encoding; the proxy passes both through.
	}
	p := new(http.Protocols)
	switch {
	case u.h2 && !u.tls:
		p.SetUnencryptedHTTP2(true)
	case u.h2:
		p.SetHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	t.Protocols = p
	return t
}

func (u *upstream) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: time.Duration(u.connectTO.Load()), KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &connectError{err}
	}
	return c, nil
}

// connectError marks a failure to connect (retryable for any method: the
// backend never saw the request).
type connectError struct{ err error }

func (e *connectError) Error() string { return "connect: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// errCircuitOpen is a request refused because an instance is at a limit.
var errCircuitOpen = errors.New("circuit open: backend instance at its connection, pending or request limit")

// upConn is one pooled HTTP/1.1 connection to an upstream.
type upConn struct {
	up     *upstream
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	hdr    []byte    // scratch for the response head
	dl     time.Time // the deadline last set on c
	rc     syscall.RawConn
	ev     evOwner // an event loop's connection (c is nil): given back to it
}

// evOwner is an event loop's hold on one of its upstream connections.
type evOwner interface {
	// release takes the connection back after an exchange (see put).
	release(broken bool, now time.Time)
}

// setDeadline sets the connection's deadline to t unless the one in place
// is within an eighth of timeout of it: a deadline change costs a runtime
// timer update, and keep-alive requests would pay it on every try. So a
// timeout fires within an eighth of its length of when it should.
func (uc *upConn) setDeadline(t time.Time, timeout time.Duration) {
	if d := t.Sub(uc.dl); d < timeout/8 && d > -timeout/8 {
		return
	}
	uc.dl = t
	_ = uc.c.SetDeadline(t)
}

// extendForBody makes sure a body being read has at least a second
// before the deadline, else gives it the idle timeout: short responses
// are read well within their try's deadline, streams get extended.
func (uc *upConn) extendForBody(idle time.Duration, now time.Time) {
	if uc.dl.Sub(now) < time.Second {
		uc.dl = now.Add(idle)
		_ = uc.c.SetDeadline(uc.dl)
	}
}

// get returns a connection: an idle one, a new one, or (at the connection
// limit) the next one returned, waiting at most until deadline. reused
// tells an idle connection, which the backend may have closed meanwhile.
func (u *upstream) get(deadline, now time.Time) (uc *upConn, reused bool, err error) {
	waited := false
	for ; ; now = time.Now() {
		u.mu.Lock()
		for n := len(u.idle); n > 0; n = len(u.idle) {
			uc = u.idle[n-1]
			u.idle[n-1] = nil
			u.idle = u.idle[:n-1]
			idle := now.Sub(uc.idleAt)
			if idle < idleConnTimeout && (idle < probeIdle || uc.br.Buffered() == 0 && (uc.rc == nil || !peerClosed(uc.rc))) {
				u.mu.Unlock()
				if waited {
					u.pending.Add(-1)
				}
				return uc, true, nil
			}
			u.closeConn(uc)
		}
		u.mu.Unlock()
		if u.conns.Add(1) <= u.maxConns.Load() {
			if waited {
				u.pending.Add(-1)
			}
			uc, err = u.connect(deadline)
			if err != nil {
				u.conns.Add(-1)
				return nil, false, err
			}
			return uc, false, nil
		}
		u.conns.Add(-1)
		if !waited {
			if u.pending.Add(1) > u.maxPending.Load() {
				u.pending.Add(-1)
				return nil, false, errCircuitOpen
			}
			waited = true
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-u.avail:
			t.Stop()
		case <-t.C:
			u.pending.Add(-1)
			return nil, false, errCircuitOpen
		}
	}
}

func (u *upstream) connect(deadline time.Time) (*upConn, error) {
	to := time.Duration(u.connectTO.Load())
	if d := time.Until(deadline); d < to || to <= 0 {
		to = d
	}
	if to <= 0 {
		return nil, &connectError{context.DeadlineExceeded}
	}
	c, err := net.DialTimeout("tcp", u.addr, to)
	if err != nil {
		return nil, &connectError{err}
	}
	r, w := newSockIO(c)
	uc := &upConn{up: u, c: c, br: bufio.NewReaderSize(r, 16<<10), bw: bufio.NewWriterSize(w, 8<<10)}
	uc.rc = syscallConn(c)
	return uc, nil
}

// put returns a connection after a complete exchange; broken is true when
// it cannot carry another (closed by either side, body not fully read).
func (u *upstream) put(uc *upConn, broken bool) {
	u.putAt(uc, broken, time.Time{})
}

// putAt is put for a caller that has read the clock (now, when the
// connection became idle; zero: read it here).
func (u *upstream) putAt(uc *upConn, broken bool, now time.Time) {
	if uc.ev != nil {
		if now.IsZero() {
			now = time.Now()
		}
		uc.ev.release(broken, now)
		return
	}
	if broken || u.retired.Load() {
		u.closeConn(uc)
		u.signal()
		return
	}
	if now.IsZero() {
		now = time.Now()
	}
	uc.idleAt = now
	u.mu.Lock()
	if len(u.idle) >= maxIdlePerUpstream {
		u.mu.Unlock()
		u.closeConn(uc)
		u.signal()
		return
	}
	u.idle = append(u.idle, uc)
	u.mu.Unlock()
	u.signal()
}

// signal wakes one request waiting for a connection.
func (u *upstream) signal() {
	if u.pending.Load() == 0 {
		return
	}
	select {
	case u.avail <- struct{}{}:
	default:
	}
}

func (u *upstream) closeConn(uc *upConn) {
	if uc.ev != nil {
		uc.ev.release(true, time.Time{})
		return
	}
	_ = uc.c.Close()
	u.conns.Add(-1)
}

// retire closes the idle connections of an instance no config uses; the
// ones in use close as they come back.
func (u *upstream) retire() {
	u.retired.Store(true)
	u.mu.Lock()
	idle := u.idle
	u.idle = nil
	u.mu.Unlock()
	for _, uc := range idle {
		u.closeConn(uc)
	}
	if t, ok := u.rt.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
}

// unretire brings back an instance a new config uses again.
func (u *upstream) unretire() { u.retired.Store(false) }

// acquire takes a request slot under the instance's request limit.
func (u *upstream) acquire() bool {
	if u.requests.Add(1) > u.maxRequests.Load() {
		u.requests.Add(-1)
		return false
	}
	return true
}

func (u *upstream) release() { u.requests.Add(-1) }
