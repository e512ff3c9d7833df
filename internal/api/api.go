// Package api serves Cairn's native HTTP JSON API (docs/api.md): the
// registry's writes, reads with blocking queries, the SSE watch stream,
// Prometheus service discovery, /health and /metrics.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures the API server.
type Options struct {
	Registry *registry.Registry
	Logger   *slog.Logger
	// Metrics is the Prometheus registry /metrics serves; nil makes one.
	Metrics *prometheus.Registry
	// Mount adds routes of other components (Eureka, console, ...) to the mux.
	Mount func(mux *http.ServeMux)
	// PingInterval is the watch stream's keep-alive period (default 15s).
	PingInterval time.Duration
}

// Server is the API's http.Handler.
type Server struct {
	reg *registry.Registry
	log *slog.Logger
	mux *http.ServeMux // routes plus the JSON catch-all
	// routesOnly holds the same routes without the catch-all, to tell 404
	// from 405 for unmatched requests.
	routesOnly *http.ServeMux
	metrics    *metrics
	ping       time.Duration
}

// New returns the API handler.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetricsRegistry()
	}
	if o.PingInterval == 0 {
		o.PingInterval = 15 * time.Second
	}
	s := &Server{reg: o.Registry, log: o.Logger.With("component", "api"), mux: http.NewServeMux(),
		routesOnly: http.NewServeMux(), ping: o.PingInterval}
	s.metrics = newMetrics(o.Metrics, o.Registry)
	s.routes(o.Metrics)
	if o.Mount != nil {
		o.Mount(s.mux)
		o.Mount(s.routesOnly)
	}
	s.mux.HandleFunc("/", s.unmatched)
	return s
}

func (s *Server) routes(pr *prometheus.Registry) {
	m := muxes{s.mux, s.routesOnly}
	m.HandleFunc("GET /health", s.health)
	m.Handle("GET /metrics", metricsHandler(pr))
	m.HandleFunc("GET /v1/status", s.status)

	m.HandleFunc("GET /v1/services", s.listServices)
	m.HandleFunc("GET /v1/services/{ns}/{svc}", s.getService)
	m.HandleFunc("PUT /v1/services/{ns}/{svc}", s.putService)
	m.HandleFunc("DELETE /v1/services/{ns}/{svc}", s.deleteService)

	m.HandleFunc("GET /v1/instances", s.listInstances)
	m.HandleFunc("POST /v1/instances", s.postInstance)
	m.HandleFunc("GET /v1/services/{ns}/{svc}/instances", s.listInstances)
	m.HandleFunc("GET /v1/services/{ns}/{svc}/instances/{id}", s.getInstance)
	m.HandleFunc("PUT /v1/services/{ns}/{svc}/instances/{id}", s.putInstance)
	m.HandleFunc("DELETE /v1/services/{ns}/{svc}/instances/{id}", s.deleteInstance)
	m.HandleFunc("PUT /v1/services/{ns}/{svc}/instances/{id}/renew", s.renew)
	m.HandleFunc("POST /v1/services/{ns}/{svc}/instances/{id}/renew", s.renew)
	m.HandleFunc("PUT /v1/services/{ns}/{svc}/instances/{id}/status", s.setStatus)
	m.HandleFunc("PUT /v1/services/{ns}/{svc}/instances/{id}/override", s.setOverride)
	m.HandleFunc("DELETE /v1/services/{ns}/{svc}/instances/{id}/override", s.clearOverride)

	m.HandleFunc("GET /v1/config", s.listConfig)
	m.HandleFunc("POST /v1/config/apply", s.applyConfig)
	m.HandleFunc("GET /v1/config/{kind}/{ns}/{name}", s.getConfig)
	m.HandleFunc("PUT /v1/config/{kind}/{ns}/{name}", s.putConfig)
	m.HandleFunc("DELETE /v1/config/{kind}/{ns}/{name}", s.deleteConfig)

	m.HandleFunc("GET /v1/watch", s.watch)
	m.HandleFunc("GET /v1/sd/prometheus", s.prometheusSD)
}

// muxes registers each route on several muxes.
type muxes []*http.ServeMux

func (ms muxes) HandleFunc(pattern string, h http.HandlerFunc) { ms.Handle(pattern, h) }

func (ms muxes) Handle(pattern string, h http.Handler) {
	for _, m := range ms {
		m.Handle(pattern, h)
	}
}

// ServeHTTP routes the request once, recovers from handler panics and
// records the request's latency by route pattern.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w.Header().Set("X-Cairn-Epoch", s.reg.Epoch())
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("handler panic", "pattern", r.Pattern, "panic", p)
			if !sw.wrote {
				writeJSON(sw, http.StatusInternalServerError, errorBody{Error: "internal error"})
			}
		}
		if r.Pattern != "GET /v1/watch" { // streams: their duration is not latency
			s.metrics.observe(r.Pattern, methodLabel(r.Method), sw.code, time.Since(start))
		}
	}()
	s.mux.ServeHTTP(sw, r)
}

