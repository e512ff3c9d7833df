package registry

import "slices"

// Filter selects instances. Zero fields match everything.
type Filter struct {
	Namespace   string
	Service     string
	Zone        string
	Tag         string            // matches an instance tag or a tag of its service
	Meta        map[string]string // every pair must match the instance metadata
	Status      Status            // effective status
	Source      string
	HealthyOnly bool
}

// MatchService reports whether events of the service may concern f.
func (f *Filter) MatchService(namespace, name string) bool {
	return (f.Namespace == "" || f.Namespace == namespace) && (f.Service == "" || f.Service == name)
}

// MatchEvent reports whether an event may concern a reader of f (a watch
// stream): service and instance events by their service, config events
// when f names no service and their namespace is f's (or f has none).
func (f *Filter) MatchEvent(e *Event) bool {
	return f.MatchService(e.Namespace(), e.ServiceName())
}

// Match reports whether the instance (of service svc, which may be nil)
// passes the filter.
func (f *Filter) Match(in *Instance, svc *Service) bool {
	if !f.MatchService(in.Namespace, in.Service) {
		return false
	}
	if f.Zone != "" && in.Zone != f.Zone {
		return false
	}
	if f.Source != "" && in.Source != f.Source {
		return false
	}
	if f.Status != "" && in.EffectiveStatus() != f.Status {
		return false
	}
	if f.HealthyOnly && !in.Healthy() {
		return false
	}
	if f.Tag != "" && !slices.Contains(in.Tags, f.Tag) && (svc == nil || !slices.Contains(svc.Tags, f.Tag)) {
		return false
	}
	for k, v := range f.Meta {
		if mv, ok := in.Metadata[k]; !ok || mv != v {
			return false
		}
	}
	return true
}
