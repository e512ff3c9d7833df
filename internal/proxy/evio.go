package proxy

import (
	"bytes"
	"errors"
	"io"
)

// errWouldBlock is a feed with no more bytes yet: the event loop reads
// from its connections only what has arrived, and calls the readers above
// a feed only when what they need is there.
var errWouldBlock = errors.New("proxy: no more bytes yet")

// feed is the reader under the bufio.Reader of a connection an event loop
// serves: it hands out the bytes the loop read off the socket. Once the
// connection goes to a goroutine (conn set), it reads the socket itself
// after what is left.
type feed struct {
	buf  []byte
	off  int
	conn io.Reader
}

func (f *feed) Read(p []byte) (int, error) {
	if f.off < len(f.buf) {
		n := copy(p, f.buf[f.off:])
		f.off += n
		if f.off == len(f.buf) {
			f.buf, f.off = f.buf[:0], 0
		}
		return n, nil
	}
	if f.conn != nil {
		return f.conn.Read(p)
	}
	return 0, errWouldBlock
}

// pending is the number of bytes not read yet.
func (f *feed) pending() int { return len(f.buf) - f.off }

// unread returns the bytes not read yet.
func (f *feed) unread() []byte { return f.buf[f.off:] }

// space returns at least min bytes of room after the data, to read into;
// added(n) then appends n bytes read there.
func (f *feed) space(min int) []byte {
	if f.off > 0 && cap(f.buf)-len(f.buf) < min {
		n := copy(f.buf, f.buf[f.off:])
		f.buf, f.off = f.buf[:n], 0
	}
	if cap(f.buf)-len(f.buf) < min {
		nb := make([]byte, len(f.buf), max(2*cap(f.buf), len(f.buf)+min, 512))
		copy(nb, f.buf)
		f.buf = nb
	}
	return f.buf[len(f.buf):cap(f.buf)]
}

func (f *feed) added(n int) { f.buf = f.buf[:len(f.buf)+n] }

// sink is the writer under the bufio.Writer of a connection an event loop
// serves: it keeps what is written for the loop to send. Once the
// connection goes to a goroutine (conn set), writes go to the socket,
// after what was kept.
type sink struct {
	buf  []byte
	off  int
	conn io.Writer
}

func (s *sink) Write(p []byte) (int, error) {
	if s.conn != nil {
		if s.off < len(s.buf) {
			if _, err := s.conn.Write(s.buf[s.off:]); err != nil {
				return 0, err
			}
			s.buf, s.off = s.buf[:0], 0
		}
		return s.conn.Write(p)
	}
	s.buf = append(s.buf, p...)
	return len(p), nil
}

// pending returns what is kept and not sent yet; sent(n) drops n bytes of
// it once sent.
func (s *sink) pending() []byte { return s.buf[s.off:] }

func (s *sink) sent(n int) {
	s.off += n
	if s.off == len(s.buf) {
		s.buf, s.off = s.buf[:0], 0
	}
}

// headEnd reports whether b holds a complete message head, as
// readHeadLines reads one: lines ended by '\n', blank lines before the
// start line skipped, a blank line (after trimming CR and LF) ending it.
// With skip1xx, interim 1xx response heads (not 101) are skipped and
// the head after them must be complete too.
func headEnd(b []byte, skip1xx bool) bool {
	lines := 0
	first, interim := true, false
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false
		}
		line := b[:i]
		b = b[i+1:]
		n := len(line)
		for n > 0 && (line[n-1] == '\r' || line[n-1] == '\n') {
			n--
		}
		line = line[:n]
		if len(line) == 0 {
			if lines == 0 {
				continue
			}
			if skip1xx && interim {
				lines, first, interim = 0, true, false
				continue
			}
			return true
		}
		if first && skip1xx {
			interim = is1xx(line)
		}
		first = false
		lines++
	}
	return false
}

// is1xx reports an interim response's status line (1xx but 101).
func is1xx(line []byte) bool {
	// "HTTP/1.x 1yz"
	if len(line) < 12 || line[8] != ' ' || line[9] != '1' {
		return false
	}
	return !(line[10] == '0' && line[11] == '1')
}
