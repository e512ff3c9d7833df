package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// The HTTP/1.1 client of the hot path. net/http's Transport spends most
// of a small proxied request on its per-connection goroutines, channels and
// header copies; this writes the request straight from the incoming one
// into a pooled connection and parses the response head with one
// allocation for all its strings.

// hopHeaders are the hop-by-hop headers (RFC 9110 7.6.1) a proxy must not
// forward, plus Proxy-Connection, which old clients still send.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// connectionListed reports whether h's Connection header names k, which
// makes k hop-by-hop too.
func connectionListed(h http.Header, k string) bool {
	for _, v := range h["Connection"] {
		if tokenListed(v, k) {
			return true
		}
	}
	return false
}

// tokenListed reports whether the comma-separated list v names k.
func tokenListed(v, k string) bool {
	for v != "" {
		var tok string
		tok, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(textproto.TrimString(tok), k) {
			return true
		}
	}
	return false
}

// hfield is one header line of a response head from a backend, its name
// canonical. A head is kept as a list of them, in the order received:
// most pass straight through to the client, and a map would cost more to
// fill, copy and walk than the few lookups made on them.
type hfield struct{ k, v string }

// fieldValue returns the first value of k.
func fieldValue(fs []hfield, k string) (string, bool) {
	for i := range fs {
		if fs[i].k == k {
			return fs[i].v, true
		}
	}
	return "", false
}

// passFields removes, in place, the fields that must not reach the
// client: hop-by-hop ones, those the Connection header names, and a
// repeated Content-Length (the head parser checked they agree).
func passFields(fs []hfield) []hfield {
	// The Connection values first: the filter below overwrites fs.
	var connBuf [4]string
	conn := connBuf[:0]
	for i := range fs {
		if fs[i].k == "Connection" {
			conn = append(conn, fs[i].v)
		}
	}
	out := fs[:0]
	seenCL := false
	for _, f := range fs {
		if isHop(f.k) || listedIn(conn, f.k) {
			continue
		}
		if f.k == "Content-Length" {
			if seenCL {
				continue
			}
			seenCL = true
		}
		out = append(out, f)
	}
	return out
}

// listedIn reports whether one of the Connection values vs names k.
func listedIn(vs []string, k string) bool {
	for _, v := range vs {
		if tokenListed(v, k) {
			return true
		}
	}
	return false
}

// outbound is what the handler decided about the request that goes
// upstream: the parts of it that differ from the incoming one.
type outbound struct {
	method    string
	path      string // path and query as sent upstream
	host      string
	xff       string // the X-Forwarded-For value to send
	xfh       string // X-Forwarded-Host: the Host the client asked for
	proto     string // X-Forwarded-Proto
	requestID string
	header    http.Header // the incoming headers
	body      io.Reader   // nil: none
	length    int64       // -1: unknown, sent chunked
	trailer   http.Header // request trailers (chunked bodies), read after body
	upgrade   string      // the Upgrade header for a WebSocket handshake
}

