package health

import "context"

// checkTCP passes when a TCP connection to the checked port succeeds.
func (c *Checker) checkTCP(ctx context.Context, t *target) (string, error) {
	conn, err := c.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return "", err // "dial tcp 10.0.0.1:80: connect: connection refused"
	}
	conn.Close()
	return "TCP connect OK", nil
}
