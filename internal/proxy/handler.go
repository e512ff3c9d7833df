package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/proxy/balancer"
	"github.com/cairnhq/cairn/internal/proxy/router"
)

// maxReplayBody is the largest request body buffered so a failed try can
// be retried; larger bodies stream and are not retried once sent.
const maxReplayBody = 64 << 10

// idleBodyTimeout bounds the wait for the next bytes of a response body
// (streams included): a backend that goes silent this long is cut off.
const idleBodyTimeout = 5 * time.Minute

// exchange is the per-request scratch state, pooled.
type exchange struct {
	out     outbound
	fields  []hfield // the response head of an HTTP/1.1 try
	body    bodyReader
	buf     []byte // copy buffer
	reqBody bytes.Buffer
	replay  bytes.Reader
	rec     logRecord

	// A client that goes away mid-request (told by the server, see
	// clientWatcher) closes the backend connection in use, if any.
	abortMu  sync.Mutex
	inflight *upConn
	gone     bool
	abortFn  func() // ex.abort, bound once

	// The request's tries (begin sets them; run or the event loop makes
	// them).
	rt        *route
	retryable bool
	key       uint64
	hasKey    bool
	deadline  time.Time          // of the whole request
	attempt   int                // tries made before this one
	prev      *balancer.Endpoint // the last try's instance
	tryAt     time.Time          // when the current try starts
}

var exchanges = sync.Pool{New: func() any {
	ex := &exchange{fields: make([]hfield, 0, 16), buf: make([]byte, 32<<10)}
	ex.abortFn = ex.abort
	return ex
}}

// clientWatcher is a ResponseWriter whose server can tell that the client
// went away while the handler runs (the HTTP/1.1 server's; net/http
// cancels the request's context instead). The handler sets what to run
// then, and nil before it returns.
type clientWatcher interface{ setAbort(func()) }

// errClientGone ends a try whose client went away.
var errClientGone = errors.New("client went away")

// abort is called, once, when the client goes away: the backend
// connection in use is closed, which ends the try or the body copy.
func (ex *exchange) abort() {
	ex.abortMu.Lock()
	ex.gone = true
	if ex.inflight != nil {
		_ = ex.inflight.c.Close()
	}
	ex.abortMu.Unlock()
}

// use records uc as the connection in use; false if the client is gone.
func (ex *exchange) use(uc *upConn) bool {
	ex.abortMu.Lock()
	defer ex.abortMu.Unlock()
	if ex.gone {
		return false
	}
	ex.inflight = uc
	return true
}

// done forgets the connection in use and tells whether the client went
// away meanwhile (the connection may then be closed).
func (ex *exchange) done() (gone bool) {
	ex.abortMu.Lock()
	ex.inflight = nil
	gone = ex.gone
	ex.abortMu.Unlock()
	return gone
}

// outcome is how one try ended.
type outcome int

const (
	outOK       outcome = iota // a response head arrived
	outConnect                 // could not connect: the backend never saw the request
	outReset                   // the connection broke before a complete response head
	outTimeout                 // the per-try or request timeout passed
	outCircuit                 // the instance is at a limit
	outNoTarget                // no healthy instance
	outStatus                  // a status backend: the route answers an error itself
	outClient                  // the client's request body failed
	outGone                    // the client went away
)

// tryResult is a try's response, from the HTTP/1.1 pool or net/http.
type tryResult struct {
	outcome outcome
	err     error
	status  int
	header  http.Header // the response head of a net/http try (res.uc == nil)
	body    io.Reader
	length  int64 // -1: unknown
	uc      *upConn
	resp    *http.Response
	cancel  context.CancelFunc
	stop    func() bool // stops the per-try timer of a net/http try
	ep      *balancer.Endpoint
	be      *backend
	started time.Time
	latency time.Duration // to the response head
}

// ServeHTTP proxies one request.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := e.acquireExchange(w)
	defer e.releaseExchange(ex, w)
	if !e.begin(ex, w, r, time.Now(), nil) {
		return
	}
	e.run(ex, w, r)
}

