package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairnhq/cairn/pkg/client"
	"gopkg.in/yaml.v3"
)

// emit writes v as JSON or YAML, or calls table for the table format.
func (c *cli) emit(v any, table func(w io.Writer)) error {
	switch c.output {
	case "json":
		return writeJSON(c.stdout, v, "  ")
	case "yaml":
		return writeYAML(c.stdout, v)
	}
	tw := newTable(c.stdout)
	table(tw)
	return tw.Flush()
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// writeJSON writes v as JSON: pretty with an indent, one line without.
func writeJSON(w io.Writer, v any, indent string) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	return enc.Encode(v)
}

// writeYAML writes v as one YAML document with the same field names and
// order as its JSON (YAML is read from the JSON, then restyled as block
// YAML), so both formats describe objects alike.
func writeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	blockStyle(&doc)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = w.Write(out.Bytes())
	return err
}

// blockStyle drops the flow and quoting styles JSON input carries; the
// encoder quotes again whatever would otherwise read differently.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// dash shows empty cells as "-" so that columns stay aligned and splittable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatPort(p client.Port) string {
	s := p.Name + "=" + strconv.Itoa(p.Port)
	if p.Protocol != "" {
		s += "/" + p.Protocol
	}
	return s
}

func formatPorts(ps []client.Port) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		parts = append(parts, formatPort(p))
	}
	return strings.Join(parts, ",")
}

// endpoint is "address:port" for an instance with one default port, else
// "address:name=port,...".
func endpoint(in *client.Instance) string {
	switch {
	case len(in.Ports) == 0:
		return in.Address
	case len(in.Ports) == 1 && in.Ports[0].Name == "default":
		return in.Address + ":" + strconv.Itoa(in.Ports[0].Port)
	}
	parts := make([]string, 0, len(in.Ports))
	for _, p := range in.Ports {
		parts = append(parts, p.Name+"="+strconv.Itoa(p.Port))
	}
	return in.Address + ":" + strings.Join(parts, ",")
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, clean(k+"="+m[k]))
	}
	return strings.Join(parts, ",")
}

// clean keeps a cell on one line and out of the column separators: text
// with control characters (tabs, newlines) is shown quoted.
func clean(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}

// statusCell is the effective status, marked when an override sets it.
func statusCell(in *client.Instance) string {
	if in.StatusOverride != "" {
		return string(in.StatusOverride) + "(override)"
	}
	return dash(string(in.Status))
}

func ttlCell(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.String()
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

var instanceColumns = "NAMESPACE\tSERVICE\tID\tADDRESS\tPORTS\tSTATUS\tHEALTH\tZONE\tWEIGHT"

func instanceRow(w io.Writer, in *client.Instance) {
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", in.Namespace, in.Service, in.ID, in.Address,
		dash(formatPorts(in.Ports)), statusCell(in), dash(string(in.Health)), dash(in.Zone), in.Weight)
}

// instanceTable lists instances, one per row.
func instanceTable(ins []client.Instance) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintln(w, instanceColumns)
		for i := range ins {
			instanceRow(w, &ins[i])
		}
	}
}

// instanceDetail shows one instance, one field per row.
func instanceDetail(in *client.Instance) func(io.Writer) {
	return func(w io.Writer) {
		row := func(k, v string) { fmt.Fprintf(w, "%s\t%s\n", k, dash(v)) }
		row("ID", in.ID)
		row("NAMESPACE", in.Namespace)
		row("SERVICE", in.Service)
		row("ADDRESS", in.Address)
		row("PORTS", formatPorts(in.Ports))
		row("ZONE", in.Zone)
		row("REGION", in.Region)
		row("CLUSTER", in.Cluster)
		row("WEIGHT", strconv.Itoa(in.Weight))
		row("METADATA", formatMap(in.Metadata))
		row("TAGS", strings.Join(in.Tags, ","))
		row("SOURCE", in.Source)
		row("STATUS", string(in.Status))
		row("OVERRIDE", string(in.StatusOverride))
		row("HEALTHY", strconv.FormatBool(in.Healthy()))
		health := string(in.Health)
		if in.HealthOutput != "" {
			health += " (" + clean(in.HealthOutput) + ")"
		}
		row("HEALTH", health)
		row("CHECK", checkCell(in.Check))
		row("TTL", ttlCell(in.TTL))
		row("RENEW-INTERVAL", ttlCell(in.RenewInterval))
		row("REGISTERED", timeCell(in.RegisteredAt))
		row("LAST-RENEWED", timeCell(in.LastRenewedAt))
		row("REVISIONS", fmt.Sprintf("created %d, modified %d", in.CreateRevision, in.ModifyRevision))
	}
}

func checkCell(c *client.CheckSpec) string {
	if c == nil {
		return ""
	}
	s := c.Type + " port=" + c.Port
	if c.Path != "" {
		s += " path=" + c.Path
	}
	if c.GRPCService != "" {
		s += " service=" + c.GRPCService
	}
	return s + fmt.Sprintf(" every %s timeout %s", c.Interval, c.Timeout)
}

// serviceTable lists services with their counts.
func serviceTable(svcs []client.ServiceInfo) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintln(w, "NAMESPACE\tNAME\tINSTANCES\tHEALTHY\tTAGS\tMETADATA")
		for _, s := range svcs {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\n", s.Namespace, s.Name, s.Instances, s.Healthy,
				dash(strings.Join(s.Tags, ",")), dash(formatMap(s.Metadata)))
		}
	}
}

// serverStatusTable shows the server's status, one item per row.
func serverStatusTable(st *client.ServerStatus) func(io.Writer) {
	return func(w io.Writer) {
		sp := st.SelfPreservation
		state := "disabled"
		if sp.Enabled {
			state = "enabled, inactive"
			if sp.Active {
				state = "ACTIVE: evictions paused"
			}
		}
		fmt.Fprintf(w, "REVISION\t%d\n", st.Revision)
		fmt.Fprintf(w, "SERVICES\t%d\n", st.Services)
		fmt.Fprintf(w, "INSTANCES\t%d (%d healthy)\n", st.Instances, st.Healthy)
		fmt.Fprintf(w, "CONFIGS\t%d documents\n", st.Configs)
		fmt.Fprintf(w, "SELF-PRESERVATION\t%s (renewals %d of %d expected in %gs, threshold %g)\n",
			state, sp.RenewalsLastWindow, sp.ExpectedRenewals, sp.WindowSeconds, sp.Threshold)
		fmt.Fprintf(w, "FEED\thead %d, oldest %d, %d subscribers, max lag %d\n",
			st.Feed.Head, st.Feed.Oldest, st.Feed.Subscribers, st.Feed.MaxLag)
	}
}
