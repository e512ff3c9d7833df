package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The HTTP/1.1 server of the plain listener. net/http's server costs a
// small proxied request more than the proxying does: per request it
// allocates the request, its URL, header maps and a response with its
// chunk writer, and starts a goroutine that reads ahead on the connection
// (a system call and a park, then a deadline change to stop it). This
// server keeps one request, header map and response writer per
// connection, parses the head with one allocation for all its strings,
// and flushes each response with one write. It hands the handler a real
// *http.Request and an http.ResponseWriter (with Flusher and Hijacker), so
// the engine does not know which server it runs under.
//
// Connections that open with HTTP/2's preface (h2c with prior knowledge)
// are passed to a net/http server, which speaks HTTP/2.

const (
	h1ReadBuf      = 16 << 10
	h1WriteBuf     = 16 << 10
	h1MaxHead      = 64 << 10
	h1IdleTimeout  = 5 * time.Minute
	h1HeadTimeout  = 30 * time.Second
	h1DiscardLimit = 256 << 10 // unread request body drained to keep the connection
	// watchAfter: a request still running after one to two of these has
	// its client watched, so that a client that goes away ends the
	// backend's work (nginx's proxy_ignore_client_abort off). Shorter
	// requests cost nothing for it: no timer, no goroutine, no clock.
	watchAfter = 500 * time.Millisecond
)

var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// h1server serves one listener.
type h1server struct {
	ln       net.Listener
	handler  http.Handler
	h2       *http.Server // h2c connections
	h2ln     *chanListener
	ctx      context.Context
	cancel   context.CancelFunc
	draining atomic.Bool

	mu    sync.Mutex
	conns map[*h1conn]struct{}
	wg    sync.WaitGroup

	ev *evServer // nil: a goroutine per connection
}

func newH1Server(h http.Handler, h2 *http.Server, ln net.Listener, loops bool) *h1server {
	s := &h1server{ln: ln, handler: h, h2: h2, conns: map[*h1conn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.h2ln = newChanListener(ln.Addr())
	go h2.Serve(s.h2ln)
	go s.sweep()
	if loops {
		s.ev = newEvServer(s)
	}
	return s
}

// sweep starts a watcher on each connection whose request has been
// running since the last tick.
func (s *h1server) sweep() {
	t := time.NewTicker(watchAfter)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		for hc := range s.conns {
			hc.maybeWatch()
		}
		s.mu.Unlock()
	}
}

func (s *h1server) serve() error {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.draining.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() { // EMFILE and the like: back off as net/http does
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetKeepAlive(true)
			_ = tc.SetKeepAlivePeriod(3 * time.Minute)
		}
		hc := &h1conn{srv: s, c: c}
		s.mu.Lock()
		s.conns[hc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		if s.ev != nil && s.ev.take(hc) {
			continue
		}
		go hc.serve()
	}
}

// drain closes idle connections and lets the others finish the request
// they are serving; it returns when all are closed or ctx ends.
func (s *h1server) drain(ctx context.Context) error {
	s.draining.Store(true)
	s.ln.Close()
	s.mu.Lock()
	for hc := range s.conns {
		if ref := hc.ev.Load(); ref != nil {
			c := ref.c
			c.l.post(c.closeIdle)
		} else if hc.idle.Load() {
			hc.c.Close()
		}
	}
	s.mu.Unlock()
	h2err := make(chan error, 1)
	go func() { h2err <- s.h2.Shutdown(ctx) }()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for hc := range s.conns {
			if ref := hc.ev.Load(); ref != nil {
				c := ref.c
				c.l.post(c.close)
			} else {
				hc.c.Close()
			}
		}
		s.mu.Unlock()
	}
	if s.ev != nil {
		s.ev.stop()
	}
	s.cancel()
	s.h2ln.Close()
	return errors.Join(err, <-h2err)
}

