//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package proxy

import "syscall"

// peerClosed cannot tell here; a stale connection is found when used.
func peerClosed(syscall.RawConn) bool { return false }

// waitPeerGone cannot tell here: no client is watched.
func waitPeerGone(syscall.RawConn) bool { return false }
