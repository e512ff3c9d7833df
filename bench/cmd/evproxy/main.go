//go:build linux

// Command evproxy is a measuring stick, not a product: the smallest
// HTTP/1.1 reverse proxy Go can be with an nginx-style event loop instead
// of a goroutine per connection, to tell how much of the gap between
// Cairn's gateway and nginx is Go's I/O model (bench/run.sh --gateway,
// target go-epoll). It does what the benchmark's path needs and no more:
//
//   - one loop per GOMAXPROCS, each on a locked OS thread with its own
//     epoll set and its own SO_REUSEPORT listening socket (the kernel
//     spreads connections), level-triggered, reading only when epoll says
//     a socket is readable;
//   - requests without a body (GET, HEAD), one at a time per connection;
//   - upstream connections pooled per loop, round robin over -upstreams;
//   - the same request headers as Cairn adds (X-Forwarded-For, -Proto,
//     -Host, a generated X-Request-Id echoed to the client), hop-by-hop
//     headers dropped both ways;
//   - responses with a Content-Length (the benchmark backend's), streamed
//     as they arrive.
//
// Anything else (a body, chunked responses, a write that would block) ends
// the connection with a log line. No retries, timeouts, metrics or
// routing: what it measures is the floor of the I/O, parsing and header
// work that Cairn's engine does on top of.
//
//	evproxy -listen 127.0.0.1:9000 -upstreams 127.0.0.1:9001,127.0.0.1:9002
package main

import (
	"bytes"
	"encoding/hex"
	"flag"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("evproxy: ")
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on")
	upstreams := flag.String("upstreams", "", "comma-separated host:port list")
	flag.Parse()
	lnAddr, err := parseAddr(*listen)
	if err != nil {
		log.Fatal(err)
	}
	var ups []syscall.SockaddrInet4
	for _, a := range strings.Split(*upstreams, ",") {
		sa, err := parseAddr(a)
		if err != nil {
			log.Fatal(err)
		}
		ups = append(ups, sa)
	}
	if len(ups) == 0 {
		log.Fatal("-upstreams is required")
	}
	n := runtime.GOMAXPROCS(0)
	for i := 0; i < n; i++ {
		l, err := newLoop(lnAddr, ups, i)
		if err != nil {
			log.Fatal(err)
		}
		go l.run()
	}
	log.Printf("listening on %s, %d loops", *listen, n)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}

func parseAddr(s string) (syscall.SockaddrInet4, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return syscall.SockaddrInet4{}, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return syscall.SockaddrInet4{}, err
	}
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return syscall.SockaddrInet4{}, &net.AddrError{Err: "not an IPv4 address", Addr: s}
	}
	sa := syscall.SockaddrInet4{Port: p}
	copy(sa.Addr[:], ip)
	return sa, nil
}

// conn is a client or upstream connection of one loop.
type conn struct {
	fd       int
	upstream bool
	buf      []byte // read buffer
	n        int    // bytes in buf
	peer     *conn  // client: its upstream while a request runs; upstream: its client
	remain   int64  // upstream: response body bytes still to forward; -1: reading the head
	rid      string // client: the request's id
	xfh      string // client: X-Forwarded-Host
	addr     string // client: the remote IP
	up       int    // upstream: index in loop.ups
	keep     bool   // client: keep-alive after this response
}

type loop struct {
	ep    int
	ln    int
	ups   []syscall.SockaddrInet4
	idle  [][]*conn
	next  int
	conns map[int]*conn
	out   []byte
	evs   []syscall.EpollEvent
	rng   *rand.ChaCha8
	ridb  [16]byte
}

