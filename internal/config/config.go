// Package config holds Cairn's declarative documents: the YAML or JSON
// objects users apply with `cairn apply -f`, the registry stores with a
// revision, and config sources hand to the proxy engine.
//
// A document looks like a Kubernetes object, so the same text can become a
// custom resource:
//
//	apiVersion: cairn.dev/v1
//	kind: Route
//	metadata:
//	  name: orders
//	  namespace: shop        # default "default"
//	spec:
//	  ...                    # per kind; see RouteSpec
//
// Everything here validates at the edge: Parse and Normalize either return
// documents that every later stage accepts, or a *FieldError naming the
// first wrong field ("documents[1].spec.backends[0].weight").
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// APIVersion is the version documents carry; an empty one is read as it.
const APIVersion = "cairn.dev/v1"

// Kinds of documents.
const (
	KindRoute = "Route"
)

// kinds maps every accepted spelling (lower case, singular or plural) to
// the canonical kind.
var kinds = map[string]string{
	"route": KindRoute, "routes": KindRoute,
}

// CanonicalKind returns the canonical name of a kind as users type it
// ("route", "Routes"), or "" for an unknown kind.
func CanonicalKind(s string) string { return kinds[strings.ToLower(s)] }

// Limits on documents, so one bad apply cannot bloat every gateway.
const (
	MaxDocumentBytes = 256 << 10
	MaxDocuments     = 256
)

