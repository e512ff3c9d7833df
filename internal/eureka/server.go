// Package eureka serves Netflix Eureka's REST API from Cairn's registry, so
// that Eureka clients (Spring Cloud Netflix, fargo, eureka-js-client, ...)
// register and discover unchanged. There is one registry: an instance
// registered here is an ordinary Cairn instance, and every Cairn instance is
// shown to Eureka clients (mapping.go has the mapping).
//
// Eureka's own server answers reads from a response cache refreshed every
// 30 s; here reads come from a view that follows the change feed, so a
// registration is in the very next /apps or /apps/delta answer.
package eureka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures the Eureka API.
type Options struct {
	Registry *registry.Registry
	// Namespace is where apps registered by Eureka clients live, and whose
	// services Eureka clients see under their bare names (default "default").
	// Services of other namespaces appear as NAME.NAMESPACE.
	Namespace string
	// DeltaWindow is how long a change stays in /apps/delta (Eureka's
	// retentionTimeInMSInDeltaQueue, default 3m).
	DeltaWindow time.Duration
	Logger      *slog.Logger
	// Metrics, when set, gets the Eureka view's metrics.
	Metrics prometheus.Registerer
}

// Server is the Eureka API. Mount its routes on Cairn's HTTP mux and run it.
type Server struct {
	reg  *registry.Registry
	ns   string
	log  *slog.Logger
	view *view
}

// maxBody bounds a registration body; Eureka's are about 2 KB.
const maxBody = 256 << 10

// New returns the Eureka API over reg.
func New(o Options) *Server {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.DeltaWindow <= 0 {
		o.DeltaWindow = 3 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{reg: o.Registry, ns: o.Namespace, log: o.Logger.With("component", "eureka"),
		view: newView(o.Registry, o.Namespace, o.DeltaWindow)}
	if o.Metrics != nil {
		o.Metrics.MustRegister(s.view.encodes, viewCollector{s.view})
	}
	return s
}

// viewCollector reports the view's state at scrape time.
type viewCollector struct{ v *view }

var (
	descRebuilds = prometheus.NewDesc("cairn_eureka_view_rebuilds_total",
		"Times the Eureka view reloaded the registry from a snapshot (at start, or after falling behind the change feed).", nil, nil)
	descRecent = prometheus.NewDesc("cairn_eureka_delta_instances",
		"Instances with a change in the /apps/delta window.", nil, nil)
	descApps = prometheus.NewDesc("cairn_eureka_apps",
		"Applications shown to Eureka clients.", nil, nil)
)

func (c viewCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRebuilds
	ch <- descRecent
	ch <- descApps
}

func (c viewCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.v
	v.mu.Lock()
	rebuilds, recent, apps := v.rebuilds, len(v.latest), len(v.apps)
	v.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descRebuilds, prometheus.CounterValue, float64(rebuilds))
	ch <- prometheus.MustNewConstMetric(descRecent, prometheus.GaugeValue, float64(recent))
	ch <- prometheus.MustNewConstMetric(descApps, prometheus.GaugeValue, float64(apps))
}

// Run keeps the view following the registry until ctx ends.
func (s *Server) Run(ctx context.Context) { s.view.run(ctx) }

// Mount adds the Eureka routes under /eureka/v2/ (Netflix's path) and
// /eureka/ (Spring Cloud's).
func (s *Server) Mount(mux *http.ServeMux) {
	for _, p := range []string{"/eureka/v2", "/eureka"} {
		mux.HandleFunc("POST "+p+"/apps/{app}", s.register)
		mux.HandleFunc("PUT "+p+"/apps/{app}/{id}", s.instanceOp(s.renew))
		mux.HandleFunc("DELETE "+p+"/apps/{app}/{id}", s.instanceOp(s.cancel))
		mux.HandleFunc("PUT "+p+"/apps/{app}/{id}/status", s.instanceOp(s.setOverride))
		mux.HandleFunc("DELETE "+p+"/apps/{app}/{id}/status", s.instanceOp(s.clearOverride))
		mux.HandleFunc("PUT "+p+"/apps/{app}/{id}/metadata", s.instanceOp(s.updateMetadata))
		mux.HandleFunc("GET "+p+"/apps", s.getApps)
		mux.HandleFunc("GET "+p+"/apps/{$}", s.getApps) // Spring Cloud and eureka-js-client ask with the slash
		mux.HandleFunc("GET "+p+"/apps/delta", s.getDelta)
		mux.HandleFunc("GET "+p+"/apps/{app}", s.getApp)
		mux.HandleFunc("GET "+p+"/apps/{app}/{id}", s.getInstance)
		mux.HandleFunc("GET "+p+"/instances/{id}", s.getInstanceByID)
		mux.HandleFunc("GET "+p+"/vips/{vip}", s.getVIP)
		mux.HandleFunc("GET "+p+"/svips/{svip}", s.getSVIP)
	}
}