func newLoop(addr syscall.SockaddrInet4, ups []syscall.SockaddrInet4, i int) (*loop, error) {
	ln, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	syscall.SetsockoptInt(ln, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	syscall.SetsockoptInt(ln, syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
	if err := syscall.Bind(ln, &addr); err != nil {
		return nil, err
	}
	if err := syscall.Listen(ln, 4096); err != nil {
		return nil, err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &loop{ep: ep, ln: ln, ups: ups, idle: make([][]*conn, len(ups)), conns: map[int]*conn{},
		evs: make([]syscall.EpollEvent, 256), out: make([]byte, 0, 16<<10)}
	var seed [32]byte
	seed[0] = byte(i)
	seed[1] = byte(os.Getpid())
	l.rng = rand.NewChaCha8(seed)
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, ln, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(ln)}); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *loop) run() {
	runtime.LockOSThread()
	for {
		n, err := syscall.EpollWait(l.ep, l.evs, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			log.Fatal(err)
		}
		for i := 0; i < n; i++ {
			fd := int(l.evs[i].Fd)
			if fd == l.ln {
				l.accept()
				continue
			}
			if c := l.conns[fd]; c != nil {
				l.readable(c)
			}
		}
	}
}

func (l *loop) accept() {
	for {
		fd, sa, err := syscall.Accept4(l.ln, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or another loop took it
		}
		syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		c := &conn{fd: fd, buf: make([]byte, 16<<10)}
		if in4, ok := sa.(*syscall.SockaddrInet4); ok {
			c.addr = net.IP(in4.Addr[:]).String()
		}
		l.conns[fd] = c
		syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
	}
}

func rawRead(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), e
}

// rawWrite writes all of p; a socket that cannot take it all is an error
// here (the benchmark's messages are a few hundred bytes).
func rawWrite(fd int, p []byte) bool {
	for len(p) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return false
		}
		p = p[n:]
	}
	return true
}

func (l *loop) readable(c *conn) {
	if c.n == len(c.buf) {
		l.fail(c, "head larger than the buffer")
		return
	}
	n, e := rawRead(c.fd, c.buf[c.n:])
	switch {
	case e == syscall.EAGAIN || e == syscall.EINTR:
		return
	case e != 0 || n == 0:
		l.close(c)
		return
	}
	c.n += n
	if c.upstream {
		l.upstreamData(c)
	} else if c.peer == nil {
		l.request(c)
	}
}

func (l *loop) close(c *conn) {
	syscall.Close(c.fd) // leaves the epoll set with it
	delete(l.conns, c.fd)
	if p := c.peer; p != nil {
		p.peer = nil
		l.close(p)
	}
}

func (l *loop) fail(c *conn, why string) {
	log.Printf("closing a connection: %s", why)
	l.close(c)
}

var hopHeaders = []string{"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
	"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id", "host"}

// is reports whether a header name is h (lower case), in any case.
func is(name []byte, h string) bool {
	return len(name) == len(h) && bytes.EqualFold(name, []byte(h))
}

// nextField splits the first "Name: value\r\n" line off a head's header
// lines: the line without CRLF, its name, its trimmed value, the rest.
func nextField(lines []byte) (line, name, value, rest []byte, ok bool) {
	i := bytes.IndexByte(lines, '\n')
	if i < 1 {
		return nil, nil, nil, nil, false
	}
	line, rest = lines[:i-1], lines[i+1:]
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, nil, nil, false
	}
	return line, line[:colon], bytes.TrimSpace(line[colon+1:]), rest, true
}

func isHopLine(name []byte) bool {
	for _, h := range hopHeaders {
		if is(name, h) {
			return true
		}
	}
	return false
}

