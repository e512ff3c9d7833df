package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/bench/internal/paced"
	"github.com/cairnhq/cairn/bench/internal/pprofsum"
	"github.com/cairnhq/cairn/bench/internal/proc"
	"github.com/cairnhq/cairn/bench/internal/results"
	"github.com/cairnhq/cairn/bench/internal/wrk"
)

// gatewayBench measures one Go backend directly and through proxies
// (issue 5): wrk (closed loop), a paced open-loop client, CPU profiles.
type gatewayBench struct {
	targets     []results.GatewayTarget
	backendPids []int
	profiles    map[string]string // target -> pprof profile URL
	own         map[string]string // target -> its own code's function prefix
	wrkBin      string
	wrkVersion  string
	goBin       string
	perfBin     string
	perfFor     time.Duration
	path        string

	threads, conns int
	dur, warmup    time.Duration
	rounds         int
	profileFor     time.Duration
	rate           float64
	pacedConns     int
	pacedFor       time.Duration
	pacedWarmup    time.Duration
	pacedRounds    int
	workdir, out   string
	raw            string
	script         string
}

// kv is a repeatable NAME=VALUE flag.
type kv struct {
	order []string
	m     map[string]string
}

func (f *kv) String() string { return fmt.Sprint(f.m) }

func (f *kv) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	if f.m == nil {
		f.m = map[string]string{}
	}
	if _, dup := f.m[k]; !dup {
		f.order = append(f.order, k)
	}
	f.m[k] = v
	return nil
}

