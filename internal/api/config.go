package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/registry"
)

// Config documents (docs/api.md, "Config documents"): routes and later
// kinds, stored in the registry beside services and instances.

// maxApplyBody bounds POST /v1/config/apply; one document's body (PUT) is
// bounded by config.MaxDocumentBytes.
const maxApplyBody = 8 << 20

type configListBody struct {
	Revision  int64              `json:"revision"`
	Documents []*config.Document `json:"documents"`
}

type configBody struct {
	Revision int64            `json:"revision"`
	Document *config.Document `json:"document"`
}

// applyInput is the JSON form of an apply.
type applyInput struct {
	Documents []json.RawMessage `json:"documents"`
	Delete    []config.Key      `json:"delete"`
	DryRun    bool              `json:"dryRun"`
}

func unknownKind(code int, kind string) error {
	return &inputError{code: code, field: "kind", msg: fmt.Sprintf("unknown kind %q (known: route)", kind)}
}

// configKey reads the document's key from the path. An unknown kind is a
// 404 (there is no such collection); a bad namespace or name a 400.
func configKey(r *http.Request) (config.Key, error) {
	k := config.Key{Kind: r.PathValue("kind"), Namespace: r.PathValue("ns"), Name: r.PathValue("name")}
	if config.CanonicalKind(k.Kind) == "" {
		return k, unknownKind(http.StatusNotFound, k.Kind)
	}
	if fe := registry.ValidateName("namespace", k.Namespace); fe != nil {
		return k, fe
	}
	if fe := k.Normalize(); fe != nil {
		return k, fe
	}
	return k, nil
}

// configEvents returns a blocking query's wake-up test: config events of
// a kind ("" for all) in a namespace ("" for all), or of one name.
func configEvents(kind, namespace, name string) func(*registry.Event) bool {
	return func(e *registry.Event) bool {
		d := e.Config
		return d != nil && (kind == "" || d.Kind == kind) && (namespace == "" || d.Metadata.Namespace == namespace) &&
			(name == "" || d.Metadata.Name == name)
	}
}

func (s *Server) listConfig(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, ns := q.Get("kind"), q.Get("namespace")
	if kind != "" {
		if kind = config.CanonicalKind(kind); kind == "" {
			s.writeError(w, unknownKind(http.StatusBadRequest, q.Get("kind")))
			return
		}
	}
	if ns != "" {
		if fe := registry.ValidateName("namespace", ns); fe != nil {
			s.writeError(w, fe)
			return
		}
	}
	if err := s.blockOn(r, configEvents(kind, ns, "")); err != nil {
		s.writeError(w, err)
		return
	}
	docs, rev := s.reg.ConfigDocs(kind, ns)
	writeIndexed(w, http.StatusOK, rev, configListBody{Revision: rev, Documents: docs})
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	k, err := configKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if err := s.blockOn(r, configEvents(k.Kind, k.Namespace, k.Name)); err != nil {
		s.writeError(w, err)
		return
	}
	d, rev, err := s.reg.ConfigDoc(k)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeIndexed(w, http.StatusOK, rev, configBody{Revision: rev, Document: d})
}

// putConfig creates or replaces one document. The body may leave out the
// kind, name and namespace, which the path gives; those it has must agree.
func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	k, err := configKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	data, isYAML, err := readConfigBody(r, config.MaxDocumentBytes)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if isYAML {
		var fe *config.FieldError
		if data, fe = config.YAMLToJSON(data); fe != nil {
			s.writeError(w, fe)
			return
		}
	}
	d, err := documentAt(data, k)
	if err != nil {
		s.writeError(w, err)
		return
	}
	res, err := s.reg.ApplyConfig(r.Context(), []config.Document{*d}, nil, false)
	if err != nil {
		s.writeError(w, err)
		return
	}
	a := res.Results[0]
	code := http.StatusOK
	if a.Action == registry.ActionCreated {
		code = http.StatusCreated
	}
	writeIndexed(w, code, res.Revision, configBody{Revision: res.Revision, Document: a.Document})
}

