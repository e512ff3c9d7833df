package results

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cairnhq/cairn/bench/internal/pollprop"
)

// EurekaSuite is what the Eureka benchmark (cairnbench eureka) measured:
// Cairn's Eureka API next to nginx serving the same bytes, etcd, and
// Cairn's native API, in one run.
type EurekaSuite struct {
	Kind         string `json:"kind"` // "eureka"
	Instances    int    `json:"instances"`
	Apps         int    `json:"apps"`
	NginxVersion string `json:"nginxVersion"`
	EtcdVersion  string `json:"etcdVersion"`

	// Register is the Eureka registration (POST /eureka/apps/{APP}) of
	// every instance, closed loop.
	Register Throughput `json:"register"`
	// Get is GET /apps, Cairn and nginx, per document and connections.
	Get []GetRun `json:"get"`
	// Churn is GET /apps on Cairn while a writer changes instances.
	Churn []ChurnRun `json:"churn"`
	// Delta is register -> visible in a polling client's answer.
	Delta []DeltaRun `json:"delta"`
	// Renewals are lease renewals through each path. RenewClients is the
	// client count of the renewal runs and of the registration.
	Renewals     []RenewRun `json:"renewals"`
	RenewClients int        `json:"renewClients"`
}

// GetRun is one document fetched over Conns keep-alive connections in a
// closed loop from Cairn and from the peer serving the identical bytes.
type GetRun struct {
	Doc   string  `json:"doc"` // "JSON", "JSON gzip", "XML", "XML gzip"
	Conns int     `json:"conns"`
	Bytes int     `json:"bytes"` // body size on the wire
	Cairn GetLoad `json:"cairn"`
	Peer  GetLoad `json:"peer"`
}

// GetLoad is a closed-loop GET run and the body bytes it read.
type GetLoad struct {
	Throughput
	BodyBytes int64 `json:"bodyBytes"`
}

// MBps returns body megabytes (10^6 bytes) per second.
func (g GetLoad) MBps() float64 {
	if g.Elapsed <= 0 {
		return 0
	}
	return float64(g.BodyBytes) / 1e6 / g.Elapsed.Seconds()
}

// ChurnRun is GET /apps on Cairn while a background writer flips status
// overrides at TargetRate changes per second (0: no writer).
type ChurnRun struct {
	TargetRate float64     `json:"targetRate"`
	Background *Throughput `json:"background,omitempty"`
	Doc        string      `json:"doc"`
	Conns      int         `json:"conns"`
	Get        GetLoad     `json:"get"`
	// Encodes are the /apps documents the server encoded during the run
	// (cairn_eureka_documents_encoded_total{document="apps"}, this format);
	// -1 when /metrics did not say.
	Encodes float64 `json:"encodes"`
}

// DeltaRun is one register -> seen-by-a-poller measurement.
type DeltaRun struct {
	System   string        `json:"system"` // "cairn" or "etcd"
	Interval time.Duration `json:"interval"`
	Every    time.Duration `json:"every"`
	// OtherCores: what the rest of the machine used during the run.
	OtherCores float64 `json:"otherCores"`
	pollprop.Result
}

// RenewRun is a closed-loop renewal run through one path.
type RenewRun struct {
	Path string `json:"path"` // "eureka", "native", "etcd-keepalive", "etcd-put"
	Throughput
}

// WriteEureka stores s as indented JSON in path.
func WriteEureka(path string, s *EurekaSuite) error { return writeJSON(path, s) }

// ReadEureka loads a suite written by WriteEureka.
func ReadEureka(path string) (*EurekaSuite, error) {
	var s EurekaSuite
	if err := readJSON(path, &s); err != nil {
		return nil, err
	}
	if s.Kind != "eureka" {
		return nil, fmt.Errorf("%s: not a Eureka benchmark result", path)
	}
	return &s, nil
}