func (s *h1server) forget(hc *h1conn) {
	s.mu.Lock()
	delete(s.conns, hc)
	s.mu.Unlock()
	s.wg.Done()
}

// h1conn is one client connection and the per-connection state reused by
// each of its requests.
type h1conn struct {
	srv  *h1server
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	idle atomic.Bool

	ctx      context.Context
	cancel   context.CancelFunc
	remote   string
	detached bool // hijacked: the handler owns the connection

	req      http.Request
	tmpl     http.Request // RemoteAddr and the connection's context
	url      url.URL
	hdr      http.Header
	body     reqBody
	w        h1writer
	head     []byte
	deadline time.Time // the read deadline last set (set coarsely: it costs a timer update)

	// Watching the client while a long request runs (sweep). A watcher
	// waits in the poller for the client's socket without reading it; if
	// the client closes or resets, it calls abort (set by the handler:
	// it closes the backend connection) and cancels the request's
	// context. Only requests with no body left to read are watched.
	ev atomic.Pointer[loopRef] // the event loop serving it; nil: a goroutine

	rc        syscall.RawConn // nil: not a TCP connection, not watched
	wmu       sync.Mutex
	reqSeq    uint64 // requests started
	seen      uint64 // reqSeq at the sweeper's last tick
	busy      bool   // a watchable request is running
	watching  bool
	watchDone chan struct{}
	abort     func()
}

// startRequest marks a request with no body to read as running.
func (hc *h1conn) startRequest() {
	hc.wmu.Lock()
	hc.reqSeq++
	hc.busy = true
	hc.wmu.Unlock()
}

// maybeWatch starts a watcher if the same request has been running
// since the sweeper's last tick.
func (hc *h1conn) maybeWatch() {
	hc.wmu.Lock()
	defer hc.wmu.Unlock()
	if !hc.busy || hc.watching || hc.rc == nil || hc.seen != hc.reqSeq {
		hc.seen = hc.reqSeq
		return
	}
	hc.watching = true
	hc.watchDone = make(chan struct{})
	go hc.watch(hc.watchDone)
}

func (hc *h1conn) watch(done chan struct{}) {
	defer close(done)
	if !waitPeerGone(hc.rc) {
		return // bytes (a pipelined request), or stopped by endRequest
	}
	hc.wmu.Lock()
	if hc.busy && hc.abort != nil {
		hc.abort()
	}
	hc.wmu.Unlock()
	hc.cancel()
}

// endRequest ends the request's watch, stopping a watcher that runs.
func (hc *h1conn) endRequest() {
	hc.wmu.Lock()
	hc.busy = false
	watching := hc.watching
	hc.watching = false
	hc.wmu.Unlock()
	if watching {
		_ = hc.c.SetReadDeadline(time.Unix(1, 0)) // wakes the watcher
		<-hc.watchDone
		hc.deadline = time.Time{} // the next read sets its own
	}
}

// setAbort is called by the handler with what to run if the client goes
// away while the request runs, and with nil before it returns.
func (hc *h1conn) setAbort(f func()) {
	hc.wmu.Lock()
	hc.abort = f
	hc.wmu.Unlock()
}

func (hc *h1conn) serve() {
	defer func() {
		if !hc.detached {
			hc.srv.forget(hc)
		}
	}()
	r, w := newSockIO(hc.c)
	hc.br = bufio.NewReaderSize(r, h1ReadBuf)
	// Peek at the first bytes: HTTP/2's preface goes to net/http.
	hc.idle.Store(true)
	_ = hc.c.SetReadDeadline(time.Now().Add(h1HeadTimeout))
	if b, err := hc.br.Peek(3); err == nil && string(b) == "PRI" {
		if b, err := hc.br.Peek(len(h2Preface)); err == nil && bytes.Equal(b, h2Preface) {
			_ = hc.c.SetReadDeadline(time.Time{})
			hc.srv.wg.Add(1) // held until net/http closes the conn
			if !hc.srv.h2ln.hand(&peekedConn{Conn: hc.c, r: hc.br, done: hc.srv.wg.Done}) {
				hc.srv.wg.Done()
				hc.c.Close()
			}
			return
		}
	}
	hc.bw = bufio.NewWriterSize(w, h1WriteBuf)
	hc.init(hc.c.RemoteAddr().String())
	defer hc.cancel()
	hc.serveLoop()
}

