package main

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/pkg/client"
)

// runRegister registers an instance and prints it; with --keep it stays in
// the foreground renewing the lease (registering again if the server
// forgets the instance) until interrupted, then deregisters.
func runRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("register", "--service NAME --address ADDR [flags]",
		"Register an instance and print it as the server stored it. With --keep, stay in the\n"+
			"foreground renewing its lease until interrupted, then deregister it.", stdout, stderr)
	fs := c.fs
	var (
		in                          client.Instance
		ports                       portsFlag
		meta                        kvFlag
		tags                        listFlag
		ttl                         = durationFlag{d: 90 * time.Second}
		checkInterval, checkTimeout durationFlag
	)
	fs.StringVar(&in.Service, "service", "", "service name (required)")
	ns := c.namespaceFlag(client.DefaultNamespace, "namespace")
	fs.StringVar(&in.ID, "id", "", "instance id (default: generated, SERVICE-<12 hex digits>)")
	fs.StringVar(&in.Address, "address", "", "IP address or host name (required)")
	fs.Var(&ports, "port", "a port `NAME=PORT[/PROTOCOL]`, repeatable; a bare PORT[/PROTOCOL] is named \"default\"")
	fs.StringVar(&in.Zone, "zone", "", "zone")
	fs.StringVar(&in.Region, "region", "", "region")
	fs.StringVar(&in.Cluster, "cluster", "", "cluster")
	fs.IntVar(&in.Weight, "weight", 0, "weight, 1 to 10000 (default 1)")
	fs.Var(&meta, "meta", "metadata `KEY=VALUE`, repeatable")
	fs.Var(&tags, "tag", "a `TAG`, repeatable")
	fs.Var(&ttl, "ttl", "lease `DURATION`: renew within it or be evicted; 0 means no lease")
	status := fs.String("status", "", "status the instance reports: UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN (default UP)")
	check := fs.String("check", "", "active health check of the first port: http[:/PATH], https[:/PATH], tcp or grpc[:SERVICE]")
	fs.Var(&checkInterval, "check-interval", "`DURATION` between health checks (default 10s)")
	fs.Var(&checkTimeout, "check-timeout", "`DURATION` one health check may take (default 2s)")
	keep := fs.Bool("keep", false, "stay in the foreground renewing the lease until interrupted, then deregister")

	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	switch {
	case in.Service == "":
		return c.usageError("--service is required")
	case in.Address == "":
		return c.usageError("--address is required")
	case *check == "" && (checkInterval.set || checkTimeout.set):
		return c.usageError("--check-interval and --check-timeout need --check")
	}
	in.Namespace, in.Ports, in.Metadata, in.Tags = *ns, ports, meta, tags
	in.TTL = ttl.d
	if in.TTL == 0 {
		in.TTL = client.NoLease
	}
	if *status != "" {
		if in.Status, err = parseStatus(*status); err != nil {
			return c.usageError("--status: %v", err)
		}
	}
	if *check != "" {
		if in.Check, err = parseCheck(*check); err != nil {
			return c.usageError("%v", err)
		}
		if len(in.Ports) == 0 {
			return c.usageError("--check needs a --port to check")
		}
		in.Check.Port = in.Ports[0].Name
		in.Check.Interval, in.Check.Timeout = checkInterval.d, checkTimeout.d
	}
	cl, err := c.client()
	if err != nil {
		return err
	}

	if *keep {
		return c.keep(ctx, cl, in)
	}
	got, err := cl.Register(ctx, in)
	if err != nil {
		return c.explain(err, "")
	}
	return c.emit(got, instanceDetail(got))
}

// keep registers the instance, prints it, and keeps it registered until
// ctx ends, reporting trouble on stderr; then it deregisters. The first
// registration must succeed: any failure of it is returned.
func (c *cli) keep(ctx context.Context, cl *client.Client, in client.Instance) error {
	var started atomic.Bool // report the background attempts only
	reg, err := client.KeepRegistered(ctx, cl, in, client.RegistrationOptions{
		OnEvent: func(ev client.RegistrationEvent) {
			if !started.Load() {
				return
			}
			switch {
			case ev.Err != nil && ev.Action != "deregister":
				fmt.Fprintf(c.stderr, "cairn register: %s failed: %s (retrying in %s)\n", ev.Action, oneLine(c.explain(ev.Err, "").Error()), ev.Retry.Round(time.Millisecond))
			case ev.Action == "reregister":
				fmt.Fprintf(c.stderr, "cairn register: the server had lost %s: registered it again\n", in.Key())
			case ev.Action == "renew" && ev.State == client.StateRegistered:
				fmt.Fprintf(c.stderr, "cairn register: renewals succeed again\n")
			}
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted before the registration was done
		}
		return c.explain(err, "")
	}
	if err := reg.Err(); err != nil {
		_ = reg.Stop()
		return c.explain(err, "")
	}
	got := reg.Instance()
	in.Namespace, in.ID = got.Namespace, got.ID
	if err := c.emit(got, instanceDetail(got)); err != nil {
		_ = reg.Stop()
		return err
	}
	started.Store(true)
	<-ctx.Done()
	if err := reg.Stop(); err != nil {
		return fmt.Errorf("deregistering %s: %w", got.Key(), c.explain(err, ""))
	}
	fmt.Fprintf(c.stderr, "cairn register: deregistered %s\n", got.Key())
	return nil
}