func runGateway(ctx context.Context, args []string) error {
	b := &gatewayBench{}
	var urls, pids, versions, profiles, own kv
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.Var(&urls, "target", "NAME=URL of a way to the backend, repeated, in the order of the first round; one must be named direct")
	fs.Var(&pids, "pid", "NAME=PID of a target's proxy process (its children are counted with it), repeated")
	fs.Var(&versions, "version", "NAME=TEXT: a target's version, for the report, repeated")
	fs.Var(&profiles, "profile", "NAME=URL of a target's CPU profile endpoint (/debug/pprof/profile), repeated")
	fs.Var(&own, "own", "NAME=PREFIX: the function-name prefix of a profiled target's own code (github.com/cairnhq/cairn/)")
	backends := fs.String("backend-pids", "", "comma-separated process ids of the backends (required)")
	fs.StringVar(&b.wrkBin, "wrk", "wrk", "wrk binary")
	fs.StringVar(&b.wrkVersion, "wrk-version", "", "wrk version, for the report")
	fs.StringVar(&b.goBin, "go", "go", "go binary (go tool pprof)")
	fs.StringVar(&b.perfBin, "perf", "", "perf binary: count each target's system calls per request with perf stat (empty: not counted)")
	fs.DurationVar(&b.perfFor, "perf-for", 3*time.Second, "perf stat's counting time (during a wrk run 2s longer)")
	fs.StringVar(&b.path, "path", "/", "path every request GETs")
	fs.IntVar(&b.threads, "t", 2, "wrk -t: threads")
	fs.IntVar(&b.conns, "c", 64, "wrk -c: connections")
	fs.DurationVar(&b.dur, "for", 15*time.Second, "wrk -d of each measured run")
	fs.DurationVar(&b.warmup, "warmup", 2*time.Second, "wrk run against each target before the measured runs (0: none)")
	fs.IntVar(&b.rounds, "rounds", 2, "measured wrk runs per target (round 2 runs the targets in reverse order, and so on)")
	fs.DurationVar(&b.profileFor, "profile-for", 10*time.Second, "length of each CPU profile (taken during a wrk run of its own)")
	fs.Float64Var(&b.rate, "rate", 2000, "requests per second of the paced runs (0: none)")
	fs.IntVar(&b.pacedConns, "paced-c", 32, "connections of the paced runs")
	fs.DurationVar(&b.pacedFor, "paced-for", 10*time.Second, "measured time of each paced run")
	fs.DurationVar(&b.pacedWarmup, "paced-warmup", time.Second, "time at the same rate before each paced run, not measured")
	fs.IntVar(&b.pacedRounds, "paced-rounds", 2, "paced runs per target (alternating order)")
	fs.StringVar(&b.workdir, "workdir", "", "directory for wrk's Lua script (required)")
	fs.StringVar(&b.out, "out", "", "file to write the JSON results to (required)")
	fs.StringVar(&b.raw, "raw", "", "if set, keep wrk's reports (RAW-wrk-TARGET-ROUND.txt), the paced samples (RAW-paced-TARGET-ROUND.csv) and the profiles (RAW-TARGET.pprof, RAW-TARGET-top.txt)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if b.out == "" || b.workdir == "" || *backends == "" {
		return errors.New("-out, -workdir and -backend-pids are required")
	}
	if _, ok := urls.m[results.GatewayDirect]; !ok {
		return errors.New("-target direct=URL is required")
	}
	if b.rounds < 1 || b.threads < 1 || b.conns < b.threads || b.dur < time.Second {
		return errors.New("-rounds and -t must be positive, -c at least -t, -for at least 1s")
	}
	if b.raw == "" && len(profiles.m) > 0 {
		return errors.New("-profile needs -raw (where to keep the profiles)")
	}
	for _, p := range strings.Split(*backends, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || pid <= 0 {
			return fmt.Errorf("-backend-pids: bad pid %q", p)
		}
		b.backendPids = append(b.backendPids, pid)
	}
	for _, name := range urls.order {
		t := results.GatewayTarget{Name: name, URL: strings.TrimRight(urls.m[name], "/") + b.path, Version: versions.m[name]}
		if p := pids.m[name]; p != "" {
			pid, err := strconv.Atoi(p)
			if err != nil || pid <= 0 {
				return fmt.Errorf("-pid %s=%s: bad pid", name, p)
			}
			t.Pid = pid
		} else if name != results.GatewayDirect {
			return fmt.Errorf("-pid %s=PID is required", name)
		}
		b.targets = append(b.targets, t)
	}
	for name := range profiles.m {
		if _, ok := urls.m[name]; !ok {
			return fmt.Errorf("-profile %s: no such -target", name)
		}
	}
	b.profiles, b.own = profiles.m, own.m
	b.script = filepath.Join(b.workdir, "wrk-json.lua")
	if err := wrk.WriteScript(b.script); err != nil {
		return err
	}
	return b.run(ctx)
}

