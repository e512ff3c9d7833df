// Package pprofsum sorts the samples of a Go CPU profile into a few kinds
// of work (GC, netpoll, socket reads and writes, the scheduler,
// allocation, then by which code ran: the HTTP server, the HTTP client,
// header parsing, the proxy's own code), to say in one table where a
// Go proxy's time goes. It reads `go tool pprof -traces` output, so it
// needs no pprof library.
//
// Every sample goes to exactly one category: the first of these that
// fits its stack (any frame):
//
//  1. GC: background mark workers, mark assists, sweeping;
//  2. epoll_wait: the scheduler's netpoll, or the gateway's event loops,
//     waiting for ready sockets;
//  3. syscalls: read, write (socket reads and writes, the kernel's
//     loopback TCP included) and other;
//  4. timers: connection deadlines, context timeouts, timer heaps;
//  5. scheduler: goroutine switches, wake-ups, threads sleeping and
//     waking (futex), channel and select hand-offs;
//  6. allocation: mallocgc outside GC;
//  7. otherwise, the code area of the innermost frame that is not a
//     generic helper (runtime, bufio, strings, sync, net.Conn, ...):
//     the proxy's own module, net/textproto, the HTTP client
//     (Transport), httputil, the HTTP server, other net/http, or the
//     frame's package.
package pprofsum

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Category is one kind of work and the CPU time spent in it.
type Category struct {
	Name    string        `json:"name"`
	Time    time.Duration `json:"time"`
	Percent float64       `json:"percent"`
}

// Func is one function's cumulative CPU time: samples with it anywhere
// on the stack.
type Func struct {
	Name    string        `json:"name"`
	Cum     time.Duration `json:"cum"`
	Percent float64       `json:"percent"`
}

// Summary is a profile sorted into categories.
type Summary struct {
	Total      time.Duration `json:"total"`
	Duration   time.Duration `json:"duration"` // of the profile
	Categories []Category    `json:"categories"`
	// Own are the functions of the module (OwnPrefix) with the most
	// cumulative time.
	Own []Func `json:"own,omitempty"`
}

// Sample is one stack (leaf first) and the CPU time it was seen for.
type Sample struct {
	Value time.Duration
	Stack []string
}

// Traces runs `go tool pprof -traces profile` and returns its output.
func Traces(ctx context.Context, goBin, profile string) (string, error) {
	out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-traces", profile).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("go tool pprof -traces %s: %w\n%s", profile, err, ee.Stderr)
		}
		return "", fmt.Errorf("go tool pprof -traces %s: %w", profile, err)
	}
	return string(out), nil
}

// ParseTraces reads `go tool pprof -traces` output: a header, then one
// block per distinct stack, each after a "-----------+-----" line, its
// first line "  VALUE   leaf-function", then the callers, one a line.
func ParseTraces(text string) (samples []Sample, duration time.Duration, err error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur *Sample
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Duration: ") {
			f := strings.Fields(strings.TrimPrefix(line, "Duration: "))
			if len(f) > 0 {
				duration, _ = time.ParseDuration(strings.TrimSuffix(f[0], ","))
			}
			continue
		}
		if strings.HasPrefix(line, "-----------+") {
			if cur != nil && len(cur.Stack) > 0 {
				samples = append(samples, *cur)
			}
			cur = &Sample{}
			continue
		}
		if cur == nil {
			continue // header
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(cur.Stack) == 0 && cur.Value == 0 {
			// "  10ms   pkg.func" or, for a sample with labels, label lines first.
			d, perr := time.ParseDuration(f[0])
			if perr != nil || len(f) < 2 {
				continue
			}
			cur.Value = d
			cur.Stack = append(cur.Stack, f[1])
			continue
		}
		if strings.HasSuffix(f[0], ":") { // a label line ("key:value")
			continue
		}
		cur.Stack = append(cur.Stack, f[0])
	}
	if cur != nil && len(cur.Stack) > 0 {
		samples = append(samples, *cur)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if len(samples) == 0 {
		return nil, 0, fmt.Errorf("no samples in the pprof -traces output")
	}
	return samples, duration, nil
}

