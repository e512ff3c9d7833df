// Package dnsperf runs DNS-OARC's dnsperf (Debian's package) against one
// server and reads what it prints: the summary (queries, QPS, average
// latency) and, with -v, the latency of every answer, from which it takes
// the percentiles dnsperf itself does not print.
package dnsperf

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnhq/cairn/bench/internal/proc"
	"github.com/cairnhq/cairn/bench/internal/stats"
)

// Config is one dnsperf run.
type Config struct {
	Bin         string        // dnsperf binary
	Server      string        // address (127.0.0.1)
	Port        int           // port
	Queries     string        // query file ("name type" lines), looped over until Duration
	Clients     int           // -c: clients (sockets) to act as
	Outstanding int           // -q: queries in flight at most (0: dnsperf's default, 100)
	Duration    time.Duration // -l
	QPS         float64       // -Q: queries per second at most (0: as fast as it can)
	EDNS        bool          // -e: EDNS0 (dnsperf advertises a 4096-byte UDP buffer)
	TCP         bool          // -m tcp instead of UDP
	Timeout     time.Duration // -t: a query not answered this long is lost (0: dnsperf's 5s)
	Verbose     bool          // -v: read every answer's latency
}

// Args returns dnsperf's command line arguments for c.
func (c Config) Args() []string {
	a := []string{"-s", c.Server, "-p", strconv.Itoa(c.Port), "-d", c.Queries,
		"-c", strconv.Itoa(c.Clients), "-l", strconv.Itoa(int(c.Duration.Round(time.Second) / time.Second))}
	if c.Outstanding > 0 {
		a = append(a, "-q", strconv.Itoa(c.Outstanding))
	}
	if c.QPS > 0 {
		a = append(a, "-Q", strconv.Itoa(int(c.QPS+0.5)))
	}
	if c.EDNS {
		a = append(a, "-e")
	}
	if c.TCP {
		a = append(a, "-m", "tcp")
	}
	if c.Timeout > 0 {
		a = append(a, "-t", strconv.Itoa(max(1, int(c.Timeout/time.Second))))
	}
	if c.Verbose {
		a = append(a, "-v")
	}
	return a
}

// Result is what one run printed, and the CPU it took.
type Result struct {
	Args          []string         `json:"args"`
	Sent          int64            `json:"sent"`
	Completed     int64            `json:"completed"`
	Lost          int64            `json:"lost"`
	RCodes        map[string]int64 `json:"rcodes"`
	RequestBytes  int              `json:"requestBytes"`  // average request size
	ResponseBytes int              `json:"responseBytes"` // average response size
	RunTime       time.Duration    `json:"runTime"`
	QPS           float64          `json:"qps"`
	// AvgLatency, MinLatency, MaxLatency and StdDev are dnsperf's own figures.
	AvgLatency time.Duration `json:"avgLatency"`
	MinLatency time.Duration `json:"minLatency"`
	MaxLatency time.Duration `json:"maxLatency"`
	StdDev     time.Duration `json:"stdDev"`
	// Latency summarises every answer's latency as -v printed it
	// (microsecond resolution); zero without -v.
	Latency stats.Summary `json:"latency"`
	P999    time.Duration `json:"p999,omitempty"`
	// ServerCores, ClientCores (dnsperf, and the process reading its -v
	// output) and OtherCores (the rest of the machine) as in
	// results.Throughput, over dnsperf's run time.
	ServerCores float64 `json:"serverCores"`
	ClientCores float64 `json:"clientCores"`
	OtherCores  float64 `json:"otherCores"`
}

// Run runs dnsperf with cfg and meters the CPU of the server process pid
// (and of its children: none for a Go server), of dnsperf and of the machine.
func Run(ctx context.Context, cfg Config, pid int) (Result, error) {
	args := cfg.Args()
	cmd := exec.CommandContext(ctx, cfg.Bin, args...)
	cmd.Stderr = os.Stderr // warnings (-W is not set): they belong in the progress log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	m0 := readMeters(pid, 0)
	if err := cmd.Start(); err != nil {
		return Result{}, err
	}
	// The cores are read when dnsperf's time limit is up, not when it
	// exits: with queries lost, it then waits up to -t for their answers,
	// busy-polling its sockets, which is no part of the load.
	var (
		mu     sync.Mutex
		m1     meters
		gotM1  bool
		dpPid  = cmd.Process.Pid
		dp0, _ = proc.CPUTime(dpPid)
	)
	timer := time.AfterFunc(cfg.Duration+50*time.Millisecond, func() {
		m := readMeters(pid, dpPid)
		mu.Lock()
		defer mu.Unlock()
		if m.err == nil {
			m1, gotM1 = m, true
		}
	})
	var lat []time.Duration
	if cfg.Verbose {
		lat = make([]time.Duration, 0, 1<<20)
	}
	var summary strings.Builder
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 2 && line[0] == '>' && line[1] == ' ' {
			if d, ok := VerboseLatency(line); ok {
				lat = append(lat, d)
			}
			continue
		}
		summary.Write(line)
		summary.WriteByte('\n')
	}
	werr := cmd.Wait()
	timer.Stop()
	if werr != nil {
		return Result{}, fmt.Errorf("dnsperf %s: %w\n%s", strings.Join(args, " "), werr, summary.String())
	}
	r, err := ParseSummary(summary.String())
	if err != nil {
		return Result{}, fmt.Errorf("dnsperf %s: %w\n%s", strings.Join(args, " "), err, summary.String())
	}
	r.Args = args
	if len(lat) > 0 {
		slices.Sort(lat)
		r.Latency = stats.Summarize(lat)
		r.P999 = stats.Percentile(lat, 0.999)
	}
	mu.Lock()
	defer mu.Unlock()
	if !gotM1 { // dnsperf ended first: everything it used is in its rusage
		m1 = readMeters(pid, 0)
		if st := cmd.ProcessState; st != nil {
			m1.dnsperf = st.UserTime() + st.SystemTime()
		}
	}
	if span := m1.at.Sub(m0.at); m1.err == nil && m0.err == nil && span > 0 {
		cores := func(a, b time.Duration) float64 { return float64(b-a) / float64(span) }
		r.ServerCores = cores(m0.server, m1.server)
		r.ClientCores = cores(dp0, m1.dnsperf) + cores(m0.own, m1.own)
		r.OtherCores = cores(m0.machine, m1.machine) - r.ServerCores - r.ClientCores
	}
	return r, nil
}

