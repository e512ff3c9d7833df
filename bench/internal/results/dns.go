package results

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cairnhq/cairn/bench/internal/dnsperf"
	"github.com/cairnhq/cairn/bench/internal/dnsprobe"
	"github.com/cairnhq/cairn/bench/internal/visible"
)

// GoalDNSQPSRatio: Cairn's QPS at least CoreDNS's (issue 4), at equal or
// better p99.
const GoalDNSQPSRatio = 1.0

// DNSSuite is what the DNS benchmark (cairnbench dns) measured: Cairn's
// DNS server next to CoreDNS serving the same records from a zone file,
// and registration -> visible in an answer, next to CoreDNS reading etcd.
type DNSSuite struct {
	Kind           string `json:"kind"` // "dns"
	CoreDNSVersion string `json:"corednsVersion"`
	DnsperfVersion string `json:"dnsperfVersion"`
	EtcdVersion    string `json:"etcdVersion,omitempty"`

	Services  int `json:"services"`
	Instances int `json:"instances"` // per service
	Big       int `json:"big"`       // instances of the big service
	TTL       int `json:"ttl"`       // seconds

	// Register is the registration of the record set in Cairn (native API).
	Register Throughput `json:"register"`
	// Checks are the answers both servers gave to the same questions
	// before the load runs.
	Checks []DNSCheck `json:"checks"`

	Clients      int           `json:"clients"`     // dnsperf -c
	Outstanding  int           `json:"outstanding"` // dnsperf -q (0: its default, 100)
	Duration     time.Duration `json:"duration"`    // dnsperf -l
	PacedPercent float64       `json:"pacedPercent"`
	Runs         []DNSRun      `json:"runs"`

	Visible []VisibleRun `json:"visible"`
}

// DNSCheck is one question asked of both servers.
type DNSCheck struct {
	What      string             `json:"what"`
	Count     int                `json:"count"` // names asked (the answers shown are the first's)
	Transport dnsprobe.Transport `json:"transport"`
	Cairn     dnsprobe.Answer    `json:"cairn"`
	CoreDNS   dnsprobe.Answer    `json:"coredns"`
	// Differ counts names whose answers differ in rcode or records.
	Differ int    `json:"differ"`
	Note   string `json:"note,omitempty"`
}

// DNSRun is one query set run by dnsperf against both servers with the
// same settings, Cairn first.
type DNSRun struct {
	Scenario string `json:"scenario"`
	// Mode is "max" (as fast as dnsperf gets answers, -q in flight) or
	// "paced" (-Q QPS, the same offered load for both servers).
	Mode    string         `json:"mode"`
	QPS     float64        `json:"qps,omitempty"` // paced: the -Q rate
	Cairn   dnsperf.Result `json:"cairn"`
	CoreDNS dnsperf.Result `json:"coredns"`
}

// VisibleRun is one registration -> visible-in-DNS measurement.
type VisibleRun struct {
	System string `json:"system"` // "cairn" or "coredns-etcd"
	Poller string `json:"poller"` // "miekg" (UDP socket, back to back) or "dig" (a dig process per poll)
	// OtherCores: what the rest of the machine used during the run.
	OtherCores float64 `json:"otherCores"`
	visible.Result
}

// DNSScenarios describes the query sets, by scenario name.
var DNSScenarios = map[string]string{
	"a":        "random existing A names (small services), UDP",
	"big-udp":  "A of the big service, UDP without EDNS0 (512-byte limit: truncated, TC)",
	"big-edns": "A of the big service, UDP with EDNS0 (4096-byte buffer)",
	"big-tcp":  "A of the big service over TCP",
	"nx":       "names that do not exist (NXDOMAIN), UDP",
}

// WriteDNS stores s as indented JSON in path.
func WriteDNS(path string, s *DNSSuite) error { return writeJSON(path, s) }

// ReadDNS loads a suite written by WriteDNS.
func ReadDNS(path string) (*DNSSuite, error) {
	var s DNSSuite
	if err := readJSON(path, &s); err != nil {
		return nil, err
	}
	if s.Kind != "dns" {
		return nil, fmt.Errorf("%s: not a DNS benchmark result", path)
	}
	return &s, nil
}

