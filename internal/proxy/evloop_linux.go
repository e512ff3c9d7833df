package proxy

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
)

// The event loop of the plain HTTP/1.1 listener.
//
// A goroutine per connection costs this proxy its last few percent
// against nginx on shared cores (bench/RESULTS.md): every message that is
// not there yet is a failed read, a park and a wake-up, and the runtime
// hands woken goroutines between threads. Here one loop per GOMAXPROCS,
// each on its own thread with its own epoll set, owns its connections,
// reads a socket only when epoll says it is readable, and drives the
// engine's request path (begin, pick, tried, afterTry, conclude) between
// its waits, calling the same parsing and writing code as the goroutine
// server over in-memory buffers (feed, sink) that hold what arrived and
// what is to be sent.
//
// The loop does the common exchange: an HTTP/1.1 request without a body,
// to a plain HTTP/1.1 backend, answered with a body that arrives whole
// (up to loopBodyMax). Anything else goes to a goroutine, with the
// connection (and the backend connection in use) turned back into
// net.Conns and everything already read or written carried over: a
// request with a body, an upgrade, HTTP/1.0, h2c, TLS or HTTP/2 backends,
// a backend without an IP address, an instance at its connection limit,
// and answers that stream (chunked, to the end of the connection, large
// or slow). The goroutine finishes the request with the same code and
// serves the connection from then on.

const (
	loopBodyMax   = 1 << 20               // bodies up to this wait for their end in the loop
	loopBodyWait  = 50 * time.Millisecond // then they stream from a goroutine
	loopReadChunk = 16 << 10
	loopFeedMax   = 1 << 20 // a client's unread bytes beyond this: stop reading it
	epollET       = 1 << 31 // syscall.EPOLLET, as a uint32
	coarseAfter   = time.Second
	coarseTick    = 250 * time.Millisecond
)

// epollWait waits for events as a raw system call, keeping the loop's P
// (see newEvServer). The runtime's preemption signal interrupts it
// (EINTR, never restarted), so a stop-the-world does not wait for it.
func epollWait(ep int, evs []syscall.EpollEvent, msec int) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), uintptr(msec), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// loopRef points an h1conn at the loop connection serving it.
type loopRef struct{ c *evConn }

// evServer runs the loops of one h1server.
type evServer struct {
	s     *h1server
	e     *Engine
	loops []*evLoop
	next  atomic.Uint32
	procs int // Ps added for the loops

	// What the loops did (cairn_proxy_event_loop_total, or counters of
	// their own without metrics): exchanges served, connections handed to
	// a goroutine, writes to clients that found the socket full.
	served, handed, blocked prometheus.Counter
}

// procs serializes the changes of GOMAXPROCS by servers starting and
// stopping; procsAdded is what they added.
var (
	procs      sync.Mutex
	procsAdded int
)

// newEvServer starts the loops, or returns nil (the goroutine server does
// everything) when the handler is not an Engine or epoll is unavailable.
func newEvServer(s *h1server) *evServer {
	e, ok := s.handler.(*Engine)
	if !ok {
		return nil
	}
	v := &evServer{s: s, e: e}
	if m := e.opts.Metrics; m != nil {
		v.served, v.handed, v.blocked = m.loop.WithLabelValues("served"), m.loop.WithLabelValues("handoff"), m.loop.WithLabelValues("blocked")
	} else {
		v.served, v.handed, v.blocked = prometheus.NewCounter(prometheus.CounterOpts{Name: "served"}),
			prometheus.NewCounter(prometheus.CounterOpts{Name: "handoff"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "blocked"})
	}
	// One loop per P the rest of the program has, and as many Ps more:
	// a loop keeps its P while it waits in epoll_wait (a raw system
	// call: no hand-off of the P to another thread and back, which cost
	// more than the proxying), so the loops' Ps are theirs alone.
	procs.Lock()
	nloops := max(runtime.GOMAXPROCS(0)-procsAdded, 1)
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + nloops)
	procsAdded += nloops
	procs.Unlock()
	v.procs = nloops
	for i := 0; i < nloops; i++ {
		l, err := newEvLoop(v)
		if err != nil {
			for _, l := range v.loops {
				l.post(func() { l.stop() })
			}
			return nil
		}
		v.loops = append(v.loops, l)
		go l.run()
	}
	return v
}

// take gives an accepted connection to a loop: false if it cannot, and
// a goroutine serves it.
func (v *evServer) take(hc *h1conn) bool {
	tc, ok := hc.c.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	nfd := -1
	if cerr := rc.Control(func(fd uintptr) { nfd, err = dupCloexec(int(fd)) }); cerr != nil || err != nil {
		return false
	}
	remote := hc.c.RemoteAddr().String()
	_ = hc.c.Close() // the runtime's poller lets go of it; the loop holds the duplicate
	l := v.loops[int(v.next.Add(1))%len(v.loops)]
	c := &evConn{evFD: evFD{l: l, fd: nfd}, hc: hc, first: true}
	hc.ev.Store(&loopRef{c})
	l.post(func() { l.adopt(c, remote) })
	return true
}

