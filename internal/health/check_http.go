package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
)

// newHTTPClient returns the client shared by http and https checks (one
// verifying certificates, one not, since a Transport has a single TLS
// config). Keep-alives are off: every check opens a fresh connection, so a
// dead backend cannot hide behind a pooled one, and checks of thousands of
// instances leave no idle connections behind. Redirects are not followed:
// a 3xx passes as it is. Environment proxies are ignored.
func newHTTPClient(skipVerify bool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:       nil,
			DialContext: (&net.Dialer{}).DialContext,
			TLSClientConfig: &tls.Config{
				MinVersion:         tls.VersionTLS12,
				InsecureSkipVerify: skipVerify, // only for checks that ask for it
			},
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// checkHTTP GETs scheme://addr/path and passes on a 2xx or 3xx status.
func (c *Checker) checkHTTP(ctx context.Context, t *target) (string, error) {
	client := c.httpClient
	if t.spec.Type == "https" && t.spec.TLSSkipVerify {
		client = c.insecureClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.spec.Type+"://"+t.addr+t.spec.Path, nil)
	if err != nil {
		return "", fmt.Errorf("check URL: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return "", unwrapURLError(err)
	}
	resp.Body.Close() // only the status matters; the connection is not reused
	out := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return "", errors.New(out)
	}
	return out, nil
}

// unwrapURLError drops the `Get "http://...": ` prefix of a client error:
// the output is stored with the instance, whose address is known.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}
