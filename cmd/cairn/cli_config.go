package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/pkg/client"
)

// Verbs on config documents (routes), kubectl-style: apply, get, delete,
// diff (cli_diff.go). Files are parsed and checked here with the server's
// own rules (internal/config), so a bad file is refused before anything is
// sent.

// stdin is what `-f -` reads (a variable for tests).
var stdin io.Reader = os.Stdin

// source is a parsed file: its documents, normalized.
type source struct {
	name string
	docs []config.Document
}

// filesFlag adds -f/--filename, repeatable.
func (c *cli) filesFlag(help string) *listFlag {
	files := new(listFlag)
	c.fs.Var(files, "f", help+"; repeatable, - for stdin")
	c.fs.Var(files, "filename", "same as -f")
	return files
}

// readSources parses every file; the first error names the file and the
// field ("routes.yaml: documents[1].spec.backends[0].weight: ..."). A
// document named in two files is an error too.
func readSources(files []string) ([]source, error) {
	if i := slices.Index(files, "-"); i >= 0 && slices.Contains(files[i+1:], "-") {
		return nil, errors.New("-f - given twice")
	}
	var out []source
	seen := map[config.Key]string{}
	for _, f := range files {
		var data []byte
		var err error
		name := f
		if f == "-" {
			name = "stdin"
			data, err = io.ReadAll(io.LimitReader(stdin, config.MaxDocuments*config.MaxDocumentBytes+1))
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, err
		}
		docs, err := config.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for i, d := range docs {
			here := fmt.Sprintf("%s documents[%d]", name, i)
			if other, dup := seen[d.Key()]; dup {
				return nil, fmt.Errorf("%s: documents[%d].metadata.name: %s is also %s", name, i, d.Key().String(), other)
			}
			seen[d.Key()] = here
		}
		out = append(out, source{name: name, docs: docs})
	}
	return out, nil
}

// allDocs returns the documents of every source, in order.
func allDocs(srcs []source) []config.Document {
	var out []config.Document
	for _, s := range srcs {
		out = append(out, s.docs...)
	}
	return out
}

var documentIndex = regexp.MustCompile(`^documents\[(\d+)\]`)

// explainApply names the file and its document for a server error about
// documents[N] of the combined list.
func explainApply(err error, srcs []source) error {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return err
	}
	m := documentIndex.FindStringSubmatch(ae.Field)
	if m == nil {
		return err
	}
	n, _ := strconv.Atoi(m[1])
	for _, s := range srcs {
		if n < len(s.docs) {
			local := fmt.Sprintf("documents[%d]", n)
			return fmt.Errorf("%s: %s", s.name, strings.Replace(err.Error(), m[0], local, 1))
		}
		n -= len(s.docs)
	}
	return err
}

func toClient(d config.Document) client.ConfigDocument {
	return client.ConfigDocument{APIVersion: d.APIVersion, Kind: d.Kind, Spec: d.Spec, Metadata: client.ConfigMetadata{
		Name: d.Metadata.Name, Namespace: d.Metadata.Namespace,
		CreateRevision: d.Metadata.CreateRevision, ModifyRevision: d.Metadata.ModifyRevision}}
}

// actionPath names a document as output does: "route/default/orders".
func actionPath(a client.ApplyAction) string {
	return config.Key{Kind: a.Kind, Namespace: a.Namespace, Name: a.Name}.String()
}

// printResults prints one line per document, like kubectl.
func (c *cli) printResults(res *client.ApplyResult) error {
	return c.emit(res, func(w io.Writer) {
		suffix := ""
		if res.DryRun {
			suffix = " (dry run)"
		}
		for _, a := range res.Results {
			fmt.Fprintf(w, "%s %s%s\n", actionPath(a), a.Action, suffix)
		}
	})
}

// fileArgs parses the flags of a verb that works on -f FILEs only, and
// reads and checks the files.
func (c *cli) fileArgs(args []string, files *listFlag) ([]source, *client.Client, error) {
	pos, err := c.parse(args)
	if err != nil {
		return nil, nil, err
	}
	if err := c.args(pos, 0, 0); err != nil {
		return nil, nil, err
	}
	if len(*files) == 0 {
		return nil, nil, c.usageError("-f FILE is required")
	}
	cl, err := c.client()
	if err != nil {
		return nil, nil, err
	}
	srcs, err := readSources(*files)
	return srcs, cl, err
}

func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("apply", "-f FILE [-f FILE ...] [--dry-run]",
		"Create or update config documents (routes) from YAML or JSON files, as one atomic change:\n"+
			"every document is checked first, and if one is wrong nothing is sent. Prints one line\n"+
			"per document: created, configured or unchanged.", stdout, stderr)
	files := c.filesFlag("`FILE` of documents (YAML separated by ---, or JSON)")
	dryRun := c.fs.Bool("dry-run", false, "show what would change, change nothing")
	srcs, cl, err := c.fileArgs(args, files)
	if err != nil {
		return err
	}
	var docs []client.ConfigDocument
	for _, d := range allDocs(srcs) {
		docs = append(docs, toClient(d))
	}
	res, err := cl.ApplyConfig(ctx, docs, nil, *dryRun)
	if err != nil {
		return explainApply(c.explain(err, ""), srcs)
	}
	return c.printResults(res)
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("delete", "[flags] KIND NAME | -f FILE [-f FILE ...]",
		"Delete config documents: one by kind and name, or those a file holds, as one atomic\n"+
			"change (if one does not exist, nothing is deleted).", stdout, stderr)
	ns := c.namespaceFlag(client.DefaultNamespace, "namespace of the document (with KIND NAME)")
	files := c.filesFlag("delete the documents of `FILE`")
	dryRun := c.fs.Bool("dry-run", false, "show what would be deleted, delete nothing")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	var keys []client.ConfigKey
	var srcs []source
	switch {
	case len(*files) > 0 && len(pos) > 0:
		return c.usageError("give KIND NAME or -f FILE, not both")
	case len(*files) == 0:
		if err := c.args(pos, 2, 2); err != nil {
			return err
		}
		k := config.Key{Kind: pos[0], Namespace: *ns, Name: pos[1]}
		if fe := k.Normalize(); fe != nil {
			return c.usageError("%v", fe)
		}
		keys = append(keys, client.ConfigKey{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name})
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if len(*files) > 0 {
		if srcs, err = readSources(*files); err != nil {
			return err
		}
		for _, d := range allDocs(srcs) {
			keys = append(keys, client.ConfigKey{Kind: d.Kind, Namespace: d.Metadata.Namespace, Name: d.Metadata.Name})
		}
	}
	res, err := cl.ApplyConfig(ctx, nil, keys, *dryRun)
	if err != nil {
		return c.explain(err, "")
	}
	return c.printResults(res)
}