// writeRequest writes the request head and body to a pooled connection.
func (o *outbound) writeH1(bw *bufio.Writer, buf []byte) error {
	bw.WriteString(o.method)
	bw.WriteByte(' ')
	bw.WriteString(o.path)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(o.host)
	bw.WriteString("\r\n")
	hasConnHeader := len(o.header["Connection"]) > 0
	for k, vs := range o.header {
		// Expect was answered by this hop's server (it sent 100 Continue
		// when the body was read); the body follows the head at once.
		if isHop(k) || k == "Host" || k == "X-Forwarded-For" || k == "X-Forwarded-Proto" || k == "X-Forwarded-Host" || k == "X-Request-Id" || k == "Content-Length" || k == "Expect" {
			continue
		}
		if hasConnHeader && connectionListed(o.header, k) {
			continue
		}
		for _, v := range vs {
			writeHeaderLine(bw, k, v)
		}
	}
	bw.WriteString("X-Forwarded-For: ")
	bw.WriteString(o.xff)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	bw.WriteString(o.proto)
	bw.WriteString("\r\nX-Forwarded-Host: ")
	writeHeaderValue(bw, o.xfh)
	bw.WriteString("\r\nX-Request-Id: ")
	writeHeaderValue(bw, o.requestID)
	bw.WriteString("\r\n")
	if o.upgrade != "" {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
		writeHeaderValue(bw, o.upgrade)
		bw.WriteString("\r\n")
	}
	switch {
	case o.body == nil:
		if o.method == http.MethodPost || o.method == http.MethodPut || o.method == http.MethodPatch {
			bw.WriteString("Content-Length: 0\r\n")
		}
		bw.WriteString("\r\n")
	case o.length >= 0:
		bw.WriteString("Content-Length: ")
		var nb [20]byte
		bw.Write(strconv.AppendInt(nb[:0], o.length, 10))
		bw.WriteString("\r\n\r\n")
		n, err := io.CopyBuffer(bw, io.LimitReader(o.body, o.length), buf)
		if err != nil {
			return &bodyError{err}
		}
		if n != o.length {
			return &bodyError{io.ErrUnexpectedEOF}
		}
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for {
			n, err := o.body.Read(buf)
			if n > 0 {
				bw.WriteString(strconv.FormatInt(int64(n), 16))
				bw.WriteString("\r\n")
				bw.Write(buf[:n])
				bw.WriteString("\r\n")
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return &bodyError{err}
			}
		}
		bw.WriteString("0\r\n")
		for k, vs := range o.trailer {
			for _, v := range vs {
				writeHeaderLine(bw, k, v)
			}
		}
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// writeHeaderLine writes "k: v\r\n".
func writeHeaderLine(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	writeHeaderValue(bw, v)
	bw.WriteString("\r\n")
}

// writeHeaderValue writes v with any CR or LF replaced by a space: a
// value must never split into two header lines upstream.
func writeHeaderValue(bw *bufio.Writer, v string) {
	if strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 {
		bw.WriteString(v)
		return
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		bw.WriteByte(c)
	}
}

// bodyError is a failure reading the client's request body: the client's
// fault, not the backend's, and never retried.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// resetError is a connection that broke after the request was sent, before
// a complete response head arrived.
type resetError struct{ err error }

func (e *resetError) Error() string { return "upstream reset: " + e.err.Error() }
func (e *resetError) Unwrap() error { return e.err }

// maxHeadBytes bounds a response head.
const maxHeadBytes = 64 << 10

// respHead is a parsed response head.
type respHead struct {
	status    int
	minor     int   // HTTP/1.minor
	length    int64 // -1: unknown
	chunked   bool
	close     bool // Connection: close, or HTTP/1.0 without keep-alive
	noBody    bool
	anyHeader bool // a byte of the response arrived
}

// readHead reads a response head, its header lines into *fs (emptied
// first). 1xx responses other than 101 are skipped.
func (uc *upConn) readHead(fs *[]hfield, method string) (respHead, error) {
	for {
		rh, err := uc.readOneHead(fs, method)
		if err != nil {
			return rh, err
		}
		if rh.status >= 100 && rh.status < 200 && rh.status != http.StatusSwitchingProtocols {
			continue
		}
		return rh, nil
	}
}

func (uc *upConn) readOneHead(fs *[]hfield, method string) (rh respHead, err error) {
	*fs = (*fs)[:0]
	rh.length = -1
	buf, _, read, err := readHeadLines(uc.br, uc.hdr[:0], maxHeadBytes)
	rh.anyHeader = read
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return rh, fmt.Errorf("upstream response head line longer than %d bytes", uc.br.Size())
	case errors.Is(err, errHeadTooLarge):
		return rh, fmt.Errorf("upstream response head larger than %d bytes", maxHeadBytes)
	case err != nil:
		return rh, &resetError{err}
	}
	uc.hdr = buf
	head := string(buf) // the one allocation for every string of the head
	statusLine, rest, _ := strings.Cut(head, "\n")
	proto, statusText, ok := strings.Cut(statusLine, " ")
	if !ok || len(proto) != 8 || !strings.HasPrefix(proto, "HTTP/1.") {
		return rh, fmt.Errorf("malformed upstream status line %q", statusLine)
	}
	rh.minor = int(proto[7] - '0')
	code := statusText
	if i := strings.IndexByte(statusText, ' '); i >= 0 {
		code = statusText[:i]
	}
	if len(code) != 3 {
		return rh, fmt.Errorf("malformed upstream status %q", statusLine)
	}
	rh.status, err = strconv.Atoi(code)
	if err != nil || rh.status < 100 {
		return rh, fmt.Errorf("malformed upstream status %q", statusLine)
	}
	fields := *fs
	keepAlive := false
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		k, v, err := headerField(line)
		switch {
		case err == errFolding:
			return rh, errors.New("upstream response uses obsolete header folding")
		case err != nil:
			return rh, fmt.Errorf("malformed upstream header line %q", line)
		}
		switch k {
		case "Content-Length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || (rh.length >= 0 && rh.length != n) {
				return rh, fmt.Errorf("bad upstream Content-Length %q", v)
			}
			rh.length = n
		case "Transfer-Encoding":
			if strings.EqualFold(v, "chunked") {
				rh.chunked = true
			} else {
				return rh, fmt.Errorf("unsupported upstream Transfer-Encoding %q", v)
			}
			continue
		case "Connection":
			if strings.EqualFold(v, "close") {
				rh.close = true
			} else if strings.EqualFold(v, "keep-alive") {
				keepAlive = true
			}
		}
		fields = append(fields, hfield{k, v})
	}
	*fs = fields
	if rh.minor == 0 && !keepAlive {
		rh.close = true
	}
	if rh.chunked {
		rh.length = -1 // RFC 9112 6.3: chunked wins
	}
	if method == http.MethodHead || rh.status == http.StatusNoContent || rh.status == http.StatusNotModified || (rh.status >= 100 && rh.status < 200) {
		rh.noBody = true
		rh.length = 0
	}
	if !rh.noBody && !rh.chunked && rh.length < 0 {
		rh.close = true // the body runs to the end of the connection
	}
	return rh, nil
}

