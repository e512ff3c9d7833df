package pprofsum

import (
	"strings"
	"testing"
	"time"
)

// Trimmed `go tool pprof -traces` output of a Go proxy's CPU profile (Go 1.26).
const traces = `File: gwbackend
Build ID: 58489960ab0f81ee032192f2339ac6e3b2b77f73
Type: cpu
Time: 2026-11-23 15:25:24 UTC
Duration: 3s, Total samples = 3.14s (104.66%)
-----------+-------------------------------------------------------
      10ms   runtime.findObject
             runtime.scanSpan
             runtime.gcDrainN
             runtime.gcAssistAlloc1
             runtime.mallocgc
             net/http.(*connReader).backgroundRead
-----------+-------------------------------------------------------
     120ms   internal/runtime/syscall/linux.Syscall6
             syscall.RawSyscall6
             syscall.Syscall
             syscall.write
             internal/poll.(*FD).Write
             net.(*conn).Write
             bufio.(*Writer).Flush
             net/http.(*response).finishRequest
             net/http.(*conn).serve
-----------+-------------------------------------------------------
      30ms   internal/runtime/syscall/linux.Syscall6
             syscall.RawSyscall6
             syscall.Syscall
             syscall.read
             internal/poll.(*FD).Read
             net.(*conn).Read
             net/http.(*persistConn).Read
             bufio.(*Reader).fill
             net/http.(*persistConn).readLoop
-----------+-------------------------------------------------------
      20ms   internal/runtime/syscall/linux.EpollWait
             runtime.netpoll
             runtime.findRunnable
             runtime.schedule
             runtime.park_m
             runtime.mcall
-----------+-------------------------------------------------------
      10ms   runtime.futex
             runtime.futexwakeup
             runtime.notewakeup
             runtime.startm
             runtime.wakep
             runtime.ready
             runtime.goready
             runtime.send
             runtime.chansend1
             net/http.(*persistConn).readLoop
-----------+-------------------------------------------------------
      10ms   internal/runtime/maps.ctrlGroup.matchH2 (inline)
             runtime.mapaccess1_faststr
             net/textproto.canonicalMIMEHeaderKey
             net/textproto.readMIMEHeader
             net/http.ReadResponse
             net/http.(*persistConn).readResponse
             net/http.(*persistConn).readLoop
-----------+-------------------------------------------------------
      10ms   aeshashbody
             runtime.mapassign_faststr
             net/http.Header.Clone
             github.com/cairnhq/cairn/internal/proxy.(*Engine).ServeHTTP
             net/http.serverHandler.ServeHTTP
             net/http.(*conn).serve
-----------+-------------------------------------------------------
      20ms   runtime.memmove
             bufio.(*Reader).Read
             net/http.(*persistConn).Read
             net/http.(*persistConn).readLoop
-----------+-------------------------------------------------------
      10ms   runtime.mallocgcSmallNoscan
             runtime.mallocgc
             runtime.makeslice
             github.com/cairnhq/cairn/internal/proxy.(*Engine).ServeHTTP
             net/http.serverHandler.ServeHTTP
             net/http.(*conn).serve
-----------+-------------------------------------------------------
      10ms   type:.eq.net/http.connectMethodKey
             runtime.mapaccess2
             net/http.(*Transport).queueForIdleConn
             net/http.(*Transport).getConn
-----------+-------------------------------------------------------
      10ms   internal/poll.(*fdMutex).rwlock
             internal/poll.(*FD).SetDeadline
             internal/poll.setDeadlineImpl
             net.(*conn).SetReadDeadline
             net/http.(*conn).readRequest
`

func TestSummarize(t *testing.T) {
	samples, d, err := ParseTraces(traces)
	if err != nil {
		t.Fatal(err)
	}
	if d != 3*time.Second || len(samples) != 11 {
		t.Fatalf("duration %v, %d samples", d, len(samples))
	}
	if s := samples[1]; s.Value != 120*time.Millisecond || s.Stack[0] != "internal/runtime/syscall/linux.Syscall6" || s.Stack[len(s.Stack)-1] != "net/http.(*conn).serve" {
		t.Errorf("second sample: %+v", s)
	}
	want := []string{CatGC, CatWrite, CatRead, CatNetpoll, CatSched, CatTextproto, CatOwn, CatClient, CatAlloc, CatClient, CatTimers}
	for i, s := range samples {
		if got := Classify(s.Stack, "github.com/cairnhq/cairn/"); got != want[i] {
			t.Errorf("sample %d (%s): %q, want %q", i, s.Stack[0], got, want[i])
		}
	}
	sum := Summarize(samples, d, "github.com/cairnhq/cairn/", 5)
	if sum.Total != 260*time.Millisecond {
		t.Errorf("total %v", sum.Total)
	}
	if c := sum.Categories[0]; c.Name != CatWrite || c.Time != 120*time.Millisecond {
		t.Errorf("first category %+v", c)
	}
	if len(sum.Own) != 1 || sum.Own[0].Name != "github.com/cairnhq/cairn/internal/proxy.(*Engine).ServeHTTP" || sum.Own[0].Cum != 20*time.Millisecond {
		t.Errorf("own %+v", sum.Own)
	}
	var pct float64
	for _, c := range sum.Categories {
		pct += c.Percent
	}
	if pct < 99.99 || pct > 100.01 {
		t.Errorf("percentages add up to %f", pct)
	}
	if _, _, err := ParseTraces("File: x\n"); err == nil || !strings.Contains(err.Error(), "no samples") {
		t.Errorf("empty traces: %v", err)
	}
}

func TestPkgOf(t *testing.T) {
	for fn, want := range map[string]string{
		"github.com/a/b.(*T).M":   "github.com/a/b",
		"net/http.ReadResponse":   "net/http",
		"main.reverseProxy.func1": "main",
		"aeshashbody":             "aeshashbody",
	} {
		if got := pkgOf(fn); got != want {
			t.Errorf("pkgOf(%q) = %q, want %q", fn, got, want)
		}
	}
}
