package inprocess

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/cairnhq/cairn/internal/api"
)

// BenchmarkRenewHandler is the API handler's share of a renewal: routing,
// validation, the registry, the JSON answer and the latency metric, with
// no connection, parsing or syscalls (what net/http adds on top shows in
// the CPU profile of the real server; see RESULTS.md).
func BenchmarkRenewHandler(b *testing.B) {
	r, keys := filled(b, 10_000)
	h := api.New(api.Options{Registry: r, Logger: slog.New(slog.DiscardHandler)})
	paths := make([]string, len(keys))
	for i, k := range keys {
		paths[i] = "/v1/services/" + k.Namespace + "/" + k.Service + "/instances/" + k.ID + "/renew"
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPut, paths[next.Add(1)%int64(len(paths))], nil)
			w.reset()
			h.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Fatalf("renew: %d", w.code)
			}
		}
	})
}

// BenchmarkRegisterHandler is the handler's share of a registration that
// changes the instance (in memory: no log, no fsync).
func BenchmarkRegisterHandler(b *testing.B) {
	r, keys := filled(b, 10_000)
	h := api.New(api.Options{Registry: r, Logger: slog.New(slog.DiscardHandler)})
	bodies := [][]byte{
		[]byte(`{"address":"10.0.0.1","ports":[{"name":"http","port":8080,"protocol":"http"}],"zone":"bench-a","metadata":{"version":"1","team":"bench"},"tags":["bench"],"ttl":"300s","renewInterval":"30s"}`),
		[]byte(`{"address":"10.0.0.1","ports":[{"name":"http","port":8080,"protocol":"http"}],"zone":"bench-a","metadata":{"version":"2","team":"bench"},"tags":["bench"],"ttl":"300s","renewInterval":"30s"}`),
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			i := next.Add(1)
			k := keys[i%int64(len(keys))]
			req := httptest.NewRequest(http.MethodPut, "/v1/services/"+k.Namespace+"/"+k.Service+"/instances/"+k.ID,
				bytes.NewReader(bodies[(i/int64(len(keys)))%2]))
			req.Header.Set("Content-Type", "application/json")
			w.reset()
			h.ServeHTTP(w, req)
			if w.code != http.StatusOK && w.code != http.StatusCreated {
				b.Fatalf("register: %d", w.code)
			}
		}
	})
}

// discardWriter is a ResponseWriter that keeps only the status code.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) reset() {
	clear(w.h)
	w.code = http.StatusOK
}
func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return io.Discard.Write(p) }