// errHeadTooLarge is a head past the size limit.
var errHeadTooLarge = errors.New("head too large")

// readHeadLines reads a message head (the start line and the header lines,
// up to the blank line) into buf, one line per '\n' without CR LF, skipping
// blank lines before the start line (RFC 9112 2.2). read tells whether any
// byte arrived. err is bufio.ErrBufferFull for a line longer than br's
// buffer, errHeadTooLarge past max bytes, or the read's own error.
func readHeadLines(br *bufio.Reader, buf []byte, max int) (out []byte, lines int, read bool, err error) {
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			read = true
		}
		if err != nil {
			return buf, lines, read, err
		}
		if len(buf)+len(line) > max {
			return buf, lines, read, errHeadTooLarge
		}
		n := len(line)
		for n > 0 && (line[n-1] == '\n' || line[n-1] == '\r') {
			n-- // bytes.TrimRight, without its cutset set-up per line
		}
		line = line[:n]
		if len(line) == 0 {
			if lines == 0 {
				continue
			}
			return buf, lines, read, nil
		}
		buf = append(buf, line...)
		buf = append(buf, '\n')
		lines++
	}
}

// errFolding and errHeaderLine are header lines headerField refuses.
var (
	errFolding    = errors.New("obsolete header folding")
	errHeaderLine = errors.New("malformed header line")
)

// headerField splits a header line into its canonical name and trimmed
// value.
func headerField(line string) (k, v string, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return "", "", errFolding
	}
	k, v, ok := strings.Cut(line, ":")
	if !ok || k == "" || !isToken(k) {
		return "", "", errHeaderLine
	}
	return canonicalKey(k), textproto.TrimString(v), nil
}

