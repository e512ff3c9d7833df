package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// isWebSocket reports whether r asks to upgrade to WebSocket (RFC 6455).
func isWebSocket(r *http.Request) bool {
	if r.ProtoMajor != 1 || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// tunnels tracks hijacked connections, which http.Server.Shutdown does not
// wait for: Drain closes them once its grace period ends. (Not a
// WaitGroup: a tunnel may open while Drain waits, and a WaitGroup's Add
// from zero must happen before its Wait.)
type tunnels struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	empty chan struct{} // closed when the last tunnel goes; nil while nobody waits
}

func (t *tunnels) add(c net.Conn) {
	t.mu.Lock()
	if t.conns == nil {
		t.conns = map[net.Conn]struct{}{}
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
}

func (t *tunnels) remove(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	if len(t.conns) == 0 && t.empty != nil {
		close(t.empty)
		t.empty = nil
	}
	t.mu.Unlock()
}

// drained returns a channel that is closed once no tunnel is open.
func (t *tunnels) drained() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.conns) == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	if t.empty == nil {
		t.empty = make(chan struct{})
	}
	return t.empty
}

// closeAll closes every tunnel (the end of a drain).
func (t *tunnels) closeAll() {
	t.mu.Lock()
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
}

// serveUpgrade proxies a WebSocket handshake on a new upstream connection
// and, once the backend agrees (101), splices the two connections. Only a
// failure to connect is retried: after the handshake is sent, the backend
// may have acted on it.
func (e *Engine) serveUpgrade(w http.ResponseWriter, r *http.Request, rt *route, ex *exchange) {
	rec := &ex.rec
	o := &ex.out
	o.method, o.path, o.host, o.xfh, o.header = r.Method, upstreamPath(r, rt), r.Host, r.Host, r.Header
	if rt.rewriteHost != "" {
		o.host = rt.rewriteHost
	}
	o.requestID, o.xff, o.proto = rec.requestID, forwardedFor(r), "http"
	if r.TLS != nil {
		o.proto = "https"
	}
	o.upgrade = r.Header.Get("Upgrade")
	o.body, o.length = nil, 0
	key, hasKey := hashKey(r, rt.hash)
	start := time.Now()
	deadline := start.Add(rt.connectTO + 10*time.Second)
	if rt.requestTO > 0 {
		deadline = start.Add(rt.requestTO)
	}

	var be *backend
	var u *upstream
	var uc *upConn
	var lastErr error
	for attempt := 0; attempt <= rt.retry.Attempts; attempt++ {
		be = rt.pickBackend()
		ep := be.bal.Pick(key, hasKey)
		if ep == nil {
			e.finishError(w, r, rt, rec, &tryResult{be: be}, http.StatusServiceUnavailable, "no healthy backend instance")
			return
		}
		u = ep.Owner.(*upstream)
		if u.tls || u.h2 {
			e.finishError(w, r, rt, rec, &tryResult{be: be, ep: ep}, http.StatusBadGateway, "WebSocket needs an HTTP/1.1 backend without tls or http2")
			return
		}
		if u.conns.Add(1) > u.maxConns.Load() {
			u.conns.Add(-1)
			e.finishError(w, r, rt, rec, &tryResult{be: be, ep: ep, outcome: outCircuit}, http.StatusServiceUnavailable, "backend at its circuit-breaking limit")
			return
		}
		var err error
		uc, err = u.connect(deadline)
		if err == nil {
			rec.upstream = ep.Addr
			break
		}
		u.conns.Add(-1)
		lastErr = err
		if be.outliers != nil {
			be.outliers.Result(ep, false, time.Now())
		}
		if !rt.retry.ConnectFailure {
			break
		}
	}
	rec.backend = be.name
	if uc == nil {
		rec.err = lastErr.Error()
		e.finishError(w, r, rt, rec, &tryResult{be: be}, http.StatusBadGateway, "upstream connection failed")
		return
	}
	upClose := func() { u.closeConn(uc) }
	uc.setDeadline(deadline, 0)
	err := o.writeH1(uc.bw, ex.buf)
	var rh respHead
	if err == nil {
		rh, err = uc.readHead(&ex.fields, r.Method)
	}
	if err != nil {
		upClose()
		rec.err = err.Error()
		e.finishError(w, r, rt, rec, &tryResult{be: be}, http.StatusBadGateway, "upstream failed during the WebSocket handshake")
		return
	}
	rec.upstreamLatency = time.Since(start)
	if rh.status != http.StatusSwitchingProtocols {
		// Refused (401, 404, ...): pass the answer on as a plain response.
		dst := w.Header()
		fields := passFields(ex.fields)
		for _, f := range fields {
			delete(dst, f.k)
		}
		for _, f := range fields {
			dst[f.k] = append(dst[f.k], f.v)
		}
		w.WriteHeader(rh.status)
		ex.body.reset(uc, &rh, idleBodyTimeout)
		n, _ := io.CopyBuffer(w, &ex.body, ex.buf)
		upClose()
		rec.status, rec.bytes = rh.status, n
		e.finish(r, rec, rt, be, time.Now())
		return
	}
	uc.dl = time.Time{}
	_ = uc.c.SetDeadline(time.Time{})
	hj, ok := w.(http.Hijacker)
	if !ok {
		upClose()
		e.finishError(w, r, rt, rec, &tryResult{be: be}, http.StatusInternalServerError, "connection cannot be upgraded")
		return
	}
	client, crw, err := hj.Hijack()
	if err != nil {
		upClose()
		rec.err = err.Error()
		e.finishError(w, r, rt, rec, &tryResult{be: be}, http.StatusInternalServerError, "connection cannot be upgraded")
		return
	}
	// A tunnel from now on: the server stopped tracking the connection,
	// so a drain must find it here.
	e.tunnels.add(client)
	rec.status = http.StatusSwitchingProtocols
	// The 101 head as the backend sent it, minus nothing: Upgrade and
	// Connection are the point of it.
	crw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	for _, f := range ex.fields {
		writeHeaderLine(crw.Writer, f.k, f.v)
	}
	crw.WriteString("X-Request-Id: ")
	writeHeaderValue(crw.Writer, rec.requestID)
	crw.WriteString("\r\n\r\n")
	if err := crw.Flush(); err != nil {
		client.Close()
		upClose()
		e.tunnels.remove(client)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	var up2down int64
	go func() {
		defer wg.Done()
		up2down, _ = io.Copy(client, uc.br) // the reader holds what came with the 101
		closeWrite(client)
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(uc.c, crw.Reader) // what the server had buffered, then the connection
		closeWrite(uc.c)
	}()
	wg.Wait()
	client.Close()
	upClose()
	e.tunnels.remove(client)
	rec.bytes = up2down
	e.finish(r, rec, rt, be, time.Now())
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = c.Close()
}
