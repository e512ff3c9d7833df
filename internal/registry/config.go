package registry

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cairnhq/cairn/internal/config"
)

// Config documents (routes, ...) live beside services and instances: they
// share the registry's revision counter, its log and its feed, so a reader
// that follows the feed sees a route change in order with the instance
// changes around it.

// Actions an apply reports per document (kubectl's words).
const (
	ActionCreated    = "created"
	ActionConfigured = "configured"
	ActionUnchanged  = "unchanged"
	ActionDeleted    = "deleted"
)

// ApplyAction is what an apply did, or would do (dry run), to one document.
type ApplyAction struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action"` // created, configured, unchanged, deleted
	// Document is the document as stored (or as it would be, in a dry
	// run); nil for a deletion.
	Document *config.Document `json:"-"`
}

// ApplyResult answers ApplyConfig: one action per document, puts first,
// in the order given, then deletions. Revision is the registry's revision
// after the apply (unchanged when nothing changed, and in a dry run).
type ApplyResult struct {
	Revision int64         `json:"revision"`
	DryRun   bool          `json:"dryRun"`
	Results  []ApplyAction `json:"results"`
}

// ApplyConfig stores puts and removes deletes as one change: every document
// is normalized and checked first (an error names it, "documents[1].spec.
// hosts[0]" or "delete[0].name"), a deletion of a missing document fails
// with ErrNotFound, and on any error nothing changes. All changes share one
// revision and publish one event each (reason apply or delete); a document
// whose spec is unchanged gets no event and keeps its revisions. With
// dryRun it reports what it would do and changes nothing.
func (r *Registry) ApplyConfig(ctx context.Context, puts []config.Document, deletes []config.Key, dryRun bool) (ApplyResult, error) {
	docs, dels, err := normalizeApply(puts, deletes)
	if err != nil {
		return ApplyResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return ApplyResult{}, err
	}
	if r.closed.Load() {
		return ApplyResult{}, ErrClosed
	}
	r.mu.Lock()
	for _, k := range dels {
		if r.configs[k] == nil {
			rev := r.rev
			r.mu.Unlock()
			return ApplyResult{Revision: rev}, configNotFound(k)
		}
	}
	res := ApplyResult{DryRun: dryRun, Results: make([]ApplyAction, 0, len(docs)+len(dels))}
	m := r.begin()
	for _, d := range docs {
		k := d.Key()
		old := r.configs[k]
		a := ApplyAction{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Document: old}
		switch {
		case old != nil && old.APIVersion == d.APIVersion && bytes.Equal(old.Spec, d.Spec) && maps.Equal(old.Metadata.Labels, d.Metadata.Labels):
			a.Action = ActionUnchanged
		case old != nil:
			a.Action = ActionConfigured
			d.Metadata.CreateRevision, d.Metadata.ModifyRevision = old.Metadata.CreateRevision, m.rev
			a.Document = d
		default:
			a.Action = ActionCreated
			d.Metadata.CreateRevision, d.Metadata.ModifyRevision = m.rev, m.rev
			a.Document = d
		}
		res.Results = append(res.Results, a)
		if a.Action != ActionUnchanged && !dryRun {
			r.configs[k] = d
			m.putConfig(d, a.Action == ActionCreated)
		}
	}
	for _, k := range dels {
		res.Results = append(res.Results, ApplyAction{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Action: ActionDeleted})
		if !dryRun {
			m.deleteConfig(r.configs[k])
			delete(r.configs, k)
		}
	}
	b := r.commit(m) // gives the revision back when nothing changed (a dry run, or all unchanged)
	res.Revision = r.rev
	r.mu.Unlock()
	return res, r.wait(b)
}

// DeleteConfig removes one document; it fails with ErrNotFound when there
// is none. It returns the revision of the change.
func (r *Registry) DeleteConfig(ctx context.Context, k config.Key) (int64, error) {
	res, err := r.ApplyConfig(ctx, nil, []config.Key{k}, false)
	if err != nil {
		return 0, err
	}
	return res.Revision, nil
}

