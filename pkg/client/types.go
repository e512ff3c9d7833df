package client

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Status is what an instance reports about itself, or what an operator
// forces through an override. The names are Eureka's.
type Status string

// The five statuses.
const (
	StatusUp           Status = "UP"
	StatusDown         Status = "DOWN"
	StatusStarting     Status = "STARTING"
	StatusOutOfService Status = "OUT_OF_SERVICE"
	StatusUnknown      Status = "UNKNOWN"
)

// Valid reports whether s is one of the five statuses (exact, upper case).
func (s Status) Valid() bool {
	switch s {
	case StatusUp, StatusDown, StatusStarting, StatusOutOfService, StatusUnknown:
		return true
	}
	return false
}

// Health is the verdict of active health checking, kept apart from Status.
type Health string

// The health verdicts.
const (
	HealthNone    Health = "none"    // no active check
	HealthUnknown Health = "unknown" // a check is configured but has not run yet
	HealthPassing Health = "passing"
	HealthFailing Health = "failing"
)

// NoLease, as an Instance's TTL, asks for an instance without a lease: it
// stays until deregistered. (A zero TTL asks for the server's default lease,
// 90s.) Instances read from the server carry NoLease when they have no lease.
const NoLease time.Duration = -1

// Port is a named port of an instance.
type Port struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"` // tcp, udp, http, https, http2, grpc
}

// CheckSpec configures active health checking of an instance.
type CheckSpec struct {
	Type               string        `json:"type"`                  // http, https, tcp, grpc
	Port               string        `json:"port,omitempty"`        // port name; default the first port
	Path               string        `json:"path,omitempty"`        // http(s) request path, default "/"
	GRPCService        string        `json:"grpcService,omitempty"` // grpc.health.v1 service name
	Interval           time.Duration `json:"interval,omitempty"`
	Timeout            time.Duration `json:"timeout,omitempty"`
	HealthyThreshold   int           `json:"healthyThreshold,omitempty"`
	UnhealthyThreshold int           `json:"unhealthyThreshold,omitempty"`
	TLSSkipVerify      bool          `json:"tlsSkipVerify,omitempty"`
}

// checkWire is CheckSpec with its durations in the API's JSON form.
type checkWire struct {
	Type               string   `json:"type"`
	Port               string   `json:"port,omitempty"`
	Path               string   `json:"path,omitempty"`
	GRPCService        string   `json:"grpcService,omitempty"`
	Interval           Duration `json:"interval,omitempty"`
	Timeout            Duration `json:"timeout,omitempty"`
	HealthyThreshold   int      `json:"healthyThreshold,omitempty"`
	UnhealthyThreshold int      `json:"unhealthyThreshold,omitempty"`
	TLSSkipVerify      bool     `json:"tlsSkipVerify,omitempty"`
}

// MarshalJSON writes the durations as strings ("10s").
func (c CheckSpec) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkWire{c.Type, c.Port, c.Path, c.GRPCService, Duration(c.Interval), Duration(c.Timeout),
		c.HealthyThreshold, c.UnhealthyThreshold, c.TLSSkipVerify})
}

// UnmarshalJSON reads durations as strings or numbers of seconds.
func (c *CheckSpec) UnmarshalJSON(b []byte) error {
	var w checkWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = CheckSpec{w.Type, w.Port, w.Path, w.GRPCService, time.Duration(w.Interval), time.Duration(w.Timeout),
		w.HealthyThreshold, w.UnhealthyThreshold, w.TLSSkipVerify}
	return nil
}

// Key names an instance: IDs are unique within a service.
type Key struct {
	Namespace string
	Service   string
	ID        string
}

// String returns "namespace/service/id".
func (k Key) String() string { return k.Namespace + "/" + k.Service + "/" + k.ID }

