package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// ServicesQuery selects services. Zero fields match everything.
type ServicesQuery struct {
	Namespace string
	Tag       string // a service tag
	// Index and Wait make the query blocking, as in Query.
	Index int64
	Wait  time.Duration
}

type servicesAnswer struct {
	Revision int64         `json:"revision"`
	Services []ServiceInfo `json:"services"`
}

type serviceAnswer struct {
	Revision  int64      `json:"revision"`
	Service   *Service   `json:"service"`
	Instances []Instance `json:"instances"`
}

// Services lists services with their instance counts, sorted by namespace
// and name, with the revision the answer reflects.
func (c *Client) Services(ctx context.Context, q ServicesQuery) ([]ServiceInfo, int64, error) {
	v := url.Values{}
	if q.Namespace != "" {
		v.Set("namespace", q.Namespace)
	}
	if q.Tag != "" {
		v.Set("tag", q.Tag)
	}
	wait := blockingValues(v, q.Index, q.Wait)
	var a servicesAnswer
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/services", query: v, wait: wait}, &a); err != nil {
		return nil, 0, err
	}
	if a.Services == nil {
		a.Services = []ServiceInfo{}
	}
	return a.Services, a.Revision, nil
}

// Service returns one service (namespace "" is "default") and its instances.
func (c *Client) Service(ctx context.Context, namespace, name string) (*Service, []Instance, error) {
	p, err := servicePath(namespace, name)
	if err != nil {
		return nil, nil, err
	}
	var a serviceAnswer
	if err := c.do(ctx, request{method: http.MethodGet, path: p}, &a); err != nil {
		return nil, nil, err
	}
	if a.Service == nil {
		return nil, nil, errNoService
	}
	if a.Instances == nil {
		a.Instances = []Instance{}
	}
	return a.Service, a.Instances, nil
}

// PutService creates or updates a service explicitly (its metadata and
// tags); such a service stays until deleted, even without instances.
func (c *Client) PutService(ctx context.Context, s Service) (*Service, error) {
	p, err := servicePath(s.Namespace, s.Name)
	if err != nil {
		return nil, err
	}
	body := struct {
		Metadata map[string]string `json:"metadata,omitempty"`
		Tags     []string          `json:"tags,omitempty"`
	}{s.Metadata, s.Tags}
	var a serviceAnswer
	if err := c.do(ctx, request{method: http.MethodPut, path: p, body: body}, &a); err != nil {
		return nil, err
	}
	if a.Service == nil {
		return nil, errNoService
	}
	return a.Service, nil
}

// DeleteService deletes a service. With instances left, the server answers
// 409 unless cascade is set, which deletes them too. It returns the
// revision of the change.
func (c *Client) DeleteService(ctx context.Context, namespace, name string, cascade bool) (int64, error) {
	p, err := servicePath(namespace, name)
	if err != nil {
		return 0, err
	}
	var v url.Values
	if cascade {
		v = url.Values{"cascade": {"true"}}
	}
	var a revisionAnswer
	err = c.do(ctx, request{method: http.MethodDelete, path: p, query: v}, &a)
	return a.Revision, err
}

// Status returns the server's status: revision, counts, self-preservation
// and the change feed.
func (c *Client) Status(ctx context.Context) (*ServerStatus, error) {
	var st ServerStatus
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/status"}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}
