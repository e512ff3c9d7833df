package client

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t *testing.T, r io.Reader, max int) ([]sseEvent, error) {
	t.Helper()
	p := newSSEReader(r, max)
	var out []sseEvent
	for {
		ev, err := p.next()
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func TestSSEParser(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []sseEvent
		err  error
	}{
		{"cairn snapshot and change",
			"event: snapshot\nid: 42\ndata: {\"revision\":42}\n\nevent: change\nid: 43\ndata: {\"revision\":43}\n\n",
			[]sseEvent{{"snapshot", "42", `{"revision":42}`}, {"change", "43", `{"revision":43}`}}, io.EOF},
		{"multi-line data joined with LF",
			"data: a\ndata: b\ndata:\ndata: c\n\n",
			[]sseEvent{{"message", "", "a\nb\n\nc"}}, io.EOF},
		{"comments and pings are skipped",
			": ping\n\n: hello\nevent: change\n: in the middle\ndata: x\n\n: ping\n\n",
			[]sseEvent{{"change", "", "x"}}, io.EOF},
		{"id persists across events",
			"id: 7\ndata: a\n\ndata: b\n\n",
			[]sseEvent{{"message", "7", "a"}, {"message", "7", "b"}}, io.EOF},
		{"id without data counts but dispatches nothing",
			"id: 9\n\ndata: a\n\n",
			[]sseEvent{{"message", "9", "a"}}, io.EOF},
		{"id with NUL is ignored",
			"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
			[]sseEvent{{"message", "1", "a"}, {"message", "1", "b"}}, io.EOF},
		{"event type resets after dispatch",
			"event: change\ndata: a\n\ndata: b\n\n",
			[]sseEvent{{"change", "", "a"}, {"message", "", "b"}}, io.EOF},
		{"event without data resets the type",
			"event: change\n\ndata: b\n\n",
			[]sseEvent{{"message", "", "b"}}, io.EOF},
		{"CRLF line ends",
			"event: change\r\nid: 5\r\ndata: x\r\n\r\n",
			[]sseEvent{{"change", "5", "x"}}, io.EOF},
		{"CR line ends",
			"event: change\rid: 5\rdata: x\r\rdata: y\r\r",
			[]sseEvent{{"change", "5", "x"}, {"message", "5", "y"}}, io.EOF},
		{"only one leading space is stripped",
			"data:  two\ndata:none\n\n",
			[]sseEvent{{"message", "", " two\nnone"}}, io.EOF},
		{"field without colon",
			"data\ndata\n\n",
			[]sseEvent{{"message", "", "\n"}}, io.EOF},
		{"colons in the value are kept",
			"data: {\"a\":\"b:c\"}\n\n",
			[]sseEvent{{"message", "", `{"a":"b:c"}`}}, io.EOF},
		{"unknown fields and retry are ignored",
			"retry: 3000\nfoo: bar\ndata: x\n\n",
			[]sseEvent{{"message", "", "x"}}, io.EOF},
		{"an event cut off by the end of the stream is dropped",
			"data: a\n\ndata: b\n",
			[]sseEvent{{"message", "", "a"}}, io.EOF},
		{"an unterminated last line is an unexpected EOF",
			"data: a\n\ndata: b",
			[]sseEvent{{"message", "", "a"}}, io.ErrUnexpectedEOF},
		{"empty stream", "", nil, io.EOF},
		{"event too large", "data: " + strings.Repeat("x", 100) + "\n\n", nil, errEventTooLarge},
		{"many lines too large together", strings.Repeat("data: xxxxxxxxxx\n", 20) + "\n", nil, errEventTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "one byte at a time"} {
				var r io.Reader = strings.NewReader(tt.in)
				if mode != "whole" {
					r = iotest.OneByteReader(r)
				}
				got, err := readAll(t, r, 64)
				if !errors.Is(err, tt.err) {
					t.Fatalf("%s: error %v, want %v", mode, err, tt.err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("%s: got %q, want %q", mode, got, tt.want)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Fatalf("%s: event %d: got %q, want %q", mode, i, got[i], tt.want[i])
					}
				}
			}
		})
	}
}

// A CR that ends a line must not wait for the next byte: the event it
// completes is dispatched at once.
func TestSSEParserDoesNotWaitAfterCR(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("data: x\r\r"))
	p := newSSEReader(pr, 1<<10)
	ev, err := p.next()
	if err != nil || ev.Data != "x" {
		t.Fatalf("got %q, %v", ev, err)
	}
}

func TestSSEParserRetry(t *testing.T) {
	p := newSSEReader(strings.NewReader("retry: 2500\ndata: x\n\nretry: x1\n\n"), 1<<10)
	for {
		if _, err := p.next(); err != nil {
			break
		}
	}
	if p.retry != 2500 {
		t.Fatalf("retry = %d", p.retry)
	}
}

func FuzzSSEParser(f *testing.F) {
	f.Add("event: snapshot\nid: 1\ndata: {}\n\n: ping\n\n")
	f.Add("data: a\r\ndata: b\r\rid: \x00\n\n")
	f.Add(":\n\n\r\r\n\ndata")
	f.Fuzz(func(t *testing.T, in string) {
		p := newSSEReader(strings.NewReader(in), 256)
		for i := 0; i <= len(in); i++ {
			ev, err := p.next()
			if err != nil {
				return
			}
			if ev.Event == "" || len(ev.Data) > 256 {
				t.Fatalf("bad event %q", ev)
			}
		}
		t.Fatalf("more events than input bytes")
	})
}
