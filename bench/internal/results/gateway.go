package results

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cairnhq/cairn/bench/internal/paced"
	"github.com/cairnhq/cairn/bench/internal/pprofsum"
	"github.com/cairnhq/cairn/bench/internal/wrk"
)

// The gateway goal (issue 5): Cairn at least nginx's req/s, with a p99 no
// worse.
const (
	GatewayDirect = "direct"
	GatewayCairn  = "cairn"
	GatewayNginx  = "nginx"
	GatewayGoal   = 1.0
)

// GatewaySuite is what the gateway benchmark (cairnbench gateway)
// measured: the same backend directly and through each proxy, with wrk
// (closed loop) and a paced open-loop client, and CPU profiles.
type GatewaySuite struct {
	Kind       string          `json:"kind"` // "gateway"
	WrkVersion string          `json:"wrkVersion"`
	Path       string          `json:"path"`      // what every request GETs
	BodyBytes  int             `json:"bodyBytes"` // the backend's answer
	Targets    []GatewayTarget `json:"targets"`

	Threads  int           `json:"threads"` // wrk -t
	Conns    int           `json:"conns"`   // wrk -c
	Duration time.Duration `json:"duration"`
	Warmup   time.Duration `json:"warmup"`
	Rounds   int           `json:"rounds"`
	Runs     []GatewayRun  `json:"runs"`

	Profiles []GatewayProfile  `json:"profiles,omitempty"`
	Syscalls []GatewaySyscalls `json:"syscalls,omitempty"`

	PacedRate     float64         `json:"pacedRate"`
	PacedConns    int             `json:"pacedConns"`
	PacedDuration time.Duration   `json:"pacedDuration"`
	PacedRounds   int             `json:"pacedRounds"`
	Paced         []GatewayPaced  `json:"paced"`
	PacedPooled   []GatewayPooled `json:"pacedPooled"`
}

// GatewayTarget is one way to the backend.
type GatewayTarget struct {
	Name    string `json:"name"` // direct, cairn, nginx, haproxy, go-httputil
	URL     string `json:"url"`
	Version string `json:"version,omitempty"`
	Pid     int    `json:"pid,omitempty"` // the proxy (0 for direct)
	// Spread counts which backend instance (X-Backend) answered the
	// check's GETs: a proxy that balances shows both.
	Spread map[string]int `json:"spread"`
	// HeaderBytes is the size of the check's response without its body.
	HeaderBytes int `json:"headerBytes"`
}

// GatewayRun is one wrk run against one target. Cores of wrk.Result are
// [the proxy (with its child processes), the backends].
type GatewayRun struct {
	Target string `json:"target"`
	Round  int    `json:"round"`
	// ProxySysCores is the part of the proxy's cores spent in the kernel
	// (system time: system calls, the loopback TCP work they do).
	ProxySysCores float64 `json:"proxySysCores"`
	wrk.Result
}

// ProxyCores and BackendCores unpack Cores.
func (r GatewayRun) ProxyCores() float64   { return at(r.Cores, 0) }
func (r GatewayRun) BackendCores() float64 { return at(r.Cores, 1) }

func at(v []float64, i int) float64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}

// GatewayProfile is a CPU profile of a proxy taken during a wrk run of its
// own (not one of the measured runs: profiling costs a few percent).
type GatewayProfile struct {
	Target  string           `json:"target"`
	File    string           `json:"file"`    // the profile (pprof format)
	TopFile string           `json:"topFile"` // go tool pprof -top output
	Top     string           `json:"top"`     // its first lines
	Run     GatewayRun       `json:"run"`     // the wrk run during which it was taken
	Summary pprofsum.Summary `json:"summary"`
}

// GatewaySyscalls counts the system calls and context switches of a
// target's proxy (direct: the backend) with perf stat during a wrk run of
// its own.
type GatewaySyscalls struct {
	Target      string        `json:"target"`
	Pids        []int         `json:"pids"`
	Window      time.Duration `json:"window"` // perf's counting time
	Syscalls    int64         `json:"syscalls"`
	CtxSwitches int64         `json:"ctxSwitches"`
	Rate        float64       `json:"rate"` // wrk's req/s over its whole run
}

// PerRequest returns syscalls and context switches per request.
func (g GatewaySyscalls) PerRequest() (sys, ctx float64) {
	n := g.Rate * g.Window.Seconds()
	if n <= 0 {
		return 0, 0
	}
	return float64(g.Syscalls) / n, float64(g.CtxSwitches) / n
}