func (b *gatewayBench) run(ctx context.Context) error {
	s := &results.GatewaySuite{Kind: "gateway", WrkVersion: b.wrkVersion, Path: b.path,
		Threads: b.threads, Conns: b.conns, Duration: b.dur, Warmup: b.warmup, Rounds: b.rounds,
		PacedRate: b.rate, PacedConns: b.pacedConns, PacedDuration: b.pacedFor, PacedRounds: b.pacedRounds}
	var direct []byte
	for i := range b.targets {
		t := &b.targets[i]
		if t.Name == results.GatewayDirect {
			body, _, _, err := b.check(ctx, t.URL)
			if err != nil {
				return err
			}
			direct = body
		}
	}
	s.BodyBytes = len(direct)
	for i := range b.targets {
		t := &b.targets[i]
		body, spread, hb, err := b.check(ctx, t.URL)
		if err != nil {
			return err
		}
		if !bytes.Equal(body, direct) {
			return fmt.Errorf("%s answers %q, direct %q", t.URL, body, direct)
		}
		t.Spread, t.HeaderBytes = spread, hb
		logf("gateway: %s (%s): 200, answered by %v, %d header bytes", t.Name, t.URL, t.Spread, t.HeaderBytes)
	}
	s.Targets = b.targets

	if b.warmup > 0 {
		for _, t := range b.targets {
			logf("gateway: warm-up of %s, %v", t.Name, b.warmup)
			if _, err := b.wrk(ctx, t, b.warmup); err != nil {
				return err
			}
		}
	}
	for round := range b.rounds {
		for _, t := range inOrder(b.targets, round) {
			sys0, at0 := b.proxySys(t), time.Now()
			r, err := b.wrk(ctx, t, b.dur)
			if err != nil {
				return err
			}
			run := results.GatewayRun{Target: t.Name, Round: round + 1, Result: r}
			run.ProxySysCores = float64(b.proxySys(t)-sys0) / float64(time.Since(at0))
			logf("gateway: wrk %s round %d: %.0f req/s, p50 %v p99 %v p99.9 %v max %v, %d errors (cores: proxy %.2f (sys %.2f), backends %.2f, wrk %.2f, other %.2f)",
				t.Name, round+1, r.Rate, r.P50, r.P99, r.P999, r.Max, r.Errors(), run.ProxyCores(), run.ProxySysCores, run.BackendCores(), r.ClientCores, r.OtherCores)
			if b.raw != "" {
				if err := os.WriteFile(fmt.Sprintf("%s-wrk-%s-%d.txt", b.raw, t.Name, round+1), []byte(r.Output), 0o644); err != nil {
					return err
				}
			}
			s.Runs = append(s.Runs, run)
		}
	}

	for _, t := range b.targets {
		u, ok := b.profiles[t.Name]
		if !ok {
			continue
		}
		p, err := b.profile(ctx, t, u)
		if err != nil {
			return err
		}
		s.Profiles = append(s.Profiles, p)
	}

	if b.perfBin != "" {
		for _, t := range b.targets {
			c, err := b.syscalls(ctx, t)
			if err != nil {
				return err
			}
			s.Syscalls = append(s.Syscalls, c)
		}
	}

	if b.rate > 0 {
		for round := range b.pacedRounds {
			for _, t := range inOrder(b.targets, round) {
				p, err := b.paced(ctx, t, round+1)
				if err != nil {
					return err
				}
				s.Paced = append(s.Paced, p)
			}
		}
		for _, t := range b.targets {
			var runs []paced.Result
			pool := results.GatewayPooled{Target: t.Name}
			for _, p := range s.Paced {
				if p.Target != t.Name {
					continue
				}
				runs = append(runs, p.Result)
				pool.Achieved += p.Achieved
				pool.ProxyCores += p.ProxyCores
				pool.Late += p.Late
				pool.Errors += p.Errors
				if pool.FirstErr == "" {
					pool.FirstErr = p.FirstErr
				}
			}
			if len(runs) == 0 {
				continue
			}
			pool.Achieved /= float64(len(runs))
			pool.ProxyCores /= float64(len(runs))
			sum, p999 := paced.Summarize(runs...)
			pool.Count, pool.P50, pool.P90, pool.P99, pool.P999, pool.Max = sum.Count, sum.P50, sum.P90, sum.P99, p999, sum.Max
			s.PacedPooled = append(s.PacedPooled, pool)
		}
	}
	return results.WriteGateway(b.out, s)
}

// inOrder is the targets in the order of round r: as given, then reversed,
// and so on, so that no target always runs first (or right after the
// same neighbour).
func inOrder(ts []results.GatewayTarget, r int) []results.GatewayTarget {
	out := slices.Clone(ts)
	if r%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// check GETs url 20 times on one keep-alive connection: every answer
// must be a 200 with the same body. It returns the body, which backend
// instance answered how often (X-Backend) and the size of the answer
// without its body.
func (b *gatewayBench) check(ctx context.Context, url string) (body []byte, spread map[string]int, headerBytes int, err error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	spread = map[string]int{}
	for i := range 20 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, nil, 0, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, 0, err
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, nil, 0, fmt.Errorf("GET %s: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, nil, 0, fmt.Errorf("GET %s: %s: %.200s", url, resp.Status, got)
		}
		if i > 0 && !bytes.Equal(got, body) {
			return nil, nil, 0, fmt.Errorf("GET %s: answers differ: %q, then %q", url, body, got)
		}
		body = got
		spread[resp.Header.Get("X-Backend")]++
		if head, err := httputil.DumpResponse(resp, false); err == nil {
			headerBytes = len(head)
		}
	}
	return body, spread, headerBytes, nil
}

