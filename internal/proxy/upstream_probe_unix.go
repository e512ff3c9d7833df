//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import "syscall"

// peekState is what a non-blocking peek at a socket finds.
type peekState int

const (
	peekEmpty peekState = iota // nothing to read yet
	peekData                   // bytes
	peekGone                   // the peer's FIN or a reset
)

// peek looks at a socket without consuming anything.
func peek(fd uintptr) peekState {
	var b [1]byte
	for {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			return peekEmpty
		case err != nil || n == 0:
			return peekGone
		default:
			return peekData
		}
	}
}

// peerClosed reports whether the backend closed an idle connection (its
// FIN or a reset is waiting to be read) or sent bytes nobody asked for:
// one non-blocking peek, no wait.
func peerClosed(rc syscall.RawConn) bool {
	closed := false
	err := rc.Read(func(fd uintptr) bool {
		closed = peek(fd) != peekEmpty
		return true
	})
	return closed || err != nil
}

// waitPeerGone waits, in the poller, until the peer sends something or
// goes away, and reports whether it went away (its FIN or a reset). It
// returns false when bytes arrive or the wait ends on the connection's
// read deadline or its close. Nothing is consumed.
func waitPeerGone(rc syscall.RawConn) bool {
	gone := false
	_ = rc.Read(func(fd uintptr) bool {
		st := peek(fd)
		gone = st == peekGone
		return st != peekEmpty
	})
	return gone
}
