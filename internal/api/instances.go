package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/cairnhq/cairn/internal/registry"
)

type instanceBody struct {
	Revision int64              `json:"revision"`
	Instance *registry.Instance `json:"instance"`
}

type instancesBody struct {
	Revision  int64                `json:"revision"`
	Instances []*registry.Instance `json:"instances"`
}

// instanceInput is what a client may send when registering: the model minus
// the fields the server owns (health, times, revisions).
type instanceInput struct {
	ID             string              `json:"id"`
	Namespace      string              `json:"namespace"`
	Service        string              `json:"service"`
	Address        string              `json:"address"`
	Ports          []registry.Port     `json:"ports"`
	Zone           string              `json:"zone"`
	Region         string              `json:"region"`
	Cluster        string              `json:"cluster"`
	Weight         int                 `json:"weight"`
	Metadata       map[string]string   `json:"metadata"`
	Tags           []string            `json:"tags"`
	Source         string              `json:"source"`
	Status         registry.Status     `json:"status"`
	StatusOverride registry.Status     `json:"statusOverride"`
	TTL            registry.Duration   `json:"ttl"`
	RenewInterval  registry.Duration   `json:"renewInterval"`
	Check          *registry.CheckSpec `json:"check"`

	// Fields the server owns. They are accepted and ignored so that an
	// instance read from the API can be sent back as it is.
	Health         json.RawMessage `json:"health"`
	HealthOutput   json.RawMessage `json:"healthOutput"`
	RegisteredAt   json.RawMessage `json:"registeredAt"`
	LastRenewedAt  json.RawMessage `json:"lastRenewedAt"`
	CreateRevision json.RawMessage `json:"createRevision"`
	ModifyRevision json.RawMessage `json:"modifyRevision"`
}

func (in *instanceInput) model() registry.Instance {
	return registry.Instance{
		ID: in.ID, Namespace: in.Namespace, Service: in.Service, Address: in.Address, Ports: in.Ports,
		Zone: in.Zone, Region: in.Region, Cluster: in.Cluster, Weight: in.Weight, Metadata: in.Metadata,
		Tags: in.Tags, Source: in.Source, Status: in.Status, StatusOverride: in.StatusOverride,
		TTL: in.TTL, RenewInterval: in.RenewInterval, Check: in.Check,
	}
}