// acquireExchange returns an exchange for a request answered through w.
func (e *Engine) acquireExchange(w http.ResponseWriter) *exchange {
	ex := exchanges.Get().(*exchange)
	if cw, ok := w.(clientWatcher); ok {
		cw.setAbort(ex.abortFn)
	}
	return ex
}

// releaseExchange returns ex to the pool once its request is answered.
func (e *Engine) releaseExchange(ex *exchange, w http.ResponseWriter) {
	if cw, ok := w.(clientWatcher); ok {
		cw.setAbort(nil) // no abort can come after this
	}
	ex.inflight, ex.gone = nil, false
	ex.rec = logRecord{}
	ex.out = outbound{}
	ex.reqBody.Reset()
	ex.rt, ex.prev, ex.attempt = nil, nil, 0
	exchanges.Put(ex)
}

// begin routes a request (unless the caller did: rt) and prepares what
// goes upstream, into ex. It answers the request itself (no route, a
// WebSocket upgrade, a body that cannot be read) and returns false, or
// returns true with the tries to make (run).
func (e *Engine) begin(ex *exchange, w http.ResponseWriter, r *http.Request, start time.Time, rt *route) bool {
	rec := &ex.rec
	rec.start = start
	var rid string
	if v := r.Header["X-Request-Id"]; len(v) > 0 {
		rid = v[0]
	}
	if rid == "" || len(rid) > 200 {
		rid = newRequestID()
	}
	rec.requestID = rid
	if hw, ok := w.(*h1writer); ok {
		hw.requestID = rid // written with the head, unless the backend sends its own
	} else {
		w.Header()["X-Request-Id"] = []string{rid}
	}

	if rt == nil {
		rt = e.route(r)
	}
	if rt == nil {
		e.finishError(w, r, nil, rec, nil, http.StatusNotFound, "no route matches this request")
		return false
	}
	rec.route = rt.name
	if rt.limit != nil && !e.admit(w, r, rt, rec, start) {
		return false
	}

	if isWebSocket(r) {
		e.serveUpgrade(w, r, rt, ex)
		return false
	}

	o := &ex.out
	o.method = r.Method
	o.path = upstreamPath(r, rt)
	o.host, o.xfh = r.Host, r.Host
	if rt.rewriteHost != "" {
		o.host = rt.rewriteHost
	}
	o.header = r.Header
	o.requestID = rid
	o.xff = forwardedFor(r)
	o.proto = "http"
	if r.TLS != nil {
		o.proto = "https"
	}
	retryable := rt.retry.Attempts > 0 && (rt.retry.NonIdempotent || config.IsIdempotent(r.Method))
	switch {
	case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 && r.ProtoMajor == 1:
		o.body, o.length = nil, 0
	case retryable && r.ContentLength > 0 && r.ContentLength <= maxReplayBody:
		if _, err := io.CopyN(&ex.reqBody, r.Body, r.ContentLength); err != nil {
			e.finishError(w, r, rt, rec, nil, http.StatusBadRequest, "reading the request body: "+err.Error())
			return false
		}
		ex.replay.Reset(ex.reqBody.Bytes())
		o.body, o.length = &ex.replay, r.ContentLength
	default:
		o.body, o.length = r.Body, r.ContentLength
		o.trailer = r.Trailer
		retryable = false // a streamed body cannot be sent twice
	}
	if r.ProtoMajor == 2 && o.body != nil && r.ContentLength < 0 {
		o.length = -1
	}

	ex.rt, ex.retryable = rt, retryable
	if rt.requestTO > 0 {
		ex.deadline = start.Add(rt.requestTO)
	} else {
		ex.deadline = start.Add(100 * 365 * 24 * time.Hour)
	}
	ex.key, ex.hasKey = hashKey(r, rt.hash)
	ex.attempt, ex.prev, ex.tryAt = 0, nil, start
	rt.budget.Request()
	return true
}