// Instance is one endpoint of a service.
//
// On registration the server owns Health, HealthOutput, the times and the
// revisions (they are not sent). TTL: zero asks for the default lease (90s),
// NoLease for none.
type Instance struct {
	ID        string            `json:"id"`
	Namespace string            `json:"namespace"`
	Service   string            `json:"service"`
	Address   string            `json:"address"`
	Ports     []Port            `json:"ports,omitempty"`
	Zone      string            `json:"zone,omitempty"`
	Region    string            `json:"region,omitempty"`
	Cluster   string            `json:"cluster,omitempty"`
	Weight    int               `json:"weight,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Tags      []string          `json:"tags,omitempty"`
	Source    string            `json:"source,omitempty"`

	Status         Status `json:"status,omitempty"`
	StatusOverride Status `json:"statusOverride,omitempty"`

	TTL           time.Duration `json:"ttl"`
	RenewInterval time.Duration `json:"renewInterval,omitempty"`

	Check        *CheckSpec `json:"check,omitempty"`
	Health       Health     `json:"health,omitempty"`
	HealthOutput string     `json:"healthOutput,omitempty"`

	RegisteredAt   time.Time `json:"registeredAt,omitzero"`
	LastRenewedAt  time.Time `json:"lastRenewedAt,omitzero"`
	CreateRevision int64     `json:"createRevision,omitempty"`
	ModifyRevision int64     `json:"modifyRevision,omitempty"`
}

// instanceWire is Instance in the API's JSON form: the fields in the
// order of docs/api.md, durations as strings.
type instanceWire struct {
	ID             string            `json:"id,omitempty"`
	Namespace      string            `json:"namespace,omitempty"`
	Service        string            `json:"service"`
	Address        string            `json:"address"`
	Ports          []Port            `json:"ports,omitempty"`
	Zone           string            `json:"zone,omitempty"`
	Region         string            `json:"region,omitempty"`
	Cluster        string            `json:"cluster,omitempty"`
	Weight         int               `json:"weight,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Tags           []string          `json:"tags,omitempty"`
	Source         string            `json:"source,omitempty"`
	Status         Status            `json:"status,omitempty"`
	StatusOverride Status            `json:"statusOverride,omitempty"`
	TTL            *Duration         `json:"ttl,omitempty"`
	RenewInterval  Duration          `json:"renewInterval,omitempty"`
	Check          *CheckSpec        `json:"check,omitempty"`
	Health         Health            `json:"health,omitempty"`
	HealthOutput   string            `json:"healthOutput,omitempty"`
	RegisteredAt   time.Time         `json:"registeredAt,omitzero"`
	LastRenewedAt  time.Time         `json:"lastRenewedAt,omitzero"`
	CreateRevision int64             `json:"createRevision,omitempty"`
	ModifyRevision int64             `json:"modifyRevision,omitempty"`
}

// MarshalJSON writes durations as strings; NoLease is written "0s" and a
// zero TTL (the default) is left out.
func (in Instance) MarshalJSON() ([]byte, error) {
	return json.Marshal(instanceWire{
		ID: in.ID, Namespace: in.Namespace, Service: in.Service, Address: in.Address, Ports: in.Ports,
		Zone: in.Zone, Region: in.Region, Cluster: in.Cluster, Weight: in.Weight, Metadata: in.Metadata,
		Tags: in.Tags, Source: in.Source, Status: in.Status, StatusOverride: in.StatusOverride,
		TTL: ttlWire(in.TTL), RenewInterval: Duration(in.RenewInterval), Check: in.Check,
		Health: in.Health, HealthOutput: in.HealthOutput, RegisteredAt: in.RegisteredAt,
		LastRenewedAt: in.LastRenewedAt, CreateRevision: in.CreateRevision, ModifyRevision: in.ModifyRevision,
	})
}

// UnmarshalJSON reads durations as strings or numbers of seconds; a TTL of
// zero (no lease) becomes NoLease.
func (in *Instance) UnmarshalJSON(b []byte) error {
	var w instanceWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*in = Instance{
		ID: w.ID, Namespace: w.Namespace, Service: w.Service, Address: w.Address, Ports: w.Ports,
		Zone: w.Zone, Region: w.Region, Cluster: w.Cluster, Weight: w.Weight, Metadata: w.Metadata,
		Tags: w.Tags, Source: w.Source, Status: w.Status, StatusOverride: w.StatusOverride,
		RenewInterval: time.Duration(w.RenewInterval), Check: w.Check,
		Health: w.Health, HealthOutput: w.HealthOutput, RegisteredAt: w.RegisteredAt,
		LastRenewedAt: w.LastRenewedAt, CreateRevision: w.CreateRevision, ModifyRevision: w.ModifyRevision,
	}
	if w.TTL != nil {
		in.TTL = time.Duration(*w.TTL)
		if in.TTL == 0 {
			in.TTL = NoLease
		}
	}
	return nil
}

func ttlWire(ttl time.Duration) *Duration {
	switch {
	case ttl == NoLease:
		d := Duration(0)
		return &d
	case ttl == 0:
		return nil
	}
	d := Duration(ttl)
	return &d
}

// Key returns the instance's key, with the default namespace when unset.
func (in *Instance) Key() Key {
	ns := in.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return Key{Namespace: ns, Service: in.Service, ID: in.ID}
}

// EffectiveStatus mirrors the server's rule (Eureka's): a reported DOWN or
// STARTING wins; otherwise the override when set; otherwise the status.
func (in *Instance) EffectiveStatus() Status {
	if in.Status == StatusDown || in.Status == StatusStarting {
		return in.Status
	}
	if in.StatusOverride != "" {
		return in.StatusOverride
	}
	return in.Status
}

