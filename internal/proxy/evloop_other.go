//go:build !linux

package proxy

// No event loop here: a goroutine serves each connection.

type evServer struct{}

type evConn struct{ l *evLoop }

type evLoop struct{}

type loopRef struct{ c *evConn }

func newEvServer(*h1server) *evServer { return nil }

func (*evServer) take(*h1conn) bool { return false }
func (*evServer) stop()             {}
func (*evLoop) post(func())         {}
func (*evConn) close()              {}
func (*evConn) closeIdle()          {}
