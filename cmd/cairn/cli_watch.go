package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cairnhq/cairn/pkg/client"
)

// runWatch streams changes until interrupted: first the current state
// (unless --from), then one line (table), JSON line or YAML document per
// change. A broken stream is resumed where it stopped, without repeating
// or losing a change.
func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("watch", "[flags] [SERVICE]",
		"Stream changes until interrupted: first the current state (type SNAPSHOT), then one\n"+
			"line per change. With --from, start with the changes after that revision instead.\n"+
			"A RESYNC line means the state was replaced (the server restarted, or the watch fell\n"+
			"too far behind): the SNAPSHOT lines after it are the whole state.", stdout, stderr)
	ns := c.namespaceFlag("", "only this namespace (default: all)")
	from := c.fs.Int64("from", 0, "print the changes after this `REVISION` instead of the current state")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.args(pos, 0, 1); err != nil {
		return err
	}
	if *from < 0 {
		return c.usageError("--from must not be negative")
	}
	opts := client.WatchOptions{Namespace: *ns, From: *from, IdleTimeout: time.Minute}
	if len(pos) == 1 {
		if pos[0] == "" {
			return c.usageError("SERVICE must not be empty")
		}
		opts.Service = pos[0]
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	s, err := cl.Watch(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.explain(err, "")
	}
	p := &watchPrinter{c: c}
	delay := 250 * time.Millisecond
	for {
		err := p.follow(s)
		s.Close()
		if ctx.Err() != nil {
			return nil // interrupted: the normal end
		}
		if err != nil {
			return err // stdout is gone
		}
		opts.From, opts.Epoch = p.resume(s.ResumeFrom()), s.Epoch()
		for {
			fmt.Fprintf(stderr, "cairn watch: stream broken; reconnecting from revision %d\n", opts.From)
			delay = min(2*delay, 10*time.Second)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay/2 + rand.N(delay/2+1)):
			}
			if s, err = cl.Watch(ctx, opts); err == nil {
				delay = 250 * time.Millisecond
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(stderr, "cairn watch: %s\n", oneLine(c.explain(err, "").Error()))
		}
	}
}

// watchPrinter prints watch events in the chosen format, and skips the
// changes a resumed stream sends again.
type watchPrinter struct {
	c        *cli
	header   bool
	lastRev  int64 // revision of the last change printed
	atLast   int   // changes printed with that revision
	lastSnap bool  // the last event was a snapshot
	skipRev  int64 // after a resume: skip the first skipN changes of skipRev
	skipN    int
}

// follow prints events until the stream ends; it returns an error only
// when writing fails.
func (p *watchPrinter) follow(s *client.Stream) error {
	for {
		ev, err := s.Next()
		if err != nil {
			return nil
		}
		if err := p.print(ev); err != nil {
			return err
		}
	}
}

// resume takes the revision the stream will resume from (the stream's
// ResumeFrom), arms the skipping of the changes after it already printed,
// and returns it.
func (p *watchPrinter) resume(from int64) int64 {
	p.skipRev, p.skipN = 0, 0
	if !p.lastSnap && p.lastRev == from+1 {
		p.skipRev, p.skipN = p.lastRev, p.atLast
	}
	return from
}

func (p *watchPrinter) print(ev *client.WatchEvent) error {
	switch ev.Type {
	case client.WatchSnapshot:
		p.lastSnap, p.skipN = true, 0
		return p.snapshot(ev.Snapshot)
	case client.WatchChange:
		if p.skipN > 0 && ev.Revision == p.skipRev {
			p.skipN--
			return nil
		}
		p.skipN = 0
		if ev.Revision == p.lastRev && !p.lastSnap {
			p.atLast++
		} else {
			p.lastRev, p.atLast = ev.Revision, 1
		}
		p.lastSnap = false
		return p.change(ev.Change)
	}
	return nil
}

// snapshotLine is a snapshot in JSON and YAML: "type" tells it from changes.
type snapshotLine struct {
	Type      string                  `json:"type"`
	Revision  int64                   `json:"revision"`
	Resync    bool                    `json:"resync"`
	Services  []*client.Service       `json:"services"`
	Instances []*client.Instance      `json:"instances"`
	Configs   []client.ConfigDocument `json:"configs"`
}

func (p *watchPrinter) snapshot(s *client.Snapshot) error {
	if p.c.output != "table" {
		return p.object(snapshotLine{"SNAPSHOT", s.Revision, s.Resync, s.Services, s.Instances, s.Configs})
	}
	typ := "SNAPSHOT"
	if s.Resync {
		// The state is replaced: what earlier lines showed may be gone.
		if err := p.line(s.Revision, "RESYNC", &client.Event{Kind: "-"}); err != nil {
			return err
		}
	}
	for _, svc := range s.Services {
		if err := p.line(s.Revision, typ, &client.Event{Kind: client.KindService, Service: svc}); err != nil {
			return err
		}
	}
	for _, in := range s.Instances {
		if err := p.line(s.Revision, typ, &client.Event{Kind: client.KindInstance, Instance: in}); err != nil {
			return err
		}
	}
	for i := range s.Configs {
		if err := p.line(s.Revision, typ, &client.Event{Kind: client.KindConfig, Config: &s.Configs[i]}); err != nil {
			return err
		}
	}
	return nil
}

func (p *watchPrinter) change(e *client.Event) error {
	if p.c.output != "table" {
		return p.object(e)
	}
	return p.line(e.Revision, string(e.Type), e)
}

// object writes one JSON line or one YAML document.
func (p *watchPrinter) object(v any) error {
	if p.c.output == "json" {
		return writeJSON(p.c.stdout, v, "")
	}
	if _, err := io.WriteString(p.c.stdout, "---\n"); err != nil {
		return err
	}
	return writeYAML(p.c.stdout, v)
}

const watchFormat = "%-9v %-9s %-9s %-40s %-25s %-8s %s\n"

// line writes one table row; columns are padded, not aligned by
// tabwriter, because rows are printed as they come.
func (p *watchPrinter) line(rev int64, typ string, e *client.Event) error {
	if !p.header {
		p.header = true
		if _, err := fmt.Fprintf(p.c.stdout, watchFormat, "REVISION", "TYPE", "KIND", "NAME", "STATUS", "HEALTH", "ENDPOINT"); err != nil {
			return err
		}
	}
	name, status, health, ep := "-", "-", "-", "-"
	switch {
	case e.Instance != nil:
		in := e.Instance
		name, status, health, ep = in.Namespace+"/"+in.Service+"/"+in.ID, statusCell(in), dash(string(in.Health)), endpoint(in)
	case e.Service != nil:
		name = e.Service.Namespace + "/" + e.Service.Name
	case e.Config != nil:
		d := e.Config
		name = strings.ToLower(d.Kind) + "/" + d.Metadata.Namespace + "/" + d.Metadata.Name
	}
	_, err := fmt.Fprintf(p.c.stdout, watchFormat, rev, typ, e.Kind, name, status, health, ep)
	return err
}