// Healthy reports whether the instance should get traffic: its effective
// status is UP and its health is passing or none.
func (in *Instance) Healthy() bool {
	return in.EffectiveStatus() == StatusUp && (in.Health == HealthPassing || in.Health == HealthNone)
}

// PortNamed returns the port with the given name.
func (in *Instance) PortNamed(name string) (Port, bool) {
	for _, p := range in.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

// Clone returns a deep copy: the copy shares no slice, map or pointer with in.
func (in *Instance) Clone() Instance {
	c := *in
	c.Ports = slices.Clone(in.Ports)
	c.Metadata = maps.Clone(in.Metadata)
	c.Tags = slices.Clone(in.Tags)
	if in.Check != nil {
		chk := *in.Check
		c.Check = &chk
	}
	return c
}

// DefaultNamespace is the namespace of names given without one.
const DefaultNamespace = "default"

// Service groups instances. One created by its first instance disappears
// with its last; one created with PutService (Explicit) stays until deleted.
type Service struct {
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Tags           []string          `json:"tags,omitempty"`
	Explicit       bool              `json:"explicit,omitempty"`
	CreateRevision int64             `json:"createRevision,omitempty"`
	ModifyRevision int64             `json:"modifyRevision,omitempty"`
}

// Clone returns a deep copy.
func (s *Service) Clone() Service {
	c := *s
	c.Metadata = maps.Clone(s.Metadata)
	c.Tags = slices.Clone(s.Tags)
	return c
}

// ServiceInfo is a service with its instance counts, as listed by Services.
type ServiceInfo struct {
	Service
	Instances int `json:"instances"`
	Healthy   int `json:"healthy"`
}

// EventType says what happened to an object.
type EventType string

// The event types.
const (
	EventAdded    EventType = "ADDED"
	EventModified EventType = "MODIFIED"
	EventDeleted  EventType = "DELETED"
)

// Kind is the kind of object an event carries.
type Kind string

// The kinds of objects.
const (
	KindService  Kind = "service"
	KindInstance Kind = "instance"
	KindConfig   Kind = "config" // a ConfigDocument (a Route, ...)
)

// Event is one change of the watch stream. Exactly one of Service,
// Instance and Config is set, as Kind says; for a deletion it is the
// object's last state. Several events may share a revision (a registration
// that creates its service, an apply of several documents).
type Event struct {
	Revision int64           `json:"revision"`
	Type     EventType       `json:"type"`
	Kind     Kind            `json:"kind"`
	Reason   string          `json:"reason,omitempty"` // register, deregister, evict, override, status, health, delete-service, put, apply, delete
	Service  *Service        `json:"service,omitempty"`
	Instance *Instance       `json:"instance,omitempty"`
	Config   *ConfigDocument `json:"config,omitempty"`
}

// Snapshot is the whole state (within the watch's scope) at one revision.
// Resync is true when it replaces a state the reader already had: the
// reader fell behind what the server's feed holds, or the server restarted.
//
// Configs holds the config documents of the watch's namespace (all of them
// without one); a watch of one service gets none.
type Snapshot struct {
	Epoch     string           `json:"epoch,omitempty"`
	Revision  int64            `json:"revision"`
	Resync    bool             `json:"resync"`
	Services  []*Service       `json:"services"`
	Instances []*Instance      `json:"instances"`
	Configs   []ConfigDocument `json:"configs"`
}

// ServerStatus is the answer of GET /v1/status.
type ServerStatus struct {
	Revision         int64            `json:"revision"`
	Services         int              `json:"services"`
	Instances        int              `json:"instances"`
	Healthy          int              `json:"healthy"`
	Configs          int              `json:"configs"` // config documents
	SelfPreservation SelfPreservation `json:"selfPreservation"`
	Feed             FeedStatus       `json:"feed"`
}

// SelfPreservation says whether the server has paused evictions and why.
type SelfPreservation struct {
	Enabled            bool    `json:"enabled"`
	Active             bool    `json:"active"`
	Threshold          float64 `json:"threshold"`
	ExpectedRenewals   int64   `json:"expectedRenewals"`
	RenewalsLastWindow int64   `json:"renewalsLastWindow"`
	WindowSeconds      float64 `json:"windowSeconds"`
}

// FeedStatus describes the server's change feed.
type FeedStatus struct {
	Head        int64 `json:"head"`
	Oldest      int64 `json:"oldest"`
	Subscribers int64 `json:"subscribers"`
	MaxLag      int64 `json:"maxLag"`
}
