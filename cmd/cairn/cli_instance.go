package main

import (
	"context"
	"io"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/pkg/client"
)

// instanceVerb parses the flags and SERVICE ID (plus extra positional
// arguments) of a verb acting on one instance.
func instanceVerb(c *cli, args []string, minExtra, maxExtra int) (client.Key, []string, *client.Client, error) {
	ns := c.namespaceFlag(client.DefaultNamespace, "namespace of the service")
	pos, err := c.parse(args)
	if err != nil {
		return client.Key{}, nil, nil, err
	}
	if err := c.args(pos, 2+minExtra, 2+maxExtra); err != nil {
		return client.Key{}, nil, nil, err
	}
	for i, what := range []string{"SERVICE", "ID"} {
		if pos[i] == "" {
			return client.Key{}, nil, nil, c.usageError("%s must not be empty", what)
		}
	}
	cl, err := c.client()
	if err != nil {
		return client.Key{}, nil, nil, err
	}
	return client.Key{Namespace: *ns, Service: pos[0], ID: pos[1]}, pos[2:], cl, nil
}

// action is the JSON/YAML answer of verbs that return no object.
type action struct {
	Action   string `json:"action"`
	Instance string `json:"instance"`
	Revision int64  `json:"revision,omitempty"`
}

func runRenew(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("renew", "[flags] SERVICE ID", "Renew an instance's lease.", stdout, stderr)
	k, _, cl, err := instanceVerb(c, args, 0, 0)
	if err != nil {
		return err
	}
	if err := cl.Renew(ctx, k); err != nil {
		return c.explain(err, "instance "+k.String())
	}
	a := action{Action: "renewed", Instance: k.String()}
	return c.emit(a, func(w io.Writer) { io.WriteString(w, "renewed "+k.String()+"\n") })
}

func runDeregister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("deregister", "[flags] SERVICE ID", "Remove an instance.", stdout, stderr)
	k, _, cl, err := instanceVerb(c, args, 0, 0)
	if err != nil {
		return err
	}
	rev, err := cl.Deregister(ctx, k)
	if err != nil {
		return c.explain(err, "instance "+k.String())
	}
	a := action{Action: "deregistered", Instance: k.String(), Revision: rev}
	return c.emit(a, func(w io.Writer) { io.WriteString(w, "deregistered "+k.String()+"\n") })
}

// runGet shows one instance (SERVICE ID), or config documents when the
// first argument is a kind (KIND [NAME]).
func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("get", "[flags] SERVICE ID | KIND [NAME]",
		"Show one instance; or, when the first argument is a kind of config document (route,\n"+
			"routes), list those documents or show one. -o yaml prints documents as 'cairn apply -f'\n"+
			"reads them. (For a service named like a kind, use 'cairn instances SERVICE'.)", stdout, stderr)
	ns := c.namespaceFlag("", "namespace (default: \"default\"; listing documents: all namespaces)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 && config.CanonicalKind(pos[0]) != "" {
		return runGetConfig(ctx, c, *ns, pos)
	}
	if err := c.args(pos, 2, 2); err != nil {
		return err
	}
	if pos[0] == "" || pos[1] == "" {
		return c.usageError("SERVICE and ID must not be empty")
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	k := client.Key{Namespace: *ns, Service: pos[0], ID: pos[1]}
	if k.Namespace == "" {
		k.Namespace = client.DefaultNamespace
	}
	in, err := cl.Instance(ctx, k)
	if err != nil {
		return c.explain(err, "instance "+k.String())
	}
	return c.emit(in, instanceDetail(in))
}

// runStatus shows the server's status without arguments, and sets the
// status an instance reports with SERVICE ID STATUS.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("status", "[flags] [SERVICE ID STATUS]",
		"Without arguments, show the server's status (revision, counts, self-preservation, feed).\n"+
			"With SERVICE ID STATUS, set the status the instance reports (UP, DOWN, STARTING,\n"+
			"OUT_OF_SERVICE, UNKNOWN).", stdout, stderr)
	ns := c.namespaceFlag(client.DefaultNamespace, "namespace of the service (with SERVICE ID STATUS)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 && len(pos) != 3 {
		return c.usageError("want no arguments or SERVICE ID STATUS, got %d arguments", len(pos))
	}
	var st client.Status
	if len(pos) == 3 {
		if st, err = parseStatus(pos[2]); err != nil {
			return c.usageError("%v", err)
		}
		if pos[0] == "" || pos[1] == "" {
			return c.usageError("SERVICE and ID must not be empty")
		}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		s, err := cl.Status(ctx)
		if err != nil {
			return c.explain(err, "")
		}
		return c.emit(s, serverStatusTable(s))
	}
	k := client.Key{Namespace: *ns, Service: pos[0], ID: pos[1]}
	in, err := cl.SetStatus(ctx, k, st)
	if err != nil {
		return c.explain(err, "instance "+k.String())
	}
	return c.emit(in, instanceDetail(in))
}

// runOverride sets or (--clear) removes an operator's status override.
func runOverride(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("override", "[flags] SERVICE ID STATUS | --clear SERVICE ID",
		"Set an operator's status override, which wins over the status the instance reports\n"+
			"(OUT_OF_SERVICE takes it out of traffic), or remove it with --clear.", stdout, stderr)
	clearIt := c.fs.Bool("clear", false, "remove the override instead of setting one")
	k, rest, cl, err := instanceVerb(c, args, 0, 1)
	if err != nil {
		return err
	}
	var in *client.Instance
	switch {
	case *clearIt && len(rest) > 0:
		return c.usageError("--clear takes SERVICE ID, not a STATUS")
	case *clearIt:
		in, err = cl.ClearOverride(ctx, k)
	case len(rest) == 0:
		return c.usageError("STATUS is required (or --clear)")
	default:
		st, perr := parseStatus(rest[0])
		if perr != nil {
			return c.usageError("%v", perr)
		}
		in, err = cl.SetOverride(ctx, k, st)
	}
	if err != nil {
		return c.explain(err, "instance "+k.String())
	}
	return c.emit(in, instanceDetail(in))
}