// headerSet fills a header map from one head: all its values share one
// backing slice, sized to the head's lines, so the head costs one
// allocation for them instead of one per header.
type headerSet struct {
	h    http.Header
	vals []string
}

func newHeaderSet(h http.Header, lines int) headerSet {
	clear(h)
	return headerSet{h: h, vals: make([]string, 0, lines)}
}

func (s *headerSet) add(k, v string) {
	if old, ok := s.h[k]; ok {
		s.h[k] = append(old, v)
		return
	}
	s.vals = append(s.vals, v)
	n := len(s.vals)
	s.h[k] = s.vals[n-1 : n : n]
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// canonicalKey returns the canonical form of a header name, without
// allocating when it already is canonical (the common case).
func canonicalKey(k string) string {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(k)
		}
		upper = c == '-'
	}
	return k
}

// bodyReader reads one response body off a pooled connection, setting the
// connection's read deadline before each read (idle timeout).
type bodyReader struct {
	uc        *upConn
	remaining int64 // Content-Length bodies: bytes left; -1: read to close
	chunked   bool
	ch        chunkedReader
	done      bool
	trailer   http.Header
	idle      time.Duration
	err       error
	// closeAfter: the connection cannot carry another exchange after this
	// body (Connection: close, or a body that runs to the end).
	closeAfter bool
}

func (b *bodyReader) reset(uc *upConn, rh *respHead, idle time.Duration) {
	*b = bodyReader{uc: uc, remaining: rh.length, chunked: rh.chunked, ch: chunkedReader{br: uc.br}, idle: idle, closeAfter: rh.close}
	if rh.noBody || rh.length == 0 {
		b.done = true
	}
}

// wouldBlock tells whether the next Read has to wait for the backend:
// the body is not complete and nothing of it is buffered.
func (b *bodyReader) wouldBlock() bool {
	return !b.done && b.err == nil && b.uc.br.Buffered() == 0
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.idle > 0 && (b.chunked || b.remaining < 0 || int64(b.uc.br.Buffered()) < b.remaining) {
		// This read may wait on the socket (a body already in the buffer,
		// as most small ones are, does not).
		b.uc.extendForBody(b.idle, time.Now())
	}
	switch {
	case b.chunked:
		n, err := b.ch.Read(p)
		if err == io.EOF {
			b.done, b.trailer = true, b.ch.trailer
		} else if err != nil {
			b.err = err
		}
		return n, err
	case b.remaining < 0:
		n, err := b.uc.br.Read(p)
		if err == io.EOF {
			b.done = true
		} else if err != nil {
			b.err = err
		}
		return n, err
	default:
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err := b.uc.br.Read(p)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			b.done = true
			return n, nil
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			b.err = err
		}
		return n, err
	}
}

// chunkedReader decodes a chunked body (RFC 9112 7.1), trailers
// included: the response bodies of upstreams and the request bodies of
// clients.
type chunkedReader struct {
	br      *bufio.Reader
	left    int64 // bytes left in the current chunk
	trailer http.Header
}

// Read returns body bytes, and io.EOF after the last chunk and its
// trailers.
func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		line, err := readCRLFLine(c.br)
		if err != nil {
			return 0, err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions are ignored
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			return 0, c.readTrailer()
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	if c.left == 0 {
		if line, err := readCRLFLine(c.br); err != nil || len(line) != 0 {
			return n, errors.New("malformed chunk end")
		}
	}
	return n, nil
}

// readTrailer reads the trailer fields after the last chunk; io.EOF ends
// the body.
func (c *chunkedReader) readTrailer() error {
	for {
		line, err := readCRLFLine(c.br)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return io.EOF
		}
		k, v, err := headerField(string(line))
		if err != nil {
			return fmt.Errorf("malformed trailer %q", line)
		}
		if c.trailer == nil {
			c.trailer = http.Header{}
		}
		c.trailer[k] = append(c.trailer[k], v)
	}
}

// readCRLFLine reads a line without its CR LF; the end of input is
// unexpected there.
func readCRLFLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}