// stop ends the loops (the server has drained).
func (v *evServer) stop() {
	for _, l := range v.loops {
		l := l
		l.post(func() { l.stop() })
	}
	procs.Lock()
	if n := runtime.GOMAXPROCS(0) - v.procs; n >= 1 {
		runtime.GOMAXPROCS(n)
	}
	procsAdded -= v.procs
	v.procs = 0
	procs.Unlock()
}

func dupCloexec(fd int) (int, error) {
	nfd, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(nfd), nil
}

// fdConn turns a descriptor the loop owns into a net.Conn (the runtime's
// poller takes a duplicate; fd is closed).
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f)
	f.Close()
	return c, err
}

// evItem is what an epoll event is for.
type evItem interface{ event(ev uint32) }

// evLoop is one loop: a thread, an epoll set, its connections, its
// backend connections and its timers.
type evLoop struct {
	v       *evServer
	ep      int
	wake    int // eventfd: posted work
	mu      sync.Mutex
	posted  []func()
	items   []evItem // by descriptor
	conns   map[*evConn]struct{}
	pools   map[*upstream][]*evUp
	timers  timerHeap
	evs     []syscall.EpollEvent
	now     time.Time
	done    bool
	sweep   evTimer
	tick    evTimer
	scratch []byte // what a socket read lands in
}

func newEvLoop(v *evServer) (*evLoop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wfd, _, e := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if e != 0 {
		syscall.Close(ep)
		return nil, e
	}
	l := &evLoop{v: v, ep: ep, wake: int(wfd), conns: map[*evConn]struct{}{},
		pools: map[*upstream][]*evUp{}, evs: make([]syscall.EpollEvent, 128)}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, l.wake, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(l.wake)}); err != nil {
		syscall.Close(ep)
		syscall.Close(l.wake)
		return nil, err
	}
	l.scratch = make([]byte, loopReadChunk)
	l.sweep.fn = l.sweepPools
	l.tick.fn = l.scan
	return l, nil
}

// post runs f on the loop.
func (l *evLoop) post(f func()) {
	l.mu.Lock()
	l.posted = append(l.posted, f)
	l.mu.Unlock()
	var one = [8]byte{1}
	syscall.Write(l.wake, one[:])
}

func (l *evLoop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l.now = time.Now()
	l.setTimer(&l.sweep, l.now.Add(10*time.Second))
	l.setTimer(&l.tick, l.now.Add(coarseTick))
	for !l.done {
		wait := -1
		if len(l.timers) > 0 {
			d := l.timers[0].at.Sub(time.Now())
			wait = int((d + time.Millisecond - 1) / time.Millisecond)
			if wait < 0 {
				wait = 0
			}
		}
		n, err := epollWait(l.ep, l.evs, wait)
		if err != nil && err != syscall.EINTR {
			slog.Error("proxy: event loop", "err", err)
			return
		}
		l.now = time.Now()
		for i := 0; i < n; i++ {
			fd := l.evs[i].Fd
			if int(fd) == l.wake {
				l.runPosted()
				continue
			}
			if it := l.item(int(fd)); it != nil {
				it.event(l.evs[i].Events)
			}
		}
		for len(l.timers) > 0 && !l.timers[0].at.After(l.now) {
			t := heap.Pop(&l.timers).(*evTimer)
			t.idx = -1
			t.fn()
		}
	}
}