// documentAt decodes one JSON document for the key k of its path: fields
// the body leaves out are taken from k, fields it has must agree with k.
func documentAt(data []byte, k config.Key) (*config.Document, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers pass through unchanged to config.Decode
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, badRequest("body", "is empty; a document is required")
		}
		return nil, jsonError(err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest("body", "must be one document (an object)")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("body", "must hold exactly one document")
	}
	if v, ok := obj["kind"]; !ok || v == "" {
		obj["kind"] = k.Kind
	} else if s, _ := v.(string); config.CanonicalKind(s) != k.Kind {
		return nil, badRequest("kind", "is %v in the body but %s in the path", v, k.Kind)
	}
	meta, ok := obj["metadata"].(map[string]any)
	if !ok {
		if v, present := obj["metadata"]; present && v != nil {
			return nil, badRequest("metadata", "must be an object")
		}
		meta = map[string]any{}
		obj["metadata"] = meta
	}
	for _, f := range []struct{ name, want string }{{"name", k.Name}, {"namespace", k.Namespace}} {
		if v, ok := meta[f.name]; !ok || v == nil || v == "" {
			meta[f.name] = f.want
		} else if v != f.want {
			return nil, badRequest("metadata."+f.name, "is %q in the body but %q in the path", fmt.Sprint(v), f.want)
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, badRequest("body", "%v", err)
	}
	d, fe := config.Decode(b)
	if fe != nil {
		return nil, fe
	}
	return d, nil
}

// applyConfig applies documents and deletions atomically: a JSON object
// {"documents","delete","dryRun"}, or (Content-Type application/yaml) a
// stream of YAML or JSON documents, with ?dryRun=true.
func (s *Server) applyConfig(w http.ResponseWriter, r *http.Request) {
	dryRun := false
	if v := r.URL.Query().Get("dryRun"); v != "" {
		var err error
		if dryRun, err = strconv.ParseBool(v); err != nil {
			s.writeError(w, badRequest("dryRun", "must be true or false"))
			return
		}
	}
	data, isYAML, err := readConfigBody(r, maxApplyBody)
	if err != nil {
		s.writeError(w, err)
		return
	}
	var docs []config.Document
	var deletes []config.Key
	if isYAML {
		if docs, err = config.Parse(data); err != nil {
			s.writeError(w, err)
			return
		}
	} else {
		var in applyInput
		if err := decodeStrict(bytes.NewReader(data), &in); err != nil {
			s.writeError(w, err)
			return
		}
		docs = make([]config.Document, len(in.Documents))
		for i, raw := range in.Documents {
			d, fe := config.Decode(raw)
			if fe != nil {
				s.writeError(w, fe.Under(fmt.Sprintf("documents[%d]", i)))
				return
			}
			docs[i] = *d
		}
		deletes, dryRun = in.Delete, dryRun || in.DryRun
	}
	res, err := s.reg.ApplyConfig(r.Context(), docs, deletes, dryRun)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeIndexed(w, http.StatusOK, res.Revision, res)
}

func (s *Server) deleteConfig(w http.ResponseWriter, r *http.Request) {
	k, err := configKey(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	rev, err := s.reg.DeleteConfig(r.Context(), k)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeRevision(w, rev)
}

// readConfigBody reads a body of at most limit bytes and says whether it
// is YAML (application/yaml, text/yaml) rather than JSON (the default).
func readConfigBody(r *http.Request, limit int64) ([]byte, bool, error) {
	isYAML, err := configFormat(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, false, err
	}
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, false, &inputError{code: http.StatusRequestEntityTooLarge, field: "body", msg: fmt.Sprintf("body must be at most %d bytes", limit)}
	case err != nil:
		return nil, false, badRequest("body", "cannot be read: %v", err)
	}
	return data, isYAML, nil
}

// configFormat tells a YAML body from a JSON one (no Content-Type: JSON).
func configFormat(ct string) (isYAML bool, err error) {
	if ct == "" {
		return false, nil
	}
	mt, _, perr := mime.ParseMediaType(ct)
	switch {
	case perr != nil:
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return false, nil
	case mt == "application/yaml" || mt == "application/x-yaml" || mt == "text/yaml" || mt == "text/x-yaml":
		return true, nil
	}
	return false, &inputError{code: http.StatusUnsupportedMediaType, field: "Content-Type", msg: "body must be application/json or application/yaml"}
}