// Category names.
const (
	CatGC        = "GC (mark workers, assists, sweeping)"
	CatNetpoll   = "epoll_wait (the runtime's netpoll, or Cairn's event loops, waiting for sockets)"
	CatRead      = "syscalls: read (sockets, kernel loopback TCP included)"
	CatWrite     = "syscalls: write (sockets, kernel loopback TCP included)"
	CatSyscall   = "syscalls: other"
	CatTimers    = "timers (deadlines, timeouts)"
	CatSched     = "scheduler (goroutine switches and wake-ups, futex, channel hand-offs)"
	CatAlloc     = "allocation (mallocgc, outside GC)"
	CatOwn       = "own code (the proxy's module)"
	CatTextproto = "header parsing (net/textproto)"
	CatClient    = "HTTP client (net/http Transport: upstream requests and responses)"
	CatHttputil  = "net/http/httputil (ReverseProxy)"
	CatServer    = "HTTP server (net/http: read requests, write responses)"
	CatHTTPOther = "net/http, other"
	CatOther     = "other"
)

var gcFrames = []string{
	"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.bgsweep", "runtime.bgscavenge",
	"runtime.gcStart", "runtime.gcMarkDone", "runtime.gcMarkTermination", "runtime.markroot",
	"runtime.gcDrain", "runtime.sweepone", "runtime.deductSweepCredit", "runtime.(*sweepLocked).sweep",
	"runtime.gcResetMarkState", "runtime.gcWriteBarrier", "gcWriteBarrier", "runtime.wbBufFlush",
}

var timerFrames = []string{
	"internal/poll.setDeadlineImpl", "internal/poll.runtime_pollSetDeadline", "runtime.(*timer)",
	"runtime.(*timers)", "runtime.checkTimers", "runtime.resetForSleep", "time.AfterFunc", "time.NewTimer",
	"time.(*Timer)", "time.Sleep", "context.WithDeadline", "context.WithTimeout", "context.(*timerCtx)",
}

var schedFrames = []string{
	"runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.mcall", "runtime.futex",
	"runtime.usleep", "runtime.notesleep", "runtime.notewakeup", "runtime.wakep", "runtime.startm",
	"runtime.stopm", "runtime.goready", "runtime.ready", "runtime.gopark", "runtime.goexit0",
	"runtime.gogo", "runtime.newproc", "runtime.exitsyscall", "runtime.entersyscall",
	"runtime.reentersyscall", "runtime.stealWork", "runtime.sysmon", "runtime.gosched_m",
	"runtime.goschedImpl", "runtime.handoffp", "runtime.retake", "runtime.osyield",
	"runtime.chansend", "runtime.chanrecv", "runtime.selectgo", "runtime.closechan",
	"runtime.semacquire", "runtime.semrelease", "runtime.lock2", "runtime.unlock2",
	"runtime.runqgrab", "runtime.casgstatus", "runtime.execute", "runtime.injectglist",
	"runtime.mPark", "runtime.goroutineReady", "runtime.netpollready", "runtime.netpollblock",
}

// hasPrefix reports whether a frame of stack starts with one of prefixes.
func hasFrame(stack []string, prefixes ...string) bool {
	for _, f := range stack {
		for _, p := range prefixes {
			if strings.HasPrefix(f, p) {
				return true
			}
		}
	}
	return false
}

func isSyscallFrame(f string) bool {
	return strings.HasPrefix(f, "syscall.") || strings.HasPrefix(f, "internal/runtime/syscall") ||
		strings.HasPrefix(f, "runtime/internal/syscall") || strings.HasPrefix(f, "golang.org/x/sys/unix.")
}

// generic frames never decide the area: their caller does.
var generic = []string{
	"runtime.", "internal/", "sync.", "sync/", "bufio.", "bytes.", "strings.", "strconv.", "unicode",
	"io.", "time.", "context.", "fmt.", "errors.", "slices.", "maps.", "sort.", "math", "reflect.",
	"encoding/", "hash/", "crypto/", "net.(*conn)", "net.(*netFD)", "net.(*TCPConn)", "net.(*Buffers)",
	"net.(*IPConn)", "net.(*TCPListener)", "net.(*sysListener)", "net/http.Header.", "net/http.Header)",
	"net/http.CanonicalHeaderKey", "net/url.", "log/", "log.", "os.", "syscall.", "unique.", "iter.",
	"weak.", "container/", "type:", "net.", "net/netip.", "net/http/httptrace.", "net/http/internal", "vendor/",
}

var clientPrefixes = []string{
	"net/http.(*persistConn", "net/http.(*Transport", "net/http.ReadResponse", "net/http.(*Request).write",
	"net/http.persistConnWriter", "net/http.(*transportRequest", "net/http.(*connectMethod",
	"net/http.(*wantConn", "net/http.(*bodyEOFSignal", "net/http.(*Client", "net/http.send",
	"net/http.setRequestCancel", "net/http.(*http2", "net/http.(*readWriteCloserBody",
}