// groups are the processes metered during a run: the target's proxy and
// the backends.
func (b *gatewayBench) groups(t results.GatewayTarget) [][]int {
	var proxy []int
	if t.Pid > 0 {
		proxy = []int{t.Pid}
	}
	return [][]int{proxy, b.backendPids}
}

// proxySys returns the system CPU time t's proxy processes (with their
// children) have used.
func (b *gatewayBench) proxySys(t results.GatewayTarget) time.Duration {
	if t.Pid == 0 {
		return 0
	}
	var sum time.Duration
	for _, p := range append([]int{t.Pid}, proc.Children(t.Pid)...) {
		if _, sys, err := proc.CPUTimes(p); err == nil {
			sum += sys
		}
	}
	return sum
}

func (b *gatewayBench) wrk(ctx context.Context, t results.GatewayTarget, d time.Duration) (wrk.Result, error) {
	cfg := wrk.Config{Bin: b.wrkBin, URL: t.URL, Threads: b.threads, Conns: b.conns, Duration: d, Script: b.script}
	r, err := wrk.Run(ctx, cfg, b.groups(t))
	if err != nil {
		return r, err
	}
	if r.Requests == 0 {
		return r, fmt.Errorf("wrk %s: no requests answered:\n%s", t.URL, r.Output)
	}
	return r, nil
}

// profile takes a CPU profile of t's proxy during a wrk run of its own.
func (b *gatewayBench) profile(ctx context.Context, t results.GatewayTarget, profileURL string) (results.GatewayProfile, error) {
	p := results.GatewayProfile{Target: t.Name, File: b.raw + "-" + t.Name + ".pprof", TopFile: b.raw + "-" + t.Name + "-top.txt"}
	secs := max(1, int(b.profileFor/time.Second))
	logf("gateway: CPU profile of %s, %ds, during a wrk run of %ds", t.Name, secs, secs+3)
	type wrkDone struct {
		r   wrk.Result
		err error
	}
	done := make(chan wrkDone, 1)
	go func() {
		r, err := b.wrk(ctx, t, time.Duration(secs+3)*time.Second)
		done <- wrkDone{r, err}
	}()
	select {
	case <-ctx.Done():
		return p, ctx.Err()
	case <-time.After(time.Second):
	}
	sep := "?"
	if strings.Contains(profileURL, "?") {
		sep = "&"
	}
	hc := &http.Client{Timeout: time.Duration(secs+30) * time.Second, Transport: &http.Transport{Proxy: nil}}
	var perr error
	if resp, err := hc.Get(fmt.Sprintf("%s%sseconds=%d", profileURL, sep, secs)); err != nil {
		perr = err
	} else {
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			perr = err
		case resp.StatusCode != http.StatusOK:
			perr = fmt.Errorf("GET %s: %s: %.200s", profileURL, resp.Status, data)
		default:
			perr = os.WriteFile(p.File, data, 0o644)
		}
	}
	w := <-done
	if w.err != nil {
		return p, w.err
	}
	if perr != nil {
		return p, fmt.Errorf("profile of %s: %w", t.Name, perr)
	}
	p.Run = results.GatewayRun{Target: t.Name, Result: w.r}
	logf("gateway: %s while profiled: %.0f req/s, p99 %v (proxy %.2f cores)", t.Name, w.r.Rate, w.r.P99, p.Run.ProxyCores())

	top, err := exec.CommandContext(ctx, b.goBin, "tool", "pprof", "-top", "-nodecount=30", p.File).Output()
	if err != nil {
		return p, fmt.Errorf("go tool pprof -top %s: %w", p.File, err)
	}
	if err := os.WriteFile(p.TopFile, top, 0o644); err != nil {
		return p, err
	}
	p.Top = firstLines(string(top), 22)
	traces, err := pprofsum.Traces(ctx, b.goBin, p.File)
	if err != nil {
		return p, err
	}
	samples, dur, err := pprofsum.ParseTraces(traces)
	if err != nil {
		return p, fmt.Errorf("%s: %w", p.File, err)
	}
	p.Summary = pprofsum.Summarize(samples, dur, b.own[t.Name], 15)
	p.File, p.TopFile = filepath.Base(p.File), filepath.Base(p.TopFile)
	for _, c := range p.Summary.Categories {
		if c.Percent >= 2 {
			logf("gateway: %s profile: %5.1f%% %s", t.Name, c.Percent, c.Name)
		}
	}
	return p, nil
}

