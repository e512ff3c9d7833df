// Package wrk runs wrk (Debian's package, 4.1.0) against one URL and reads
// its results: a Lua done() hook (Script) prints them as one JSON line, so
// nothing depends on the layout of wrk's human-readable report (which is
// kept too, with --latency's distribution).
package wrk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/bench/internal/proc"
)

// Script is the Lua file wrk is given (-s): only a done() hook, so wrk
// sends its one precomputed request and calls no Lua per request or
// response. Latencies are in microseconds.
const Script = `-- bench/internal/wrk: print wrk's results as one JSON line.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%d,\"durationUs\":%d,\"bytes\":%d," ..
    "\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d," ..
    "\"meanUs\":%.1f,\"stdevUs\":%.1f,\"minUs\":%d,\"maxUs\":%d," ..
    "\"p50Us\":%d,\"p75Us\":%d,\"p90Us\":%d,\"p99Us\":%d,\"p999Us\":%d}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.min, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
`

// marker starts the line Script prints.
const marker = "WRKJSON "

// Config is one wrk run.
type Config struct {
	Bin      string        // wrk binary
	URL      string        // the URL every request GETs
	Threads  int           // -t
	Conns    int           // -c: connections, spread over the threads
	Duration time.Duration // -d
	Timeout  time.Duration // --timeout: a response slower than this counts as a timeout (0: wrk's 2s)
	Script   string        // path of a file holding Script
}

// Args returns wrk's command line arguments for c.
func (c Config) Args() []string {
	a := []string{"-t", strconv.Itoa(c.Threads), "-c", strconv.Itoa(c.Conns),
		"-d", fmt.Sprintf("%ds", max(1, int(c.Duration.Round(time.Second)/time.Second))), "--latency"}
	if c.Timeout > 0 {
		a = append(a, "--timeout", fmt.Sprintf("%dms", c.Timeout.Milliseconds()))
	}
	return append(a, "-s", c.Script, c.URL)
}

// Result is what one wrk run measured, and the CPU it took.
type Result struct {
	Args     []string      `json:"args"`
	Requests int64         `json:"requests"` // responses read (any status)
	Duration time.Duration `json:"duration"`
	Bytes    int64         `json:"bytes"` // response bytes read, headers included
	Rate     float64       `json:"rate"`  // Requests / Duration
	// Errors as wrk counts them; Status is responses that were not 2xx or 3xx.
	Connect int64 `json:"connect,omitempty"`
	Read    int64 `json:"read,omitempty"`
	Write   int64 `json:"write,omitempty"`
	Status  int64 `json:"status,omitempty"`
	Timeout int64 `json:"timeout,omitempty"`
	// Latency of every request (closed loop: the time from sending it to
	// reading the whole response), from wrk's histogram (microseconds).
	Mean  time.Duration `json:"mean"`
	StDev time.Duration `json:"stdev"`
	Min   time.Duration `json:"min"`
	P50   time.Duration `json:"p50"`
	P75   time.Duration `json:"p75"`
	P90   time.Duration `json:"p90"`
	P99   time.Duration `json:"p99"`
	P999  time.Duration `json:"p999"`
	Max   time.Duration `json:"max"`
	// Cores used on average over the run (CPU time / wall time): by the
	// processes measured (Pids: the proxy, with its children, and the
	// backends), by wrk, and by the rest of the machine.
	Cores       []float64 `json:"cores"`
	ClientCores float64   `json:"clientCores"`
	OtherCores  float64   `json:"otherCores"`
	// Output is wrk's own report (stdout without the JSON line).
	Output string `json:"-"`
}

// Errors is the sum of every kind of error wrk counted.
func (r Result) Errors() int64 { return r.Connect + r.Read + r.Write + r.Status + r.Timeout }

// BytesPerResponse is the mean size of a response, headers included.
func (r Result) BytesPerResponse() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Bytes) / float64(r.Requests)
}

