package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRateLimitValidation(t *testing.T) {
	cases := []struct {
		desc, rateLimit string
		field           string // "" when valid
		want            RateLimitPolicy
	}{
		{"defaults", `{requests: 100}`, "", RateLimitPolicy{Requests: 100, Period: time.Second, Burst: 100}},
		{"everything", `{requests: 10, period: 1m, burst: 50, perClient: true}`, "", RateLimitPolicy{Requests: 10, Period: time.Minute, Burst: 50, PerClient: true}},
		{"smallest period", `{requests: 1, period: 1ms}`, "", RateLimitPolicy{Requests: 1, Period: time.Millisecond, Burst: 1}},
		{"largest values", `{requests: 1048576, period: 1h, burst: 1048576}`, "", RateLimitPolicy{Requests: 1 << 20, Period: time.Hour, Burst: 1 << 20}},
		{"burst below requests", `{requests: 100, burst: 1}`, "", RateLimitPolicy{Requests: 100, Period: time.Second, Burst: 1}},
		{"requests missing", `{burst: 5}`, "spec.rateLimit.requests", RateLimitPolicy{}},
		{"requests zero", `{requests: 0}`, "spec.rateLimit.requests", RateLimitPolicy{}},
		{"requests negative", `{requests: -1}`, "spec.rateLimit.requests", RateLimitPolicy{}},
		{"requests too many", `{requests: 1048577}`, "spec.rateLimit.requests", RateLimitPolicy{}},
		{"requests fractional", `{requests: 0.5}`, "spec.rateLimit.requests", RateLimitPolicy{}},
		{"requests a string", `{requests: "10"}`, "spec.rateLimit.requests", RateLimitPolicy{}},
		{"period not a duration", `{requests: 1, period: soon}`, "spec.rateLimit.period", RateLimitPolicy{}},
		{"period negative", `{requests: 1, period: -1s}`, "spec.rateLimit.period", RateLimitPolicy{}},
		{"period zero", `{requests: 1, period: 0s}`, "spec.rateLimit.period", RateLimitPolicy{}},
		{"period too short", `{requests: 1, period: 999us}`, "spec.rateLimit.period", RateLimitPolicy{}},
		{"period too long", `{requests: 1, period: 61m}`, "spec.rateLimit.period", RateLimitPolicy{}},
		{"burst negative", `{requests: 1, burst: -1}`, "spec.rateLimit.burst", RateLimitPolicy{}},
		{"burst too big", `{requests: 1, burst: 1048577}`, "spec.rateLimit.burst", RateLimitPolicy{}},
		{"perClient not a bool", `{requests: 1, perClient: "yes"}`, "spec.rateLimit.perClient", RateLimitPolicy{}},
		{"unknown field", `{requests: 1, per: ip}`, "spec.rateLimit.per", RateLimitPolicy{}},
		{"not an object", `10`, "spec.rateLimit", RateLimitPolicy{}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			doc := "kind: Route\nmetadata: {name: r}\nspec:\n  backends: [{service: o}]\n  rateLimit: " + c.rateLimit
			docs, err := Parse([]byte(doc))
			if c.field != "" {
				fe, ok := err.(*FieldError)
				if !ok {
					t.Fatalf("got %v, want an error on %s", err, c.field)
				}
				if fe.Field != "documents[0]."+c.field || strings.TrimSpace(fe.Message) == "" {
					t.Fatalf("error on %q (%s), want %q", fe.Field, fe.Message, c.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, fe := DecodeRoute(docs[0].Spec, "default")
			if fe != nil {
				t.Fatal(fe)
			}
			got, ok := r.RateLimitOrDefault()
			if !ok || got != c.want {
				t.Fatalf("policy %+v (%v), want %+v", got, ok, c.want)
			}
		})
	}
}

// The spec keeps what was written: defaults are filled in by
// RateLimitOrDefault, not into the stored document.
func TestRateLimitKeptAsWritten(t *testing.T) {
	docs, err := Parse([]byte("kind: Route\nmetadata: {name: r}\nspec:\n  backends: [{service: o}]\n  rateLimit: {requests: 5}"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(docs[0].Spec), `"rateLimit":{"requests":5}`) {
		t.Fatalf("spec %s", docs[0].Spec)
	}
	var r RouteSpec
	if _, ok := r.RateLimitOrDefault(); ok {
		t.Fatal("a route without rateLimit has a rate limit")
	}
}

// FuzzRateLimitConfig feeds arbitrary rateLimit values to the route
// validation: it never panics, and whatever it accepts gives a policy the
// gateway can run (a positive rate and bucket, a bounded period).
func FuzzRateLimitConfig(f *testing.F) {
	f.Add(100, "1s", 200, true)
	f.Add(1, "1ms", 0, false)
	f.Add(1<<20, "1h", 1<<20, false)
	f.Add(0, "", -1, false)
	f.Add(5, "1e9ns", 3, true)
	f.Fuzz(func(t *testing.T, requests int, period string, burst int, perClient bool) {
		spec, err := json.Marshal(map[string]any{
			"backends":  []any{map[string]any{"address": "h:1"}},
			"rateLimit": map[string]any{"requests": requests, "period": period, "burst": burst, "perClient": perClient},
		})
		if err != nil {
			t.Skip()
		}
		r, fe := DecodeRoute(spec, "default")
		if fe != nil {
			if !strings.HasPrefix(fe.Field, "rateLimit.") || fe.Message == "" {
				t.Fatalf("error %q: %s", fe.Field, fe.Message)
			}
			return
		}
		p, ok := r.RateLimitOrDefault()
		if !ok || p.Requests < 1 || p.Requests > maxLimit || p.Burst < 1 || p.Burst > maxLimit ||
			p.Period < minRatePeriod || p.Period > maxRatePeriod || p.PerClient != perClient {
			t.Fatalf("accepted %d %q %d: policy %+v", requests, period, burst, p)
		}
		// The engine's arithmetic: burst tokens of period/requests each
		// (at least a nanosecond), in an int64 of nanoseconds.
		if interval := max(p.Period/time.Duration(p.Requests), 1); int64(p.Burst)*int64(interval) > int64(maxRatePeriod)*maxLimit {
			t.Fatalf("policy %+v overflows", p)
		}
	})
}
