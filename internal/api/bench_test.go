package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairnhq/cairn/internal/registry"
)

// BenchmarkRenewHandler measures the API's share of a renewal (routing,
// validation, registry, metrics, JSON answer) without the network.
func BenchmarkRenewHandler(b *testing.B) {
	reg, _ := registry.New(registry.Config{}, nil)
	defer reg.Close()
	h := New(Options{Registry: reg})
	const n = 1000
	for i := 0; i < n; i++ {
		req := httptest.NewRequest("POST", "/v1/instances", strings.NewReader(fmt.Sprintf(`{"service":"web","id":"i-%d","address":"10.0.0.1"}`, i)))
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := httptest.NewRecorder()
		for pb.Next() {
			req := httptest.NewRequest("PUT", fmt.Sprintf("/v1/services/default/web/instances/i-%d/renew", next.Add(1)%n), nil)
			w.Body.Reset()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatal(w.Code)
			}
		}
	})
}
