package source

import (
	"context"
	"errors"
	"log/slog"

	"github.com/cairnhq/cairn/internal/proxy"
	"github.com/cairnhq/cairn/internal/registry"
)

// FollowRegistry keeps the engine in step with a registry in the same
// process until ctx ends: a snapshot first, then every change of the feed,
// pushed after each batch. ready, if not nil, is closed after the first
// push.
func FollowRegistry(ctx context.Context, reg *registry.Registry, sink Sink, ready chan<- struct{}, log *slog.Logger) {
	s := newState()
	resync := func() {
		snap := reg.Snapshot(registry.Filter{})
		s.reset()
		s.rev = snap.Revision
		for _, d := range snap.Configs {
			s.putDoc(*d)
		}
		for _, in := range snap.Instances {
			s.putInstance(proxy.ServiceKey{Namespace: in.Namespace, Name: in.Service}, fromRegistry(in), in.Healthy())
		}
		s.push(sink, log)
	}
	resync()
	if ready != nil {
		close(ready)
	}
	feed := reg.Feed()
	for {
		evs, _, notify, err := feed.Since(s.rev, 0)
		if errors.Is(err, registry.ErrCompacted) {
			resync()
			continue
		}
		if len(evs) > 0 {
			for i := range evs {
				applyRegistryEvent(s, &evs[i])
			}
			s.rev = evs[len(evs)-1].Revision
			s.push(sink, log)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-notify:
		}
	}
}

func applyRegistryEvent(s *state, ev *registry.Event) {
	switch ev.Kind {
	case registry.KindConfig:
		if ev.Config == nil {
			return
		}
		if ev.Type == registry.EventDeleted {
			s.deleteDoc(ev.Config.Key())
		} else {
			s.putDoc(*ev.Config)
		}
	case registry.KindInstance:
		in := ev.Instance
		k := proxy.ServiceKey{Namespace: in.Namespace, Name: in.Service}
		if ev.Type == registry.EventDeleted {
			s.deleteInstance(k, in.ID)
		} else {
			s.putInstance(k, fromRegistry(in), in.Healthy())
		}
	}
}

func fromRegistry(in *registry.Instance) proxy.Instance {
	ports := make(map[string]int, len(in.Ports))
	for _, p := range in.Ports {
		ports[p.Name] = p.Port
	}
	return proxy.Instance{ID: in.ID, Host: in.Address, Ports: ports, Zone: in.Zone, Weight: in.Weight, Metadata: in.Metadata}
}
