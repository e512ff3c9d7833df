package client

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// registrationOf is the body of a registration: the instance without the
// fields the server owns (Instance's JSON leaves their zero values out).
func registrationOf(in *Instance) Instance {
	r := *in
	r.Health, r.HealthOutput = "", ""
	r.RegisteredAt, r.LastRenewedAt = time.Time{}, time.Time{}
	r.CreateRevision, r.ModifyRevision = 0, 0
	return r
}

type instanceAnswer struct {
	Revision int64     `json:"revision"`
	Instance *Instance `json:"instance"`
}

type instancesAnswer struct {
	Revision  int64      `json:"revision"`
	Instances []Instance `json:"instances"`
}

type revisionAnswer struct {
	Revision int64 `json:"revision"`
}

var (
	errNoInstance = errors.New("client: the server's answer holds no instance")
	errNoService  = errors.New("client: the server's answer holds no service")
)

func (a *instanceAnswer) get() (*Instance, error) {
	if a.Instance == nil {
		return nil, errNoInstance
	}
	return a.Instance, nil
}

// Register adds or replaces an instance and returns it as the server
// stored it (defaults filled in). Without an ID the server generates one
// (POST /v1/instances); with one, the call is idempotent (PUT). Registering
// again what is already registered, unchanged, only renews its lease.
func (c *Client) Register(ctx context.Context, in Instance) (*Instance, error) {
	if in.Service == "" {
		return nil, errors.New("client: service is required")
	}
	r := request{method: http.MethodPost, path: "/v1/instances", body: registrationOf(&in)}
	if in.ID != "" {
		p, err := instancePath(in.Key(), "")
		if err != nil {
			return nil, err
		}
		r.method, r.path = http.MethodPut, p
	}
	var a instanceAnswer
	if err := c.do(ctx, r, &a); err != nil {
		return nil, err
	}
	return a.get()
}

// Renew extends the instance's lease. An error satisfying IsNotFound means
// the server does not know the instance (it restarted or evicted it):
// register it again.
func (c *Client) Renew(ctx context.Context, k Key) error {
	p, err := instancePath(k, "/renew")
	if err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodPut, path: p}, nil)
}

// Deregister removes the instance. It returns the revision of the change.
func (c *Client) Deregister(ctx context.Context, k Key) (int64, error) {
	p, err := instancePath(k, "")
	if err != nil {
		return 0, err
	}
	var a revisionAnswer
	err = c.do(ctx, request{method: http.MethodDelete, path: p}, &a)
	return a.Revision, err
}

// SetStatus sets the status the instance reports about itself.
func (c *Client) SetStatus(ctx context.Context, k Key, s Status) (*Instance, error) {
	return c.statusCall(ctx, k, "/status", http.MethodPut, s)
}

// SetOverride sets an operator's status override, which wins over the
// status the instance reports (UNKNOWN clears it).
func (c *Client) SetOverride(ctx context.Context, k Key, s Status) (*Instance, error) {
	return c.statusCall(ctx, k, "/override", http.MethodPut, s)
}

// ClearOverride removes the status override.
func (c *Client) ClearOverride(ctx context.Context, k Key) (*Instance, error) {
	return c.statusCall(ctx, k, "/override", http.MethodDelete, "")
}

func (c *Client) statusCall(ctx context.Context, k Key, suffix, method string, s Status) (*Instance, error) {
	p, err := instancePath(k, suffix)
	if err != nil {
		return nil, err
	}
	r := request{method: method, path: p}
	if method != http.MethodDelete {
		if s == "" {
			return nil, errors.New("client: status is required")
		}
		r.body = map[string]Status{"status": s}
	}
	var a instanceAnswer
	if err := c.do(ctx, r, &a); err != nil {
		return nil, err
	}
	return a.get()
}

// Instance returns one instance.
func (c *Client) Instance(ctx context.Context, k Key) (*Instance, error) {
	p, err := instancePath(k, "")
	if err != nil {
		return nil, err
	}
	var a instanceAnswer
	if err := c.do(ctx, request{method: http.MethodGet, path: p}, &a); err != nil {
		return nil, err
	}
	return a.get()
}

// Query selects instances. Zero fields match everything.
type Query struct {
	Namespace string
	Service   string
	Healthy   bool              // only healthy instances
	Zone      string            // exact zone
	Tag       string            // an instance tag or a tag of its service
	Meta      map[string]string // every pair must match the instance metadata
	Status    Status            // effective status
	Source    string            // api, eureka, kubernetes, ...

	// Index makes the query blocking: it answers once something it covers
	// changed after revision Index, or when Wait passes (server default
	// 60s, at most 10m). Pass the revision of the previous answer. An
	// answer may come back unchanged: compare and ask again.
	Index int64
	Wait  time.Duration
}

// values returns the query parameters and how long the server may hold the request.
func (q *Query) values() (url.Values, time.Duration) {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("namespace", q.Namespace)
	set("service", q.Service)
	set("zone", q.Zone)
	set("tag", q.Tag)
	set("status", string(q.Status))
	set("source", q.Source)
	if q.Healthy {
		v.Set("healthy", "true")
	}
	for _, k := range slices.Sorted(maps.Keys(q.Meta)) {
		v.Add("meta", k+":"+q.Meta[k])
	}
	return v, blockingValues(v, q.Index, q.Wait)
}

// blockingValues adds index and wait, and returns how long the server may hold the request.
func blockingValues(v url.Values, index int64, wait time.Duration) time.Duration {
	if index <= 0 {
		return 0
	}
	v.Set("index", strconv.FormatInt(index, 10))
	if wait > 0 {
		v.Set("wait", wait.String())
		return min(wait, maxWait)
	}
	return defaultWait
}

const (
	defaultWait = 60 * time.Second
	maxWait     = 10 * time.Minute
)

// Instances lists the instances q selects, sorted by namespace, service and
// id, with the revision the answer reflects.
func (c *Client) Instances(ctx context.Context, q Query) ([]Instance, int64, error) {
	v, wait := q.values()
	var a instancesAnswer
	r := request{method: http.MethodGet, path: "/v1/instances", query: v, wait: wait}
	if err := c.do(ctx, r, &a); err != nil {
		return nil, 0, err
	}
	if a.Instances == nil {
		a.Instances = []Instance{}
	}
	return a.Instances, a.Revision, nil
}