// init sets up the per-connection state requests reuse.
func (hc *h1conn) init(remote string) {
	hc.ctx, hc.cancel = context.WithCancel(hc.srv.ctx)
	hc.rc = syscallConn(hc.c)
	hc.remote = remote
	hc.tmpl = *(&http.Request{RemoteAddr: hc.remote}).WithContext(hc.ctx)
	hc.hdr = make(http.Header, 16)
	hc.w.conn = hc
	hc.w.hdr = make(http.Header, 16)
}

// serveLoop serves requests until the connection ends, then closes it.
func (hc *h1conn) serveLoop() {
	for {
		keep, hijacked := hc.serveOne()
		if hijacked {
			return
		}
		if !keep || hc.srv.draining.Load() {
			break
		}
	}
	hc.closeGracefully()
}

// closeGracefully sends what is buffered and closes, letting the client
// read the last response first.
func (hc *h1conn) closeGracefully() {
	_ = hc.bw.Flush()
	if tc, ok := hc.c.(*net.TCPConn); ok {
		// Let the client read the last response before the close: a
		// reset would destroy it (RFC 9112 9.6).
		_ = tc.CloseWrite()
		_ = hc.c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.CopyN(io.Discard, hc.c, 64<<10)
	}
	hc.c.Close()
}

// setReadDeadline sets the read deadline unless the one in place is within
// an eighth of the timeout of the wanted one.
func (hc *h1conn) setReadDeadline(d time.Duration) {
	want := time.Now().Add(d)
	if diff := want.Sub(hc.deadline); diff < d/8 && diff > -d/8 {
		return
	}
	hc.deadline = want
	_ = hc.c.SetReadDeadline(want)
}

// serveOne reads and serves one request. keep says whether the connection
// can carry another.
func (hc *h1conn) serveOne() (keep, hijacked bool) {
	hc.idle.Store(true)
	hc.setReadDeadline(h1IdleTimeout)
	if _, err := hc.br.Peek(1); err != nil {
		return false, false
	}
	hc.idle.Store(false)
	if hc.srv.draining.Load() {
		return false, false
	}
	r, status, err := hc.readRequest()
	if err != nil {
		if status != 0 {
			hc.writeError(status, err.Error())
		}
		return false, false
	}
	return hc.serveParsed(r)
}

// serveParsed serves a request readRequest parsed.
func (hc *h1conn) serveParsed(r *http.Request) (keep, hijacked bool) {
	w := &hc.w
	w.reset(r)
	watched := hc.body.done
	if watched {
		hc.startRequest()
	}
	ok := hc.call(w, r)
	if watched && !w.hijacked { // Hijack ends the watch itself
		hc.endRequest()
	}
	if !ok {
		return false, w.hijacked
	}
	if w.hijacked {
		return false, true
	}
	return hc.afterCall(w), false
}

// afterCall completes a response the handler returned from and readies
// the connection for the next request: keep says whether it can carry
// one.
func (hc *h1conn) afterCall(w *h1writer) (keep bool) {
	if err := w.finish(); err != nil {
		return false
	}
	keep = w.keepAlive
	// Read what the handler left of the body, within a limit, so the next
	// request's head is where the reader is.
	if !hc.body.done {
		if hc.body.expectContinue && !hc.body.continued {
			keep = false // the client never sent the body
		} else if n, err := io.CopyN(io.Discard, &hc.body, h1DiscardLimit+1); err != nil && err != io.EOF || n > h1DiscardLimit {
			keep = false
		}
	}
	// Pipelined requests already here get their answers in one write;
	// otherwise (or if the next head is not complete) flush now.
	if n := hc.br.Buffered(); n == 0 || !bytes.Contains(peekBuffered(hc.br, n), []byte("\r\n\r\n")) {
		if err := hc.bw.Flush(); err != nil {
			return false
		}
	}
	return keep
}