// GatewayPaced is one paced run against one target.
type GatewayPaced struct {
	Target       string  `json:"target"`
	Round        int     `json:"round"`
	ProxyCores   float64 `json:"proxyCores"`
	BackendCores float64 `json:"backendCores"`
	ClientCores  float64 `json:"clientCores"`
	OtherCores   float64 `json:"otherCores"`
	paced.Result
}

// GatewayPooled is every paced sample of one target, all rounds together.
type GatewayPooled struct {
	Target   string        `json:"target"`
	Count    int           `json:"count"`
	P50      time.Duration `json:"p50"`
	P90      time.Duration `json:"p90"`
	P99      time.Duration `json:"p99"`
	P999     time.Duration `json:"p999"`
	Max      time.Duration `json:"max"`
	Achieved float64       `json:"achieved"` // mean over the rounds
	Late     int64         `json:"late"`
	Errors   int64         `json:"errors"`
	FirstErr string        `json:"firstErr,omitempty"`
	// ProxyCores is the mean over the rounds.
	ProxyCores float64 `json:"proxyCores"`
}

// WriteGateway stores s as indented JSON in path.
func WriteGateway(path string, s *GatewaySuite) error { return writeJSON(path, s) }

// ReadGateway loads a suite written by WriteGateway.
func ReadGateway(path string) (*GatewaySuite, error) {
	var s GatewaySuite
	if err := readJSON(path, &s); err != nil {
		return nil, err
	}
	if s.Kind != "gateway" {
		return nil, fmt.Errorf("%s: not a gateway benchmark result", path)
	}
	return &s, nil
}

// GatewayReport writes the summary tables (Markdown) of s to w.
func GatewayReport(w io.Writer, s *GatewaySuite) {
	targetTable(w, s)
	wrkTable(w, s)
	gatewayGoalTable(w, s)
	pacedTable(w, s)
	syscallTable(w, s)
	profileTables(w, s)
}

// gatewayMean is a target's wrk runs averaged.
type gatewayMean struct {
	n                         int
	rate, p50, p99, p999, max float64 // p*: seconds
	proxy, proxySys           float64
	backends, client, other   float64
	bytes                     float64
	errors                    int64
	rates, p99s               []string
}

func meanOf(s *GatewaySuite, target string) *gatewayMean {
	var m gatewayMean
	for _, r := range s.Runs {
		if r.Target != target {
			continue
		}
		m.n++
		m.rate += r.Rate
		m.p50 += r.P50.Seconds()
		m.p99 += r.P99.Seconds()
		m.p999 += r.P999.Seconds()
		m.max = max(m.max, r.Max.Seconds())
		m.proxy += r.ProxyCores()
		m.proxySys += r.ProxySysCores
		m.backends += r.BackendCores()
		m.client += r.ClientCores
		m.other += r.OtherCores
		m.bytes += r.BytesPerResponse()
		m.errors += r.Errors()
		m.rates = append(m.rates, num(int(r.Rate+0.5)))
		m.p99s = append(m.p99s, ms(r.P99))
	}
	if m.n == 0 {
		return nil
	}
	n := float64(m.n)
	m.rate, m.p50, m.p99, m.p999 = m.rate/n, m.p50/n, m.p99/n, m.p999/n
	m.proxy, m.proxySys, m.backends, m.client, m.other, m.bytes = m.proxy/n, m.proxySys/n, m.backends/n, m.client/n, m.other/n, m.bytes/n
	return &m
}

func secs(v float64) string { return ms(time.Duration(v * float64(time.Second))) }

func targetTable(w io.Writer, s *GatewaySuite) {
	fmt.Fprintf(w, "Targets: every request is GET %s; the backend answers %d bytes of JSON with Content-Length (two instances of the same Go backend; direct: the first)\n\n",
		s.Path, s.BodyBytes)
	fmt.Fprintln(w, "| target | version | answered by (check GETs) | response header bytes |")
	fmt.Fprintln(w, "|---|---|---|---:|")
	for _, t := range s.Targets {
		var spread []string
		for k, v := range t.Spread {
			spread = append(spread, fmt.Sprintf("%s %d", k, v))
		}
		slices.Sort(spread)
		fmt.Fprintf(w, "| %s | %s | %s | %d |\n", t.Name, t.Version, strings.Join(spread, ", "), t.HeaderBytes)
	}
	fmt.Fprintln(w)
}

