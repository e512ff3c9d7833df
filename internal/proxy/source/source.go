// Package source feeds the proxy engine its configuration: Route documents
// and the healthy instances of the services they name. Three sources
// exist: a local file (a gateway with no registry), the registry of the
// same process (`cairn dev`, `cairn server --gateway-addr`), and a remote
// server's watch stream (`cairn proxy --server`). Each keeps its own
// state, applies changes as they come and hands the engine a new snapshot
// when something the routes depend on changed; a snapshot the engine
// rejects leaves the running config in place.
package source

import (
	"log/slog"
	"maps"
	"slices"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/proxy"
)

// Sink is what a source updates: the proxy engine.
type Sink interface {
	Update(*proxy.Snapshot) error
	Uses(proxy.ServiceKey) bool
}

// state is a follower's view of the registry: documents and instances by
// service. It is owned by one goroutine.
type state struct {
	rev      int64
	docs     map[config.Key]config.Document
	services map[proxy.ServiceKey]map[string]proxy.Instance

	// What changed since the last push.
	docsChanged bool
	touched     map[proxy.ServiceKey]bool
	synced      bool // a snapshot was pushed at least once
}

func newState() *state {
	return &state{docs: map[config.Key]config.Document{}, services: map[proxy.ServiceKey]map[string]proxy.Instance{}, touched: map[proxy.ServiceKey]bool{}}
}

func (s *state) reset() {
	s.docs = map[config.Key]config.Document{}
	s.services = map[proxy.ServiceKey]map[string]proxy.Instance{}
	s.docsChanged = true
}

func (s *state) putDoc(d config.Document) {
	if d.Kind != config.KindRoute {
		return
	}
	s.docs[d.Key()] = d
	s.docsChanged = true
}

func (s *state) deleteDoc(k config.Key) {
	if _, ok := s.docs[k]; ok {
		delete(s.docs, k)
		s.docsChanged = true
	}
}

// putInstance records an instance; unhealthy ones are removed, as they
// take no traffic.
func (s *state) putInstance(k proxy.ServiceKey, in proxy.Instance, healthy bool) {
	if !healthy {
		s.deleteInstance(k, in.ID)
		return
	}
	m := s.services[k]
	if m == nil {
		m = map[string]proxy.Instance{}
		s.services[k] = m
	}
	m[in.ID] = in
	s.touched[k] = true
}

func (s *state) deleteInstance(k proxy.ServiceKey, id string) {
	m := s.services[k]
	if m == nil {
		return
	}
	if _, ok := m[id]; ok {
		delete(m, id)
		s.touched[k] = true
		if len(m) == 0 {
			delete(s.services, k)
		}
	}
}

// push hands the engine a snapshot if anything its routes depend on
// changed (always the first time).
func (s *state) push(sink Sink, log *slog.Logger) {
	need := s.docsChanged || !s.synced
	if !need {
		for k := range s.touched {
			if sink.Uses(k) {
				need = true
				break
			}
		}
	}
	clear(s.touched)
	if !need {
		return
	}
	s.docsChanged = false
	// In any order: the engine orders routes itself.
	snap := &proxy.Snapshot{Revision: s.rev, Routes: slices.Collect(maps.Values(s.docs))}
	snap.Lookup = func(k proxy.ServiceKey) []proxy.Instance {
		m := s.services[k]
		out := make([]proxy.Instance, 0, len(m))
		for _, in := range m {
			out = append(out, in)
		}
		return out
	}
	if err := sink.Update(snap); err != nil {
		log.Error("config rejected; the running config stays", "revision", s.rev, "err", err)
		return
	}
	if !s.synced {
		log.Info("gateway config loaded", "revision", s.rev, "routes", len(snap.Routes))
	} else {
		log.Debug("gateway config updated", "revision", s.rev, "routes", len(snap.Routes))
	}
	s.synced = true
}