// logPanic logs a handler's panic, as net/http does (not an
// http.ErrAbortHandler, which only ends the connection).
func logPanic(p any) {
	if p != http.ErrAbortHandler {
		slog.Error("proxy: handler panic", "panic", p, "stack", string(debug.Stack()))
	}
}

// syscallConn returns c's RawConn, or nil for a connection without one.
func syscallConn(c net.Conn) syscall.RawConn {
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
}

func peekBuffered(br *bufio.Reader, n int) []byte {
	b, _ := br.Peek(n)
	return b
}

// call runs the handler; a panic ends the connection (as in net/http)
// instead of the process. It reports whether the handler returned.
func (hc *h1conn) call(w *h1writer, r *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			logPanic(p)
			if !w.headSent && !w.hijacked {
				hc.writeError(http.StatusInternalServerError, "internal error")
			}
		}
	}()
	hc.srv.handler.ServeHTTP(w, r)
	return true
}

// readRequest parses a request head into the connection's request. A
// non-zero status is the answer to a malformed request.
func (hc *h1conn) readRequest() (*http.Request, int, error) {
	buf, lines, read, err := readHeadLines(hc.br, hc.head[:0], h1MaxHead)
	switch {
	case errors.Is(err, bufio.ErrBufferFull) && lines == 0:
		return nil, http.StatusRequestURITooLong, errors.New("request line too long")
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, http.StatusRequestHeaderFieldsTooLarge, errors.New("header line too long")
	case errors.Is(err, errHeadTooLarge):
		return nil, http.StatusRequestHeaderFieldsTooLarge, errors.New("request head too large")
	case err != nil && (lines > 0 || read):
		return nil, http.StatusBadRequest, errors.New("incomplete request head")
	case err != nil:
		return nil, 0, err
	}
	hc.head = buf
	head := string(buf)
	reqLine, rest, _ := strings.Cut(head, "\n")
	method, reqLine, ok1 := strings.Cut(reqLine, " ")
	target, proto, ok2 := strings.Cut(reqLine, " ")
	if !ok1 || !ok2 || method == "" || target == "" || strings.IndexByte(proto, ' ') >= 0 {
		return nil, http.StatusBadRequest, fmt.Errorf("malformed request line")
	}
	var major, minor int
	switch proto {
	case "HTTP/1.1":
		major, minor = 1, 1
	case "HTTP/1.0":
		major, minor = 1, 0
	default:
		return nil, http.StatusHTTPVersionNotSupported, fmt.Errorf("unsupported protocol %q", proto)
	}
	for i := 0; i < len(method); i++ {
		if !isTokenChar(method[i]) {
			return nil, http.StatusBadRequest, fmt.Errorf("malformed method")
		}
	}
	r := &hc.req
	h := hc.hdr
	*r = hc.tmpl // carries the connection's context without WithContext's copy per request
	r.Method, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Header, r.RequestURI = method, proto, major, minor, h, target
	hs := newHeaderSet(h, lines-1)
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		k, v, err := headerField(line)
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
				return nil, http.StatusBadRequest, fmt.Errorf("invalid character in header %s", k)
			}
		}
		hs.add(k, v)
	}
	// Host: one, required in HTTP/1.1 (RFC 9112 3.2).
	hosts := h["Host"]
	switch {
	case len(hosts) > 1:
		return nil, http.StatusBadRequest, errors.New("more than one Host header")
	case len(hosts) == 1:
		r.Host = hosts[0]
	case minor == 1:
		return nil, http.StatusBadRequest, errors.New("missing Host header")
	}
	// The target: origin form (the common case), else absolute form.
	u := &hc.url
	*u = url.URL{}
	r.URL = u
	switch {
	case target[0] == '/':
		p, q, _ := strings.Cut(target, "?")
		u.RawQuery = q
		if strings.IndexByte(p, '%') >= 0 {
			up, err := url.PathUnescape(p)
			if err != nil {
				return nil, http.StatusBadRequest, errors.New("malformed request path")
			}
			u.Path, u.RawPath = up, p
		} else {
			u.Path = p
		}
	case target == "*" && method == http.MethodOptions:
		u.Path = "*"
	default:
		pu, err := url.ParseRequestURI(target)
		if err != nil || pu.Host == "" {
			return nil, http.StatusBadRequest, errors.New("malformed request target")
		}
		*u = *pu
		r.Host = pu.Host // RFC 9112 3.2.2: the target's authority wins
		r.RequestURI = pu.RequestURI()
	}
	// Framing (RFC 9112 6): chunked or Content-Length, never both.
	te, cl := h["Transfer-Encoding"], h["Content-Length"]
	hc.body = reqBody{hc: hc}
	r.Body = http.NoBody
	switch {
	case len(te) > 0 && len(cl) > 0:
		return nil, http.StatusBadRequest, errors.New("both Transfer-Encoding and Content-Length")
	case len(te) > 0:
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") || minor == 0 {
			return nil, http.StatusNotImplemented, fmt.Errorf("unsupported Transfer-Encoding %q", strings.Join(te, ", "))
		}
		r.ContentLength = -1
		hc.body.chunked = true
		hc.body.ch = chunkedReader{br: hc.br}
		r.Body = &hc.body
		r.TransferEncoding = []string{"chunked"}
	case len(cl) > 0:
		n, err := strconv.ParseInt(cl[0], 10, 64)
		for _, x := range cl[1:] {
			if x != cl[0] {
				err = errors.New("differing Content-Length headers")
			}
		}
		if err != nil || n < 0 {
			return nil, http.StatusBadRequest, errors.New("malformed Content-Length")
		}
		r.ContentLength = n
		hc.body.remaining = n
		if n > 0 {
			r.Body = &hc.body
		}
	}
	if r.Body == http.NoBody {
		hc.body.done = true
	} else if ex := h["Expect"]; len(ex) > 0 {
		if !strings.EqualFold(ex[0], "100-continue") || minor == 0 {
			return nil, http.StatusExpectationFailed, errors.New("unsupported Expect")
		}
		hc.body.expectContinue = true
	}
	r.Close = !wantsKeepAlive(h, minor)
	return r, 0, nil
}

