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
