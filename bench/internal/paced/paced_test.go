package paced

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 150 {
			time.Sleep(30 * time.Millisecond) // one slow answer: its connection's next request is late
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	r, err := Run(context.Background(), Config{URL: srv.URL + "/x", Rate: 500, Conns: 4, Duration: 600 * time.Millisecond, Warmup: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.OK != 300 || len(r.Samples) != 300 {
		t.Errorf("ok %d (%d samples), errors %d (%s), want 300 ok", r.OK, len(r.Samples), r.Errors, r.FirstErr)
	}
	if got := n.Load(); got != 350 {
		t.Errorf("server saw %d requests, want 350 (50 warm-up)", got)
	}
	if r.Late == 0 {
		t.Error("no late request after a 30ms answer at 125/s per connection")
	}
	if r.Latency.Max < 30*time.Millisecond || r.Latency.P50 > 10*time.Millisecond {
		t.Errorf("latency %+v", r.Latency)
	}
	for _, s := range r.Samples {
		if s.Sent < 0 || s.Sent >= 600*time.Millisecond {
			t.Fatalf("sample sent at %v, outside the measured time", s.Sent)
		}
	}
	sum, p999 := Summarize(r, r)
	if sum.Count != 600 || p999 < sum.P99 {
		t.Errorf("pooled %+v p99.9 %v", sum, p999)
	}
}

func TestRunErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	r, err := Run(context.Background(), Config{URL: srv.URL, Rate: 200, Conns: 2, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 0 || r.Errors != 40 || r.FirstErr != "status 503 Service Unavailable" {
		t.Errorf("ok %d errors %d first %q", r.OK, r.Errors, r.FirstErr)
	}
	if _, err := Run(context.Background(), Config{URL: "https://x/", Rate: 1, Conns: 1, Duration: time.Second}); err == nil {
		t.Error("https URL accepted")
	}
}