func firstLines(s string, n int) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		if n == 0 {
			break
		}
		b.WriteString(l)
		n--
	}
	return b.String()
}

// paced runs the open-loop client against t and meters the CPU.
func (b *gatewayBench) paced(ctx context.Context, t results.GatewayTarget, round int) (results.GatewayPaced, error) {
	groups := b.groups(t)
	var proxy []int
	for _, p := range groups[0] {
		proxy = append(proxy, p)
		proxy = append(proxy, proc.Children(p)...)
	}
	all := append(slices.Clone(proxy), groups[1]...)
	all = append(all, os.Getpid())
	cfg := paced.Config{URL: t.URL, Rate: b.rate, Conns: b.pacedConns, Duration: b.pacedFor, Warmup: b.pacedWarmup}
	// The meter starts after the warm-up: only the measured time counts.
	type res struct {
		r   paced.Result
		err error
	}
	done := make(chan res, 1)
	go func() {
		r, err := paced.Run(ctx, cfg)
		done <- res{r, err}
	}()
	select {
	case <-ctx.Done():
		return results.GatewayPaced{}, ctx.Err()
	case <-time.After(b.pacedWarmup + 20*time.Millisecond):
	}
	m := proc.StartCPU(all...)
	pr := <-done
	cores, machine := m.Cores()
	if pr.err != nil {
		return results.GatewayPaced{}, fmt.Errorf("paced run against %s: %w", t.Name, pr.err)
	}
	g := results.GatewayPaced{Target: t.Name, Round: round, Result: pr.r}
	i := 0
	for range proxy {
		g.ProxyCores += cores[i]
		i++
	}
	for range groups[1] {
		g.BackendCores += cores[i]
		i++
	}
	g.ClientCores = cores[i]
	g.OtherCores = machine - g.ProxyCores - g.BackendCores - g.ClientCores
	r := pr.r
	logf("gateway: paced %s round %d: %.0f/s achieved of %.0f, p50 %v p99 %v p99.9 %v max %v, %d late, %d errors (cores: proxy %.3f, backends %.3f, client %.3f, other %.2f)",
		t.Name, round, r.Achieved, r.Rate, r.Latency.P50, r.Latency.P99, r.P999, r.Latency.Max, r.Late, r.Errors,
		g.ProxyCores, g.BackendCores, g.ClientCores, g.OtherCores)
	if r.FirstErr != "" {
		logf("gateway: paced %s: first error: %s", t.Name, r.FirstErr)
	}
	if b.raw != "" {
		var buf []byte
		buf = append(buf, "sent_ns,latency_ns\n"...)
		samples := slices.Clone(r.Samples)
		slices.SortFunc(samples, func(a, b paced.Sample) int { return int(a.Sent - b.Sent) })
		for _, smp := range samples {
			buf = fmt.Appendf(buf, "%d,%d\n", smp.Sent.Nanoseconds(), smp.Latency.Nanoseconds())
		}
		if err := os.WriteFile(fmt.Sprintf("%s-paced-%s-%d.csv", b.raw, t.Name, round), buf, 0o644); err != nil {
			return g, err
		}
	}
	return g, nil
}

