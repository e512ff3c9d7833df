package registry

import (
	"context"
	"testing"

	"github.com/cairnhq/cairn/internal/config"
)

// A change of labels alone is a change: the Kubernetes controller finds the
// documents it owns by label.
func TestApplyConfigLabelsAreChanges(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	ctx := context.Background()
	d := route("shop", "cart", specA)
	if _, err := r.ApplyConfig(ctx, []config.Document{d}, nil, false); err != nil {
		t.Fatal(err)
	}
	d.Metadata.Labels = map[string]string{config.LabelManagedBy: config.ManagedByKubernetes}
	res, err := r.ApplyConfig(ctx, []config.Document{d}, nil, false)
	if err != nil || len(res.Results) != 1 || res.Results[0].Action != ActionConfigured {
		t.Fatalf("relabel: %v %v", actions(res), err)
	}
	got, _, err := r.ConfigDoc(d.Key())
	if err != nil || got.Metadata.Labels[config.LabelManagedBy] != config.ManagedByKubernetes {
		t.Fatalf("stored labels = %v (%v)", got, err)
	}
	if res, _ := r.ApplyConfig(ctx, []config.Document{d}, nil, false); res.Results[0].Action != ActionUnchanged {
		t.Fatalf("same labels again: %v", actions(res))
	}
}