// Document is one declarative object. Spec is canonical JSON once the
// document is normalized.
type Document struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   Metadata        `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
}

// Metadata names a document. Revisions are set by the registry and ignored
// on input.
type Metadata struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Labels mark documents for selection, as Kubernetes labels do. Cairn's
	// Kubernetes controller labels the routes it makes from Ingresses and
	// HTTPRoutes (LabelManagedBy) and never touches a document without it.
	Labels         map[string]string `json:"labels,omitempty"`
	CreateRevision int64             `json:"createRevision,omitempty"`
	ModifyRevision int64             `json:"modifyRevision,omitempty"`
}

// Key identifies a document.
type Key struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (k Key) String() string { return strings.ToLower(k.Kind) + "/" + k.Namespace + "/" + k.Name }

// Key returns the document's key.
func (d *Document) Key() Key { return Key{d.Kind, d.Metadata.Namespace, d.Metadata.Name} }

// FieldError says which field of a document is wrong.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// prefix returns e with its field placed under p.
func (e *FieldError) under(p string) *FieldError {
	if e.Field == "" {
		return &FieldError{Field: p, Message: e.Message}
	}
	if strings.HasPrefix(e.Field, "[") {
		return &FieldError{Field: p + e.Field, Message: e.Message}
	}
	return &FieldError{Field: p + "." + e.Field, Message: e.Message}
}

// Parse reads one or more documents: YAML separated by "---", or JSON (a
// single object, or an array of them). Each is normalized; the first error
// names its document ("documents[2].spec.hosts[0]").
func Parse(data []byte) ([]Document, error) {
	if len(data) > MaxDocuments*MaxDocumentBytes {
		return nil, fieldErr("documents", "input is larger than %d bytes", MaxDocuments*MaxDocumentBytes)
	}
	var raws []any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("documents[%d]", len(raws)), "not valid YAML or JSON: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fieldErr(fmt.Sprintf("documents[%d]", len(raws)), "not valid YAML or JSON: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if v == nil {
			continue // an empty document between separators
		}
		if list, ok := v.([]any); ok && len(raws) == 0 {
			raws = append(raws, list...)
			continue
		}
		raws = append(raws, v)
	}
	if len(raws) == 0 {
		return nil, fieldErr("documents", "no documents")
	}
	if len(raws) > MaxDocuments {
		return nil, fieldErr("documents", "at most %d documents at once", MaxDocuments)
	}
	docs := make([]Document, len(raws))
	seen := map[Key]int{}
	for i, v := range raws {
		p := fmt.Sprintf("documents[%d]", i)
		b, err := json.Marshal(jsonable(v))
		if err != nil {
			return nil, fieldErr(p, "cannot be represented as JSON: %v", err)
		}
		d, fe := Decode(b)
		if fe != nil {
			return nil, fe.under(p)
		}
		if j, dup := seen[d.Key()]; dup {
			return nil, fieldErr(p+".metadata.name", "%s is also documents[%d]", d.Key(), j)
		}
		seen[d.Key()] = i
		docs[i] = *d
	}
	return docs, nil
}

// jsonable turns what yaml.v3 decodes (map[string]any, but also maps with
// non-string keys) into values encoding/json accepts.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonable(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = jsonable(x)
		}
		return t
	case time.Time: // YAML timestamps: keep the text form
		return t.Format(time.RFC3339Nano)
	}
	return v
}

// Decode reads one JSON document and normalizes it.
func Decode(data []byte) (*Document, *FieldError) {
	if len(data) > MaxDocumentBytes {
		return nil, fieldErr("", "document is larger than %d bytes", MaxDocumentBytes)
	}
	var d Document
	if fe := strictJSON(data, &d); fe != nil {
		return nil, fe
	}
	if fe := d.Normalize(); fe != nil {
		return nil, fe
	}
	return &d, nil
}

// Normalize checks a document, fills defaults, and rewrites Spec as
// canonical JSON (so equal specs compare equal byte for byte).
func (d *Document) Normalize() *FieldError {
	switch d.APIVersion {
	case "":
		d.APIVersion = APIVersion
	case APIVersion:
	default:
		return fieldErr("apiVersion", "must be %q", APIVersion)
	}
	k, fe := checkKind(d.Kind)
	if fe != nil {
		return fe
	}
	d.Kind = k
	if fe := validName("metadata.name", d.Metadata.Name); fe != nil {
		return fe
	}
	if d.Metadata.Namespace == "" {
		d.Metadata.Namespace = "default"
	}
	if fe := validName("metadata.namespace", d.Metadata.Namespace); fe != nil {
		return fe
	}
	if fe := validLabels("metadata.labels", d.Metadata.Labels); fe != nil {
		return fe
	}
	if len(d.Metadata.Labels) == 0 {
		d.Metadata.Labels = nil
	}
	d.Metadata.CreateRevision, d.Metadata.ModifyRevision = 0, 0
	if len(bytes.TrimSpace(d.Spec)) == 0 || string(bytes.TrimSpace(d.Spec)) == "null" {
		return fieldErr("spec", "is required")
	}
	var spec any
	switch d.Kind {
	case KindRoute:
		r, fe := DecodeRoute(d.Spec, d.Metadata.Namespace)
		if fe != nil {
			return fe.under("spec")
		}
		spec = r
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return fieldErr("spec", "%v", err)
	}
	d.Spec = b
	return nil
}

// Limits of labels.
const (
	MaxLabels          = 32
	MaxLabelKeyBytes   = 253
	MaxLabelValueBytes = 253
)

// LabelManagedBy names what manages a document; ManagedByKubernetes is the
// value of documents made by the Kubernetes controller.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	ManagedByKubernetes = "cairn-kubernetes"
)

// validLabels checks label keys and values: printable, no spaces, bounded.
func validLabels(field string, m map[string]string) *FieldError {
	if len(m) > MaxLabels {
		return fieldErr(field, "must have at most %d entries", MaxLabels)
	}
	for k, v := range m {
		switch {
		case k == "" || len(k) > MaxLabelKeyBytes:
			return fieldErr(field, "keys must be 1 to %d characters", MaxLabelKeyBytes)
		case !printableWord(k):
			return fieldErr(field, "key %q must be printable ASCII without spaces", k)
		case len(v) > MaxLabelValueBytes:
			return fieldErr(field+"."+k, "must be at most %d characters", MaxLabelValueBytes)
		case !printableWord(v):
			return fieldErr(field+"."+k, "%q must be printable ASCII without spaces", v)
		}
	}
	return nil
}

func printableWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// checkKind returns the canonical spelling of a kind, or an error naming
// the field "kind".
func checkKind(kind string) (string, *FieldError) {
	if kind == "" {
		return "", fieldErr("kind", "is required")
	}
	k := CanonicalKind(kind)
	if k == "" {
		return "", fieldErr("kind", "unknown kind %q (known: Route)", kind)
	}
	return k, nil
}

// validName checks a name or namespace: a lowercase DNS label.
func validName(field, s string) *FieldError {
	switch {
	case s == "":
		return fieldErr(field, "is required")
	case len(s) > 63:
		return fieldErr(field, "must be at most 63 characters")
	case !IsLabel(s):
		return fieldErr(field, "%q must be a lowercase DNS label ([a-z0-9-], not starting or ending with '-')", s)
	}
	return nil
}

// IsLabel reports whether s matches [a-z0-9]([-a-z0-9]*[a-z0-9])?, the
// names of namespaces, services, ports and documents (length aside). A
// hand loop: names are checked on request paths.
func IsLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// strictJSON decodes data into v, refusing unknown fields and naming the
// field of the first error by its JSON path.
func strictJSON(data []byte, v any) *FieldError {
	var generic any
	if err := json.Unmarshal(data, &generic); err != nil {
		return fieldErr("", "not valid JSON: %v", err)
	}
	if fe := unknownFields(generic, reflect.TypeOf(v).Elem(), ""); fe != nil {
		return fe
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fieldErr(te.Field, "must be %s, not %s", jsonKind(te.Type), te.Value)
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			return fe
		}
		return fieldErr("", "%v", err)
	}
	return nil
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

// jsonChecker is a type with its own JSON decoder, which unknownFields
// asks to check a value first so its errors can name their field.
type jsonChecker interface{ checkJSON(v any) *FieldError }

var checkerType = reflect.TypeOf((*jsonChecker)(nil)).Elem()

// PortRef is a port name or number; it reads a JSON string or number.
type PortRef string

func (p *PortRef) checkJSON(v any) *FieldError {
	switch x := v.(type) {
	case string, nil:
		return nil
	case float64:
		if x == float64(int(x)) {
			return nil
		}
	}
	return fieldErr("", "must be a port name or number")
}

func (p *PortRef) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*p = PortRef(s)
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("must be a port name or number")
	}
	*p = PortRef(strconv.Itoa(n))
	return nil
}

// unknownFields walks a decoded JSON value against the struct it will be
// decoded into and names the first field the struct does not have.
func unknownFields(v any, t reflect.Type, path string) *FieldError {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(checkerType) {
		if fe := reflect.New(t).Interface().(jsonChecker).checkJSON(v); fe != nil {
			return fe.under(path)
		}
		return nil
	}
	if t == rawMessageType {
		return nil
	}
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	if fe := kindMismatch(v, t); fe != nil {
		return fe.under(path)
	}
	switch x := v.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			fields := jsonFields(t)
			for k, val := range x {
				ft, ok := fields[k]
				if !ok {
					return fieldErr(join(k), "unknown field")
				}
				if fe := unknownFields(val, ft, join(k)); fe != nil {
					return fe
				}
			}
		case reflect.Map:
			for k, val := range x {
				if fe := unknownFields(val, t.Elem(), join(k)); fe != nil {
					return fe
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice {
			for i, val := range x {
				if fe := unknownFields(val, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); fe != nil {
					return fe
				}
			}
		}
	}
	return nil
}

// kindMismatch checks that a decoded JSON value has the shape of t, so a
// type error names its field with list indexes (encoding/json's own
// errors leave them out).
func kindMismatch(v any, t reflect.Type) *FieldError {
	if v == nil {
		return nil
	}
	ok := true
	switch t.Kind() {
	case reflect.String:
		_, ok = v.(string)
	case reflect.Int, reflect.Int64, reflect.Int32:
		f, isNum := v.(float64)
		ok = isNum && f == float64(int64(f))
	case reflect.Float64:
		_, ok = v.(float64)
	case reflect.Bool:
		_, ok = v.(bool)
	case reflect.Slice:
		_, ok = v.([]any)
		if t == rawMessageType {
			ok = true
		}
	case reflect.Map, reflect.Struct:
		_, ok = v.(map[string]any)
	}
	if !ok {
		return fieldErr("", "must be %s, not %s", jsonKind(t), describe(v))
	}
	return nil
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case float64:
		return fmt.Sprintf("the number %v", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func jsonFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	return m
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint32, reflect.Uint64, reflect.Uint:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// parseDuration reads a duration field ("250ms", "2s", "1m"); "" is zero.
func parseDuration(field, s string) (time.Duration, *FieldError) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fieldErr(field, `must be a duration such as "250ms" or "2s", not %q`, s)
	}
	return d, nil
}