// ---- writes ----

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	pathApp := r.PathValue("app")
	k, fe := serviceOf(s.ns, pathApp)
	if fe != nil {
		writeError(w, fe)
		return
	}
	wi, err := readInstance(r)
	if err != nil {
		writeError(w, err)
		return
	}
	in, err := toInstance(wi, pathApp, k, s.view.defaultVIP(k))
	if err != nil {
		writeError(w, err)
		return
	}
	// Netflix keeps the registered instance when it is dirtier (newer) than
	// the registrant: a late registration must not undo a newer one.
	if cur, _, err := s.reg.Instance(in.Key()); err == nil && wi.LastDirty > 0 && lastDirty(cur) > wi.LastDirty {
		_ = s.reg.Renew(in.Key())
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if _, _, _, err := s.reg.Upsert(r.Context(), in); err != nil {
		writeError(w, eurekaField(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readInstance reads a JSON or XML registration body.
func readInstance(r *http.Request) (*wireInstance, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &httpError{code: http.StatusRequestEntityTooLarge, field: "body", msg: fmt.Sprintf("must be at most %d bytes", maxBody)}
		}
		return nil, &httpError{code: http.StatusBadRequest, field: "body", msg: "could not be read: " + err.Error()}
	}
	isXML := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			return nil, &httpError{code: http.StatusUnsupportedMediaType, field: "Content-Type", msg: "must be application/json or application/xml"}
		case strings.Contains(mt, "json"):
		case strings.Contains(mt, "xml"):
			isXML = true
		default:
			return nil, &httpError{code: http.StatusUnsupportedMediaType, field: "Content-Type", msg: "must be application/json or application/xml, not " + mt}
		}
	} else {
		t := strings.TrimSpace(string(body[:min(len(body), 64)]))
		isXML = strings.HasPrefix(t, "<")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, &httpError{code: http.StatusBadRequest, field: "body", msg: "is empty; an instance is required"}
	}
	if isXML {
		return decodeXMLInstance(body)
	}
	return decodeJSONInstance(body)
}

// instanceKey maps the path's app and id to an instance key; ok is false
// when the app cannot name a Cairn service (so no such instance exists).
func (s *Server) instanceKey(r *http.Request) (registry.InstanceKey, bool) {
	k, fe := serviceOf(s.ns, r.PathValue("app"))
	if fe != nil {
		return registry.InstanceKey{}, false
	}
	return registry.InstanceKey{Namespace: k.Namespace, Service: k.Name, ID: r.PathValue("id")}, true
}

// instanceOp serves a write to one instance (/apps/{app}/{id}...): 404
// when the app names no service, the error's status when op fails, else
// 200 with no body, as Netflix's server answers.
func (s *Server) instanceOp(op func(r *http.Request, k registry.InstanceKey) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k, ok := s.instanceKey(r)
		if !ok {
			writeNotFound(w, r)
			return
		}
		if err := op(r, k); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

func (s *Server) renew(r *http.Request, k registry.InstanceKey) error {
	var clientDirty int64
	if v := r.URL.Query().Get("lastDirtyTimestamp"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return &httpError{code: http.StatusBadRequest, field: "lastDirtyTimestamp", msg: "must be a number of milliseconds"}
		}
		clientDirty = n
	}
	if err := s.reg.Renew(k); err != nil {
		return err // 404: the client registers again
	}
	if clientDirty > 0 {
		// The client changed since it registered: a 404 makes it register
		// again with its new data, as Netflix's server does.
		if in, _, err := s.reg.Instance(k); err == nil && in.Source == sourceEureka && clientDirty > lastDirty(in) {
			return &httpError{code: http.StatusNotFound, field: "lastDirtyTimestamp",
				msg: "the client's instance is newer than the registered one; register again"}
		}
	}
	return nil
}

func (s *Server) cancel(r *http.Request, k registry.InstanceKey) error {
	_, err := s.reg.Deregister(r.Context(), k)
	return err
}

func (s *Server) setOverride(r *http.Request, k registry.InstanceKey) error {
	v := r.URL.Query().Get("value")
	if v == "" {
		return &registry.FieldError{Field: "value", Message: "is required: UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN"}
	}
	st, fe := registry.ValidateStatus("value", registry.Status(strings.ToUpper(v)))
	if fe != nil {
		return fe
	}
	_, _, err := s.reg.SetOverride(r.Context(), k, st)
	return err
}

func (s *Server) clearOverride(r *http.Request, k registry.InstanceKey) error {
	st := registry.Status(strings.ToUpper(r.URL.Query().Get("value")))
	_, _, err := s.reg.ResetOverride(r.Context(), k, st)
	return err
}