func decodeInstance(r *http.Request) (*instanceInput, error) {
	in := &instanceInput{TTL: registry.Duration(registry.DefaultTTL)} // absent ttl: the default lease
	if err := decodeBody(r, in); err != nil {
		return nil, err
	}
	return in, nil
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, in registry.Instance) {
	inst, rev, created, err := s.reg.Upsert(r.Context(), in)
	if err != nil {
		s.writeError(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeIndexed(w, code, rev, instanceBody{Revision: rev, Instance: inst})
}

func (s *Server) postInstance(w http.ResponseWriter, r *http.Request) {
	in, err := decodeInstance(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if in.ID == "" {
		in.ID = newID(in.Service)
	}
	s.register(w, r, in.model())
}

func newID(service string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	if service == "" || len(service) > 200 {
		return hex.EncodeToString(b[:])
	}
	return service + "-" + hex.EncodeToString(b[:])
}

// pathKey reads and validates the instance key from the path.
func pathKey(r *http.Request) (registry.InstanceKey, error) {
	k := registry.InstanceKey{Namespace: r.PathValue("ns"), Service: r.PathValue("svc"), ID: r.PathValue("id")}
	if fe := registry.ValidateName("namespace", k.Namespace); fe != nil {
		return k, fe
	}
	if fe := registry.ValidateName("service", k.Service); fe != nil {
		return k, fe
	}
	if k.ID != "" || strings.Contains(r.Pattern, "{id}") {
		if fe := registry.ValidateID("id", k.ID); fe != nil {
			return k, fe
		}
	}
	return k, nil
}

func (s *Server) putInstance(w http.ResponseWriter, r *http.Request) {
	k, err := pathKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	in, err := decodeInstance(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	for _, f := range []struct{ name, body, path string }{
		{"id", in.ID, k.ID}, {"namespace", in.Namespace, k.Namespace}, {"service", in.Service, k.Service},
	} {
		if f.body != "" && f.body != f.path {
			s.writeError(w, badRequest(f.name, "is %q in the body but %q in the path", f.body, f.path))
			return
		}
	}
	in.ID, in.Namespace, in.Service = k.ID, k.Namespace, k.Service
	s.register(w, r, in.model())
}

func (s *Server) getInstance(w http.ResponseWriter, r *http.Request) {
	k, err := pathKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	inst, rev, err := s.reg.Instance(k)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeIndexed(w, http.StatusOK, rev, instanceBody{Revision: rev, Instance: inst})
}

func (s *Server) deleteInstance(w http.ResponseWriter, r *http.Request) {
	k, err := pathKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	rev, err := s.reg.Deregister(r.Context(), k)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeRevision(w, rev)
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request) {
	k, err := pathKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if err := s.reg.Renew(k); err != nil {
		s.writeError(w, err)
		return
	}
	rev := s.reg.Revision()
	writeRevision(w, rev)
}

type statusInput struct {
	Status registry.Status `json:"status"`
}

func (s *Server) statusChange(w http.ResponseWriter, r *http.Request, clear bool,
	fn func(registry.InstanceKey, registry.Status) (*registry.Instance, int64, error)) {
	k, err := pathKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	st := registry.StatusUnknown
	if !clear {
		var in statusInput
		if err := decodeBody(r, &in); err != nil {
			s.writeError(w, err)
			return
		}
		if in.Status == "" {
			s.writeError(w, badRequest("status", "is required"))
			return
		}
		st = in.Status
	}
	inst, rev, err := fn(k, st)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeIndexed(w, http.StatusOK, rev, instanceBody{Revision: rev, Instance: inst})
}

func (s *Server) setStatus(w http.ResponseWriter, r *http.Request) {
	s.statusChange(w, r, false, func(k registry.InstanceKey, st registry.Status) (*registry.Instance, int64, error) {
		return s.reg.SetStatus(r.Context(), k, st)
	})
}

func (s *Server) setOverride(w http.ResponseWriter, r *http.Request) {
	s.statusChange(w, r, false, func(k registry.InstanceKey, st registry.Status) (*registry.Instance, int64, error) {
		return s.reg.SetOverride(r.Context(), k, st)
	})
}

func (s *Server) clearOverride(w http.ResponseWriter, r *http.Request) {
	s.statusChange(w, r, true, func(k registry.InstanceKey, st registry.Status) (*registry.Instance, int64, error) {
		return s.reg.ClearOverride(r.Context(), k)
	})
}

// instanceFilter reads the instance filters of docs/api.md from the query.
func instanceFilter(r *http.Request) (registry.Filter, error) {
	q := r.URL.Query()
	f := registry.Filter{
		Namespace: q.Get("namespace"), Service: q.Get("service"),
		Zone: q.Get("zone"), Tag: q.Get("tag"), Source: q.Get("source"),
	}
	if ns := r.PathValue("ns"); ns != "" {
		f.Namespace, f.Service = ns, r.PathValue("svc")
	}
	if f.Namespace != "" {
		if fe := registry.ValidateName("namespace", f.Namespace); fe != nil {
			return f, fe
		}
	}
	if f.Service != "" {
		if fe := registry.ValidateName("service", f.Service); fe != nil {
			return f, fe
		}
	}
	if v := q.Get("healthy"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, badRequest("healthy", "must be true or false")
		}
		f.HealthyOnly = b
	}
	if v := q.Get("status"); v != "" {
		st, fe := registry.ValidateStatus("status", registry.Status(v))
		if fe != nil {
			return f, fe
		}
		f.Status = st
	}
	for _, kv := range q["meta"] {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || k == "" {
			return f, badRequest("meta", "must be key:value, got %q", kv)
		}
		if f.Meta == nil {
			f.Meta = map[string]string{}
		}
		f.Meta[k] = v
	}
	return f, nil
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	f, err := instanceFilter(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if err := s.block(r, f); err != nil {
		s.writeError(w, err)
		return
	}
	insts, rev := s.reg.Instances(f)
	writeIndexed(w, http.StatusOK, rev, instancesBody{Revision: rev, Instances: insts})
}