func wantsKeepAlive(h http.Header, minor int) bool {
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			tok = strings.TrimSpace(tok)
			if strings.EqualFold(tok, "close") {
				return false
			}
			if minor == 0 && strings.EqualFold(tok, "keep-alive") {
				return true
			}
		}
	}
	return minor == 1
}

// tokenChars marks the bytes allowed in a token (RFC 9110 5.6.2): method
// and header names. A table: the check runs on every byte of every name.
var tokenChars = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = !strings.ContainsRune("\"(),/:;<=>?@[\\]{}", c)
	}
	return t
}()

func isTokenChar(c byte) bool { return tokenChars[c] }

// writeError answers a request that could not be parsed and ends the
// connection.
func (hc *h1conn) writeError(status int, msg string) {
	body := `{"error":` + strconv.Quote(msg) + "}\n"
	fmt.Fprintf(hc.bw, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	_ = hc.bw.Flush()
}

// reqBody reads a request body from the connection.
type reqBody struct {
	hc             *h1conn
	remaining      int64
	chunked        bool
	ch             chunkedReader
	done           bool
	err            error
	expectContinue bool
	continued      bool
}

func (b *reqBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.expectContinue && !b.continued {
		b.continued = true
		if !b.hc.w.wroteHeader {
			b.hc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := b.hc.bw.Flush(); err != nil {
				b.err = err
				return 0, err
			}
		}
	}
	br := b.hc.br
	if !b.chunked {
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err := br.Read(p)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			b.done = true
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			b.err = err
		}
		return n, err
	}
	n, err := b.ch.Read(p)
	switch {
	case err == io.EOF:
		b.done = true
		if b.ch.trailer != nil {
			b.hc.req.Trailer = b.ch.trailer // kept on the request for the upstream
		}
	case err != nil:
		b.err = err
	}
	return n, err
}