// methodLabel bounds the method label's values: clients choose methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// unmatched answers requests no route takes, in JSON like every other
// failure: 405 with Allow when the path exists under other methods, else 404.
// It asks the route-only mux, which knows no catch-all, which it is.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	r.Pattern = "unmatched"
	h, _ := s.routesOnly.Handler(r)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if allow := rec.Header().Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	msg := "no such endpoint"
	if rec.Code == http.StatusMethodNotAllowed {
		msg = "method " + r.Method + " not allowed"
	}
	writeJSON(w, rec.Code, errorBody{Error: msg})
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// inputError is a request the client got wrong.
type inputError struct {
	code  int
	field string
	msg   string
}

func (e *inputError) Error() string {
	if e.field != "" && !strings.HasPrefix(e.msg, e.field) {
		return e.field + ": " + e.msg
	}
	return e.msg
}

func badRequest(field, format string, args ...any) error {
	return &inputError{code: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

// writeError maps an error to a status code in one table.
func (s *Server) writeError(w http.ResponseWriter, err error) {
	var fe *registry.FieldError
	var cfe *config.FieldError
	var ie *inputError
	switch {
	case errors.As(err, &ie):
		writeJSON(w, ie.code, errorBody{Error: ie.Error(), Field: ie.field})
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: fe.Error(), Field: fe.Field})
	case errors.As(err, &cfe):
		if cfe.Field == "" { // the document as a whole: the body
			cfe = cfe.Under("body")
		}
		writeJSON(w, http.StatusBadRequest, errorBody{Error: cfe.Error(), Field: cfe.Field})
	case errors.Is(err, registry.ErrNotFound):
		writeJSON(w, http.StatusNotFound, errorBody{Error: strings.TrimPrefix(err.Error(), "registry: ")})
	case errors.Is(err, registry.ErrHasInstances):
		writeJSON(w, http.StatusConflict, errorBody{Error: "service has instances; delete them first or pass cascade=true", Field: "cascade"})
	case errors.Is(err, registry.ErrUnavailable), errors.Is(err, registry.ErrClosed):
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error()})
	default:
		s.log.Error("request failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing to do
}

func writeIndexed(w http.ResponseWriter, code int, rev int64, v any) {
	w.Header().Set("X-Cairn-Index", strconv.FormatInt(rev, 10))
	writeJSON(w, code, v)
}

// writeRevision answers {"revision":N} without the JSON encoder: it is
// the answer to every renewal, the hottest path of the API.
func writeRevision(w http.ResponseWriter, rev int64) {
	h := w.Header()
	idx := strconv.FormatInt(rev, 10)
	h.Set("X-Cairn-Index", idx)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"revision":`+idx+"}\n")
}

const maxBody = 1 << 20

// decodeBody reads one JSON object into v, rejecting unknown fields,
// trailing data, oversized bodies and non-JSON content types.
func decodeBody(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &inputError{code: http.StatusUnsupportedMediaType, field: "Content-Type", msg: "body must be application/json"}
		}
	}
	return decodeStrict(http.MaxBytesReader(nil, r.Body, maxBody), v)
}

// decodeStrict reads one JSON object into v: unknown fields and trailing
// data are refused, and errors name the field.
func decodeStrict(rd io.Reader, v any) error {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("body", "must hold exactly one JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return &inputError{code: http.StatusRequestEntityTooLarge, field: "body", msg: fmt.Sprintf("body must be at most %d bytes", maxBody)}
	case errors.Is(err, io.EOF):
		return badRequest("body", "is empty; a JSON object is required")
	case errors.As(err, &se):
		return badRequest("body", "malformed JSON at offset %d: %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		if te.Type == reflect.TypeFor[registry.Duration]() {
			return badRequest(field, "must be a duration such as \"30s\" or a number of seconds")
		}
		return badRequest(field, "must be a JSON %s, not %s", jsonKind(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(name, "unknown field")
	default:
		// Errors from custom decoders (durations): say which field if we can.
		msg := err.Error()
		field := "body"
		if i := strings.Index(msg, "Go struct field "); i >= 0 {
			rest := msg[i+len("Go struct field "):]
			if j := strings.IndexByte(rest, ' '); j > 0 {
				f := rest[:j]
				if k := strings.IndexByte(f, '.'); k >= 0 {
					f = f[k+1:]
				}
				field = lowerFirst(f)
			}
		}
		return badRequest(field, "%s", msg)
	}
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "float64":
		return "number"
	case "slice":
		return "array"
	case "map", "struct", "ptr":
		return "object"
	}
	return k
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
