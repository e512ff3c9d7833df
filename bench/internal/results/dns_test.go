package results

import (
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/bench/internal/dnsperf"
	"github.com/cairnhq/cairn/bench/internal/dnsprobe"
	"github.com/cairnhq/cairn/bench/internal/prop"
	"github.com/cairnhq/cairn/bench/internal/stats"
	"github.com/cairnhq/cairn/bench/internal/visible"
)

func TestDNSReport(t *testing.T) {
	res := func(qps float64, p99 time.Duration) dnsperf.Result {
		return dnsperf.Result{QPS: qps, ResponseBytes: 170, Latency: stats.Summary{Count: 10, P50: p99 / 10, P99: p99, Max: 2 * p99},
			ServerCores: 1, ClientCores: 0.5}
	}
	s := &DNSSuite{Kind: "dns", CoreDNSVersion: "CoreDNS 1.15.0", DnsperfVersion: "2.10.0", Services: 1000, Instances: 3, Big: 100, TTL: 5,
		Register: Throughput{Rate: 12000}, Clients: 4, Duration: 10 * time.Second, PacedPercent: 50,
		Checks: []DNSCheck{{What: "A of every small service", Count: 1000, Transport: dnsprobe.UDP,
			Cairn:   dnsprobe.Answer{Rcode: "NOERROR", AA: true, A: []string{"10.1.0.1", "10.1.0.2", "10.1.0.3"}, TTLs: []uint32{5}, Size: 170},
			CoreDNS: dnsprobe.Answer{Rcode: "NOERROR", AA: true, A: []string{"10.1.0.1", "10.1.0.2", "10.1.0.3"}, TTLs: []uint32{5}, Authority: []string{"NS"}, Size: 197}}},
		Runs: []DNSRun{
			{Scenario: "a", Mode: "max", Cairn: res(120_000, 2*time.Millisecond), CoreDNS: res(60_000, 4*time.Millisecond)},
			{Scenario: "a", Mode: "paced", QPS: 30_000, Cairn: res(30_000, 900*time.Microsecond), CoreDNS: res(30_000, time.Millisecond)},
			{Scenario: "nx", Mode: "max", Cairn: res(50_000, 2*time.Millisecond), CoreDNS: res(60_000, 4*time.Millisecond)},
		},
		Visible: []VisibleRun{{System: "cairn", Poller: "miekg", Result: visible.Result{
			Added:   prop.Result{Summary: stats.Summary{Count: 200, P50: time.Millisecond, P99: 2 * time.Millisecond, Max: 3 * time.Millisecond}},
			Removed: prop.Result{Summary: stats.Summary{Count: 200, P50: time.Millisecond, P99: 2 * time.Millisecond, Max: 3 * time.Millisecond}, Timeouts: 1},
			Polls:   1000, PollTime: 100 * time.Millisecond}}},
	}
	var b strings.Builder
	DNSReport(&b, s)
	out := b.String()
	for _, want := range []string{
		"| A of every small service | 1,000 | udp | NOERROR, AA, 3 A, TTL 5, 170 B | NOERROR, AA, 3 A, TTL 5, authority NS, 197 B | 0 |",
		"| a | max | 120,000 (srv 1.00, gen 0.50, other 0.00) | 60,000 (srv 1.00, gen 0.50, other 0.00) | 2.00x | 200 µs / 2.00 ms / 4.00 ms | 400 µs / 4.00 ms / 8.00 ms | 0.50x | 170 / 170 |",
		"| a | paced 30,000/s |",
		"| a | 2.00x | 0.50x | 0.90x | met |",
		"| nx | 0.83x | 0.50x | - | **not met** |",
		"| miekg | 200 (**1 timeouts**) | 1.00 ms | 2.00 ms | 3.00 ms | 1.00 ms | 2.00 ms | 3.00 ms | 100 µs | 0.00 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n%s", want, out)
		}
	}
}
