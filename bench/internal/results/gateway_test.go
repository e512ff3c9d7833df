package results

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/bench/internal/paced"
	"github.com/cairnhq/cairn/bench/internal/pprofsum"
	"github.com/cairnhq/cairn/bench/internal/stats"
	"github.com/cairnhq/cairn/bench/internal/wrk"
)

func TestGatewayReport(t *testing.T) {
	run := func(target string, round int, rate float64, p99 time.Duration, proxy float64) GatewayRun {
		return GatewayRun{Target: target, Round: round, ProxySysCores: proxy / 2, Result: wrk.Result{Requests: int64(rate), Bytes: int64(rate) * 224,
			Duration: time.Second, Rate: rate, P50: p99 / 4, P99: p99, P999: 2 * p99, Max: 3 * p99,
			Cores: []float64{proxy, 0.5}, ClientCores: 0.3}}
	}
	pooled := func(target string, p99 time.Duration) GatewayPooled {
		return GatewayPooled{Target: target, Count: 20_000, P50: p99 / 4, P90: p99 / 2, P99: p99, P999: 2 * p99, Max: 3 * p99,
			Achieved: 2000, ProxyCores: 0.1}
	}
	s := &GatewaySuite{Kind: "gateway", Path: "/", BodyBytes: 100, Threads: 2, Conns: 64, Duration: 15 * time.Second,
		Warmup: 2 * time.Second, Rounds: 2, PacedRate: 2000, PacedConns: 32, PacedDuration: 10 * time.Second, PacedRounds: 1,
		Targets: []GatewayTarget{
			{Name: "direct", Spread: map[string]int{"b1": 20}, HeaderBytes: 124},
			{Name: "cairn", Version: "cairn dev", Pid: 1, Spread: map[string]int{"b1": 10, "b2": 10}, HeaderBytes: 172},
			{Name: "nginx", Version: "nginx/1.22.1", Pid: 2, Spread: map[string]int{"b2": 10, "b1": 10}, HeaderBytes: 170},
		},
		Runs: []GatewayRun{
			run("direct", 1, 100_000, 10*time.Millisecond, 0), run("cairn", 1, 30_000, 8*time.Millisecond, 0.9),
			run("nginx", 1, 50_000, 4*time.Millisecond, 0.6), run("nginx", 2, 60_000, 6*time.Millisecond, 0.6),
			run("cairn", 2, 40_000, 4*time.Millisecond, 0.9), run("direct", 2, 100_000, 10*time.Millisecond, 0),
		},
		Paced: []GatewayPaced{{Target: "cairn", Round: 1, Result: paced.Result{Latency: stats.Summary{P99: 900 * time.Microsecond}}}},
		PacedPooled: []GatewayPooled{pooled("direct", 300*time.Microsecond), pooled("cairn", 900*time.Microsecond),
			pooled("nginx", 700*time.Microsecond)},
		Profiles: []GatewayProfile{{Target: "cairn", File: "gateway-cairn.pprof", TopFile: "gateway-cairn-top.txt", Top: "flat flat%\n",
			Run: run("cairn", 0, 33_000, 5*time.Millisecond, 0.9),
			Summary: pprofsum.Summary{Total: 9 * time.Second, Duration: 10 * time.Second,
				Categories: []pprofsum.Category{{Name: pprofsum.CatWrite, Time: 4 * time.Second, Percent: 44.4}},
				Own:        []pprofsum.Func{{Name: "github.com/cairnhq/cairn/internal/proxy.(*Engine).ServeHTTP", Cum: 3 * time.Second, Percent: 33.3}}}}},
	}
	path := filepath.Join(t.TempDir(), "gateway.json")
	if err := WriteGateway(path, s); err != nil {
		t.Fatal(err)
	}
	s, err := ReadGateway(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	GatewayReport(&b, s)
	out := b.String()
	for _, want := range []string{
		"| cairn | cairn dev | b1 10, b2 10 | 172 |",
		"| direct | 100,000 (100,000 / 100,000) | 1.00x | 2.50 ms | 10.00 ms | 1.00x | 20.00 ms | 30.00 ms | - | - | 0.50 | 0.30 | 0.00 | 0 |",
		"| cairn | 35,000 (30,000 / 40,000) | 0.35x | 1.50 ms | 6.00 ms | 0.60x | 12.00 ms | 24.00 ms | 0.90 | 25.7 µs (sys 12.9) | 0.50 | 0.30 | 0.00 | 0 |",
		"| Cairn / nginx | 0.64x | 1.20x | 1.20x | 2.36x | **not met** |",
		"| cairn | 20,000 | 2,000 | 225 µs | 450 µs | 900 µs | 1800 µs | 2700 µs | 150 µs | 600 µs | 1200 µs | 900 µs | 0 | 0 | 0.100 | 50.0 µs | 0.00 |",
		"| syscalls: write (sockets, kernel loopback TCP included) | 4s | 44.4% |",
		"| `github.com/cairnhq/cairn/internal/proxy.(*Engine).ServeHTTP` | 3s | 33.3% |",
		"33,000 req/s while profiled, 0.90 proxy cores",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if _, err := ReadGateway(filepath.Join("testdata", "missing.json")); err == nil {
		t.Error("ReadGateway of a missing file succeeded")
	}
}
