package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
)

// ConfigDocument is a declarative document stored by the server (a Route,
// ...), as `cairn apply -f` reads it from YAML. Spec is the kind's own
// JSON; the server checks and normalizes it.
type ConfigDocument struct {
	APIVersion string          `json:"apiVersion,omitempty"` // default "cairn.dev/v1"
	Kind       string          `json:"kind"`                 // "Route" (any spelling on input)
	Metadata   ConfigMetadata  `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
}

// ConfigMetadata names a document. The revisions are the server's and are
// ignored on input.
type ConfigMetadata struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"` // default "default"
	Labels    map[string]string `json:"labels,omitempty"`    // e.g. app.kubernetes.io/managed-by on routes made from Kubernetes objects
	// Revisions are the server's and are ignored on input.
	CreateRevision int64 `json:"createRevision,omitempty"`
	ModifyRevision int64 `json:"modifyRevision,omitempty"`
}

// Key returns the document's key.
func (d *ConfigDocument) Key() ConfigKey {
	return ConfigKey{Kind: d.Kind, Namespace: d.Metadata.Namespace, Name: d.Metadata.Name}
}

// ConfigKey names a document.
type ConfigKey struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"` // default "default"
	Name      string `json:"name"`
}

// What an apply did (or would do) to a document.
const (
	ActionCreated    = "created"
	ActionConfigured = "configured"
	ActionUnchanged  = "unchanged"
	ActionDeleted    = "deleted"
)

// ApplyAction is what an apply did to one document.
type ApplyAction struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action"` // ActionCreated, ActionConfigured, ActionUnchanged, ActionDeleted
}

// ApplyResult is the answer of ApplyConfig: one action per document, in
// the order sent, then the deletions.
type ApplyResult struct {
	Revision int64         `json:"revision"` // the server's revision after the apply
	DryRun   bool          `json:"dryRun"`
	Results  []ApplyAction `json:"results"`
}

type configListAnswer struct {
	Revision  int64            `json:"revision"`
	Documents []ConfigDocument `json:"documents"`
}

type configAnswer struct {
	Revision int64           `json:"revision"`
	Document *ConfigDocument `json:"document"`
}

var errNoDocument = errors.New("client: the server's answer has no document")

// ApplyConfig stores docs and deletes the documents named by deletes, as
// one atomic change: the server checks everything first and, on any error
// (an *APIError whose Field names the document, "documents[1].spec.hosts[0]",
// or a 404 for a deletion of a missing document), changes nothing. With
// dryRun it answers what it would do and changes nothing.
func (c *Client) ApplyConfig(ctx context.Context, docs []ConfigDocument, deletes []ConfigKey, dryRun bool) (*ApplyResult, error) {
	body := struct {
		Documents []ConfigDocument `json:"documents"`
		Delete    []ConfigKey      `json:"delete,omitempty"`
		DryRun    bool             `json:"dryRun,omitempty"`
	}{docs, deletes, dryRun}
	if body.Documents == nil {
		body.Documents = []ConfigDocument{}
	}
	var a ApplyResult
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/config/apply", body: body}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// ConfigDocs lists the documents of a kind ("" for all kinds) in a
// namespace ("" for all), sorted by kind, namespace and name, with the
// revision the answer reflects.
func (c *Client) ConfigDocs(ctx context.Context, kind, namespace string) ([]ConfigDocument, int64, error) {
	v := url.Values{}
	if kind != "" {
		v.Set("kind", kind)
	}
	if namespace != "" {
		v.Set("namespace", namespace)
	}
	var a configListAnswer
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/config", query: v}, &a); err != nil {
		return nil, 0, err
	}
	if a.Documents == nil {
		a.Documents = []ConfigDocument{}
	}
	return a.Documents, a.Revision, nil
}

// ConfigDoc returns one document (namespace "" is "default"); a missing
// one is an error for which IsNotFound is true.
func (c *Client) ConfigDoc(ctx context.Context, kind, namespace, name string) (*ConfigDocument, error) {
	p, err := configPath(kind, namespace, name)
	if err != nil {
		return nil, err
	}
	var a configAnswer
	if err := c.do(ctx, request{method: http.MethodGet, path: p}, &a); err != nil {
		return nil, err
	}
	if a.Document == nil {
		return nil, errNoDocument
	}
	return a.Document, nil
}

// PutConfig creates or replaces one document and returns it as stored.
func (c *Client) PutConfig(ctx context.Context, d ConfigDocument) (*ConfigDocument, error) {
	p, err := configPath(d.Kind, d.Metadata.Namespace, d.Metadata.Name)
	if err != nil {
		return nil, err
	}
	var a configAnswer
	if err := c.do(ctx, request{method: http.MethodPut, path: p, body: d}, &a); err != nil {
		return nil, err
	}
	if a.Document == nil {
		return nil, errNoDocument
	}
	return a.Document, nil
}

// DeleteConfig deletes one document and returns the revision of the
// change; a missing one is an error for which IsNotFound is true.
func (c *Client) DeleteConfig(ctx context.Context, kind, namespace, name string) (int64, error) {
	p, err := configPath(kind, namespace, name)
	if err != nil {
		return 0, err
	}
	var a revisionAnswer
	err = c.do(ctx, request{method: http.MethodDelete, path: p}, &a)
	return a.Revision, err
}

func configPath(kind, namespace, name string) (string, error) {
	switch {
	case kind == "":
		return "", errors.New("client: document kind is required")
	case name == "":
		return "", errors.New("client: document name is required")
	}
	return "/v1/config/" + url.PathEscape(kind) + "/" + url.PathEscape(nsOrDefault(namespace)) + "/" + url.PathEscape(name), nil
}