// EurekaReport writes the summary tables (Markdown) of s to w.
func EurekaReport(w io.Writer, s *EurekaSuite) {
	r := s.Register
	fmt.Fprintf(w, "Registration: %s instances over %d apps through POST /eureka/apps/{APP}, %d clients: %s/s (srv %.2f, gen %.2f, other %.2f)",
		num(s.Instances), s.Apps, s.RenewClients, num(int(r.Rate+0.5)), r.ServerCores, r.ClientCores, r.OtherCores)
	if r.Errors > 0 {
		fmt.Fprintf(w, " **%d errors: %s**", r.Errors, r.FirstErr)
	}
	fmt.Fprint(w, "\n\n")
	getTable(w, s)
	churnTable(w, s)
	deltaTable(w, s)
	renewTable(w, s)
}

func getRate(g GetLoad) string {
	s := fmt.Sprintf("%s (srv %.2f, gen %.2f, other %.2f)", fmtRate(g.Rate), g.ServerCores, g.ClientCores, g.OtherCores)
	if g.Errors > 0 {
		s += fmt.Sprintf(" **%d errors: %s**", g.Errors, g.FirstErr)
	}
	return s
}

// ratio shows a ratio with two decimals, or two significant digits below 0.1.
func ratio(r float64) string {
	if r < 0.1 {
		return fmt.Sprintf("%.2gx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

// fmtRate shows small rates with a decimal.
func fmtRate(r float64) string {
	if r < 100 {
		return fmt.Sprintf("%.1f", r)
	}
	return num(int(r + 0.5))
}

func getTable(w io.Writer, s *EurekaSuite) {
	fmt.Fprintf(w, "GET /eureka/apps/ with %s instances: Cairn next to nginx %s serving the identical bytes as a static file "+
		"(closed loop, keep-alive; every body read in full, gzip bodies not decompressed)\n\n", num(s.Instances), s.NginxVersion)
	fmt.Fprintln(w, "| document | conns | body bytes | Cairn req/s | Cairn MB/s | nginx req/s | nginx MB/s | req/s Cairn/nginx |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, g := range s.Get {
		r := "-"
		if g.Peer.Rate > 0 {
			r = ratio(g.Cairn.Rate / g.Peer.Rate)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %.0f | %s | %.0f | %s |\n", g.Doc, g.Conns, num(g.Bytes),
			getRate(g.Cairn), g.Cairn.MBps(), getRate(g.Peer), g.Peer.MBps(), r)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "(srv: cores the server used (nginx: its workers); gen: the load generator; other: the rest of the machine. MB = 10^6 bytes.)")
	fmt.Fprintln(w)
}

func churnTable(w io.Writer, s *EurekaSuite) {
	if len(s.Churn) == 0 {
		return
	}
	fmt.Fprintln(w, "GET /eureka/apps/ on Cairn alone while a writer flips status overrides through the Eureka API "+
		"(PUT / DELETE /eureka/apps/{APP}/{id}/status: every flip is a new revision, so /apps is encoded again; nginx has no equivalent)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| changes/s (achieved) | document | conns | Cairn req/s | MB/s | /apps JSON encodings/s | req/s vs no changes |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	base := map[string]float64{}
	for _, c := range s.Churn {
		if c.TargetRate == 0 {
			base[c.Doc] = c.Get.Rate
		}
	}
	for _, c := range s.Churn {
		bg := "none"
		if c.TargetRate > 0 {
			bg = fmt.Sprintf("%s (%s)", num(int(c.TargetRate)), achieved(&Propagation{Background: c.Background}))
		}
		enc := "-"
		if c.Encodes >= 0 && c.Get.Elapsed > 0 {
			enc = fmt.Sprintf("%.1f", c.Encodes/c.Get.Elapsed.Seconds())
		}
		vs := "-"
		if b := base[c.Doc]; b > 0 && c.TargetRate > 0 {
			vs = ratio(c.Get.Rate / b)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %.0f | %s | %s |\n", bg, c.Doc, c.Conns, getRate(c.Get), c.Get.MBps(), enc, vs)
	}
	fmt.Fprintln(w)
}

func findDelta(s *EurekaSuite, system string, interval time.Duration) *DeltaRun {
	for i := range s.Delta {
		if d := &s.Delta[i]; d.System == system && d.Interval == interval {
			return d
		}
	}
	return nil
}

func deltaTable(w io.Writer, s *EurekaSuite) {
	if len(s.Delta) == 0 {
		return
	}
	fmt.Fprintln(w, "Register -> seen by a polling client (a new instance registered about every "+s.Delta[0].Every.String()+
		" (uniform gaps of 0.5-1.5x); latency: write sent -> first poll answer showing it read; Cairn: POST /eureka/apps/{APP} -> GET /eureka/apps/delta (JSON) answer containing its instanceId; "+
		"etcd: Put of a new key -> linearizable Get of the new-key prefix with WithMinModRev(last answer's revision + 1) returning it)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| poller | n | Cairn p50 | Cairn p99 | Cairn max | Cairn polls/s, mean answer | etcd p50 | etcd p99 | etcd max | etcd polls/s, mean answer | p99 Cairn/etcd | other cores |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var intervals []time.Duration
	for _, d := range s.Delta {
		if !containsDur(intervals, d.Interval) {
			intervals = append(intervals, d.Interval)
		}
	}
	for _, iv := range intervals {
		c, e := findDelta(s, "cairn", iv), findDelta(s, "etcd", iv)
		label := "back to back"
		if iv > 0 {
			label = "every " + iv.String()
		}
		row := []string{label, "", "-", "-", "-", "-", "-", "-", "-", "-", "-", deltaOther(c) + " / " + deltaOther(e)}
		n, to := 0, 0
		if c != nil {
			n, to = c.Count, to+c.Timeouts
			row[2], row[3], row[4], row[5] = ms(c.P50), ms(c.P99), ms(c.Max), pollCell(c)
		}
		if e != nil {
			to += e.Timeouts
			row[6], row[7], row[8], row[9] = ms(e.P50), ms(e.P99), ms(e.Max), pollCell(e)
		}
		row[1] = num(n)
		if to > 0 {
			row[1] += fmt.Sprintf(" (**%d timeouts**)", to)
		}
		if c != nil && e != nil && e.P99 > 0 {
			row[10] = fmt.Sprintf("%.2fx", float64(c.P99)/float64(e.P99))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintln(w, "| Netflix Eureka defaults (not measured) | - | | up to ~60 s | | 30 s response cache + 30 s client fetch | | | | | | |")
	fmt.Fprintln(w)
}

func containsDur(ds []time.Duration, d time.Duration) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

func deltaOther(d *DeltaRun) string {
	if d == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", d.OtherCores)
}

func pollCell(d *DeltaRun) string {
	s := fmt.Sprintf("%s, %s", fmtRate(d.PollRate()), kb(d.MeanBytes))
	if d.PollErrors > 0 {
		s += fmt.Sprintf(" **%d poll errors: %s**", d.PollErrors, d.FirstErr)
	}
	return s
}

func kb(b float64) string {
	if b < 10_000 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.0f KB", b/1000)
}

var renewLabels = map[string]string{
	"eureka":         "Cairn, Eureka: PUT /eureka/apps/{APP}/{id}?status=UP&lastDirtyTimestamp=…",
	"native":         "Cairn, native: PUT /v1/services/default/{svc}/instances/{id}/renew",
	"etcd-keepalive": "etcd: Lease KeepAliveOnce (one lease per instance)",
	"etcd-put":       "etcd: Put overwriting the instance's key (durable write)",
}

func renewTable(w io.Writer, s *EurekaSuite) {
	if len(s.Renewals) == 0 {
		return
	}
	var eu float64
	for _, r := range s.Renewals {
		if r.Path == "eureka" {
			eu = r.Rate
		}
	}
	fmt.Fprintf(w, "Renewals of the %s instances, round robin, closed loop, %d clients\n\n", num(s.Instances), s.RenewClients)
	fmt.Fprintln(w, "| path | renewals/s | per server core | Eureka / this |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, r := range s.Renewals {
		label := renewLabels[r.Path]
		if label == "" {
			label = r.Path
		}
		per, ratio := "-", "-"
		if r.ServerCores > 0 {
			per = num(int(r.Rate/r.ServerCores + 0.5))
		}
		if r.Rate > 0 && eu > 0 {
			ratio = fmt.Sprintf("%.2fx", eu/r.Rate)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", label, rate(r.Throughput), per, ratio)
	}
	fmt.Fprintln(w)
}