// route returns the route r matches, or nil.
func (e *Engine) route(r *http.Request) *route {
	if rr := e.cur.Load().table.Lookup(r); rr != nil {
		return rr.Target.(*route)
	}
	return nil
}

// run makes the tries begin prepared, with retries, and answers.
func (e *Engine) run(ex *exchange, w http.ResponseWriter, r *http.Request) {
	var res tryResult
	for {
		if ex.attempt > 0 && ex.out.body != nil {
			ex.replay.Reset(ex.reqBody.Bytes())
		}
		res = e.try(ex, r)
		d, again := e.afterTry(ex, r, &res)
		if !again {
			break
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			e.finishError(w, r, ex.rt, &ex.rec, &res, 499, "client went away")
			return
		}
		ex.attempt++
		ex.tryAt = time.Now()
	}
	e.conclude(ex, w, r, &res)
}

// afterTry records a try's outcome (outliers) and decides on a retry:
// again is true with the back-off to wait, the failed try discarded.
func (e *Engine) afterTry(ex *exchange, r *http.Request, res *tryResult) (backoff time.Duration, again bool) {
	rt, rec := ex.rt, &ex.rec
	ex.prev = res.ep
	if res.outcome != outOK && res.outcome != outGone && r.Context().Err() != nil {
		res.outcome = outGone // the try failed because the client left
	}
	ok := res.outcome == outOK && res.status < 500
	if res.ep != nil && res.be.outliers != nil && res.outcome != outCircuit && res.outcome != outClient && res.outcome != outGone {
		if res.be.outliers.Result(res.ep, ok, res.started.Add(res.latency)) && rt.metrics != nil {
			rt.metrics.ejected(res.be)
		}
	}
	if !e.shouldRetry(rt, res, ex.retryable, ex.attempt, ex.deadline) {
		return 0, false
	}
	e.discard(res)
	rec.retries++
	if rt.metrics != nil {
		rt.metrics.retries.Inc()
	}
	d := rt.backoff.Delay(ex.attempt + 1)
	if time.Until(ex.deadline) <= d {
		// No time left to back off and try again: answer with what we have.
		rec.retries--
		*res = tryResult{outcome: outTimeout, err: context.DeadlineExceeded, ep: res.ep, be: res.be}
		return 0, false
	}
	return d, true
}

// conclude answers with the last try's response, or the error it ended in.
func (e *Engine) conclude(ex *exchange, w http.ResponseWriter, r *http.Request, res *tryResult) {
	rt, rec := ex.rt, &ex.rec
	if res.outcome != outOK {
		e.discard(res)
		code, msg := http.StatusBadGateway, "upstream connection failed"
		switch res.outcome {
		case outConnect:
			if isTimeout(res.err) {
				code, msg = http.StatusGatewayTimeout, "upstream connect timed out"
			}
		case outTimeout:
			code, msg = http.StatusGatewayTimeout, "upstream timed out"
		case outCircuit:
			code, msg = http.StatusServiceUnavailable, "backend at its circuit-breaking limit"
		case outNoTarget:
			code, msg = http.StatusServiceUnavailable, "no healthy backend instance"
		case outStatus:
			code, msg = res.be.status, "the route's backend is not valid"
		case outClient:
			code, msg = http.StatusBadRequest, "reading the request body failed"
		case outGone:
			code, msg = 499, "client went away"
		}
		if res.err != nil {
			rec.err = res.err.Error()
		}
		e.finishError(w, r, rt, rec, res, code, msg)
		return
	}
	e.respond(w, r, rt, ex, res)
}

// try sends the request to one instance and waits for the response head.
func (e *Engine) try(ex *exchange, r *http.Request) tryResult {
	res, u, tryDeadline := e.pick(ex)
	if u == nil {
		return res
	}
	if u.rt != nil {
		e.tryStd(ex, r, u, tryDeadline, &res)
	} else {
		e.tryH1(ex, u, tryDeadline, ex.tryAt, &res)
	}
	e.tried(&res, u, time.Now())
	return res
}

