package results

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/bench/internal/pollprop"
	"github.com/cairnhq/cairn/bench/internal/prop"
	"github.com/cairnhq/cairn/bench/internal/stats"
)

func TestEurekaReport(t *testing.T) {
	get := func(rate float64, bytes int64) GetLoad {
		return GetLoad{Throughput: Throughput{Ops: int64(rate), Rate: rate, Elapsed: time.Second, ServerCores: 1}, BodyBytes: bytes}
	}
	delta := func(system string, iv, p99 time.Duration) DeltaRun {
		return DeltaRun{System: system, Interval: iv, Every: 20 * time.Millisecond,
			Result: pollprop.Result{Result: prop.Result{Summary: stats.Summary{Count: 400, P50: p99 / 2, P99: p99, Max: p99}},
				Polls: 1000, Elapsed: time.Second, MeanBytes: 25_000}}
	}
	s := &EurekaSuite{Kind: "eureka", Instances: 10_000, Apps: 100, NginxVersion: "nginx/1.22.1", RenewClients: 64,
		Get: []GetRun{{Doc: "JSON", Conns: 4, Bytes: 10_000_000, Cairn: get(300, 3e9), Peer: get(200, 2e9)}},
		Churn: []ChurnRun{
			{Doc: "JSON", Conns: 16, Get: get(300, 3e9), Encodes: 1},
			{TargetRate: 100, Background: &Throughput{Rate: 99.6}, Doc: "JSON", Conns: 16, Get: get(150, 1.5e9), Encodes: 100},
			{TargetRate: 1000, Background: &Throughput{Rate: 999.6}, Doc: "JSON", Conns: 16, Get: get(1.5, 1.5e7), Encodes: 1.5},
		},
		Delta: []DeltaRun{delta("etcd", 0, 2*time.Millisecond), delta("cairn", 0, 3*time.Millisecond)},
		Renewals: []RenewRun{
			{Path: "eureka", Throughput: Throughput{Rate: 30_000, ServerCores: 1}},
			{Path: "etcd-keepalive", Throughput: Throughput{Rate: 15_000, ServerCores: 1.5}},
		},
	}
	path := filepath.Join(t.TempDir(), "eureka.json")
	if err := WriteEureka(path, s); err != nil {
		t.Fatal(err)
	}
	s, err := ReadEureka(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	EurekaReport(&b, s)
	out := b.String()
	for _, want := range []string{
		"| JSON | 4 | 10,000,000 | 300 (srv 1.00, gen 0.00, other 0.00) | 3000 | 200 (srv 1.00, gen 0.00, other 0.00) | 2000 | 1.50x |",
		"| 100 (100) | JSON | 16 | 150 (srv 1.00, gen 0.00, other 0.00) | 1500 | 100.0 | 0.50x |",
		"| 1,000 (1,000) | JSON | 16 | 1.5 (srv 1.00, gen 0.00, other 0.00) | 15 | 1.5 | 0.005x |",
		"| back to back | 400 | 1.50 ms | 3.00 ms | 3.00 ms | 1,000, 25 KB | 1.00 ms | 2.00 ms | 2.00 ms | 1,000, 25 KB | 1.50x |",
		"| 30,000 (srv 1.00, gen 0.00, other 0.00) | 30,000 | 1.00x |",
		"| 15,000 (srv 1.50, gen 0.00, other 0.00) | 10,000 | 2.00x |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if _, err := ReadEureka(filepath.Join("testdata", "missing.json")); err == nil {
		t.Error("ReadEureka of a missing file succeeded")
	}
}
