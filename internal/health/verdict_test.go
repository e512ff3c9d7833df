package health

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cairnhq/cairn/internal/registry"
)

func TestVerdictThresholds(t *testing.T) {
	const (
		U = registry.HealthUnknown
		P = registry.HealthPassing
		F = registry.HealthFailing
	)
	tests := []struct {
		name               string
		healthy, unhealthy int
		start              registry.Health
		results            string // p = pass, f = fail
		want               []registry.Health
	}{
		{"first pass decides with threshold 1", 1, 3, U, "p", []registry.Health{P}},
		{"first fail waits for threshold 3", 1, 3, U, "fff", []registry.Health{U, U, F}},
		{"first fail decides with threshold 1", 2, 1, U, "f", []registry.Health{F}},
		{"first pass waits for threshold 2", 2, 1, U, "pp", []registry.Health{U, P}},
		{"a pass resets the failure count", 1, 2, P, "fpff", []registry.Health{P, P, P, F}},
		{"a failure resets the pass count", 2, 1, F, "pfpp", []registry.Health{F, F, F, P}},
		{"flip both ways", 2, 2, U, "ppffpp", []registry.Health{U, P, P, F, F, P}},
		{"seeded passing stays", 1, 3, P, "pff", []registry.Health{P, P, P}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := verdict{health: tt.start}
			for i, r := range tt.results {
				prev := v.health
				h, changed := v.observe(r == 'p', tt.healthy, tt.unhealthy)
				if h != tt.want[i] || changed != (h != prev) {
					t.Fatalf("result %d (%c): got %s changed=%v, want %s", i, r, h, changed, tt.want[i])
				}
				v.health = h // as checkOnce does once the registry recorded it
			}
		})
	}
}

func TestTargetOf(t *testing.T) {
	in := &registry.Instance{Namespace: "default", Service: "web", ID: "a", Address: "::1",
		Ports: []registry.Port{{Name: "http", Port: 8080}, {Name: "admin", Port: 9090}},
		Check: &registry.CheckSpec{Type: "http", Port: "admin"}}
	tg, err := targetOf(in)
	if err != nil {
		t.Fatal(err)
	}
	if tg.addr != "[::1]:9090" {
		t.Errorf("addr = %q, want [::1]:9090", tg.addr)
	}
	if tg.spec.Interval.D() != defaultInterval || tg.spec.Timeout.D() != maxTimeout ||
		tg.spec.HealthyThreshold != 1 || tg.spec.UnhealthyThreshold != 3 || tg.spec.Path != "/" {
		t.Errorf("defaults not applied: %+v", tg.spec)
	}

	in.Check.Port = ""
	if tg, err = targetOf(in); err != nil || tg.addr != "[::1]:8080" {
		t.Errorf("default port: addr %q, err %v; want the first port", tg.addr, err)
	}
	in.Check.Port = "nope"
	if _, err := targetOf(in); err == nil {
		t.Error("a check on a missing port was accepted")
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if j := jitter(time.Second); j < 0 || j > 100*time.Millisecond {
			t.Fatalf("jitter(1s) = %v, want within [0, 100ms]", j)
		}
	}
	if j := jitter(5); j != 0 {
		t.Fatalf("jitter(5ns) = %v, want 0", j)
	}
}

func TestShorten(t *testing.T) {
	if s := shorten("short", 10); s != "short" {
		t.Errorf("shorten kept %q", s)
	}
	long := strings.Repeat("é", 200) // two bytes each
	s := shorten(long, 101)
	if len(s) > 101 || !utf8.ValidString(s) || !strings.HasSuffix(s, "...") {
		t.Errorf("shorten = %q (%d bytes)", s, len(s))
	}
}
