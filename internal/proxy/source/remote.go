package source

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/proxy"
	"github.com/cairnhq/cairn/pkg/client"
)

// FollowServer keeps the engine in step with a remote Cairn server's watch
// stream (every namespace) until ctx ends. A broken stream is resumed
// with backoff from the last revision held; meanwhile the running config
// keeps serving. ready, if not nil, is closed after the first push.
func FollowServer(ctx context.Context, c *client.Client, sink Sink, ready chan<- struct{}, log *slog.Logger) {
	s := newState()
	from, epoch := int64(0), ""
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		stream, err := c.Watch(ctx, client.WatchOptions{From: from, Epoch: epoch, IdleTimeout: 45 * time.Second})
		if err == nil {
			var progressed bool
			from, progressed, err = followStream(ctx, stream, s, sink, &ready, log)
			epoch = stream.Epoch()
			stream.Close()
			if progressed {
				backoff = 250 * time.Millisecond
			}
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("registry watch broken; the running config stays, reconnecting", "server", c.Addr(), "err", err, "in", backoff)
		t := time.NewTimer(backoff + time.Duration(rand.Int64N(int64(backoff/2))))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// followStream applies one stream's events, pushing after each burst (the
// events already received when one is applied).
func followStream(ctx context.Context, stream *client.Stream, s *state, sink Sink, ready *chan<- struct{}, log *slog.Logger) (int64, bool, error) {
	type item struct {
		ev  *client.WatchEvent
		err error
	}
	ch := make(chan item, 256)
	go func() {
		for {
			ev, err := stream.Next()
			select {
			case ch <- item{ev, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	from := stream.ResumeFrom()
	progressed := false
	for {
		var it item
		select {
		case it = <-ch:
		case <-ctx.Done():
			stream.Close()
			return from, progressed, ctx.Err()
		}
		for {
			if it.err != nil {
				if progressed {
					s.push(sink, log)
				}
				return from, progressed, it.err
			}
			progressed = true
			applyWatchEvent(s, it.ev)
			from = stream.ResumeFrom()
			select {
			case it = <-ch:
				continue
			default:
			}
			break
		}
		s.push(sink, log)
		if *ready != nil && s.synced {
			close(*ready)
			*ready = nil
		}
	}
}

func applyWatchEvent(s *state, ev *client.WatchEvent) {
	switch ev.Type {
	case client.WatchSnapshot:
		snap := ev.Snapshot
		s.reset()
		s.rev = snap.Revision
		for i := range snap.Configs {
			if d, ok := fromClientDoc(&snap.Configs[i]); ok {
				s.putDoc(d)
			}
		}
		for i := range snap.Instances {
			in := snap.Instances[i]
			s.putInstance(proxy.ServiceKey{Namespace: in.Namespace, Name: in.Service}, fromClient(in), in.Healthy())
		}
	case client.WatchChange:
		e := ev.Change
		s.rev = e.Revision
		switch {
		case e.Kind == client.KindConfig && e.Config != nil:
			d, ok := fromClientDoc(e.Config)
			if !ok {
				return
			}
			if e.Type == client.EventDeleted {
				s.deleteDoc(d.Key())
			} else {
				s.putDoc(d)
			}
		case e.Kind == client.KindInstance && e.Instance != nil:
			in := e.Instance
			k := proxy.ServiceKey{Namespace: in.Namespace, Name: in.Service}
			if e.Type == client.EventDeleted {
				s.deleteInstance(k, in.ID)
			} else {
				s.putInstance(k, fromClient(in), in.Healthy())
			}
		}
	}
}

// fromClientDoc converts a document from the wire; the server normalized
// it, and Normalize here only re-checks it (a newer server's kinds are
// skipped).
func fromClientDoc(cd *client.ConfigDocument) (config.Document, bool) {
	b, err := json.Marshal(cd)
	if err != nil {
		return config.Document{}, false
	}
	d, fe := config.Decode(b)
	if fe != nil {
		return config.Document{}, false
	}
	return *d, true
}

func fromClient(in *client.Instance) proxy.Instance {
	ports := make(map[string]int, len(in.Ports))
	for _, p := range in.Ports {
		ports[p.Name] = p.Port
	}
	return proxy.Instance{ID: in.ID, Host: in.Address, Ports: ports, Zone: in.Zone, Weight: in.Weight, Metadata: in.Metadata}
}