func (b *reqBody) Close() error { return nil }

// h1writer is the response writer of an h1conn.
type h1writer struct {
	conn        *h1conn
	req         *http.Request
	hdr         http.Header
	pass        []hfield // a backend's header lines to send as they are (set by the engine)
	requestID   string   // sent as X-Request-Id unless a header says otherwise (set by the engine)
	status      int
	wroteHeader bool
	headSent    bool
	chunked     bool
	bodyless    bool
	length      int64 // Content-Length given by the handler; -1: none
	written     int64
	keepAlive   bool
	hijacked    bool
}

// setAbort: see h1conn.setAbort (the engine finds it on the writer).
func (w *h1writer) setAbort(f func()) { w.conn.setAbort(f) }

func (w *h1writer) reset(r *http.Request) {
	clear(w.hdr)
	*w = h1writer{conn: w.conn, req: r, hdr: w.hdr, length: -1, keepAlive: !r.Close}
}

// headerValue is the first value of k in the head to send.
func (w *h1writer) headerValue(k string) (string, bool) {
	if v, ok := fieldValue(w.pass, k); ok {
		return v, true
	}
	if vs := w.hdr[k]; len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}

func (w *h1writer) Header() http.Header { return w.hdr }

func (w *h1writer) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response goes out at once; the final one follows.
		bw := w.conn.bw
		bw.WriteString("HTTP/1.1 ")
		bw.WriteString(strconv.Itoa(code))
		bw.WriteString(" ")
		bw.WriteString(http.StatusText(code))
		bw.WriteString("\r\n")
		w.writeHeaderLines(false)
		bw.WriteString("\r\n")
		_ = bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
}

// writeHeaderLines writes the header map and the passed-through lines
// (which replace a map entry of the same name), minus trailers (and, when
// skipFraming, the framing headers the writer decides).
func (w *h1writer) writeHeaderLines(skipFraming bool) {
	bw := w.conn.bw
	for k, vs := range w.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) || w.skip(k, skipFraming) {
			continue
		}
		if _, ok := fieldValue(w.pass, k); ok {
			continue
		}
		for _, v := range vs {
			writeHeaderLine(bw, k, v)
		}
	}
	for _, f := range w.pass {
		if !w.skip(f.k, skipFraming) {
			writeHeaderLine(bw, f.k, f.v)
		}
	}
	if w.requestID != "" {
		if _, ok := w.headerValue("X-Request-Id"); !ok {
			writeHeaderLine(bw, "X-Request-Id", w.requestID)
		}
	}
}

// skip tells a header the writer sets itself when skipFraming. A HEAD
// or 304 answer keeps its Content-Length (the length a GET would get); a
// 1xx or 204 must not have one.
func (w *h1writer) skip(k string, skipFraming bool) bool {
	return skipFraming && (k == "Transfer-Encoding" || k == "Connection" || k == "Trailer" || k == "Content-Length" && (w.status < 200 || w.status == http.StatusNoContent))
}

