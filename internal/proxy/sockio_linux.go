package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// sockIO reads and writes a TCP connection with raw system calls through
// its RawConn, keeping the runtime's poller for waiting (and so deadlines
// and Close) but not its system-call bookkeeping.
//
// net.Conn's Read and Write enter the kernel through syscall.Syscall,
// which marks the goroutine's P as in a system call. A write on loopback
// wakes the reader, and the kernel often switches to it before the write
// returns; the runtime's monitor (sysmon) then finds the P "in a system
// call" for over 20 µs, hands it to another thread, and the writer finds
// no P when it comes back and parks its thread. Under a proxy's load that
// loop kept sysmon waking every 20 µs and cost about an eighth of the
// proxy's CPU in thread hand-offs (perf, bench/RESULTS.md). Socket reads
// and writes here never block (the descriptor is non-blocking; EAGAIN
// means wait in the poller), so they are safe as raw system calls.
type sockIO struct {
	rc  syscall.RawConn
	p   []byte
	n   int
	err error
	f   func(fd uintptr) bool // s.read or s.write, bound once
}

// newSockIO returns the reader and the writer to use for c: each a
// sockIO (one each, so a read and a write can run at once) for a TCP
// connection, c itself for anything else.
func newSockIO(c net.Conn) (io.Reader, io.Writer) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c, c
	}
	r, w := &sockIO{rc: rc}, &sockIO{rc: rc}
	r.f, w.f = r.read, w.write
	return r, w
}

func (s *sockIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.p, s.n, s.err = p, 0, nil
	err := s.rc.Read(s.f)
	s.p = nil
	if err != nil {
		return 0, err
	}
	return s.n, s.err
}

func (s *sockIO) read(fd uintptr) bool {
	n, e := rawRead(int(fd), s.p)
	switch e {
	case 0:
		s.n = n
		if n == 0 {
			s.err = io.EOF
		}
	case syscall.EAGAIN:
		return false
	default:
		s.err = os.NewSyscallError("read", e)
	}
	return true
}

func (s *sockIO) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.p, s.n, s.err = p, 0, nil
	err := s.rc.Write(s.f)
	n := s.n
	s.p = nil
	if err == nil {
		err = s.err
	}
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// write writes all of s.p, waiting in the poller while the socket's
// buffer is full.
func (s *sockIO) write(fd uintptr) bool {
	for s.n < len(s.p) {
		n, e := rawWrite(int(fd), s.p[s.n:])
		switch e {
		case 0:
			s.n += n
		case syscall.EAGAIN:
			return false
		default:
			s.err = os.NewSyscallError("write", e)
			return true
		}
	}
	return true
}

// rawRead and rawWrite read and write a non-blocking socket with raw
// system calls (see sockIO), retrying on EINTR.
func rawRead(fd int, p []byte) (int, syscall.Errno) {
	return rawIO(syscall.SYS_READ, fd, p)
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	return rawIO(syscall.SYS_WRITE, fd, p)
}

func rawIO(trap uintptr, fd int, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}