// request handles a complete request head in c.buf, if there is one.
func (l *loop) request(c *conn) {
	end := bytes.Index(c.buf[:c.n], []byte("\r\n\r\n"))
	if end < 0 {
		return
	}
	head := c.buf[:end+2]
	lineEnd := bytes.IndexByte(head, '\n')
	reqLine := head[:lineEnd-1]
	sp1 := bytes.IndexByte(reqLine, ' ')
	sp2 := bytes.LastIndexByte(reqLine, ' ')
	if sp1 <= 0 || sp2 <= sp1 {
		l.fail(c, "malformed request line")
		return
	}
	method, proto := reqLine[:sp1], reqLine[sp2+1:]
	if string(method) != "GET" && string(method) != "HEAD" {
		l.fail(c, "only GET and HEAD")
		return
	}
	c.keep = string(proto) == "HTTP/1.1"
	out := append(l.out[:0], reqLine...)
	out = append(out, "\r\n"...)
	host := ""
	for rest := head[lineEnd+1:]; len(rest) > 0; {
		line, name, value, more, ok := nextField(rest)
		if !ok {
			l.fail(c, "malformed header line")
			return
		}
		rest = more
		switch {
		case is(name, "host"):
			host = string(value)
		case is(name, "content-length"), is(name, "transfer-encoding"):
			l.fail(c, "request bodies are not supported")
			return
		case is(name, "connection"):
			if bytes.Contains(bytes.ToLower(line), []byte("close")) {
				c.keep = false
			}
		}
		if isHopLine(name) {
			continue
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	l.rng.Read(l.ridb[:])
	c.rid = hex.EncodeToString(l.ridb[:])
	c.xfh = host
	out = append(out, "Host: "...)
	out = append(out, host...)
	out = append(out, "\r\nX-Forwarded-For: "...)
	out = append(out, c.addr...)
	out = append(out, "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: "...)
	out = append(out, host...)
	out = append(out, "\r\nX-Request-Id: "...)
	out = append(out, c.rid...)
	out = append(out, "\r\n\r\n"...)
	// The request is consumed; pipelined bytes after it stay.
	rest := c.n - (end + 4)
	copy(c.buf, c.buf[end+4:c.n])
	c.n = rest

	u, err := l.upstream()
	if err != nil {
		l.fail(c, "connect: "+err.Error())
		return
	}
	u.peer, c.peer, u.remain = c, u, -1
	if !rawWrite(u.fd, out) {
		l.close(u)
		return
	}
	l.out = out
}

func (l *loop) upstream() (*conn, error) {
	i := l.next
	l.next = (l.next + 1) % len(l.ups)
	if idle := l.idle[i]; len(idle) > 0 {
		u := idle[len(idle)-1]
		l.idle[i] = idle[:len(idle)-1]
		return u, nil
	}
	// A blocking connect on loopback is immediate; the socket is made
	// non-blocking after.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Connect(fd, &l.ups[i]); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	syscall.SetNonblock(fd, true)
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	u := &conn{fd: fd, upstream: true, up: i, buf: make([]byte, 16<<10)}
	l.conns[fd] = u
	syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
	return u, nil
}

// upstreamData forwards what arrived from an upstream to its client.
func (l *loop) upstreamData(u *conn) {
	c := u.peer
	if c == nil {
		l.close(u) // bytes nobody asked for
		return
	}
	data := u.buf[:u.n]
	if u.remain < 0 {
		end := bytes.Index(data, []byte("\r\n\r\n"))
		if end < 0 {
			return
		}
		head := data[:end+2]
		lineEnd := bytes.IndexByte(head, '\n')
		out := append(l.out[:0], head[:lineEnd+1]...)
		length := int64(-1)
		for rest := head[lineEnd+1:]; len(rest) > 0; {
			line, name, value, more, ok := nextField(rest)
			if !ok {
				l.fail(u, "malformed upstream header line")
				return
			}
			rest = more
			if is(name, "content-length") {
				v, err := strconv.ParseInt(string(value), 10, 64)
				if err != nil {
					l.fail(u, "bad upstream Content-Length")
					return
				}
				length = v
			}
			if isHopLine(name) {
				continue
			}
			out = append(out, line...)
			out = append(out, "\r\n"...)
		}
		if length < 0 {
			l.fail(u, "upstream responses without a Content-Length are not supported")
			return
		}
		out = append(out, "X-Request-Id: "...)
		out = append(out, c.rid...)
		if !c.keep {
			out = append(out, "\r\nConnection: close"...)
		}
		out = append(out, "\r\n\r\n"...)
		body := data[end+4:]
		if int64(len(body)) > length {
			l.fail(u, "upstream sent more than its Content-Length")
			return
		}
		out = append(out, body...)
		u.remain = length - int64(len(body))
		u.n = 0
		if !rawWrite(c.fd, out) {
			l.close(c)
			return
		}
		l.out = out
	} else {
		if int64(len(data)) > u.remain {
			l.fail(u, "upstream sent more than its Content-Length")
			return
		}
		u.remain -= int64(len(data))
		u.n = 0
		if !rawWrite(c.fd, data) {
			l.close(c)
			return
		}
	}
	if u.remain > 0 {
		return
	}
	// Done: the upstream goes back to the pool, the client reads on.
	u.peer, c.peer = nil, nil
	l.idle[u.up] = append(l.idle[u.up], u)
	if !c.keep {
		l.close(c)
		return
	}
	if c.n > 0 {
		l.request(c)
	}
}
