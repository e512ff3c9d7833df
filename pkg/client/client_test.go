package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewAddr(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		err      bool
	}{
		{"http://127.0.0.1:8761", "http://127.0.0.1:8761", false},
		{"127.0.0.1:8761", "http://127.0.0.1:8761", false},
		{" https://cairn.example.com/ ", "https://cairn.example.com", false},
		{"http://proxy:80/cairn/", "http://proxy:80/cairn", false},
		{"", "", true},
		{"ftp://x", "", true},
		{"http://", "", true},
		{"http://a:b@host", "", true},
		{"http://host/?q=1", "", true},
		{"http://[::1", "", true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			c, err := New(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if err == nil && c.Addr() != tt.want {
				t.Fatalf("addr %q, want %q", c.Addr(), tt.want)
			}
		})
	}
}

// recorder is an httptest handler that records requests and answers with
// a canned status and body.
type recorder struct {
	mu     sync.Mutex
	reqs   []recorded
	status int
	body   string
	header http.Header
}

type recorded struct {
	Method, Path, Query, Body, ContentType string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL.EscapedPath(), req.URL.RawQuery, string(b), req.Header.Get("Content-Type")})
	status, body := r.status, r.body
	for k, v := range r.header {
		w.Header()[k] = v
	}
	r.mu.Unlock()
	if status == 0 {
		status = 200
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func (r *recorder) last() recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		return recorded{}
	}
	return r.reqs[len(r.reqs)-1]
}

func newRecorded(t *testing.T, status int, body string) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{status: status, body: body}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

const instAnswer = `{"revision":3,"instance":{"id":"a","namespace":"default","service":"web","address":"10.0.0.1","ttl":"90s","status":"UP","health":"none"}}`

