package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	Event string // "message" when the stream named none
	ID    string // the last event ID in effect when the event was dispatched
	Data  string // data lines joined with "\n"
}

// errEventTooLarge ends a stream whose event exceeds the parser's limit.
var errEventTooLarge = errors.New("client: watch event too large")

// sseReader parses a text/event-stream (WHATWG HTML, "Server-sent
// events"): lines end with LF, CRLF or CR; lines starting with ':' are
// comments (keep-alive pings); "field: value" lines set event, data, id or
// retry; an empty line dispatches the event. An event without data is not
// dispatched (but its id still counts); an event cut off by the end of the
// stream is dropped.
type sseReader struct {
	r      *bufio.Reader
	max    int    // largest event (sum of its lines), bytes
	lastID string // persists across events, as the spec says
	retry  int    // last retry: field in milliseconds, 0 if none
	cr     bool   // the last line ended with CR: an LF next completes CRLF
}

func newSSEReader(r io.Reader, max int) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next event. It returns io.EOF (or the reader's error)
// when the stream ends.
func (p *sseReader) next() (sseEvent, error) {
	var data strings.Builder
	event := ""
	hasData := false
	size := 0
	for {
		line, err := p.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if line == "" {
			if !hasData {
				event, size = "", 0
				continue
			}
			if event == "" {
				event = "message"
			}
			return sseEvent{Event: event, ID: p.lastID, Data: data.String()}, nil
		}
		size += len(line)
		if size > p.max {
			return sseEvent{}, errEventTooLarge
		}
		if line[0] == ':' {
			continue // a comment: ": ping"
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				p.lastID = value
			}
		case "retry":
			if n, ok := atoiDigits(value); ok {
				p.retry = n
			}
		}
	}
}

// readLine returns the next line without its terminator (LF, CRLF or CR).
// It never waits for more input than the line needs: a CR ends the line at
// once, and an LF right after it is skipped when the next line is read.
func (p *sseReader) readLine() (string, error) {
	var line []byte
	for {
		if p.r.Buffered() == 0 {
			if _, err := p.r.Peek(1); err != nil {
				if err == io.EOF && len(line) > 0 {
					err = io.ErrUnexpectedEOF // an unterminated line: the event is cut off
				}
				return "", err
			}
		}
		buf, _ := p.r.Peek(p.r.Buffered())
		if p.cr {
			p.cr = false
			if buf[0] == '\n' {
				_, _ = p.r.Discard(1)
				continue
			}
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if len(line)+len(buf) > p.max {
				return "", errEventTooLarge
			}
			line = append(line, buf...)
			_, _ = p.r.Discard(len(buf))
			continue
		}
		line = append(line, buf[:i]...)
		p.cr = buf[i] == '\r'
		_, _ = p.r.Discard(i + 1)
		return string(line), nil
	}
}

// atoiDigits parses a string of ASCII digits (the spec's retry rule).
func atoiDigits(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