func (l *evLoop) runPosted() {
	var b [8]byte
	syscall.Read(l.wake, b[:])
	l.mu.Lock()
	fs := l.posted
	l.posted = nil
	l.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func (l *evLoop) stop() {
	for c := range l.conns {
		c.close()
	}
	for _, pool := range l.pools {
		for _, up := range pool {
			up.close()
		}
	}
	l.done = true
	syscall.Close(l.ep)
	syscall.Close(l.wake)
}

// sweepPools closes idle backend connections past their time or of
// instances no config uses.
func (l *evLoop) sweepPools() {
	for u, pool := range l.pools {
		keep := pool[:0]
		for _, up := range pool {
			if u.retired.Load() || l.now.Sub(up.idleAt) >= idleConnTimeout {
				up.close()
				continue
			}
			keep = append(keep, up)
		}
		clear(pool[len(keep):])
		l.pools[u] = keep
	}
	l.setTimer(&l.sweep, l.now.Add(10*time.Second))
}

func (l *evLoop) item(fd int) evItem {
	if fd < len(l.items) {
		return l.items[fd]
	}
	return nil
}

func (l *evLoop) setItem(fd int, it evItem) {
	for fd >= len(l.items) {
		l.items = append(l.items, nil)
	}
	l.items[fd] = it
}

// at sets the connection's deadline: a timer for one under coarseAfter,
// else the loop's scan every coarseTick (within a quarter second, as the
// goroutine server's coarse deadlines): the default timeouts (30 s, 5
// min) then cost no timer operation per request.
func (c *evConn) at(t time.Time) {
	c.deadline = t
	if t.Sub(c.l.now) < coarseAfter {
		c.l.setTimer(&c.timer, t)
	} else if c.timer.idx >= 0 {
		c.l.stopTimer(&c.timer)
	}
}

func (c *evConn) noDeadline() {
	c.deadline = time.Time{}
	if c.timer.idx >= 0 {
		c.l.stopTimer(&c.timer)
	}
}

// scan fires the coarse deadlines that passed.
func (l *evLoop) scan() {
	for c := range l.conns {
		if !c.deadline.IsZero() && !l.now.Before(c.deadline) && c.timer.idx < 0 {
			c.timeout()
		}
	}
	l.setTimer(&l.tick, l.now.Add(coarseTick))
}

func (l *evLoop) ctl(op int, fd int, events uint32) {
	_ = syscall.EpollCtl(l.ep, op, fd, &syscall.EpollEvent{Events: events, Fd: int32(fd)})
}

// Timers: a heap of deadlines, fired by the loop.

type evTimer struct {
	at  time.Time
	idx int
	fn  func()
}

type timerHeap []*evTimer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *timerHeap) Push(x any)        { t := x.(*evTimer); t.idx = len(*h); *h = append(*h, t) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

func (l *evLoop) setTimer(t *evTimer, at time.Time) {
	t.at = at
	if t.idx > 0 || len(l.timers) > 0 && l.timers[0] == t {
		heap.Fix(&l.timers, t.idx)
		return
	}
	heap.Push(&l.timers, t)
}

func (l *evLoop) stopTimer(t *evTimer) {
	if t.idx > 0 || len(l.timers) > 0 && l.timers[0] == t {
		heap.Remove(&l.timers, t.idx)
	}
	t.idx = -1
}

// fill reads what fd has into f, through scratch, while f holds less than
// max. Edge-triggered: until a read comes back short (anything arriving
// later is a new edge; after a hang-up, until the end, which has no edge
// of its own). It returns the bytes read, whether the peer closed (err:
// with an error, a reset) and whether f filled up before the socket was
// drained.
func (f *feed) fill(fd int, scratch []byte, max int, hup bool) (got int, closed bool, err syscall.Errno, full bool) {
	for f.pending() < max {
		n, e := rawRead(fd, scratch)
		if e == syscall.EAGAIN {
			return got, false, 0, false
		}
		if e != 0 || n == 0 {
			return got, true, e, false
		}
		copy(f.space(n), scratch[:n])
		f.added(n)
		got += n
		if n < len(scratch) && !hup {
			return got, false, 0, false
		}
	}
	return got, false, 0, true
}

// drain writes what s holds to fd: blocked when the socket is full first.
func (s *sink) drain(fd int) (blocked bool, err syscall.Errno) {
	for p := s.pending(); len(p) > 0; p = s.pending() {
		n, e := rawWrite(fd, p)
		if e == syscall.EAGAIN {
			return true, 0
		}
		if e != 0 {
			return false, e
		}
		s.sent(n)
	}
	return false, 0
}

// headReady pulls what arrived into br and reports whether it holds a
// whole head (readHead or readRequest can run) or more than max bytes
// without one (they report the error).
func headReady(br *bufio.Reader, f *feed, skip1xx bool, max int) bool {
	br.Peek(min(br.Buffered()+f.pending(), br.Size()))
	head := peekBuffered(br, br.Buffered())
	if f.pending() > 0 {
		head = append(append([]byte(nil), head...), f.unread()...)
	}
	return headEnd(head, skip1xx) || len(head) >= max
}

// handOver turns a descriptor the loop owns into a net.Conn for the
// goroutine path, with f and s (what was read and not consumed, what is
// to be sent) going on through it.
func handOver(fd int, f *feed, s *sink) (net.Conn, error) {
	nc, err := fdConn(fd)
	if err != nil {
		return nil, err
	}
	r, w := newSockIO(nc)
	f.conn, s.conn = r, w
	return nc, nil
}

// evFD is what the loop keeps of a descriptor it watches.
type evFD struct {
	l      *evLoop
	fd     int
	events uint32 // registered with epoll
	closed bool   // closed, or handed over: no longer the loop's
}

// unwatch takes the descriptor out of the loop, for a hand-over.
func (f *evFD) unwatch() {
	f.l.setItem(f.fd, nil)
	f.l.ctl(syscall.EPOLL_CTL_DEL, f.fd, 0)
	f.closed = true
}

func (f *evFD) setEvents(ev uint32) {
	if ev != f.events && !f.closed {
		f.events = ev
		f.l.ctl(syscall.EPOLL_CTL_MOD, f.fd, ev)
	}
}

// Client connections.

type evState int

const (
	stIdle       evState = iota // between requests
	stConnecting                // a backend connection is being opened
	stWaitHead                  // the request went upstream; the answer's head is awaited
	stWaitBody                  // the head came; the rest of a small body is awaited
	stBackoff                   // between tries
	stClosing                   // the last answer is sent; waiting for the client to close
)

type evConn struct {
	evFD
	hc       *h1conn
	in       feed
	out      sink
	state    evState
	first    bool // no request yet (h2c's preface is looked for)
	timer    evTimer
	deadline time.Time // of the state; zero: none

	inEOF   bool // the client closed its side
	hup     bool // the last event said the client hung up
	stalled bool // reading stopped with the feed full
	closeAt bool // close once the output is sent

	// The exchange in flight.
	ex          *exchange
	r           *http.Request
	res         tryResult
	u           *upstream
	up          *evUp
	tryDeadline time.Time
	reused      bool // up came from the pool
	fresh       bool // a second connection after a reused one failed unused
}

// testSndBuf, set by a test, is the send buffer of the connections a
// loop adopts: small, a large answer does not fit at once.
var testSndBuf int

func (l *evLoop) adopt(c *evConn, remote string) {
	if testSndBuf > 0 {
		syscall.SetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, testSndBuf)
	}
	c.hc.init(remote)
	c.hc.br = bufio.NewReaderSize(&c.in, h1ReadBuf)
	c.hc.bw = bufio.NewWriterSize(&c.out, h1WriteBuf)
	c.hc.idle.Store(true)
	c.timer.fn = c.timeout
	c.timer.idx = -1
	l.setItem(c.fd, c)
	l.conns[c] = struct{}{}
	c.events = syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET
	l.ctl(syscall.EPOLL_CTL_ADD, c.fd, c.events)
	c.at(l.now.Add(h1HeadTimeout))
}

