// Package cairnhttp talks to Cairn's native HTTP API (docs/api.md) with
// nothing but net/http: registrations, renewals and the SSE watch stream.
package cairnhttp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client is a keep-alive HTTP client for one Cairn server.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client for base (http://host:port) that keeps up to
// maxConns idle connections, so that maxConns concurrent workers each
// reuse their own connection instead of dialing.
func New(base string, maxConns int) *Client {
	tr := &http.Transport{
		Proxy:               nil, // loopback only: never a proxy from the environment
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &Client{base: base, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Base returns the server's base URL.
func (c *Client) Base() string { return c.base }

// InstancePath returns the API path of an instance.
func InstancePath(ns, svc, id string) string {
	return "/v1/services/" + ns + "/" + svc + "/instances/" + id
}

// Register registers (or re-registers) the instance at path (see
// InstancePath) with the JSON body.
func (c *Client) Register(ctx context.Context, path string, body []byte) error {
	return c.do(ctx, http.MethodPut, path, body, http.StatusOK, http.StatusCreated)
}

// Deregister deletes the instance at path.
func (c *Client) Deregister(ctx context.Context, path string) error {
	return c.do(ctx, http.MethodDelete, path, nil, http.StatusOK, http.StatusNoContent)
}

// Renew renews the lease of the instance at path.
func (c *Client) Renew(ctx context.Context, path string) error {
	return c.do(ctx, http.MethodPut, path+"/renew", nil, http.StatusOK)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, ok ...int) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	return c.send(req, ok...)
}

// request builds a request with a JSON body (none if body is nil).
func (c *Client) request(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// send sends req and drains the answer, an error unless its status is one of ok.
func (c *Client) send(req *http.Request, ok ...int) error {
	method, path := req.Method, req.URL.RequestURI()
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	for _, code := range ok {
		if resp.StatusCode == code {
			_, err = io.Copy(io.Discard, resp.Body) // drain so the connection is reused
			return err
		}
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg))
}

// Get fetches path and returns the body of a 200 answer.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, nil
}

// InstanceBody returns a registration body: a realistic instance with one
// port, a zone, a little metadata and a lease of ttl renewed every 30s.
// version goes into the metadata; changing it makes a re-registration a
// real change (a MODIFIED event) rather than a renewal.
func InstanceBody(i int, version, ttl string) []byte {
	return fmt.Appendf(nil, `{"address":"10.%d.%d.%d","ports":[{"name":"http","port":8080,"protocol":"http"}],`+
		`"zone":"bench-%c","metadata":{"version":%q,"team":"bench"},"tags":["bench"],"ttl":%q,"renewInterval":"30s"}`,
		(i>>16)&0xff, (i>>8)&0xff, i&0xff, 'a'+rune(i%3), version, ttl)
}

// query builds a path with a query string.
func query(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