var serverPrefixes = []string{
	"net/http.(*conn)", "net/http.(*response)", "net/http.(*chunkWriter)", "net/http.readRequest",
	"net/http.(*connReader)", "net/http.serverHandler", "net/http.(*Server)", "net/http.(*expectContinueReader",
	"net/http.checkConnErrorWriter", "net/http.(*ServeMux)", "net/http.HandlerFunc",
}

// area names the code that ran a sample that is none of the runtime
// kinds: its innermost frame that is not a generic helper.
func area(stack []string, ownPrefix string) string {
	for _, f := range stack {
		switch {
		case ownPrefix != "" && strings.HasPrefix(f, ownPrefix):
			return CatOwn
		case strings.HasPrefix(f, "net/textproto."):
			return CatTextproto
		case hasFrame([]string{f}, clientPrefixes...):
			return CatClient
		case strings.HasPrefix(f, "net/http/httputil."):
			return CatHttputil
		case hasFrame([]string{f}, serverPrefixes...):
			return CatServer
		case !strings.Contains(f, ".") || hasFrame([]string{f}, generic...):
			continue // an assembly helper (aeshashbody, memmove) or a generic package
		case strings.HasPrefix(f, "net/http."):
			return CatHTTPOther
		default:
			return "package " + pkgOf(f)
		}
	}
	return CatOther
}

// pkgOf returns the package path of a function name such as
// "github.com/a/b.(*T).M" or "net/http.ReadResponse".
func pkgOf(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return fn
	}
	return fn[:slash+1+dot]
}

// Classify returns the category of one stack (leaf first).
func Classify(stack []string, ownPrefix string) string {
	switch {
	case hasFrame(stack, gcFrames...):
		return CatGC
	case hasFrame(stack, "github.com/cairnhq/cairn/internal/proxy.epollWait"):
		return CatNetpoll // the gateway's event loops
	case hasFrame(stack, "runtime.netpoll"):
		// netpoll's own epoll_wait, but not netpollready & co. under a socket op.
		if !hasFrame(stack, "internal/poll.") {
			return CatNetpoll
		}
	}
	for _, f := range stack {
		if isSyscallFrame(f) {
			switch {
			case hasFrame(stack, "internal/poll.(*FD).Read", "internal/poll.(*FD).RawRead", "github.com/cairnhq/cairn/internal/proxy.rawRead"):
				return CatRead
			case hasFrame(stack, "internal/poll.(*FD).Write", "internal/poll.(*FD).Writev", "internal/poll.(*FD).RawWrite", "github.com/cairnhq/cairn/internal/proxy.rawWrite"):
				return CatWrite
			}
			return CatSyscall
		}
	}
	switch {
	case hasFrame(stack, timerFrames...):
		return CatTimers
	case hasFrame(stack, schedFrames...):
		return CatSched
	case hasFrame(stack, "runtime.mallocgc", "runtime.(*mcache)", "runtime.(*mcentral)", "runtime.(*mheap)"):
		return CatAlloc
	}
	return area(stack, ownPrefix)
}

// Summarize sorts samples into categories and lists the functions under
// ownPrefix (e.g. "github.com/cairnhq/cairn/") with the most cumulative
// time (top n).
func Summarize(samples []Sample, duration time.Duration, ownPrefix string, n int) Summary {
	s := Summary{Duration: duration}
	byCat := map[string]time.Duration{}
	cum := map[string]time.Duration{}
	for _, smp := range samples {
		s.Total += smp.Value
		byCat[Classify(smp.Stack, ownPrefix)] += smp.Value
		seen := map[string]bool{}
		for _, f := range smp.Stack {
			if ownPrefix != "" && strings.HasPrefix(f, ownPrefix) && !seen[f] {
				seen[f] = true
				cum[f] += smp.Value
			}
		}
	}
	pct := func(d time.Duration) float64 {
		if s.Total == 0 {
			return 0
		}
		return 100 * float64(d) / float64(s.Total)
	}
	for name, d := range byCat {
		s.Categories = append(s.Categories, Category{Name: name, Time: d, Percent: pct(d)})
	}
	slices.SortFunc(s.Categories, func(a, b Category) int {
		return cmp.Or(cmp.Compare(b.Time, a.Time), strings.Compare(a.Name, b.Name))
	})
	for name, d := range cum {
		s.Own = append(s.Own, Func{Name: name, Cum: d, Percent: pct(d)})
	}
	slices.SortFunc(s.Own, func(a, b Func) int { return cmp.Or(cmp.Compare(b.Cum, a.Cum), strings.Compare(a.Name, b.Name)) })
	if len(s.Own) > n {
		s.Own = s.Own[:n]
	}
	return s
}