func (c *evConn) event(ev uint32) {
	defer c.recover()
	if ev&syscall.EPOLLOUT != 0 {
		c.flush()
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 && !c.closed {
		c.hup = ev&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
		c.readable()
	}
	if !c.closed {
		c.progress()
	}
}

// recover ends the connection if the engine panics while serving it, as
// net/http does; the loop and its other connections go on.
func (c *evConn) recover() {
	if p := recover(); p != nil {
		logPanic(p)
		if c.up != nil {
			c.up.close()
			c.up = nil
		}
		c.close()
	}
}

// readable reads what arrived (through the loop's buffer: an idle
// connection keeps none of read size); with the feed full, reading stops
// (stalled) until progress has consumed it.
func (c *evConn) readable() {
	_, closed, err, full := c.in.fill(c.fd, c.l.scratch, loopFeedMax, c.hup)
	switch {
	case closed:
		c.peerClosed(err != 0)
	case full:
		c.stalled = true
	}
}

// peerClosed: the client closed (reset: with an error).
func (c *evConn) peerClosed(reset bool) {
	c.inEOF = true
	switch c.state {
	case stIdle:
		if c.in.pending() == 0 && c.hc.br.Buffered() == 0 || reset {
			c.close()
		}
		// else: answer what was sent, then close.
	case stClosing:
		c.close()
	default:
		if reset {
			c.gone()
			return
		}
		// A client may close its side and still read the answer: it is
		// gone only if the answer does not come soon (as the goroutine
		// server's watch).
		if at := c.l.now.Add(watchAfter); c.deadline.IsZero() || at.Before(c.deadline) {
			c.at(at)
		}
	}
}

// gone ends the exchange in flight for a client that went away.
func (c *evConn) gone() {
	c.hc.cancel()
	e := c.l.v.e
	switch c.state {
	case stConnecting, stWaitHead:
		c.up.close()
		c.up = nil
		c.res.outcome, c.res.err = outGone, errClientGone
		e.tried(&c.res, c.u, c.l.now)
	case stWaitBody:
		e.discard(&c.res)
		c.res = tryResult{outcome: outGone, err: errClientGone, ep: c.res.ep, be: c.res.be}
	case stBackoff:
		c.res.outcome, c.res.err = outGone, errClientGone
	}
	e.conclude(c.ex, &c.hc.w, c.r, &c.res)
	c.endExchange()
	c.close()
}

func (c *evConn) timeout() {
	defer c.recover()
	c.deadline = time.Time{}
	e := c.l.v.e
	switch c.state {
	case stIdle, stClosing:
		c.close() // idle, head or lingering timeout
	case stConnecting, stWaitHead:
		if c.inEOF {
			c.gone()
			return
		}
		c.up.close()
		c.up = nil
		switch {
		case c.state == stConnecting && c.l.now.Before(c.tryDeadline):
			c.res.outcome, c.res.err = outConnect, &connectError{context.DeadlineExceeded}
		default:
			c.res.outcome, c.res.err = outTimeout, os.ErrDeadlineExceeded
		}
		e.tried(&c.res, c.u, c.l.now)
		c.afterTry()
	case stWaitBody:
		if c.inEOF {
			c.gone()
			return
		}
		c.stream()
	case stBackoff:
		if c.inEOF {
			c.gone()
			return
		}
		c.ex.attempt++
		c.ex.tryAt = c.l.now
		c.startTry()
	}
	if !c.closed {
		c.progress()
	}
}

// progress serves the requests that have arrived, one at a time.
func (c *evConn) progress() {
	if c.stalled && c.in.pending() < loopFeedMax/2 && !c.closed {
		c.stalled = false
		c.readable()
	}
	for !c.closed && c.state == stIdle && len(c.out.pending()) == 0 {
		if !c.nextRequest() {
			return
		}
	}
}

var h2Start = []byte("PRI ")

// nextRequest starts the next request if its head has arrived; false
// when there is nothing more to do until an event.
func (c *evConn) nextRequest() bool {
	hc := c.hc
	avail := hc.br.Buffered() + c.in.pending()
	if avail == 0 {
		if c.inEOF {
			c.close()
			return false
		}
		hc.idle.Store(true)
		if c.closeAt || hc.srv.draining.Load() {
			c.close()
			return false
		}
		c.at(c.l.now.Add(h1IdleTimeout))
		return false
	}
	if c.first {
		// HTTP/2 with prior knowledge goes to net/http.
		b := c.in.unread()
		if n := min(len(b), len(h2Preface)); bytes.Equal(b[:n], h2Preface[:n]) && n >= len(h2Start) {
			if n < len(h2Preface) {
				return false
			}
			// peekedConn reads the reader's buffer, then the socket:
			// what arrived goes into the buffer first.
			hc.br.Peek(min(c.in.pending(), hc.br.Size()))
			c.escape(func(hc *h1conn) (bool, bool) {
				hc.srv.wg.Add(1) // held until net/http closes the conn
				if !hc.srv.h2ln.hand(&peekedConn{Conn: hc.c, r: hc.br, done: hc.srv.wg.Done}) {
					hc.srv.wg.Done()
					hc.c.Close()
				}
				hc.detached = true
				hc.srv.forget(hc)
				return false, true
			})
			return false
		}
	}
	// The head, whole, into the reader's buffer (where readRequest reads
	// it from).
	if !headReady(hc.br, &c.in, false, h1MaxHead) {
		if c.inEOF {
			c.close()
			return false
		}
		c.at(c.l.now.Add(h1HeadTimeout))
		return false
	}
	c.first = false
	hc.idle.Store(false)
	if hc.srv.draining.Load() {
		c.close()
		return false
	}
	r, status, err := hc.readRequest()
	if err != nil {
		if status != 0 {
			hc.writeError(status, err.Error())
		}
		c.closeAt = true
		c.flush()
		return false
	}
	e := c.l.v.e
	var rt *route
	if isWebSocket(r) || !hc.body.done || r.ProtoMinor == 0 {
		c.escape(func(hc *h1conn) (bool, bool) { return hc.serveParsed(r) })
		return false
	}
	if rt = e.route(r); rt != nil && !rt.plainH1 {
		c.escape(func(hc *h1conn) (bool, bool) { return hc.serveParsed(r) })
		return false
	}
	c.noDeadline()
	w := &hc.w
	w.reset(r)
	c.ex, c.r = e.acquireExchange(w), r
	if !e.begin(c.ex, w, r, c.l.now, rt) {
		c.endExchange()
		return true
	}
	c.startTry()
	return c.state == stIdle
}

// startTry picks the instance of the next try and sends the request.
func (c *evConn) startTry() {
	e := c.l.v.e
	res, u, tryDeadline := e.pick(c.ex)
	c.res, c.u, c.tryDeadline, c.fresh = res, u, tryDeadline, false
	if u == nil {
		c.afterTry()
		return
	}
	c.send()
}

// send sends the request on a connection to c.u: one from the pool, or a
// new one.
func (c *evConn) send() {
	e := c.l.v.e
	up, reused, err := c.l.getUp(c.u)
	switch {
	case err == errNeedGoroutine:
		// At the connection limit (the goroutine path waits for a
		// connection) or no IP address: the try goes on in a goroutine.
		ex, r, res, u, tryDeadline := c.ex, c.r, c.res, c.u, c.tryDeadline
		c.escape(func(hc *h1conn) (bool, bool) {
			e.tryH1(ex, u, tryDeadline, ex.tryAt, &res)
			e.tried(&res, u, time.Now())
			return c.finishInGoroutine(ex, r, &res, true)
		})
		return
	case err != nil:
		c.res.outcome, c.res.err = outConnect, &connectError{err}
		e.tried(&c.res, c.u, c.l.now)
		c.afterTry()
		return
	}
	c.up, c.reused = up, reused
	up.owner = c
	if up.connecting {
		c.state = stConnecting
		at := c.l.now.Add(time.Duration(c.u.connectTO.Load()))
		if c.tryDeadline.Before(at) {
			at = c.tryDeadline
		}
		c.at(at)
		return
	}
	c.write()
}

// write writes the request to c.up.
func (c *evConn) write() {
	if err := c.ex.out.writeH1(c.up.uc.bw, c.ex.buf); err != nil {
		c.upFailed(err)
		return
	}
	c.state = stWaitHead
	c.at(c.tryDeadline)
	c.up.flush()
}

// upFailed ends a try whose backend connection failed before the head.
func (c *evConn) upFailed(err error) {
	e := c.l.v.e
	anyByte := c.up.got > 0
	c.up.close()
	c.up = nil
	if c.reused && !anyByte && !c.fresh {
		// The backend closed an idle connection as it was reused: the
		// request was not processed, so send it once more on a new one.
		c.fresh = true
		c.send()
		return
	}
	c.res.outcome, c.res.err = outReset, &resetError{err}
	e.tried(&c.res, c.u, c.l.now)
	c.afterTry()
}

// upstreamProgress reads the answer's head when it is whole.
func (c *evConn) upstreamProgress() {
	switch c.state {
	case stWaitHead:
		up := c.up
		if !headReady(up.uc.br, &up.in, true, maxHeadBytes) {
			if up.eof {
				c.upFailed(errors.New("connection closed before the response head"))
			}
			return
		}
		e := c.l.v.e
		rh, err := up.uc.readHead(&c.ex.fields, c.ex.out.method)
		if err != nil {
			c.upFailed(err)
			return
		}
		ex := c.ex
		c.res.outcome, c.res.uc, c.res.status, c.res.length = outOK, up.uc, rh.status, rh.length
		ex.body.reset(up.uc, &rh, 0)
		c.res.body = &ex.body
		if rh.close {
			ex.body.closeAfter = true
		}
		c.up = nil // the body reader has it now (up.owner stays c); respond or discard gives it back
		e.tried(&c.res, c.u, c.l.now)
		c.afterTry()
	case stWaitBody:
		c.maybeRespond()
	}
}

// upstreamProgress is called with c.up set (a try) or, in stWaitBody,
// with the body's connection as the event's.

// afterTry retries, or answers.
func (c *evConn) afterTry() {
	e := c.l.v.e
	d, again := e.afterTry(c.ex, c.r, &c.res)
	if again {
		c.state = stBackoff
		c.at(c.l.now.Add(d))
		return
	}
	if c.res.outcome == outOK {
		c.state = stWaitBody
		c.at(c.l.now.Add(loopBodyWait))
		c.maybeRespond()
		return
	}
	e.conclude(c.ex, &c.hc.w, c.r, &c.res)
	c.endExchange()
}

// maybeRespond answers if the body is whole, streams it from a goroutine
// if it will not be soon.
func (c *evConn) maybeRespond() {
	b := &c.ex.body
	uc := b.uc
	have := int64(uc.br.Buffered())
	if up, ok := uc.ev.(*evUp); ok {
		have += int64(up.in.pending())
		if !b.done && b.remaining >= 0 && !b.chunked && have < b.remaining && b.remaining <= loopBodyMax && !up.eof {
			return // more is coming
		}
	}
	if !b.done && (b.chunked || b.remaining < 0 || have < b.remaining) {
		c.stream()
		return
	}
	c.l.v.e.conclude(c.ex, &c.hc.w, c.r, &c.res)
	c.endExchange()
}

// stream hands the answer to a goroutine, which copies its body as it
// comes.
func (c *evConn) stream() {
	ex, r, res := c.ex, c.r, c.res
	ex.body.idle = idleBodyTimeout
	c.escape(func(hc *h1conn) (bool, bool) {
		return c.finishInGoroutine(ex, r, &res, false)
	})
}

// finishInGoroutine completes, in a goroutine, an exchange the loop
// began: with a try just made (afterTry first) or a response to send.
func (c *evConn) finishInGoroutine(ex *exchange, r *http.Request, res *tryResult, tried bool) (keep, hijacked bool) {
	e := c.l.v.e
	hc := c.hc
	w := &hc.w
	if tried {
		if d, again := e.afterTry(ex, r, res); again {
			time.Sleep(d)
			ex.attempt++
			ex.tryAt = time.Now()
			e.run(ex, w, r)
			e.releaseExchange(ex, w)
			return hc.afterCall(w), false
		}
	}
	e.conclude(ex, w, r, res)
	e.releaseExchange(ex, w)
	return hc.afterCall(w), false
}

// endExchange completes the response and readies the next request.
func (c *evConn) endExchange() {
	c.noDeadline() // the exchange's; the next state sets its own
	c.l.v.served.Inc()
	hc := c.hc
	w := &hc.w
	c.l.v.e.releaseExchange(c.ex, w)
	c.ex, c.r, c.res, c.u = nil, nil, tryResult{}, nil
	c.state = stIdle
	keep := hc.afterCall(w)
	_ = hc.bw.Flush()
	if !keep || hc.srv.draining.Load() {
		c.closeAt = true
	}
	c.flush()
}

// flush sends what the sink holds; once it is sent, a connection to close
// is closed.
func (c *evConn) flush() {
	blocked, err := c.out.drain(c.fd)
	switch {
	case err != 0:
		c.close()
		return
	case blocked:
		c.l.v.blocked.Inc()
		c.setEvents(c.events | syscall.EPOLLOUT)
		return
	}
	c.setEvents(c.events &^ syscall.EPOLLOUT)
	if c.closeAt && c.state == stIdle {
		c.linger()
	}
}

// linger closes after the last answer, letting the client read it first:
// shut the write side, wait a second for the client to close.
func (c *evConn) linger() {
	if c.inEOF {
		c.close()
		return
	}
	c.state = stClosing
	syscall.Shutdown(c.fd, syscall.SHUT_WR)
	c.in.buf, c.in.off = c.in.buf[:0], 0
	c.at(c.l.now.Add(time.Second))
}

// close closes the connection and forgets it.
func (c *evConn) close() {
	if c.closed {
		return
	}
	c.closed = true
	l := c.l
	c.noDeadline()
	if c.up != nil {
		c.up.close()
		c.up = nil
	}
	if c.ex != nil {
		// An exchange cut short (a panic, the loop stopping).
		if c.res.uc != nil {
			c.l.v.e.discard(&c.res)
		}
		c.l.v.e.releaseExchange(c.ex, &c.hc.w)
		c.ex = nil
	}
	l.setItem(c.fd, nil)
	delete(l.conns, c)
	syscall.Close(c.fd)
	c.hc.cancel()
	c.hc.ev.Store(nil)
	c.hc.srv.forget(c.hc)
}

// escape gives the connection, and the backend connection in use if any,
// to a goroutine that runs cont and then serves the connection as the
// goroutine server does.
func (c *evConn) escape(cont func(hc *h1conn) (keep, hijacked bool)) {
	l := c.l
	l.v.handed.Inc()
	c.noDeadline()
	delete(l.conns, c)
	c.unwatch()
	hc := c.hc
	nc, err := handOver(c.fd, &c.in, &c.out)
	var ups []*evUp
	if c.up != nil {
		ups = append(ups, c.up)
	}
	if c.res.uc != nil {
		if up, ok := c.res.uc.ev.(*evUp); ok {
			ups = append(ups, up)
		}
	}
	for _, up := range ups {
		up.goroutine()
	}
	if err != nil {
		slog.Error("proxy: event loop hand-over", "err", err)
		hc.ev.Store(nil)
		hc.cancel()
		hc.srv.forget(hc)
		return
	}
	hc.srv.mu.Lock() // drain reads hc.c and hc.ev under it
	hc.c, hc.rc = nc, syscallConn(nc)
	hc.ev.Store(nil)
	hc.srv.mu.Unlock()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				logPanic(p)
				hc.c.Close()
				hc.cancel()
				hc.srv.forget(hc)
			}
		}()
		keep, hijacked := cont(hc)
		if hijacked {
			return
		}
		defer func() {
			hc.cancel()
			hc.srv.forget(hc)
		}()
		if keep && !hc.srv.draining.Load() {
			hc.serveLoop()
			return
		}
		hc.closeGracefully()
	}()
}