// VerboseLatency reads the latency at the end of one of -v's answer lines,
// "> NOERROR name type 0.000123"; false for a line without one (a timeout
// is "> T name type").
func VerboseLatency(line []byte) (time.Duration, bool) {
	i := len(line) - 1
	for i >= 0 && line[i] != ' ' {
		i--
	}
	f := line[i+1:]
	if len(f) < 3 || f[0] < '0' || f[0] > '9' {
		return 0, false
	}
	// seconds.microseconds, parsed by hand: this runs for every answer.
	var sec, frac, digits int64
	dot := false
	for _, c := range f {
		switch {
		case c == '.' && !dot:
			dot = true
		case c >= '0' && c <= '9':
			if dot {
				if digits < 9 {
					frac = frac*10 + int64(c-'0')
					digits++
				}
			} else {
				sec = sec*10 + int64(c-'0')
			}
		default:
			return 0, false
		}
	}
	for ; digits < 9; digits++ {
		frac *= 10
	}
	return time.Duration(sec)*time.Second + time.Duration(frac), true
}

var (
	reSent      = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	reCompleted = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	reLost      = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	reRCodes    = regexp.MustCompile(`Response codes:\s+(.*)`)
	reRCode     = regexp.MustCompile(`([A-Z]+) (\d+) \(`)
	reSize      = regexp.MustCompile(`Average packet size:\s+request (\d+), response (\d+)`)
	reRunTime   = regexp.MustCompile(`Run time \(s\):\s+([0-9.]+)`)
	reQPS       = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reAvg       = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+) \(min ([0-9.]+), max ([0-9.]+)\)`)
	reStdDev    = regexp.MustCompile(`Latency StdDev \(s\):\s+([0-9.]+)`)
)

// ParseSummary reads the statistics dnsperf prints at the end of a run.
func ParseSummary(text string) (Result, error) {
	var r Result
	m := reQPS.FindStringSubmatch(text)
	if m == nil {
		return r, fmt.Errorf("no \"Queries per second\" in dnsperf's output")
	}
	r.QPS, _ = strconv.ParseFloat(m[1], 64)
	r.Sent = intOf(reSent, text)
	r.Completed = intOf(reCompleted, text)
	r.Lost = intOf(reLost, text)
	if m := reRCodes.FindStringSubmatch(text); m != nil {
		r.RCodes = map[string]int64{}
		for _, c := range reRCode.FindAllStringSubmatch(m[1], -1) {
			r.RCodes[c[1]], _ = strconv.ParseInt(c[2], 10, 64)
		}
	}
	if m := reSize.FindStringSubmatch(text); m != nil {
		r.RequestBytes, _ = strconv.Atoi(m[1])
		r.ResponseBytes, _ = strconv.Atoi(m[2])
	}
	if m := reRunTime.FindStringSubmatch(text); m != nil {
		r.RunTime = seconds(m[1])
	}
	if m := reAvg.FindStringSubmatch(text); m != nil {
		r.AvgLatency, r.MinLatency, r.MaxLatency = seconds(m[1]), seconds(m[2]), seconds(m[3])
	}
	if m := reStdDev.FindStringSubmatch(text); m != nil {
		r.StdDev = seconds(m[1])
	}
	return r, nil
}

func intOf(re *regexp.Regexp, text string) int64 {
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	return v
}

func seconds(s string) time.Duration {
	v, _ := strconv.ParseFloat(s, 64)
	return time.Duration(v * float64(time.Second))
}

// meters are the CPU times read at one moment.
type meters struct {
	at                            time.Time
	server, dnsperf, own, machine time.Duration
	err                           error
}

// readMeters reads the CPU time of the server, of dnsperf (if dp > 0), of
// this process and of the machine.
func readMeters(server, dp int) meters {
	m := meters{at: time.Now()}
	var errs [4]error
	m.server, errs[0] = proc.CPUTime(server)
	if dp > 0 {
		m.dnsperf, errs[1] = proc.CPUTime(dp)
	}
	m.own, errs[2] = proc.CPUTime(os.Getpid())
	m.machine, errs[3] = proc.MachineBusy()
	m.err = errors.Join(errs[:]...)
	return m
}