func (s *Server) updateMetadata(r *http.Request, k registry.InstanceKey) error {
	q := r.URL.Query()
	set := make(map[string]string, len(q))
	for mk, vs := range q {
		if strings.HasPrefix(mk, metaPrefix) {
			return &registry.FieldError{Field: mk, Message: fmt.Sprintf("keys starting with %q are reserved for the Eureka mapping", metaPrefix)}
		}
		set[mk] = vs[len(vs)-1]
	}
	_, _, err := s.reg.MergeMetadata(r.Context(), k, set)
	return err
}

// ---- reads ----

// negotiate picks JSON when Accept mentions json, else XML (Eureka's
// default), and gzip when the client accepts it.
func negotiate(r *http.Request) (format, bool) {
	f := formatXML
	if strings.Contains(strings.ToLower(r.Header.Get("Accept")), "json") {
		f = formatJSON
	}
	return f, acceptsGzip(r.Header.Get("Accept-Encoding"))
}

func acceptsGzip(h string) bool {
	for h != "" {
		var part string
		part, h, _ = strings.Cut(h, ",")
		name, params, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

func writeDoc(w http.ResponseWriter, f format, gz bool, body parts) {
	h := w.Header()
	if f == formatJSON {
		h.Set("Content-Type", "application/json")
	} else {
		h.Set("Content-Type", "application/xml")
	}
	h.Set("Vary", "Accept, Accept-Encoding")
	if gz {
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(body.size))
	w.WriteHeader(http.StatusOK)
	for _, b := range body.bufs {
		if _, err := w.Write(b); err != nil {
			return // the client went away
		}
	}
}

func (s *Server) getApps(w http.ResponseWriter, r *http.Request) {
	f, gz := negotiate(r)
	writeDoc(w, f, gz, s.view.full(f, gz))
}

func (s *Server) getDelta(w http.ResponseWriter, r *http.Request) {
	f, gz := negotiate(r)
	writeDoc(w, f, gz, s.view.delta(f, gz))
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	f, gz := negotiate(r)
	s.answer(w, r, f, gz)(s.view.app(strings.ToUpper(r.PathValue("app")), f, gz))
}

func (s *Server) getInstance(w http.ResponseWriter, r *http.Request) {
	f, gz := negotiate(r)
	s.answer(w, r, f, gz)(s.view.instance(strings.ToUpper(r.PathValue("app")), r.PathValue("id"), f, gz))
}

func (s *Server) getInstanceByID(w http.ResponseWriter, r *http.Request) {
	f, gz := negotiate(r)
	s.answer(w, r, f, gz)(s.view.instanceByID(r.PathValue("id"), f, gz))
}

func (s *Server) getVIP(w http.ResponseWriter, r *http.Request) {
	s.vips(w, r, r.PathValue("vip"), false)
}
func (s *Server) getSVIP(w http.ResponseWriter, r *http.Request) {
	s.vips(w, r, r.PathValue("svip"), true)
}

func (s *Server) vips(w http.ResponseWriter, r *http.Request, addr string, secure bool) {
	f, gz := negotiate(r)
	writeDoc(w, f, gz, s.view.vip(addr, secure, f, gz))
}

// answer writes a document, or a 404 when there is none.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, f format, gz bool) func(parts, bool) {
	return func(body parts, ok bool) {
		if !ok {
			writeNotFound(w, r)
			return
		}
		writeDoc(w, f, gz, body)
	}
}

// ---- errors ----

// httpError is a request the client got wrong, with its status code.
type httpError struct {
	code  int
	field string
	msg   string
}

func (e *httpError) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// writeError answers with the status code Eureka's server gives and a JSON
// body naming the field, like the rest of Cairn's API. A 404 has no body,
// as from Netflix's server: Spring Cloud's client decodes any body of a
// heartbeat's answer as an instance, and one it cannot decode turns the 404
// (register again) into an error (retry later). The reason goes in the
// X-Cairn-Error header instead.
func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	var fe *registry.FieldError
	var de *decodeError
	code, body := http.StatusInternalServerError, errorBody{Error: "internal error"}
	switch {
	case errors.As(err, &he):
		code, body = he.code, errorBody{Error: he.Error(), Field: he.field}
	case errors.As(err, &fe):
		code, body = http.StatusBadRequest, errorBody{Error: fe.Error(), Field: fe.Field}
	case errors.As(err, &de):
		code, body = http.StatusBadRequest, errorBody{Error: de.Error(), Field: de.Field}
	case errors.Is(err, registry.ErrNotFound):
		code, body = http.StatusNotFound, errorBody{Error: strings.TrimPrefix(err.Error(), "registry: ")}
	case errors.Is(err, registry.ErrUnavailable), errors.Is(err, registry.ErrClosed):
		w.Header().Set("Retry-After", "1")
		code, body = http.StatusServiceUnavailable, errorBody{Error: err.Error()}
	default:
		slog.Error("eureka request failed", "err", err)
	}
	if code == http.StatusNotFound {
		w.Header().Set("X-Cairn-Error", body.Error)
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func writeNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, &httpError{code: http.StatusNotFound, msg: "not found: " + r.URL.Path})
}