// pick chooses the instance of a try (at ex.tryAt) and takes a request
// slot on it: u is nil when there is none (res says why); else the try
// is begun and must end with tried.
func (e *Engine) pick(ex *exchange) (res tryResult, u *upstream, tryDeadline time.Time) {
	rt, now := ex.rt, ex.tryAt
	be := rt.pickBackend()
	if be.status != 0 {
		return tryResult{outcome: outStatus, be: be}, nil, time.Time{}
	}
	ep := be.bal.PickAt(ex.key, ex.hasKey, now)
	if ep != nil && ep == ex.prev && be.bal.Len() > 1 && !ex.hasKey {
		if again := be.bal.PickAt(ex.key, ex.hasKey, now); again != nil {
			ep = again
		}
	}
	if ep == nil {
		return tryResult{outcome: outNoTarget, be: be}, nil, time.Time{}
	}
	u = ep.Owner.(*upstream)
	res = tryResult{ep: ep, be: be}
	if !u.acquire() {
		res.outcome, res.err = outCircuit, errCircuitOpen
		if rt.metrics != nil {
			rt.metrics.shed(be)
		}
		return res, nil, time.Time{}
	}
	tryDeadline = ex.deadline
	if rt.perTryTO > 0 {
		if d := now.Add(rt.perTryTO); d.Before(tryDeadline) {
			tryDeadline = d
		}
	}
	ep.Begin()
	res.started = now
	return res, u, tryDeadline
}

// tried ends a try pick began, at now: a failed one gives its slot back.
func (e *Engine) tried(res *tryResult, u *upstream, now time.Time) {
	res.latency = now.Sub(res.started)
	if res.outcome != outOK {
		res.ep.End(0, false, time.Time{})
		u.release()
	}
}

func (e *Engine) tryH1(ex *exchange, u *upstream, deadline, now time.Time, res *tryResult) {
	for fresh := false; ; fresh, now = true, time.Now() {
		uc, reused, err := u.get(deadline, now)
		if err != nil {
			res.err = err
			var ce *connectError
			switch {
			case errors.Is(err, errCircuitOpen):
				res.outcome = outCircuit
			case errors.As(err, &ce) && time.Now().Before(deadline):
				// Refused, or the connect timeout passed (not the try's):
				// a connect failure, as on the net/http path.
				res.outcome = outConnect
			case isTimeout(err):
				res.outcome = outTimeout
			default:
				res.outcome = outConnect
			}
			return
		}
		if !ex.use(uc) {
			u.put(uc, false) // unused
			res.outcome, res.err = outGone, errClientGone
			return
		}
		uc.setDeadline(deadline, deadline.Sub(now))
		err = ex.out.writeH1(uc.bw, ex.buf)
		var rh respHead
		if err == nil {
			rh, err = uc.readHead(&ex.fields, ex.out.method)
		}
		if err == nil {
			res.outcome, res.uc, res.status = outOK, uc, rh.status
			res.length = rh.length
			ex.body.reset(uc, &rh, idleBodyTimeout)
			res.body = &ex.body
			if rh.close {
				ex.body.closeAfter = true
			}
			return
		}
		u.put(uc, true)
		if ex.done() {
			res.outcome, res.err = outGone, errClientGone
			return
		}
		var be *bodyError
		switch {
		case errors.As(err, &be):
			res.outcome, res.err = outClient, err
			return
		case isTimeout(err):
			res.outcome, res.err = outTimeout, err
			return
		case reused && !rh.anyHeader && !fresh && (ex.out.body == nil || ex.out.body == &ex.replay):
			// The backend closed an idle connection as we reused it: the
			// request was not processed, so send it once more on a new one.
			if ex.out.body != nil {
				ex.replay.Reset(ex.reqBody.Bytes())
			}
			continue
		default:
			res.outcome, res.err = outReset, err
			return
		}
	}
}