func wrkTable(w io.Writer, s *GatewaySuite) {
	d := meanOf(s, GatewayDirect)
	fmt.Fprintf(w, "wrk -t%d -c%d -d%s --latency (closed loop, keep-alive), each target %d times in alternating order after a %s warm-up; "+
		"figures are the mean of the runs (req/s of each run in parentheses)\n\n", s.Threads, s.Conns, s.Duration, s.Rounds, s.Warmup)
	fmt.Fprintln(w, "| target | req/s | req/s vs direct | p50 | p99 | p99 vs direct | p99.9 | max | proxy cores | proxy CPU/req | backends | wrk | other | errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, t := range s.Targets {
		m := meanOf(s, t.Name)
		if m == nil {
			continue
		}
		vsRate, vsP99 := "-", "-"
		if d != nil && d.rate > 0 && d.p99 > 0 {
			vsRate, vsP99 = ratio(m.rate/d.rate), ratio(m.p99/d.p99)
		}
		proxy, perReq := "-", "-"
		if t.Name != GatewayDirect {
			proxy = fmt.Sprintf("%.2f", m.proxy)
			if m.rate > 0 {
				perReq = fmt.Sprintf("%.1f µs (sys %.1f)", m.proxy/m.rate*1e6, m.proxySys/m.rate*1e6)
			}
		}
		errs := "0"
		if m.errors > 0 {
			errs = fmt.Sprintf("**%d**", m.errors)
		}
		fmt.Fprintf(w, "| %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %.2f | %.2f | %s |\n",
			t.Name, num(int(m.rate+0.5)), strings.Join(m.rates, " / "), vsRate, secs(m.p50), secs(m.p99), vsP99,
			secs(m.p999), secs(m.max), proxy, perReq, m.backends, m.client, m.other, errs)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "(cores: CPU time / wall time during the run; proxy: the proxy's processes (nginx: its workers); backends: both backend processes; "+
		"wrk: the load generator; other: the rest of the machine (kernel threads, anything else running: about 0 on a quiet machine). "+
		"proxy CPU/req: proxy cores / req/s, sys: the part of it in the kernel (system calls, and the loopback TCP work done in them). Everything shares the same cores, so a closed loop saturates them: its p99 is mostly waiting for a core, "+
		"and direct, the fastest, has the most requests queued; the fixed-rate table below is the latency comparison.)")
	fmt.Fprintln(w)
}

func gatewayGoalTable(w io.Writer, s *GatewaySuite) {
	c := meanOf(s, GatewayCairn)
	if c == nil {
		return
	}
	fmt.Fprintln(w, "Cairn next to each peer (wrk means above)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| Cairn / peer | req/s | p50 | p99 | proxy CPU/req | goal (vs nginx): req/s ≥ 1.00x and p99 ≤ 1.00x |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|")
	for _, t := range s.Targets {
		if t.Name == GatewayCairn || t.Name == GatewayDirect {
			continue
		}
		p := meanOf(s, t.Name)
		if p == nil || p.rate == 0 || p.p99 == 0 || p.p50 == 0 || p.proxy == 0 {
			continue
		}
		verdict := "-" // the goal names nginx only
		if t.Name == GatewayNginx {
			verdict = "met"
			if c.rate/p.rate < GatewayGoal || c.p99 > p.p99 {
				verdict = "**not met**"
			}
		}
		fmt.Fprintf(w, "| Cairn / %s | %s | %s | %s | %s | %s |\n", t.Name, ratio(c.rate/p.rate), ratio(c.p50/p.p50),
			ratio(c.p99/p.p99), ratio((c.proxy/c.rate)/(p.proxy/p.rate)), verdict)
	}
	fmt.Fprintln(w)
}