// closeIdle closes the connection if it waits for a request (drain).
func (c *evConn) closeIdle() {
	if !c.closed && c.state == stIdle && c.hc.br.Buffered()+c.in.pending() == 0 {
		c.close()
	}
}

// Backend connections.

type evUp struct {
	evFD
	u          *upstream
	uc         *upConn
	in         feed
	out        sink
	owner      *evConn
	connecting bool
	eof        bool
	got        int // bytes received for the exchange in flight
	idleAt     time.Time
}

// errNeedGoroutine: the loop cannot make this try itself.
var errNeedGoroutine = errors.New("proxy: try needs a goroutine")

// getUp returns a connection to u: an idle one of the loop's (reused), or
// a new one, maybe still connecting.
func (l *evLoop) getUp(u *upstream) (up *evUp, reused bool, err error) {
	pool := l.pools[u]
	for len(pool) > 0 {
		up = pool[len(pool)-1]
		pool[len(pool)-1] = nil
		pool = pool[:len(pool)-1]
		if !up.closed && l.now.Sub(up.idleAt) < idleConnTimeout && !up.eof && up.in.pending() == 0 {
			l.pools[u] = pool
			up.got = 0
			return up, true, nil
		}
		up.close()
	}
	l.pools[u] = pool
	sa := sockaddrOf(u.ip)
	if sa == nil {
		return nil, false, errNeedGoroutine
	}
	if u.conns.Add(1) > u.maxConns.Load() {
		u.conns.Add(-1)
		return nil, false, errNeedGoroutine
	}
	family := syscall.AF_INET
	if _, ok := sa.(*syscall.SockaddrInet6); ok {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		u.conns.Add(-1)
		return nil, false, err
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
	up = &evUp{evFD: evFD{l: l, fd: fd}, u: u}
	up.uc = &upConn{up: u, ev: up, br: bufio.NewReaderSize(&up.in, 16<<10), bw: bufio.NewWriterSize(&up.out, 8<<10)}
	switch err := syscall.Connect(fd, sa); err {
	case nil:
	case syscall.EINPROGRESS:
		up.connecting = true
	default:
		syscall.Close(fd)
		u.conns.Add(-1)
		return nil, false, err
	}
	l.setItem(fd, up)
	up.events = syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET
	if up.connecting {
		up.events |= syscall.EPOLLOUT
	}
	l.ctl(syscall.EPOLL_CTL_ADD, fd, up.events)
	return up, false, nil
}

// sockaddrOf returns the socket address of an upstream's IP address, or
// nil (a name: connections to it are made by the goroutine path, which
// resolves it).
func sockaddrOf(ap netip.AddrPort) syscall.Sockaddr {
	if !ap.IsValid() {
		return nil
	}
	ip := ap.Addr()
	if ip.Is4() || ip.Is4In6() {
		return &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ip.Unmap().As4()}
	}
	if ip.Zone() != "" {
		return nil
	}
	return &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
}

