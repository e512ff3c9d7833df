package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one Cairn server. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	hc        *http.Client // plain requests
	stream    *http.Client // blocking queries and watch streams: no overall timeout
	timeout   time.Duration
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc (its
// Transport, TLS settings, cookie jar). Its Timeout, if any, applies to
// plain requests only: blocking queries and watch streams ignore it and are
// bounded by WithTimeout and their context instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithTimeout bounds each plain request (default 10s; 0 or less means
// none). A blocking query is bounded by its wait plus this timeout; a watch
// stream only by its context.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// WithUserAgent sets the User-Agent header (default "cairn-go-client").
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// DefaultTimeout bounds a plain request unless WithTimeout says otherwise.
const DefaultTimeout = 10 * time.Second

// New returns a client of the server at addr: a URL such as
// "http://127.0.0.1:8761" (a path prefix is kept, for servers behind a
// proxy) or a bare "host:port", read as http.
func New(addr string, opts ...Option) (*Client, error) {
	base, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	c := &Client{base: base, hc: &http.Client{}, timeout: DefaultTimeout, userAgent: "cairn-go-client"}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	s := *c.hc
	s.Timeout = 0
	c.stream = &s
	return c, nil
}

func parseAddr(addr string) (*url.URL, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return nil, errors.New("client: empty server address")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("client: invalid server address %q: %v", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: invalid server address %q: scheme must be http or https", addr)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: invalid server address %q: want http://host:port", addr)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// Addr returns the server's base URL.
func (c *Client) Addr() string { return c.base.String() }

// request is one API call.
type request struct {
	method string
	path   string // escaped, starting with /v1/...
	query  url.Values
	body   any           // JSON-encoded when non-nil
	wait   time.Duration // >0: a blocking query that may take this long
	stream bool          // a watch stream: no timeout, body left open
}

// url returns the full URL of a path under the base.
func (c *Client) url(path string, q url.Values) string {
	s := c.base.String() + path
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// send performs r. On 2xx it returns the response (the caller closes the
// body); otherwise it returns an *APIError.
func (c *Client) send(ctx context.Context, r request) (*http.Response, context.CancelFunc, error) {
	cancel := context.CancelFunc(func() {})
	switch {
	case r.stream:
		ctx, cancel = context.WithCancel(ctx)
	case c.timeout > 0:
		ctx, cancel = context.WithTimeout(ctx, c.timeout+r.wait)
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			cancel()
			return nil, nil, fmt.Errorf("client: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.url(r.path, r.query), body)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("client: %w", err)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if r.stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	hc := c.hc
	if r.stream || r.wait > 0 {
		hc = c.stream
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := readAPIError(resp)
		resp.Body.Close()
		cancel()
		return nil, nil, ae
	}
	return resp, cancel, nil
}

// maxAnswer bounds the size of a JSON answer.
const maxAnswer = 1 << 30

// do performs r and decodes a 2xx JSON answer into out (when non-nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	resp, cancel, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("client: decoding answer of %s %s: %w", r.method, r.path, err)
	}
	return nil
}

// instancePath returns the escaped path of an instance (and a suffix).
func instancePath(k Key, suffix string) (string, error) {
	if err := checkKey(k); err != nil {
		return "", err
	}
	return servicePathOf(nsOrDefault(k.Namespace), k.Service) + "/instances/" + url.PathEscape(k.ID) + suffix, nil
}

func servicePathOf(ns, svc string) string {
	return "/v1/services/" + url.PathEscape(ns) + "/" + url.PathEscape(svc)
}

func servicePath(ns, svc string) (string, error) {
	if svc == "" {
		return "", errors.New("client: service name is required")
	}
	return servicePathOf(nsOrDefault(ns), svc), nil
}

func checkKey(k Key) error {
	switch {
	case k.Service == "":
		return errors.New("client: service is required")
	case k.ID == "":
		return errors.New("client: instance id is required")
	}
	return nil
}

func nsOrDefault(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}
