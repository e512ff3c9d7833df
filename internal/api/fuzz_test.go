package api

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/internal/registry"
)

// FuzzRegisterBody feeds arbitrary bodies to the registration decoder and
// validator: it must never panic, and whatever it accepts must be a valid
// instance (it passes validation again unchanged).
func FuzzRegisterBody(f *testing.F) {
	f.Add(webA)
	f.Add(`{"service":"web","id":"x","address":"::1","ports":[{"port":1}],"ttl":0}`)
	f.Add(`{"service":"web","id":"x","address":"h.example","check":{"type":"http","interval":"1s","timeout":"10ms"},"ports":[{"name":"a","port":80}]}`)
	f.Add(`{"ttl":"1e400s"}`)
	f.Add(`{"metadata":{"":""},"tags":[""]}`)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/v1/instances", strings.NewReader(body))
		in, err := decodeInstance(req)
		if err != nil {
			return
		}
		m := in.model()
		if fe := registry.NormalizeInstance(&m); fe != nil {
			if fe.Field == "" || fe.Message == "" {
				t.Fatalf("field error without field or message: %#v", fe)
			}
			return
		}
		again := m
		if fe := registry.NormalizeInstance(&again); fe != nil {
			t.Fatalf("accepted instance fails validation a second time: %v", fe)
		}
	})
}

// FuzzQueryFilters: query strings never panic the filter parser.
func FuzzQueryFilters(f *testing.F) {
	f.Add("healthy=true&zone=z&meta=a:b&status=UP")
	f.Add("meta=:&meta=a&status=%ff")
	f.Fuzz(func(t *testing.T, q string) {
		req := httptest.NewRequest("GET", "/v1/instances", nil)
		req.URL.RawQuery = q
		instanceFilter(req)
	})
}