// Run runs wrk with cfg, metering the CPU of each group of processes in
// pids (each group's figure is the sum of its processes and their
// children: an nginx master's workers), of wrk and of the machine.
func Run(ctx context.Context, cfg Config, pids [][]int) (Result, error) {
	args := cfg.Args()
	cmd := exec.CommandContext(ctx, cfg.Bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	groups := expand(pids)
	m := proc.StartCPU(flatten(groups)...)
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("wrk %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	wall := time.Since(start)
	cores, machine := m.Cores()
	r, err := Parse(stdout.String())
	if err != nil {
		return Result{}, fmt.Errorf("wrk %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	r.Args = args
	if st := cmd.ProcessState; st != nil && wall > 0 {
		r.ClientCores = float64(st.UserTime()+st.SystemTime()) / float64(wall)
	}
	r.Cores = make([]float64, len(groups))
	other := machine - r.ClientCores
	i := 0
	for g, ps := range groups {
		for range ps {
			r.Cores[g] += cores[i]
			i++
		}
		other -= r.Cores[g]
	}
	r.OtherCores = other
	return r, nil
}

// expand adds each process's children to its group.
func expand(pids [][]int) [][]int {
	out := make([][]int, len(pids))
	for i, g := range pids {
		for _, p := range g {
			out[i] = append(out[i], p)
			out[i] = append(out[i], proc.Children(p)...)
		}
	}
	return out
}

func flatten(groups [][]int) []int {
	var out []int
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// line is what Script prints.
type line struct {
	Requests   int64   `json:"requests"`
	DurationUs int64   `json:"durationUs"`
	Bytes      int64   `json:"bytes"`
	Connect    int64   `json:"connect"`
	Read       int64   `json:"read"`
	Write      int64   `json:"write"`
	Status     int64   `json:"status"`
	Timeout    int64   `json:"timeout"`
	MeanUs     float64 `json:"meanUs"`
	StdevUs    float64 `json:"stdevUs"`
	MinUs      int64   `json:"minUs"`
	MaxUs      int64   `json:"maxUs"`
	P50Us      int64   `json:"p50Us"`
	P75Us      int64   `json:"p75Us"`
	P90Us      int64   `json:"p90Us"`
	P99Us      int64   `json:"p99Us"`
	P999Us     int64   `json:"p999Us"`
}

// Parse reads wrk's output: the JSON line Script prints, and the rest as
// Output.
func Parse(out string) (Result, error) {
	var r Result
	var rest strings.Builder
	found := false
	for l := range strings.Lines(out) {
		if j, ok := strings.CutPrefix(l, marker); ok {
			var v line
			if err := json.Unmarshal([]byte(j), &v); err != nil {
				return r, fmt.Errorf("wrk's JSON line: %w", err)
			}
			us := func(n int64) time.Duration { return time.Duration(n) * time.Microsecond }
			r = Result{Requests: v.Requests, Duration: us(v.DurationUs), Bytes: v.Bytes,
				Connect: v.Connect, Read: v.Read, Write: v.Write, Status: v.Status, Timeout: v.Timeout,
				Mean: time.Duration(v.MeanUs * 1000), StDev: time.Duration(v.StdevUs * 1000), Min: us(v.MinUs),
				P50: us(v.P50Us), P75: us(v.P75Us), P90: us(v.P90Us), P99: us(v.P99Us), P999: us(v.P999Us), Max: us(v.MaxUs)}
			if r.Duration > 0 {
				r.Rate = float64(r.Requests) / r.Duration.Seconds()
			}
			found = true
			continue
		}
		rest.WriteString(l)
	}
	if !found {
		return r, errors.New("no " + strings.TrimSpace(marker) + " line in wrk's output (was it run with -s and Script?)")
	}
	r.Output = rest.String()
	return r, nil
}

// WriteScript stores Script in path.
func WriteScript(path string) error { return os.WriteFile(path, []byte(Script), 0o644) }
