//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import "syscall"

// peerClosed reports whether the backend closed an idle connection (its
// FIN or a reset is waiting to be read) or sent bytes nobody asked for:
// one non-blocking peek, no wait.
func peerClosed(rc syscall.RawConn) bool {
	closed := false
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		case err != nil, n >= 0: // a reset; EOF (0) or unexpected bytes
			closed = true
		}
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
		var b [1]byte
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				return false
			case err != nil || n == 0:
				gone = true
			}
			return true
		}
	})
	return gone
}