func (up *evUp) event(ev uint32) {
	c := up.owner
	if c != nil {
		defer c.recover()
	}
	if ev&syscall.EPOLLOUT != 0 {
		if up.connecting {
			up.connecting = false
			soerr, err := syscall.GetsockoptInt(up.fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
			if err == nil && soerr != 0 {
				err = syscall.Errno(soerr)
			}
			up.setEvents(up.events &^ syscall.EPOLLOUT)
			if err != nil {
				if c != nil && c.state == stConnecting {
					e := c.l.v.e
					c.up = nil
					up.close()
					c.res.outcome, c.res.err = outConnect, &connectError{os.NewSyscallError("connect", err)}
					e.tried(&c.res, c.u, c.l.now)
					c.afterTry()
					if !c.closed {
						c.progress()
					}
				} else {
					up.close()
				}
				return
			}
			if c != nil && c.state == stConnecting {
				c.write()
			}
		} else {
			up.flush()
		}
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		up.readable(ev&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0)
		owner := up.owner
		if owner == nil {
			up.close() // idle: the backend closed it, or sent bytes nobody asked for
			return
		}
		owner.upstreamProgress()
		if !owner.closed {
			owner.progress()
		}
	}
}

func (up *evUp) readable(hup bool) {
	// Up to a whole small body: a larger one streams from a goroutine,
	// which reads the rest off the socket.
	got, closed, _, _ := up.in.fill(up.fd, up.l.scratch, loopBodyMax+1, hup)
	up.got += got
	if closed {
		up.eof = true
	}
}

// flush writes what the request sink holds.
func (up *evUp) flush() {
	blocked, err := up.out.drain(up.fd)
	switch {
	case err != 0:
		up.eof = true // the head read that follows fails
		up.out.buf, up.out.off = up.out.buf[:0], 0
	case blocked:
		up.setEvents(up.events | syscall.EPOLLOUT)
	default:
		up.setEvents(up.events &^ syscall.EPOLLOUT)
	}
}

// release takes the connection back after an exchange (upConn.ev).
func (up *evUp) release(broken bool, now time.Time) {
	up.owner = nil
	u := up.u
	if broken || up.closed || up.eof || up.in.pending() > 0 || up.uc.br.Buffered() > 0 || u.retired.Load() ||
		up.l.done || len(up.l.pools[u]) >= maxIdlePerUpstream {
		up.close()
		u.signal()
		return
	}
	if u.pending.Load() > 0 {
		// A request waits (in a goroutine) for a connection to u: this
		// one goes to the goroutines' pool, where it gets it.
		up.goroutine()
		u.putAt(up.uc, false, now)
		return
	}
	up.idleAt = now
	up.got = 0
	up.l.pools[u] = append(up.l.pools[u], up)
}

func (up *evUp) close() {
	if up.closed {
		return
	}
	up.closed = true
	up.l.setItem(up.fd, nil)
	syscall.Close(up.fd)
	up.u.conns.Add(-1)
}

// goroutine turns the connection into a net.Conn for the goroutine path,
// keeping what was read and not yet consumed.
func (up *evUp) goroutine() {
	up.unwatch()
	nc, err := handOver(up.fd, &up.in, &up.out)
	if err != nil {
		// The exchange fails on the connection's reads and writes.
		nc = failedConn{err}
		up.in.conn, up.out.conn = nc, nc
	}
	uc := up.uc
	uc.ev = nil
	uc.c, uc.rc = nc, syscallConn(nc)
}

// failedConn is a connection that could not be handed over.
type failedConn struct{ err error }

func (f failedConn) Read([]byte) (int, error)         { return 0, f.err }
func (f failedConn) Write([]byte) (int, error)        { return 0, f.err }
func (f failedConn) Close() error                     { return nil }
func (f failedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f failedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f failedConn) SetDeadline(time.Time) error      { return nil }
func (f failedConn) SetReadDeadline(time.Time) error  { return nil }
func (f failedConn) SetWriteDeadline(time.Time) error { return nil }
