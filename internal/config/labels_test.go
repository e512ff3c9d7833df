package config

import "testing"

func TestLabels(t *testing.T) {
	docs, err := Parse([]byte("kind: Route\nmetadata: {name: r, labels: {app.kubernetes.io/managed-by: cairn-kubernetes, team: shop}}\nspec: {backends: [{service: o}]}"))
	if err != nil {
		t.Fatal(err)
	}
	if l := docs[0].Metadata.Labels; len(l) != 2 || l[LabelManagedBy] != ManagedByKubernetes || l["team"] != "shop" {
		t.Fatalf("labels = %v", l)
	}
	// An empty map is no labels, so documents compare equal either way.
	docs, err = Parse([]byte("kind: Route\nmetadata: {name: r, labels: {}}\nspec: {backends: [{service: o}]}"))
	if err != nil || docs[0].Metadata.Labels != nil {
		t.Fatalf("empty labels: %v %v", docs, err)
	}
	base := "kind: Route\nspec: {backends: [{service: o}]}\nmetadata:\n  name: r\n  labels: "
	for doc, field := range map[string]string{
		base + "{'a b': x}":       "documents[0].metadata.labels",
		base + "{'': x}":          "documents[0].metadata.labels",
		base + "{a: 'x y'}":       "documents[0].metadata.labels.a",
		base + "{a: [1]}":         "documents[0].metadata.labels.a",
		base + "{a: \"\\u00e9\"}": "documents[0].metadata.labels.a",
	} {
		_, err := Parse([]byte(doc))
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != field {
			t.Errorf("%q: got %v, want an error on %s", doc, err, field)
		}
	}
}