func pacedTable(w io.Writer, s *GatewaySuite) {
	if len(s.PacedPooled) == 0 {
		return
	}
	var d *GatewayPooled
	for i := range s.PacedPooled {
		if s.PacedPooled[i].Target == GatewayDirect {
			d = &s.PacedPooled[i]
		}
	}
	fmt.Fprintf(w, "Fixed rate: %s req/s for %s over %d keep-alive connections (open loop, each connection on its own schedule; "+
		"latency from the write of the request to the last byte of the answer, from the scheduled time when the connection was still busy), "+
		"%d round(s) in alternating order; percentiles over every sample of the rounds; added: target − direct\n\n",
		num(int(s.PacedRate)), s.PacedDuration, s.PacedConns, s.PacedRounds)
	defer fmt.Fprint(w, "(other cores: what the rest of the machine used during each round. /proc/stat samples the machine at clock ticks, which miss part of this load's short bursts, "+
		"so on a quiet machine it reads between about -0.3 and +0.2 here; well above that is someone else's load, and that round's tail is not the proxy's.)\n\n")
	fmt.Fprintln(w, "| target | samples | achieved/s | p50 | p90 | p99 | p99.9 | max | added p50 | added p99 | added p99.9 | p99 per round | late | errors | proxy cores | proxy CPU/req | other cores per round |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range s.PacedPooled {
		added := [3]string{"-", "-", "-"}
		if d != nil && p.Target != GatewayDirect {
			added = [3]string{us(p.P50 - d.P50), us(p.P99 - d.P99), us(p.P999 - d.P999)}
		}
		var rounds, others []string
		for _, r := range s.Paced {
			if r.Target == p.Target {
				rounds = append(rounds, us(r.Latency.P99))
				others = append(others, fmt.Sprintf("%.2f", r.OtherCores))
			}
		}
		errs := "0"
		if p.Errors > 0 {
			errs = fmt.Sprintf("**%d** (%s)", p.Errors, p.FirstErr)
		}
		proxy, perReq := "-", "-"
		if p.Target != GatewayDirect {
			proxy = fmt.Sprintf("%.3f", p.ProxyCores)
			if p.Achieved > 0 {
				perReq = fmt.Sprintf("%.1f µs", p.ProxyCores/p.Achieved*1e6)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n",
			p.Target, num(p.Count), num(int(p.Achieved+0.5)), us(p.P50), us(p.P90), us(p.P99), us(p.P999), us(p.Max),
			added[0], added[1], added[2], strings.Join(rounds, " / "), p.Late, errs, proxy, perReq, strings.Join(others, " / "))
	}
	fmt.Fprintln(w)
}

// us shows a latency in microseconds (signed: added latencies may be
// negative within noise).
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func profileTables(w io.Writer, s *GatewaySuite) {
	for _, p := range s.Profiles {
		sum := p.Summary
		fmt.Fprintf(w, "Where %s's CPU goes: CPU profile (%s, %s of samples, %s) taken during a wrk run of its own with the same settings "+
			"(%s req/s while profiled, %.2f proxy cores); every sample in one category (bench/internal/pprofsum)\n\n",
			p.Target, p.File, sum.Total.Round(10*time.Millisecond), sum.Duration, num(int(p.Run.Rate+0.5)), p.Run.ProxyCores())
		fmt.Fprintln(w, "| category | CPU | share |")
		fmt.Fprintln(w, "|---|---:|---:|")
		for _, c := range sum.Categories {
			if c.Percent < 0.5 {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %.1f%% |\n", c.Name, c.Time.Round(10*time.Millisecond), c.Percent)
		}
		fmt.Fprintln(w)
		if len(sum.Own) > 0 {
			fmt.Fprintf(w, "%s's own functions with the most cumulative CPU (everything they call included)\n\n", p.Target)
			fmt.Fprintln(w, "| function | cum | share |")
			fmt.Fprintln(w, "|---|---:|---:|")
			for _, f := range sum.Own {
				fmt.Fprintf(w, "| `%s` | %s | %.1f%% |\n", f.Name, f.Cum.Round(10*time.Millisecond), f.Percent)
			}
			fmt.Fprintln(w)
		}
		if p.Top != "" {
			fmt.Fprintf(w, "`go tool pprof -top` (%s, first lines):\n\n```text\n%s```\n\n", p.TopFile, p.Top)
		}
	}
}

func syscallTable(w io.Writer, s *GatewaySuite) {
	if len(s.Syscalls) == 0 {
		return
	}
	fmt.Fprintln(w, "System calls and context switches per request (perf stat -e raw_syscalls:sys_enter,context-switches on the proxy's processes "+
		"(direct: the backend) during a wrk run of its own with the same settings; requests: wrk's req/s x perf's counting time)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | req/s | syscalls/req | context switches/req |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, c := range s.Syscalls {
		sys, ctx := c.PerRequest()
		fmt.Fprintf(w, "| %s | %s | %.2f | %.2f |\n", c.Target, num(int(c.Rate+0.5)), sys, ctx)
	}
	fmt.Fprintln(w)
}