func TestRequests(t *testing.T) {
	ctx := context.Background()
	k := Key{Namespace: "prod", Service: "web", ID: "a"}
	for _, tt := range []struct {
		name   string
		answer string
		call   func(c *Client) error
		want   recorded
	}{
		{"register without id posts", instAnswer, func(c *Client) error {
			_, err := c.Register(ctx, Instance{Service: "web", Address: "10.0.0.1"})
			return err
		}, recorded{Method: "POST", Path: "/v1/instances", Body: `{"service":"web","address":"10.0.0.1"}`, ContentType: "application/json"}},
		{"register with id puts", instAnswer, func(c *Client) error {
			_, err := c.Register(ctx, Instance{ID: "a", Service: "web", Address: "10.0.0.1", TTL: NoLease})
			return err
		}, recorded{Method: "PUT", Path: "/v1/services/default/web/instances/a", Body: `{"id":"a","service":"web","address":"10.0.0.1","ttl":"0s"}`, ContentType: "application/json"}},
		{"renew", `{"revision":3}`, func(c *Client) error { return c.Renew(ctx, k) },
			recorded{Method: "PUT", Path: "/v1/services/prod/web/instances/a/renew"}},
		{"deregister", `{"revision":3}`, func(c *Client) error { _, err := c.Deregister(ctx, k); return err },
			recorded{Method: "DELETE", Path: "/v1/services/prod/web/instances/a"}},
		{"set status", instAnswer, func(c *Client) error { _, err := c.SetStatus(ctx, k, StatusDown); return err },
			recorded{Method: "PUT", Path: "/v1/services/prod/web/instances/a/status", Body: `{"status":"DOWN"}`, ContentType: "application/json"}},
		{"set override", instAnswer, func(c *Client) error { _, err := c.SetOverride(ctx, k, StatusOutOfService); return err },
			recorded{Method: "PUT", Path: "/v1/services/prod/web/instances/a/override", Body: `{"status":"OUT_OF_SERVICE"}`, ContentType: "application/json"}},
		{"clear override", instAnswer, func(c *Client) error { _, err := c.ClearOverride(ctx, k); return err },
			recorded{Method: "DELETE", Path: "/v1/services/prod/web/instances/a/override"}},
		{"get instance escapes the path", instAnswer, func(c *Client) error {
			_, err := c.Instance(ctx, Key{Service: "web", ID: "a b"})
			return err
		}, recorded{Method: "GET", Path: "/v1/services/default/web/instances/a%20b"}},
		{"instances with every filter", `{"revision":5,"instances":[]}`, func(c *Client) error {
			_, _, err := c.Instances(ctx, Query{Namespace: "prod", Service: "web", Healthy: true, Zone: "z1", Tag: "canary",
				Meta: map[string]string{"version": "2", "arch": "arm"}, Status: StatusUp, Source: "api", Index: 4, Wait: 2 * time.Second})
			return err
		}, recorded{Method: "GET", Path: "/v1/instances", Query: "healthy=true&index=4&meta=arch%3Aarm&meta=version%3A2&namespace=prod&service=web&source=api&status=UP&tag=canary&wait=2s&zone=z1"}},
		{"services", `{"revision":5,"services":[]}`, func(c *Client) error {
			_, _, err := c.Services(ctx, ServicesQuery{Namespace: "prod", Tag: "edge"})
			return err
		}, recorded{Method: "GET", Path: "/v1/services", Query: "namespace=prod&tag=edge"}},
		{"service", `{"revision":5,"service":{"namespace":"default","name":"web"}}`, func(c *Client) error {
			_, _, err := c.Service(ctx, "", "web")
			return err
		}, recorded{Method: "GET", Path: "/v1/services/default/web"}},
		{"put service", `{"revision":5,"service":{"namespace":"prod","name":"web","explicit":true}}`, func(c *Client) error {
			_, err := c.PutService(ctx, Service{Namespace: "prod", Name: "web", Tags: []string{"edge"}})
			return err
		}, recorded{Method: "PUT", Path: "/v1/services/prod/web", Body: `{"tags":["edge"]}`, ContentType: "application/json"}},
		{"delete service with cascade", `{"revision":5}`, func(c *Client) error {
			_, err := c.DeleteService(ctx, "prod", "web", true)
			return err
		}, recorded{Method: "DELETE", Path: "/v1/services/prod/web", Query: "cascade=true"}},
		{"status", `{"revision":5,"selfPreservation":{"enabled":true}}`, func(c *Client) error {
			st, err := c.Status(ctx)
			if err == nil && (!st.SelfPreservation.Enabled || st.Revision != 5) {
				err = errors.New("status not decoded")
			}
			return err
		}, recorded{Method: "GET", Path: "/v1/status"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newRecorded(t, 200, tt.answer)
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			if got := rec.last(); got != tt.want {
				t.Fatalf("request\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAPIErrors(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		status   int
		body     string
		retry    string
		wantMsg  string
		field    string
		notFound bool
	}{
		{"field error", 400, `{"error":"ports[0].port: must be between 1 and 65535","field":"ports[0].port"}`, "",
			"ports[0].port: must be between 1 and 65535", "ports[0].port", false},
		{"field not in message", 400, `{"error":"must be a JSON number","field":"weight"}`, "", "weight: must be a JSON number", "weight", false},
		{"not found", 404, `{"error":"not found"}`, "", "not found", "", true},
		{"not JSON", 502, "<html>\n<b>Bad gateway</b>\n</html>", "", "HTTP 502 Bad Gateway: <html> <b>Bad gateway</b> </html>", "", false},
		{"empty body", 503, "", "3", "HTTP 503 Service Unavailable", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newRecorded(t, tt.status, tt.body)
			if tt.retry != "" {
				rec.header = http.Header{"Retry-After": {tt.retry}}
			}
			_, err := c.Instance(ctx, Key{Service: "web", ID: "a"})
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %T %v, want *APIError", err, err)
			}
			if ae.StatusCode != tt.status || ae.Error() != tt.wantMsg || ae.Field != tt.field || IsNotFound(err) != tt.notFound {
				t.Fatalf("got %d %q field %q notfound %v", ae.StatusCode, ae.Error(), ae.Field, IsNotFound(err))
			}
			if tt.retry != "" && ae.RetryAfter != 3*time.Second {
				t.Fatalf("retry after %v", ae.RetryAfter)
			}
		})
	}
}

func TestClientSideValidation(t *testing.T) {
	c, rec := newRecorded(t, 200, instAnswer)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"register without service": func() error { _, err := c.Register(ctx, Instance{Address: "x"}); return err },
		"renew without id":         func() error { return c.Renew(ctx, Key{Service: "web"}) },
		"renew without service":    func() error { return c.Renew(ctx, Key{ID: "a"}) },
		"override without status":  func() error { _, err := c.SetOverride(ctx, Key{Service: "web", ID: "a"}, ""); return err },
		"service without name":     func() error { _, _, err := c.Service(ctx, "default", ""); return err },
	} {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if len(rec.reqs) != 0 {
		t.Fatalf("requests were sent: %+v", rec.reqs)
	}
}

func TestTimeouts(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("index") != "" {
			time.Sleep(150 * time.Millisecond) // a blocking query taking less than its wait
			io.WriteString(w, `{"revision":9,"instances":[]}`)
			return
		}
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	c, _ := New(srv.URL, WithTimeout(100*time.Millisecond), WithHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))
	start := time.Now()
	if err := c.Renew(context.Background(), Key{Service: "web", ID: "a"}); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("plain request: %v after %v", err, time.Since(start))
	}
	// A blocking query may take its wait plus the timeout.
	_, rev, err := c.Instances(context.Background(), Query{Index: 3, Wait: time.Second})
	if err != nil || rev != 9 {
		t.Fatalf("blocking query: %v, %d", err, rev)
	}
}

func TestDecodeErrors(t *testing.T) {
	c, _ := newRecorded(t, 200, `{"revision":1,"instance":{"ttl":"soon"}}`)
	if _, err := c.Instance(context.Background(), Key{Service: "web", ID: "a"}); err == nil || !strings.Contains(err.Error(), "decoding") {
		t.Fatalf("got %v", err)
	}
	c, _ = newRecorded(t, 200, `{"revision":1}`)
	if _, err := c.Instance(context.Background(), Key{Service: "web", ID: "a"}); err == nil {
		t.Fatal("an answer without instance was accepted")
	}
}