// sendHead writes the status line and headers.
func (w *h1writer) sendHead() {
	if w.headSent {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.headSent = true
	r := w.req
	w.bodyless = r.Method == http.MethodHead || w.status == http.StatusNoContent || w.status == http.StatusNotModified || w.status < 200
	if cl, ok := w.headerValue("Content-Length"); ok && (len(w.hdr["Content-Length"]) <= 1) {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.length = n
		}
	}
	if w.length < 0 && !w.bodyless {
		if r.ProtoMinor == 1 {
			w.chunked = true
		} else {
			w.keepAlive = false // HTTP/1.0: the body ends with the connection
		}
	}
	if w.conn.srv.draining.Load() {
		w.keepAlive = false
	}
	bw := w.conn.bw
	if w.status == http.StatusOK {
		bw.WriteString("HTTP/1.1 200 OK\r\n")
	} else {
		bw.WriteString("HTTP/1.1 ")
		var nb [8]byte
		bw.Write(strconv.AppendInt(nb[:0], int64(w.status), 10))
		bw.WriteString(" ")
		bw.WriteString(http.StatusText(w.status))
		bw.WriteString("\r\n")
	}
	w.writeHeaderLines(true)
	if _, ok := w.headerValue("Date"); !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case !w.keepAlive:
		bw.WriteString("Connection: close\r\n")
	case r.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
}

func (w *h1writer) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.sendHead()
	if w.bodyless {
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	bw := w.conn.bw
	if w.chunked {
		if len(p) == 0 {
			return 0, nil
		}
		var nb [16]byte
		bw.Write(strconv.AppendInt(nb[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		n, err := bw.Write(p)
		bw.WriteString("\r\n")
		return n, err
	}
	return bw.Write(p)
}

// Flush sends what is buffered (the head included) to the client.
func (w *h1writer) Flush() {
	if w.hijacked {
		return
	}
	w.sendHead()
	_ = w.conn.bw.Flush()
}

// FlushError is Flush for http.ResponseController.
func (w *h1writer) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	w.sendHead()
	return w.conn.bw.Flush()
}

// Hijack hands the connection to the handler (WebSocket).
func (w *h1writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.headSent {
		return nil, nil, errors.New("hijack after the response head was sent")
	}
	w.hijacked = true
	hc := w.conn
	hc.endRequest()
	_ = hc.c.SetDeadline(time.Time{})
	hc.detached = true
	hc.srv.forget(hc) // a tunnel now, tracked as one by the engine
	return hc.c, bufio.NewReadWriter(hc.br, hc.bw), nil
}

// finish completes the response: the head if no body was written, the
// last chunk with any trailers, and the check of a declared length.
func (w *h1writer) finish() error {
	if !w.headSent {
		if !w.wroteHeader {
			w.WriteHeader(http.StatusOK)
		}
		if w.length < 0 && !w.bodyless {
			if _, ok := w.hdr["Content-Length"]; !ok && w.req.Method != http.MethodHead &&
				w.status != http.StatusNoContent && w.status != http.StatusNotModified && w.status >= 200 {
				w.hdr["Content-Length"] = []string{"0"}
			}
		}
		w.sendHead()
	}
	bw := w.conn.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for k, vs := range w.hdr {
			name, ok := strings.CutPrefix(k, http.TrailerPrefix)
			if !ok {
				continue
			}
			for _, v := range vs {
				writeHeaderLine(bw, name, v)
			}
		}
		bw.WriteString("\r\n")
	}
	if w.length >= 0 && w.written != w.length && !w.bodyless {
		_ = bw.Flush()
		return io.ErrShortWrite // the client cannot tell where the body ends: close
	}
	if !w.keepAlive {
		return bw.Flush()
	}
	return nil
}

var dateCache atomic.Pointer[dateEntry]

type dateEntry struct {
	sec int64
	s   string
}

// httpDate is the Date header value, formatted once a second.
func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.s
	}
	d := &dateEntry{sec: now.Unix(), s: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}

// chanListener hands connections to a net/http server.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) hand(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// peekedConn replays what was read while peeking.
type peekedConn struct {
	net.Conn
	r    *bufio.Reader
	done func()
	once sync.Once
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

func (c *peekedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}