// DNSReport writes the summary tables (Markdown) of s to w.
func DNSReport(w io.Writer, s *DNSSuite) {
	r := s.Register
	fmt.Fprintf(w, "Record set: %s services x %d instances and one service of %d instances in namespace default, TTL %ds; "+
		"registered in Cairn through the native API at %s/s\n\n",
		num(s.Services), s.Instances, s.Big, s.TTL, num(int(r.Rate+0.5)))
	checkTable(w, s)
	perfTable(w, s)
	goalTable(w, s)
	visibleTable(w, s)
}

func answerCell(a dnsprobe.Answer) string {
	parts := []string{a.Rcode}
	if a.TC {
		parts = append(parts, "TC")
	}
	if a.AA {
		parts = append(parts, "AA")
	}
	if len(a.A) > 0 {
		parts = append(parts, fmt.Sprintf("%d A", len(a.A)))
	}
	if len(a.SRV) > 0 {
		parts = append(parts, fmt.Sprintf("%d SRV", len(a.SRV)))
	}
	if len(a.TTLs) > 0 {
		ttls := make([]string, len(a.TTLs))
		for i, t := range a.TTLs {
			ttls[i] = fmt.Sprint(t)
		}
		parts = append(parts, "TTL "+strings.Join(ttls, "/"))
	}
	if len(a.Authority) > 0 {
		parts = append(parts, "authority "+strings.Join(a.Authority, " "))
	}
	parts = append(parts, fmt.Sprintf("%d B", a.Size))
	return strings.Join(parts, ", ")
}

func checkTable(w io.Writer, s *DNSSuite) {
	if len(s.Checks) == 0 {
		return
	}
	fmt.Fprintln(w, "Same questions to both servers before the load (github.com/miekg/dns client; records compared as sets)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| question | names | transport | Cairn | CoreDNS | differ |")
	fmt.Fprintln(w, "|---|---:|---|---|---|---:|")
	for _, c := range s.Checks {
		d := fmt.Sprint(c.Differ)
		if c.Differ > 0 {
			d = "**" + d + "**"
		}
		if c.Note != "" {
			d += " (" + c.Note + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", c.What, num(c.Count), c.Transport, answerCell(c.Cairn), answerCell(c.CoreDNS), d)
	}
	fmt.Fprintln(w)
}

func perfCell(r dnsperf.Result) string {
	s := fmt.Sprintf("%s (srv %.2f, gen %.2f, other %.2f)", num(int(r.QPS+0.5)), r.ServerCores, r.ClientCores, r.OtherCores)
	if r.Lost > 0 {
		s += fmt.Sprintf(" **%s lost**", num(int(r.Lost)))
	}
	return s
}

// lat shows a latency in µs below a millisecond, else in ms.
func lat(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func latCell(r dnsperf.Result) string {
	if r.Latency.Count == 0 {
		return lat(r.AvgLatency) + " avg"
	}
	return fmt.Sprintf("%s / %s / %s", lat(r.Latency.P50), lat(r.Latency.P99), lat(r.Latency.Max))
}

func qpsRatio(r DNSRun) string {
	if r.CoreDNS.QPS <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r.Cairn.QPS/r.CoreDNS.QPS)
}

func p99Ratio(r DNSRun) string {
	if r.CoreDNS.Latency.P99 <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(r.Cairn.Latency.P99)/float64(r.CoreDNS.Latency.P99))
}

func perfTable(w io.Writer, s *DNSSuite) {
	if len(s.Runs) == 0 {
		return
	}
	q := "100 (its default)"
	if s.Outstanding > 0 {
		q = fmt.Sprint(s.Outstanding)
	}
	fmt.Fprintf(w, "dnsperf %s, -c %d, -q %s, -l %v per run, Cairn then CoreDNS %s (plugin file, no cache); "+
		"max: as fast as answers come; paced: -Q at %.0f%% of the slower server's max QPS of the same query set, the same offered load for both. "+
		"Latency p50 / p99 / max of every answer (dnsperf -v); QPS with the cores used (srv: server, gen: dnsperf, other: the rest)\n\n",
		s.DnsperfVersion, s.Clients, q, s.Duration, s.CoreDNSVersion, s.PacedPercent)
	fmt.Fprintln(w, "| query set | run | Cairn QPS | CoreDNS QPS | QPS Cairn/CoreDNS | Cairn p50 / p99 / max | CoreDNS p50 / p99 / max | p99 Cairn/CoreDNS | response bytes Cairn / CoreDNS |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range s.Runs {
		run := "max"
		if r.Mode == "paced" {
			run = "paced " + num(int(r.QPS+0.5)) + "/s"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %d / %d |\n", r.Scenario, run, perfCell(r.Cairn), perfCell(r.CoreDNS),
			qpsRatio(r), latCell(r.Cairn), latCell(r.CoreDNS), p99Ratio(r), r.Cairn.ResponseBytes, r.CoreDNS.ResponseBytes)
	}
	fmt.Fprintln(w)
	seen := map[string]bool{}
	for _, r := range s.Runs {
		if !seen[r.Scenario] {
			seen[r.Scenario] = true
			fmt.Fprintf(w, "- %s: %s\n", r.Scenario, DNSScenarios[r.Scenario])
		}
	}
	fmt.Fprintln(w)
}