// tryStd sends a try through net/http's transport (TLS and HTTP/2
// backends). The per-try deadline covers the response head only: a timer
// cancels the try unless the head arrives first.
func (e *Engine) tryStd(ex *exchange, r *http.Request, u *upstream, deadline time.Time, res *tryResult) {
	o := &ex.out
	scheme := "http"
	if u.tls {
		scheme = "https"
	}
	ctx, cancel := context.WithCancel(r.Context())
	hdr := make(http.Header, len(r.Header)+4)
	for k, vs := range r.Header {
		if k == "Te" {
			if len(vs) == 1 && strings.EqualFold(vs[0], "trailers") {
				hdr[k] = vs
			}
			continue
		}
		if isHop(k) || k == "Host" || k == "Expect" || connectionListed(r.Header, k) {
			continue
		}
		hdr[k] = vs
	}
	hdr["X-Forwarded-For"] = []string{o.xff}
	hdr["X-Forwarded-Proto"] = []string{o.proto}
	hdr["X-Forwarded-Host"] = []string{r.Host}
	hdr["X-Request-Id"] = []string{o.requestID}
	target, err := url.ParseRequestURI(o.path)
	if err != nil {
		cancel()
		res.outcome, res.err = outClient, err
		return
	}
	target.Scheme, target.Host = scheme, u.addr
	out := (&http.Request{
		Method:        o.method,
		URL:           target,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Host:          o.host,
		ContentLength: o.length,
		Trailer:       r.Trailer,
	}).WithContext(ctx)
	if o.body != nil {
		out.Body = io.NopCloser(o.body)
		if o.length == 0 {
			out.ContentLength = -1
		}
	}
	timer := time.AfterFunc(time.Until(deadline), cancel)
	resp, err := u.rt.RoundTrip(out)
	if err != nil {
		timedOut := !timer.Stop() && r.Context().Err() == nil // the per-try timer fired
		cancel()
		var ce *connectError
		switch {
		case errors.As(err, &ce) && !timedOut:
			res.outcome = outConnect
		case timedOut, isTimeout(err):
			res.outcome = outTimeout
		default:
			res.outcome = outReset
		}
		res.err = err
		return
	}
	res.outcome, res.resp, res.cancel, res.stop = outOK, resp, cancel, timer.Stop
	res.status, res.header, res.body, res.length = resp.StatusCode, resp.Header, resp.Body, resp.ContentLength
	timer.Stop()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// shouldRetry applies the route's retry policy to a try's result.
func (e *Engine) shouldRetry(rt *route, res *tryResult, retryable bool, attempt int, deadline time.Time) bool {
	if attempt >= rt.retry.Attempts {
		return false
	}
	p := &rt.retry
	switch res.outcome {
	case outConnect:
		// The backend never saw the request: safe for any method. The
		// body is intact too, streamed or not: a try reads it only once
		// connected.
		if !p.ConnectFailure {
			return false
		}
	case outReset:
		if !p.Reset || !retryable {
			return false
		}
	case outTimeout:
		if !p.Timeout || !retryable {
			return false
		}
	case outOK:
		if res.status < 500 || res.status > 599 || !p.Statuses[res.status-500] || !retryable {
			return false
		}
	default:
		return false
	}
	now := time.Now()
	return now.Before(deadline) && rt.budget.TryRetry(now)
}

// discard ends a try whose response will not be used.
func (e *Engine) discard(res *tryResult) {
	if res.outcome == outOK {
		u := res.ep.Owner.(*upstream)
		if res.uc != nil {
			u.put(res.uc, true)
			res.uc = nil
		}
		if res.resp != nil {
			res.resp.Body.Close()
			res.cancel()
			res.resp = nil
		}
		res.ep.End(res.latency, true, time.Now())
		u.release()
		res.outcome = outReset
	}
}

// respond streams the chosen response to the client.
func (e *Engine) respond(w http.ResponseWriter, r *http.Request, rt *route, ex *exchange, res *tryResult) {
	rec := &ex.rec
	u := res.ep.Owner.(*upstream)
	rec.backend = res.be.name
	rec.upstream = u.addr
	rec.upstreamLatency = res.latency
	dst := w.Header()
	var ct string
	var grpcStatus bool
	if res.uc != nil {
		// An HTTP/1.1 backend's head: its lines go to the HTTP/1.1 server's
		// writer as they are, or into the header map of another writer.
		// A backend's field replaces what the gateway set (X-Request-Id).
		fields := passFields(ex.fields)
		ct, _ = fieldValue(fields, "Content-Type")
		_, grpcStatus = fieldValue(fields, "Grpc-Status")
		if hw, ok := w.(*h1writer); ok {
			hw.pass = fields
		} else {
			for _, f := range fields {
				delete(dst, f.k)
			}
			for _, f := range fields {
				dst[f.k] = append(dst[f.k], f.v)
			}
		}
	} else {
		connHdr := len(res.header["Connection"]) > 0
		for k, vs := range res.header {
			if isHop(k) || connHdr && connectionListed(res.header, k) {
				continue
			}
			dst[k] = vs
		}
		ct = res.header.Get("Content-Type")
		_, grpcStatus = res.header["Grpc-Status"]
	}
	flush := res.length < 0 && !isBodyless(r.Method, res.status)
	if strings.HasPrefix(ct, "text/event-stream") || strings.HasPrefix(ct, "application/grpc") {
		flush = true
	}
	if res.resp != nil && len(res.resp.Trailer) > 0 {
		flush = true
	}
	if grpcStatus {
		// A gRPC Trailers-Only answer (an error status, no messages): it
		// must reach the client as one HEADERS frame that ends the stream,
		// which flushing the head early would split.
		flush = false
	}
	w.WriteHeader(res.status)
	rec.status = res.status
	var written int64
	var copyErr error
	clientGone := false
	var flusher http.Flusher
	if flush {
		flusher, _ = w.(http.Flusher)
		if flusher != nil {
			flusher.Flush()
		}
	}
	buf := ex.buf
	for {
		n, err := res.body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			written += int64(m)
			if werr != nil {
				copyErr, clientGone = werr, true
				break
			}
			if flusher != nil {
				flusher.Flush()
			} else if res.uc != nil && ex.body.wouldBlock() {
				// A Content-Length body that is still coming: what arrived
				// goes out now rather than when the write buffer fills.
				// (A body that came in one read, as most do, goes out with
				// the end of the response, in one write.)
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			copyErr = err
			break
		}
	}
	rec.bytes = written
	// Trailers (gRPC status, chunked HTTP/1.1 trailers) follow the body.
	var trailer http.Header
	if res.uc != nil {
		trailer = ex.body.trailer
	} else if res.resp != nil {
		trailer = res.resp.Trailer
	}
	for k, vs := range trailer {
		dst[http.TrailerPrefix+k] = vs
	}
	gone := ex.done()
	end := time.Now()
	if res.uc != nil {
		u.putAt(res.uc, copyErr != nil || gone || !ex.body.done || ex.body.closeAfter, end)
		res.uc = nil
	}
	if res.resp != nil {
		res.resp.Body.Close()
		res.cancel()
	}
	ok := copyErr == nil && res.status < 500
	res.ep.End(res.latency, copyErr == nil || gone, end)
	u.release()
	if copyErr != nil {
		rec.err = copyErr.Error()
		if gone {
			rec.err = errClientGone.Error()
		}
		if res.be.outliers != nil && !clientGone && !gone {
			res.be.outliers.Result(res.ep, ok, end)
		}
	}
	e.finish(r, rec, rt, res.be, end)
}

func isBodyless(method string, status int) bool {
	return method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified || status < 200
}

// finishError answers with a proxy-made error.
func (e *Engine) finishError(w http.ResponseWriter, r *http.Request, rt *route, rec *logRecord, res *tryResult, code int, msg string) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["X-Cairn-Error"] = []string{msg}
	if code != 499 {
		w.WriteHeader(code)
		body := `{"error":` + strconv.Quote(msg) + `}` + "\n"
		n, _ := io.WriteString(w, body)
		rec.bytes = int64(n)
	}
	rec.status = code
	if rec.err == "" {
		rec.err = msg
	}
	var be *backend
	if res != nil {
		be = res.be
		if res.ep != nil {
			rec.upstream = res.ep.Addr
		}
		if be != nil {
			rec.backend = be.name
		}
	}
	e.finish(r, rec, rt, be, time.Now())
}

