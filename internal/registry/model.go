// Package registry is Cairn's core: services, instances, leases, health and
// the revisioned change feed that every reader follows.
//
//	writers ──> Registry (validate, lease, health) ──> store.Log (durable) ──> Feed ──> readers
//
// Values handed out by the registry (*Service, *Instance inside events and
// snapshots) are immutable: a change replaces the pointer, it never mutates
// the pointee. Readers may keep them without copying.
package registry

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"time"
)

// Status is what an instance says about itself (or what an operator forces
// through an override). The names are Eureka's, so Eureka clients map 1:1.
type Status string

const (
	StatusUp           Status = "UP"
	StatusDown         Status = "DOWN"
	StatusStarting     Status = "STARTING"
	StatusOutOfService Status = "OUT_OF_SERVICE"
	StatusUnknown      Status = "UNKNOWN"
)

// Valid reports whether s is one of the five statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusUp, StatusDown, StatusStarting, StatusOutOfService, StatusUnknown:
		return true
	}
	return false
}

// Health is the result of active health checking, kept apart from Status:
// an instance may say UP while its check fails.
type Health string

const (
	// HealthNone: the instance has no active check.
	HealthNone Health = "none"
	// HealthUnknown: a check is configured but has not produced a verdict.
	HealthUnknown Health = "unknown"
	HealthPassing Health = "passing"
	HealthFailing Health = "failing"
)

// Port is a named port. Names follow DNS label rules so that SRV names
// (_name._tcp.service...) can be built from them.
type Port struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"` // tcp, udp, http, https, http2, grpc
}

// ServiceKey names a service.
type ServiceKey struct {
	Namespace string
	Name      string
}

func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

// InstanceKey names an instance. IDs are unique within a service.
type InstanceKey struct {
	Namespace string
	Service   string
	ID        string
}

func (k InstanceKey) String() string { return k.Namespace + "/" + k.Service + "/" + k.ID }

// ServiceKey returns the key of the instance's service.
func (k InstanceKey) ServiceKey() ServiceKey {
	return ServiceKey{Namespace: k.Namespace, Name: k.Service}
}

// Service groups instances. A service created implicitly by the first
// registration of an instance disappears with its last instance; one created
// explicitly (PUT) stays until deleted.
type Service struct {
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Tags           []string          `json:"tags,omitempty"`
	Explicit       bool              `json:"explicit,omitempty"`
	CreateRevision int64             `json:"createRevision"`
	ModifyRevision int64             `json:"modifyRevision"`
}

// Key returns the service's key.
func (s *Service) Key() ServiceKey { return ServiceKey{Namespace: s.Namespace, Name: s.Name} }

// CheckSpec configures active health checking of an instance.
type CheckSpec struct {
	Type               string   `json:"type"`                  // http, https, tcp, grpc
	Port               string   `json:"port,omitempty"`        // a port name; default the first port
	Path               string   `json:"path,omitempty"`        // http(s): request path, default "/"
	GRPCService        string   `json:"grpcService,omitempty"` // grpc: service name for grpc.health.v1
	Interval           Duration `json:"interval,omitempty"`
	Timeout            Duration `json:"timeout,omitempty"`
	HealthyThreshold   int      `json:"healthyThreshold,omitempty"`
	UnhealthyThreshold int      `json:"unhealthyThreshold,omitempty"`
	TLSSkipVerify      bool     `json:"tlsSkipVerify,omitempty"`
}

// Instance is one endpoint of a service.
type Instance struct {
	ID        string            `json:"id"`
	Namespace string            `json:"namespace"`
	Service   string            `json:"service"`
	Address   string            `json:"address"`
	Ports     []Port            `json:"ports,omitempty"`
	Zone      string            `json:"zone,omitempty"`
	Region    string            `json:"region,omitempty"`
	Cluster   string            `json:"cluster,omitempty"`
	Weight    int               `json:"weight"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Tags      []string          `json:"tags,omitempty"`
	Source    string            `json:"source"`

	// Status is what the instance reports; StatusOverride, when set, is what
	// an operator forced and wins (Eureka's overriddenStatus).
	Status         Status `json:"status"`
	StatusOverride Status `json:"statusOverride,omitempty"`

	// TTL is the lease duration; zero means no lease (the instance stays
	// until deregistered, as sources like Kubernetes manage lifecycle).
	TTL           Duration `json:"ttl"`
	RenewInterval Duration `json:"renewInterval,omitempty"`

	Check        *CheckSpec `json:"check,omitempty"`
	Health       Health     `json:"health"`
	HealthOutput string     `json:"healthOutput,omitempty"`

	RegisteredAt   time.Time `json:"registeredAt"`
	LastRenewedAt  time.Time `json:"lastRenewedAt"`
	CreateRevision int64     `json:"createRevision"`
	ModifyRevision int64     `json:"modifyRevision"`
}

// Key returns the instance's key.
func (in *Instance) Key() InstanceKey {
	return InstanceKey{Namespace: in.Namespace, Service: in.Service, ID: in.ID}
}

// clone returns a copy sharing no slices, maps or pointers with in.
func (in Instance) clone() Instance {
	in.Ports = slices.Clone(in.Ports)
	in.Tags = slices.Clone(in.Tags)
	in.Metadata = maps.Clone(in.Metadata)
	if in.Check != nil {
		c := *in.Check
		in.Check = &c
	}
	return in
}

// EffectiveStatus follows Eureka's override rules: an instance that says
// it is DOWN or STARTING is believed (an override cannot force a broken
// instance UP); otherwise the override wins when one is set; otherwise the
// reported status.
func (in *Instance) EffectiveStatus() Status {
	if in.Status == StatusDown || in.Status == StatusStarting {
		return in.Status
	}
	if in.StatusOverride != "" {
		return in.StatusOverride
	}
	return in.Status
}

// Healthy reports whether the instance should receive traffic: its effective
// status is UP and its active check (if any) has passed.
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

// Duration is a time.Duration that reads and writes JSON as "10s"; a bare
// number is read as seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "30s" or a number of seconds. Errors are
// *json.UnmarshalTypeError so that decoders report the field's path.
func (d *Duration) UnmarshalJSON(b []byte) error {
	bad := &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[Duration]()}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return bad
		}
		v, err := ParseDuration(s)
		if err != nil {
			return bad
		}
		*d = Duration(v)
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < 0 || f > 1e9 {
		return bad
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// ParseDuration parses "30s", "1m30s" or a plain number of seconds.
func ParseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > 1e9 {
			return 0, fmt.Errorf("duration out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration must not be negative")
	}
	return v, nil
}