// syscalls counts the system calls and context switches of t's proxy
// (direct: the first backend) with perf stat during a wrk run of its own.
func (b *gatewayBench) syscalls(ctx context.Context, t results.GatewayTarget) (results.GatewaySyscalls, error) {
	c := results.GatewaySyscalls{Target: t.Name}
	roots := []int{t.Pid}
	if t.Pid == 0 {
		roots = b.backendPids[:1]
	}
	for _, p := range roots {
		c.Pids = append(c.Pids, p)
		c.Pids = append(c.Pids, proc.Children(p)...)
	}
	secs := max(1, int(b.perfFor/time.Second))
	type wrkDone struct {
		r   wrk.Result
		err error
	}
	done := make(chan wrkDone, 1)
	go func() {
		r, err := b.wrk(ctx, t, time.Duration(secs+2)*time.Second)
		done <- wrkDone{r, err}
	}()
	select {
	case <-ctx.Done():
		return c, ctx.Err()
	case <-time.After(time.Second):
	}
	list := make([]string, len(c.Pids))
	for i, p := range c.Pids {
		list[i] = strconv.Itoa(p)
	}
	cmd := exec.CommandContext(ctx, b.perfBin, "stat", "-x", ",", "-e", "raw_syscalls:sys_enter,context-switches",
		"-p", strings.Join(list, ","), "--", "sleep", strconv.Itoa(secs))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	perr := cmd.Run()
	w := <-done
	if w.err != nil {
		return c, w.err
	}
	if perr != nil {
		return c, fmt.Errorf("perf stat: %w\n%s", perr, stderr.String())
	}
	for l := range strings.Lines(stderr.String()) {
		f := strings.Split(strings.TrimSpace(l), ",")
		if len(f) < 4 {
			continue
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch f[2] {
		case "raw_syscalls:sys_enter":
			c.Syscalls = v
			if ns, err := strconv.ParseInt(f[3], 10, 64); err == nil {
				c.Window = time.Duration(ns)
			}
		case "context-switches":
			c.CtxSwitches = v
		}
	}
	if c.Window == 0 || c.Syscalls == 0 {
		return c, fmt.Errorf("perf stat: no raw_syscalls:sys_enter count in:\n%s", stderr.String())
	}
	c.Rate = w.r.Rate
	sys, cs := c.PerRequest()
	logf("gateway: %s: %.2f syscalls and %.2f context switches per request (pids %v, %.0f req/s)", t.Name, sys, cs, c.Pids, c.Rate)
	return c, nil
}

// runGatewayReport prints the tables of a gateway.json again.
func runGatewayReport(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: cairnbench gateway-report gateway.json")
	}
	s, err := results.ReadGateway(args[0])
	if err != nil {
		return err
	}
	results.GatewayReport(os.Stdout, s)
	return nil
}

// runPaced is one paced run against a URL, by hand.
func runPaced(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("paced", flag.ContinueOnError)
	var cfg paced.Config
	fs.StringVar(&cfg.URL, "url", "", "URL to GET (required)")
	fs.Float64Var(&cfg.Rate, "rate", 2000, "requests per second")
	fs.IntVar(&cfg.Conns, "c", 32, "keep-alive connections")
	fs.DurationVar(&cfg.Duration, "for", 10*time.Second, "measured time")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "time at the same rate before it, not measured")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := paced.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("%.0f/s achieved of %.0f on %d connections: p50 %v p90 %v p99 %v p99.9 %v max %v; %d late, %d errors %s\n",
		r.Achieved, r.Rate, r.Conns, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.P999, r.Latency.Max, r.Late, r.Errors, r.FirstErr)
	return nil
}