// finish writes the access log line and the metrics of a request.
// now is the time the response ended.
func (e *Engine) finish(r *http.Request, rec *logRecord, rt *route, be *backend, now time.Time) {
	rec.duration = now.Sub(rec.start)
	if rt != nil && rt.metrics != nil {
		rt.metrics.observe(be, rec.status, rec.duration, rec.upstreamLatency)
	} else if e.opts.Metrics != nil {
		e.opts.Metrics.unrouted(rec.status)
	}
	if e.opts.AccessLog != nil {
		e.opts.AccessLog.write(r, rec)
	}
}

// upstreamPath is the request target sent upstream: as the client sent
// it, with the matched prefix rewritten when the route says so.
func upstreamPath(r *http.Request, rt *route) string {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		uri = r.URL.RequestURI()
	}
	if rt.rewritePrefix == nil {
		return uri
	}
	p, q, hasQ := strings.Cut(uri, "?")
	rest := ""
	if n := escapedLen(p, rt.prefixLen); n <= len(p) {
		rest = p[n:]
	}
	np := *rt.rewritePrefix
	switch {
	case rest == "":
	case strings.HasSuffix(np, "/") && strings.HasPrefix(rest, "/"):
		np += rest[1:]
	case !strings.HasSuffix(np, "/") && !strings.HasPrefix(rest, "/"):
		np += "/" + rest
	default:
		np += rest
	}
	if hasQ {
		return np + "?" + q
	}
	return np
}