// runGetConfig is `get KIND [NAME]`: a list, or one document.
func runGetConfig(ctx context.Context, c *cli, ns string, pos []string) error {
	if err := c.args(pos, 1, 2); err != nil {
		return err
	}
	kind := config.CanonicalKind(pos[0])
	cl, err := c.client()
	if err != nil {
		return err
	}
	var docs []client.ConfigDocument
	if len(pos) == 2 {
		k := config.Key{Kind: kind, Namespace: ns, Name: pos[1]}
		if fe := k.Normalize(); fe != nil {
			return c.usageError("%v", fe)
		}
		d, err := cl.ConfigDoc(ctx, k.Kind, k.Namespace, k.Name)
		if err != nil {
			return c.explain(err, k.String())
		}
		if c.output == "json" {
			return writeJSON(c.stdout, d, "  ")
		}
		docs = []client.ConfigDocument{*d}
	} else {
		if docs, _, err = cl.ConfigDocs(ctx, kind, ns); err != nil {
			return c.explain(err, "")
		}
		if c.output == "json" {
			return writeJSON(c.stdout, docs, "  ")
		}
	}
	if c.output == "yaml" {
		return writeDocsYAML(c.stdout, docs)
	}
	tw := newTable(c.stdout)
	configTable(docs)(tw)
	return tw.Flush()
}

// writeDocsYAML writes documents as a YAML stream that `cairn apply -f`
// reads back unchanged.
func writeDocsYAML(w io.Writer, docs []client.ConfigDocument) error {
	for i, d := range docs {
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if err := writeYAML(w, d); err != nil {
			return err
		}
	}
	return nil
}

// configTable lists documents, one per row; routes show what they match
// and where they send it.
func configTable(docs []client.ConfigDocument) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintln(w, "NAMESPACE\tNAME\tHOSTS\tMATCH\tBACKENDS\tREVISION")
		for _, d := range docs {
			hosts, match, backends := "-", "-", "-"
			if config.CanonicalKind(d.Kind) == config.KindRoute {
				if r, fe := config.DecodeRoute(d.Spec, d.Metadata.Namespace); fe == nil {
					hosts, match, backends = routeHosts(r), routeMatch(r), routeBackends(r, d.Metadata.Namespace)
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", d.Metadata.Namespace, d.Metadata.Name, clean(hosts), clean(match),
				clean(backends), d.Metadata.ModifyRevision)
		}
	}
}

// routeHosts is the route's hosts, "*" for any.
func routeHosts(r *config.RouteSpec) string {
	if len(r.Hosts) == 0 {
		return "*"
	}
	return strings.Join(r.Hosts, ",")
}

// routeMatch sums up a route's conditions without spaces: the path (a
// prefix as is, "=/x" exact, "~re" regex), methods ("GET|POST"), then
// headers, query parameters and cookies ("h:", "q:", "c:" with "=value",
// "~regex", or nothing for present).
func routeMatch(r *config.RouteSpec) string {
	m := r.Match
	path := "/"
	if p := m.Path; p != nil {
		switch p.Type {
		case "exact":
			path = "=" + p.Value
		case "regex":
			path = "~" + p.Value
		default:
			path = p.Value
		}
	}
	parts := []string{path}
	if len(m.Methods) > 0 {
		parts = append(parts, strings.Join(m.Methods, "|"))
	}
	for _, l := range []struct {
		prefix string
		vs     []config.ValueMatch
	}{{"h:", m.Headers}, {"q:", m.Query}, {"c:", m.Cookies}} {
		for _, v := range l.vs {
			s := l.prefix + v.Name
			switch v.Type {
			case "", "exact":
				s += "=" + v.Value
			case "regex":
				s += "~" + v.Value
			}
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ",")
}

// routeBackends lists backends as service[.namespace][:port][{subset}] or
// address, with their share of traffic when there are several.
func routeBackends(r *config.RouteSpec, ns string) string {
	total := 0
	for i := range r.Backends {
		total += r.Backends[i].EffectiveWeight()
	}
	parts := make([]string, 0, len(r.Backends))
	for i := range r.Backends {
		b := &r.Backends[i]
		s := b.Address
		if s == "" {
			s = b.Service
			if b.EffectiveNamespace(ns) != ns {
				s += "." + b.EffectiveNamespace(ns)
			}
			if b.Port != "" {
				s += ":" + string(b.Port)
			}
			if len(b.Subset) > 0 {
				s += "{" + formatMap(b.Subset) + "}"
			}
		}
		if len(r.Backends) > 1 && total > 0 {
			s += fmt.Sprintf("(%d%%)", (b.EffectiveWeight()*100+total/2)/total)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}