func goalTable(w io.Writer, s *DNSSuite) {
	if len(s.Runs) == 0 {
		return
	}
	fmt.Fprintln(w, "Goal: Cairn QPS ≥ CoreDNS QPS at equal or better p99 (max runs for QPS; p99 at max and at the same paced load)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| query set | QPS Cairn/CoreDNS | p99 Cairn/CoreDNS at max | p99 Cairn/CoreDNS paced | verdict |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|")
	type pair struct{ max, paced *DNSRun }
	var order []string
	by := map[string]*pair{}
	for i := range s.Runs {
		r := &s.Runs[i]
		p := by[r.Scenario]
		if p == nil {
			p = &pair{}
			by[r.Scenario] = p
			order = append(order, r.Scenario)
		}
		if r.Mode == "paced" {
			p.paced = r
		} else {
			p.max = r
		}
	}
	for _, sc := range order {
		p := by[sc]
		row := []string{sc, "-", "-", "-", "-"}
		met := true
		if p.max != nil {
			row[1], row[2] = qpsRatio(*p.max), p99Ratio(*p.max)
			met = met && p.max.CoreDNS.QPS > 0 && p.max.Cairn.QPS >= GoalDNSQPSRatio*p.max.CoreDNS.QPS
		}
		if p.paced != nil {
			row[3] = p99Ratio(*p.paced)
			met = met && p.paced.Cairn.Latency.P99 <= p.paced.CoreDNS.Latency.P99
		}
		if p.max != nil {
			if met {
				row[4] = "met"
			} else {
				row[4] = "**not met**"
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "(met: QPS ratio ≥ 1.00 and paced p99 ratio ≤ 1.00. At max, latency is mostly queueing behind -q queries in flight, so its p99 follows QPS.)")
	fmt.Fprintln(w)
}

var visibleLabels = map[string]string{
	"cairn":        "Cairn: PUT /v1/services/default/probe/instances/{id} -> A probe.default.svc.cairn.",
	"coredns-etcd": "CoreDNS etcd plugin: etcd Put /skydns/cairn/svc/default/probe/{id} -> A probe.default.svc.cairn.",
}

func visibleTable(w io.Writer, s *DNSSuite) {
	if len(s.Visible) == 0 {
		return
	}
	fmt.Fprintln(w, "Registration -> visible in a DNS answer, and deregistration -> gone: one write at a time, then the same name asked "+
		"back to back until the answer shows it (latency from just before the write is sent, so it includes the write's round trip); "+
		"miekg: github.com/miekg/dns over one UDP socket; dig: a `dig +short` process per poll")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| system | poller | n | added p50 | added p99 | added max | removed p50 | removed p99 | removed max | mean poll | other cores |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, v := range s.Visible {
		label := visibleLabels[v.System]
		if label == "" {
			label = v.System
		}
		n := num(v.Added.Count)
		if to := v.Added.Timeouts + v.Removed.Timeouts; to > 0 {
			n += fmt.Sprintf(" (**%d timeouts**)", to)
		}
		if v.PollErrors > 0 {
			n += fmt.Sprintf(" (%d poll errors: %s)", v.PollErrors, v.FirstErr)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f |\n", label, v.Poller, n,
			lat(v.Added.P50), lat(v.Added.P99), lat(v.Added.Max), lat(v.Removed.P50), lat(v.Removed.P99), lat(v.Removed.Max),
			lat(v.MeanPoll()), v.OtherCores)
	}
	fmt.Fprintln(w)
}
