package main

import (
	"context"
	"io"

	"github.com/cairnhq/cairn/pkg/client"
)

// servicesList is the JSON/YAML answer of `services`.
type servicesList struct {
	Revision int64                `json:"revision"`
	Services []client.ServiceInfo `json:"services"`
}

// instancesList is the JSON/YAML answer of `instances`.
type instancesList struct {
	Revision  int64             `json:"revision"`
	Instances []client.Instance `json:"instances"`
}

func runServices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("services", "[flags]", "List services with their instance counts.", stdout, stderr)
	ns := c.namespaceFlag("", "only this namespace (default: all)")
	tag := c.fs.String("tag", "", "only services with this tag")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.args(pos, 0, 0); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	svcs, rev, err := cl.Services(ctx, client.ServicesQuery{Namespace: *ns, Tag: *tag})
	if err != nil {
		return c.explain(err, "")
	}
	return c.emit(servicesList{rev, svcs}, serviceTable(svcs))
}

func runInstances(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("instances", "[flags] [SERVICE]", "List instances, of every service or of SERVICE.", stdout, stderr)
	var q client.Query
	var meta kvFlag
	ns := c.namespaceFlag("", "only this namespace (default: all)")
	c.fs.BoolVar(&q.Healthy, "healthy", false, "only healthy instances (effective status UP, health passing or none)")
	c.fs.StringVar(&q.Zone, "zone", "", "only instances in this zone")
	c.fs.StringVar(&q.Tag, "tag", "", "only instances with this tag (on the instance or its service)")
	c.fs.Var(&meta, "meta", "only instances with this metadata `KEY=VALUE`, repeatable (all must match)")
	status := c.fs.String("status", "", "only instances with this effective status")
	c.fs.StringVar(&q.Source, "source", "", "only instances from this source (api, eureka, kubernetes, ...)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.args(pos, 0, 1); err != nil {
		return err
	}
	if len(pos) == 1 {
		if pos[0] == "" {
			return c.usageError("SERVICE must not be empty")
		}
		q.Service = pos[0]
	}
	if *status != "" {
		if q.Status, err = parseStatus(*status); err != nil {
			return c.usageError("--status: %v", err)
		}
	}
	q.Namespace, q.Meta = *ns, meta
	cl, err := c.client()
	if err != nil {
		return err
	}
	ins, rev, err := cl.Instances(ctx, q)
	if err != nil {
		return c.explain(err, "")
	}
	return c.emit(instancesList{rev, ins}, instanceTable(ins))
}