// ConfigDocs lists the documents of a kind (any spelling; "" for all
// kinds) in a namespace ("" for all), sorted by kind, namespace and name,
// with the revision they reflect. The documents must not be modified.
func (r *Registry) ConfigDocs(kind, namespace string) ([]*config.Document, int64) {
	if kind != "" {
		if kind = config.CanonicalKind(kind); kind == "" {
			return []*config.Document{}, r.Revision()
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.configDocsLocked(kind, namespace), r.rev
}

func (r *Registry) configDocsLocked(kind, namespace string) []*config.Document {
	out := []*config.Document{}
	for k, d := range r.configs {
		if (kind == "" || k.Kind == kind) && (namespace == "" || k.Namespace == namespace) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *config.Document) int { return compareKeys(a.Key(), b.Key()) })
	return out
}

func compareKeys(a, b config.Key) int {
	if c := strings.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// ConfigDoc returns one document (the key's kind in any spelling, its
// namespace "" for "default"), or ErrNotFound.
func (r *Registry) ConfigDoc(k config.Key) (*config.Document, int64, error) {
	if fe := k.Normalize(); fe != nil {
		return nil, r.Revision(), fe
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	d := r.configs[k]
	if d == nil {
		return nil, r.rev, configNotFound(k)
	}
	return d, r.rev, nil
}

func configNotFound(k config.Key) error {
	return fmt.Errorf("%w: %s", ErrNotFound, k)
}

// normalizeApply checks an apply's input before anything is locked: every
// put normalized (a copy: the caller's documents are left alone), every
// key canonical, no document named twice.
func normalizeApply(puts []config.Document, deletes []config.Key) ([]*config.Document, []config.Key, error) {
	if n := len(puts) + len(deletes); n == 0 {
		return nil, nil, &config.FieldError{Field: "documents", Message: "no documents"}
	} else if n > config.MaxDocuments {
		return nil, nil, &config.FieldError{Field: "documents", Message: fmt.Sprintf("at most %d documents at once", config.MaxDocuments)}
	}
	seen := make(map[config.Key]string, len(puts)+len(deletes))
	docs := make([]*config.Document, len(puts))
	for i := range puts {
		p := fmt.Sprintf("documents[%d]", i)
		d := puts[i]
		d.Spec = bytes.Clone(d.Spec)
		if len(d.Spec) > config.MaxDocumentBytes {
			return nil, nil, &config.FieldError{Field: p + ".spec", Message: fmt.Sprintf("is larger than %d bytes", config.MaxDocumentBytes)}
		}
		if fe := d.Normalize(); fe != nil {
			return nil, nil, fe.Under(p)
		}
		if other, dup := seen[d.Key()]; dup {
			return nil, nil, &config.FieldError{Field: p + ".metadata.name", Message: fmt.Sprintf("%s is also %s", d.Key(), other)}
		}
		seen[d.Key()] = p
		docs[i] = &d
	}
	dels := make([]config.Key, len(deletes))
	for i, k := range deletes {
		p := fmt.Sprintf("delete[%d]", i)
		if fe := k.Normalize(); fe != nil {
			return nil, nil, fe.Under(p)
		}
		if other, dup := seen[k]; dup {
			return nil, nil, &config.FieldError{Field: p + ".name", Message: fmt.Sprintf("%s is also %s", k, other)}
		}
		seen[k] = p
		dels[i] = k
	}
	return docs, dels, nil
}

func (m *mutation) putConfig(d *config.Document, created bool) {
	typ := EventModified
	if created {
		typ = EventAdded
	}
	m.events = append(m.events, Event{Revision: m.rev, Type: typ, Kind: KindConfig, Reason: ReasonApply, Config: d})
	m.ops = append(m.ops, op{PutConfig: d})
}

func (m *mutation) deleteConfig(last *config.Document) {
	k := last.Key()
	m.events = append(m.events, Event{Revision: m.rev, Type: EventDeleted, Kind: KindConfig, Reason: ReasonDelete, Config: last})
	m.ops = append(m.ops, op{DeleteConfig: &k})
}
