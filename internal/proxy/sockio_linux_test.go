package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// sockPair returns a connected pair of TCP connections on 127.0.0.1.
func sockPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-done
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestSockIORoundTrip(t *testing.T) {
	a, b := sockPair(t)
	ar, aw := newSockIO(a)
	br, _ := newSockIO(b)
	if _, ok := ar.(*sockIO); !ok {
		t.Fatalf("newSockIO(TCPConn) = %T, want *sockIO", ar)
	}
	// 8 MiB: far more than the socket buffers, so the writer must wait
	// in the poller for the reader, and the reader for the writer.
	want := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
	errc := make(chan error, 1)
	go func() {
		n, err := aw.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		a.CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d, or different bytes", len(got), len(want))
	}
	// After the peer's FIN: io.EOF, again.
	if n, err := br.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestSockIODeadline(t *testing.T) {
	a, _ := sockPair(t)
	ar, _ := newSockIO(a)
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := ar.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("deadline noticed after %v", d)
	}
}

func TestSockIOReset(t *testing.T) {
	a, b := sockPair(t)
	ar, aw := newSockIO(a)
	// SO_LINGER 0: the close sends a reset.
	b.SetLinger(0)
	if _, err := aw.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = ar.Read(make([]byte, 10))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after a reset: %v, want ECONNRESET", err)
	}
	var serr *os.SyscallError
	if !errors.As(err, &serr) || serr.Syscall != "read" {
		t.Fatalf("error %v (%T) does not name the system call", err, err)
	}
	// Writes after it fail too, with an error, not a signal.
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = aw.Write([]byte("y"))
	}
	if werr == nil {
		t.Fatal("writes to a reset connection kept succeeding")
	}
}

func TestSockIOClosedLocally(t *testing.T) {
	a, _ := sockPair(t)
	ar, _ := newSockIO(a)
	errc := make(chan error, 1)
	go func() {
		_, err := ar.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read parked in the poller did not return when the connection was closed")
	}
}

func TestSockIOOtherConns(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	r, w := newSockIO(c1)
	if r != io.Reader(c1) || w != io.Writer(c1) {
		t.Fatalf("newSockIO(pipe) = %T, %T; want the conn itself", r, w)
	}
}
