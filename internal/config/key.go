package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// Normalize checks a key as users type it (any spelling of the kind, an
// empty namespace for "default") and rewrites it canonically. Errors name
// "kind", "namespace" or "name".
func (k *Key) Normalize() *FieldError {
	kind, fe := checkKind(k.Kind)
	if fe != nil {
		return fe
	}
	k.Kind = kind
	if k.Namespace == "" {
		k.Namespace = "default"
	}
	if fe := validName("namespace", k.Namespace); fe != nil {
		return fe
	}
	return validName("name", k.Name)
}

// Under returns e with its field placed under the path p
// ("spec.hosts[0]" under "documents[2]" is "documents[2].spec.hosts[0]").
func (e *FieldError) Under(p string) *FieldError { return e.under(p) }

// YAMLToJSON reads exactly one YAML (or JSON) document and returns it as
// JSON, without checking it as a Document: an edge that fills in fields
// (an API path's kind and name) decodes it with Decode afterwards.
func YAMLToJSON(data []byte) ([]byte, *FieldError) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var v any
	n := 0
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			var x any
			if err = node.Decode(&x); err == nil && x != nil {
				v = x
				n++
			}
		}
		if err != nil {
			return nil, fieldErr("", "not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	switch {
	case n == 0:
		return nil, fieldErr("", "no document")
	case n > 1:
		return nil, fieldErr("", "holds %d documents; one is expected", n)
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return nil, fieldErr("", "cannot be represented as JSON: %v", err)
	}
	return b, nil
}
