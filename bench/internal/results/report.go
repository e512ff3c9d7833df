package results

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Goals of the issue the benchmark answers.
const (
	GoalPropagationRatio = 2.0       // Cairn p99 / etcd p99 at most
	GoalRenewalsPerSec   = 20_000.0  // renewals/s at least, on one node
	GoalRSSBytes         = 300 << 20 // resident memory at 100k instances below
	GoalRSSInstances     = 100_000
)

// pair is the cairn and etcd suites of one size; either may be nil.
type pair struct {
	n           int
	cairn, etcd *Suite
}

func pairs(suites []*Suite) []pair {
	by := map[int]*pair{}
	for _, s := range suites {
		p := by[s.Instances]
		if p == nil {
			p = &pair{n: s.Instances}
			by[s.Instances] = p
		}
		switch s.System {
		case "cairn":
			p.cairn = s
		case "etcd":
			p.etcd = s
		}
	}
	out := make([]pair, 0, len(by))
	for _, p := range by {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	return out
}

// Report writes the summary tables (Markdown) of suites to w.
func Report(w io.Writer, suites []*Suite) {
	ps := pairs(suites)
	throughputTable(w, ps)
	propagationTable(w, ps)
	goalsTable(w, ps)
}

func throughputTable(w io.Writer, ps []pair) {
	fmt.Fprintln(w, "Throughput and memory (closed loop; server and load generator share the same cores, so rates are a floor)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| instances | concurrency | Cairn registrations/s | etcd puts/s | Cairn renewals/s | Cairn RSS | Cairn Go heap in use | Cairn RSS after churn | etcd RSS |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range ps {
		c, e := p.cairn, p.etcd
		conc := 0
		if c != nil {
			conc = c.Concurrency
		} else if e != nil {
			conc = e.Concurrency
		}
		row := []string{num(p.n), num(conc), "-", "-", "-", "-", "-", "-", "-"}
		if c != nil {
			row[2] = rate(c.Writes)
			if c.Renewals != nil {
				row[4] = rate(*c.Renewals)
			}
			row[5] = mib(c.Memory.RSS)
			if v, ok := c.GoMem["go_memstats_heap_inuse_bytes"]; ok {
				row[6] = mib(int64(v))
			}
			if a := c.AfterChurn; a != nil {
				row[7] = mib(a.RSS)
				if v, ok := a.GoMem["go_memstats_heap_inuse_bytes"]; ok {
					row[7] += " (heap " + mib(int64(v)) + ")"
				}
			}
		}
		if e != nil {
			row[3] = rate(e.Writes)
			row[8] = mib(e.Memory.RSS)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "(srv, gen, other: cores used during the run by the server, by the load generator and by everything else on the machine.")
	fmt.Fprintln(w, "RSS after churn: after as many re-registrations of 1,000 hot instances as the change feed holds, which then keeps the replaced versions alive.)")
	fmt.Fprintln(w)
}

func rate(t Throughput) string {
	s := fmt.Sprintf("%s (srv %.2f, gen %.2f, other %.2f)", num(int(t.Rate+0.5)), t.ServerCores, t.ClientCores, t.OtherCores)
	if t.Errors > 0 {
		s += fmt.Sprintf(" **%d errors: %s**", t.Errors, t.FirstErr)
	}
	return s
}

// loadPairs says which etcd background each Cairn background is set against.
var loadPairs = []struct{ cairn, etcd, label string }{
	{"idle", "idle", "idle"},
	{"renewals", "puts", "Cairn renewals / etcd puts"},
	{"writes", "puts", "Cairn re-registrations / etcd puts"},
}

func findProp(s *Suite, load string) *Propagation {
	if s == nil {
		return nil
	}
	for i := range s.Propagation {
		if s.Propagation[i].Load == load {
			return &s.Propagation[i]
		}
	}
	return nil
}

func propagationTable(w io.Writer, ps []pair) {
	fmt.Fprintln(w, "Change propagation: write sent -> watcher sees the event (sequential writes; Cairn: PUT instance -> SSE ADDED; etcd: Put -> Watch on the prefix)")
	fmt.Fprintln(w)
	defer fmt.Fprint(w, "(other cores: what the rest of the machine used during the Cairn / etcd measurement; tick-based, about ±0.1 over a few seconds; well above that means someone else's load.)\n\n")
	fmt.Fprintln(w, "| instances | background (achieved/s) | n | Cairn p50 | Cairn p99 | Cairn max | etcd p50 | etcd p99 | etcd max | p99 Cairn/etcd | other cores |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range ps {
		for _, lp := range loadPairs {
			c, e := findProp(p.cairn, lp.cairn), findProp(p.etcd, lp.etcd)
			if c == nil && e == nil {
				continue
			}
			bg := lp.label
			if lp.cairn != "idle" {
				bg += " (" + achieved(c) + " / " + achieved(e) + ")"
			}
			n := 0
			row := []string{num(p.n), bg, "", "-", "-", "-", "-", "-", "-", "-", other(c) + " / " + other(e)}
			if c != nil {
				n = c.Count
				row[3], row[4], row[5] = ms(c.P50), ms(c.P99), ms(c.Max)
			}
			if e != nil {
				row[6], row[7], row[8] = ms(e.P50), ms(e.P99), ms(e.Max)
			}
			row[2] = num(n) + timeouts(c, e)
			if c != nil && e != nil && e.P99 > 0 {
				row[9] = fmt.Sprintf("%.2fx", float64(c.P99)/float64(e.P99))
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	}
	fmt.Fprintln(w)
}

func other(p *Propagation) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", p.OtherCores)
}

func achieved(p *Propagation) string {
	if p == nil || p.Background == nil {
		return "-"
	}
	return num(int(p.Background.Rate + 0.5))
}

func timeouts(ps ...*Propagation) string {
	t := 0
	for _, p := range ps {
		if p != nil {
			t += p.Timeouts
		}
	}
	if t == 0 {
		return ""
	}
	return fmt.Sprintf(" (**%d timeouts**)", t)
}

func goalsTable(w io.Writer, ps []pair) {
	fmt.Fprintln(w, "Goals")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| goal | instances | figure | verdict |")
	fmt.Fprintln(w, "|---|---:|---:|---|")
	row := func(goal string, n int, figure string, met bool) {
		v := "**not met**"
		if met {
			v = "met"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", goal, num(n), figure, v)
	}
	for _, p := range ps {
		for _, lp := range loadPairs[:2] { // idle and the renewal load the issue asks for
			c, e := findProp(p.cairn, lp.cairn), findProp(p.etcd, lp.etcd)
			if c == nil || e == nil || e.P99 == 0 {
				continue
			}
			r := float64(c.P99) / float64(e.P99)
			row(fmt.Sprintf("propagation p99 ≤ %.0fx etcd (%s)", GoalPropagationRatio, lp.label), p.n,
				fmt.Sprintf("%.2fx (%s vs %s)", r, ms(c.P99), ms(e.P99)), r <= GoalPropagationRatio && c.Timeouts == 0)
		}
	}
	for _, p := range ps {
		if p.cairn != nil && p.cairn.Renewals != nil {
			t := p.cairn.Renewals
			fig := num(int(t.Rate + 0.5))
			if t.ServerCores > 0 {
				fig += fmt.Sprintf(" (%s per server core)", num(int(t.Rate/t.ServerCores+0.5)))
			}
			row(fmt.Sprintf("renewals/s ≥ %s", num(GoalRenewalsPerSec)), p.n, fig, t.Rate >= GoalRenewalsPerSec)
		}
	}
	found := false
	for _, p := range ps {
		if p.n == GoalRSSInstances && p.cairn != nil {
			found = true
			row(fmt.Sprintf("RSS < %s", mib(GoalRSSBytes)), p.n, mib(p.cairn.Memory.RSS), p.cairn.Memory.RSS < GoalRSSBytes)
			if a := p.cairn.AfterChurn; a != nil {
				row(fmt.Sprintf("RSS < %s, after churn", mib(GoalRSSBytes)), p.n, mib(a.RSS), a.RSS < GoalRSSBytes)
			}
		}
	}
	if !found {
		fmt.Fprintf(w, "| RSS < %s | %s | not measured in this run | - |\n", mib(GoalRSSBytes), num(GoalRSSInstances))
	}
	fmt.Fprintln(w)
}

// num formats n with thousands separators.
func num[T int | int64 | float64](v T) string {
	n := int64(v)
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + num(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