// escapedLen returns how many bytes of the escaped path p spell the first
// n bytes of the decoded path the router matched (each %XX is one byte).
func escapedLen(p string, n int) int {
	if strings.IndexByte(p, '%') < 0 {
		return n
	}
	i := 0
	for ; n > 0 && i < len(p); n-- {
		if p[i] == '%' && i+2 < len(p) {
			i += 3
		} else {
			i++
		}
	}
	return i + n
}

// forwardedFor appends the client's address to X-Forwarded-For.
func forwardedFor(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	prior := r.Header["X-Forwarded-For"]
	if len(prior) == 0 {
		return ip
	}
	return strings.Join(prior, ", ") + ", " + ip
}

// hashKey computes a ring-hash key from the route's hash source.
func hashKey(r *http.Request, h *config.HashOn) (uint64, bool) {
	if h == nil {
		return 0, false
	}
	switch {
	case h.Header != "":
		if v := r.Header.Get(h.Header); v != "" {
			return balancer.HashKey(v), true
		}
	case h.Cookie != "":
		if v, ok := router.CookieValue(r.Header, h.Cookie); ok && v != "" {
			return balancer.HashKey(v), true
		}
	case h.SourceIP:
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		return balancer.HashKey(ip), true
	}
	return 0, false
}

const hexDigits = "0123456789abcdef"

// newRequestID returns 32 random hex digits (128 bits, as a W3C trace id).
func newRequestID() string {
	var b [32]byte
	a, c := rand.Uint64(), rand.Uint64()
	for i := 0; i < 16; i++ {
		b[i] = hexDigits[a>>(60-4*i)&0xf]
		b[16+i] = hexDigits[c>>(60-4*i)&0xf]
	}
	return string(b[:])
}
