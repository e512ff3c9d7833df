package api

import (
	"net/http"
	"strconv"

	"github.com/cairnhq/cairn/internal/registry"
)

type servicesBody struct {
	Revision int64                  `json:"revision"`
	Services []registry.ServiceInfo `json:"services"`
}

type serviceBody struct {
	Revision  int64                `json:"revision"`
	Service   *registry.Service    `json:"service"`
	Instances []*registry.Instance `json:"instances,omitempty"`
}

func serviceKey(r *http.Request) (registry.ServiceKey, error) {
	k := registry.ServiceKey{Namespace: r.PathValue("ns"), Name: r.PathValue("svc")}
	if fe := registry.ValidateName("namespace", k.Namespace); fe != nil {
		return k, fe
	}
	if fe := registry.ValidateName("service", k.Name); fe != nil {
		return k, fe
	}
	return k, nil
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	f := registry.Filter{Namespace: r.URL.Query().Get("namespace"), Tag: r.URL.Query().Get("tag")}
	if f.Namespace != "" {
		if fe := registry.ValidateName("namespace", f.Namespace); fe != nil {
			s.writeError(w, fe)
			return
		}
	}
	if err := s.block(r, f); err != nil {
		s.writeError(w, err)
		return
	}
	svcs, rev := s.reg.Services(f)
	writeIndexed(w, http.StatusOK, rev, servicesBody{Revision: rev, Services: svcs})
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	k, err := serviceKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	f, err := instanceFilter(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if err := s.block(r, f); err != nil {
		s.writeError(w, err)
		return
	}
	svc, _, err := s.reg.Service(k)
	if err != nil {
		s.writeError(w, err)
		return
	}
	insts, rev := s.reg.Instances(f)
	writeIndexed(w, http.StatusOK, rev, serviceBody{Revision: rev, Service: svc, Instances: insts})
}

type serviceInput struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Metadata  map[string]string `json:"metadata"`
	Tags      []string          `json:"tags"`
}

func (s *Server) putService(w http.ResponseWriter, r *http.Request) {
	k, err := serviceKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	var in serviceInput
	if err := decodeBody(r, &in); err != nil {
		s.writeError(w, err)
		return
	}
	if in.Namespace != "" && in.Namespace != k.Namespace {
		s.writeError(w, badRequest("namespace", "is %q in the body but %q in the path", in.Namespace, k.Namespace))
		return
	}
	if in.Name != "" && in.Name != k.Name {
		s.writeError(w, badRequest("name", "is %q in the body but %q in the path", in.Name, k.Name))
		return
	}
	svc, rev, err := s.reg.PutService(r.Context(), registry.Service{Namespace: k.Namespace, Name: k.Name, Metadata: in.Metadata, Tags: in.Tags})
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeIndexed(w, http.StatusOK, rev, serviceBody{Revision: rev, Service: svc})
}

func (s *Server) deleteService(w http.ResponseWriter, r *http.Request) {
	k, err := serviceKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	cascade := false
	if v := r.URL.Query().Get("cascade"); v != "" {
		if cascade, err = strconv.ParseBool(v); err != nil {
			s.writeError(w, badRequest("cascade", "must be true or false"))
			return
		}
	}
	rev, err := s.reg.DeleteService(r.Context(), k, cascade)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeRevision(w, rev)
}

type statusBody struct {
	Revision         int64                     `json:"revision"`
	Services         int                       `json:"services"`
	Instances        int                       `json:"instances"`
	Healthy          int                       `json:"healthy"`
	Configs          int                       `json:"configs"`
	SelfPreservation registry.SelfPreservation `json:"selfPreservation"`
	Feed             feedStatus                `json:"feed"`
}

type feedStatus struct {
	Head        int64 `json:"head"`
	Oldest      int64 `json:"oldest"`
	Subscribers int64 `json:"subscribers"`
	MaxLag      int64 `json:"maxLag"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := s.reg.Stats()
	feed := s.reg.Feed()
	subs, lag := feed.Subscribers()
	body := statusBody{
		Revision: st.Revision, Services: st.Services, Instances: st.Instances, Healthy: st.Healthy,
		Configs: st.Configs, SelfPreservation: st.SelfPreservation,
		Feed: feedStatus{Head: feed.Head(), Oldest: feed.Oldest(), Subscribers: subs, MaxLag: lag},
	}
	writeIndexed(w, http.StatusOK, st.Revision, body)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	sp := s.reg.SelfPreservationState()
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "revision": s.reg.Revision(), "selfPreservation": sp.Active})
}
