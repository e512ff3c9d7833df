package client

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// fakeRegistry is a minimal in-memory server for the registration tests:
// register, renew, status and deregister, with injectable failures.
type fakeRegistry struct {
	mu        sync.Mutex
	instances map[string]Instance
	calls     map[string]int // by action: register, renew, deregister, status
	fail      int            // answer 503 to this many next requests
	reject    bool           // answer 400 to registrations
	hang      chan struct{}  // when set, deregistrations wait for it
	rev       int64
}

func newFakeRegistry(t *testing.T) (*fakeRegistry, *Client) {
	t.Helper()
	f := &fakeRegistry{instances: map[string]Instance{}, calls: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/services/{ns}/{svc}/instances/{id}", f.register)
	mux.HandleFunc("PUT /v1/services/{ns}/{svc}/instances/{id}/renew", f.renew)
	mux.HandleFunc("PUT /v1/services/{ns}/{svc}/instances/{id}/status", f.status)
	mux.HandleFunc("DELETE /v1/services/{ns}/{svc}/instances/{id}", f.deregister)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		failing := f.fail > 0
		if failing {
			f.fail--
		}
		f.mu.Unlock()
		if failing {
			w.Header().Set("Retry-After", "1")
			writeFake(w, 503, map[string]string{"error": "store unavailable"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func writeFake(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func fakeKey(r *http.Request) string {
	return r.PathValue("ns") + "/" + r.PathValue("svc") + "/" + r.PathValue("id")
}

func (f *fakeRegistry) register(w http.ResponseWriter, r *http.Request) {
	var in Instance
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeFake(w, 400, map[string]string{"error": err.Error(), "field": "body"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["register"]++
	if f.reject {
		writeFake(w, 400, map[string]string{"error": "address: is required", "field": "address"})
		return
	}
	f.rev++
	in.Namespace, in.Service, in.ID = r.PathValue("ns"), r.PathValue("svc"), r.PathValue("id")
	if in.TTL == 0 {
		in.TTL = 90e9
	}
	if in.Status == "" {
		in.Status = StatusUp
	}
	f.instances[fakeKey(r)] = in
	writeFake(w, 200, map[string]any{"revision": f.rev, "instance": in})
}

func (f *fakeRegistry) renew(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["renew"]++
	if _, ok := f.instances[fakeKey(r)]; !ok {
		writeFake(w, 404, map[string]string{"error": "not found"})
		return
	}
	writeFake(w, 200, map[string]any{"revision": f.rev})
}

func (f *fakeRegistry) status(w http.ResponseWriter, r *http.Request) {
	var body struct{ Status Status }
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["status"]++
	in, ok := f.instances[fakeKey(r)]
	if !ok {
		writeFake(w, 404, map[string]string{"error": "not found"})
		return
	}
	in.Status = body.Status
	f.instances[fakeKey(r)] = in
	writeFake(w, 200, map[string]any{"revision": f.rev, "instance": in})
}

func (f *fakeRegistry) deregister(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hang := f.hang
	f.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["deregister"]++
	if _, ok := f.instances[fakeKey(r)]; !ok {
		writeFake(w, 404, map[string]string{"error": "not found"})
		return
	}
	delete(f.instances, fakeKey(r))
	writeFake(w, 200, map[string]any{"revision": f.rev})
}

func (f *fakeRegistry) get(key string) (Instance, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.instances[key]
	return in, ok
}

func (f *fakeRegistry) count(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[action]
}

func (f *fakeRegistry) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.instances)
}

func (f *fakeRegistry) set(fn func(f *fakeRegistry)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}
