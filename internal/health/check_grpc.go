package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// grpcHealthPath is the method of the standard gRPC health protocol.
const grpcHealthPath = "/grpc.health.v1.Health/Check"

// newGRPCClient returns the client shared by grpc checks: HTTP/2 over
// cleartext TCP with prior knowledge (h2c), as gRPC servers speak it.
// Keep-alives are off for the same reason as for http checks.
func newGRPCClient() *http.Client {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{}).DialContext,
			Protocols:              &protos,
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// checkGRPC calls grpc.health.v1.Health/Check for the check's GRPCService
// and passes when the call succeeds (grpc-status 0) with status SERVING.
func (c *Checker) checkGRPC(ctx context.Context, t *target) (string, error) {
	body := encodeHealthRequest(t.spec.GRPCService)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+t.addr+grpcHealthPath, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("check URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	req.Header.Set("User-Agent", userAgent)
	if dl, ok := ctx.Deadline(); ok {
		req.Header.Set("Grpc-Timeout", grpcTimeout(time.Until(dl)))
	}
	resp, err := c.grpcClient.Do(req)
	if err != nil {
		return "", unwrapURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc") {
		return "", fmt.Errorf("not a gRPC response (content-type %q)", ct)
	}

	// The body must be read to its end before the trailers are known.
	var msgs [][]byte
	for {
		msg, err := readFrame(resp.Body, maxGRPCMessage)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("reading gRPC response: %w", err)
		}
		msgs = append(msgs, msg)
	}
	if err := grpcStatus(resp); err != nil {
		return "", err
	}
	if len(msgs) != 1 {
		return "", fmt.Errorf("want one HealthCheckResponse, got %d messages", len(msgs))
	}
	status, err := decodeServingStatus(msgs[0])
	if err != nil {
		return "", fmt.Errorf("HealthCheckResponse: %w", err)
	}
	name := servingStatusName(status)
	if status != servingStatusServing {
		return "", errors.New(name)
	}
	return name, nil
}

// grpcStatus returns the call's error from grpc-status and grpc-message,
// which are trailers, or headers in a trailers-only (error) response.
func grpcStatus(resp *http.Response) error {
	h := resp.Trailer
	if h.Get("Grpc-Status") == "" {
		h = resp.Header
	}
	s := h.Get("Grpc-Status")
	if s == "" {
		return errors.New("gRPC response without grpc-status")
	}
	code, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("invalid grpc-status %q", s)
	}
	if code == 0 {
		return nil
	}
	msg := h.Get("Grpc-Message")
	if m, err := url.PathUnescape(msg); err == nil {
		msg = m
	}
	if msg == "" {
		return fmt.Errorf("grpc-status %d %s", code, grpcCodeName(code))
	}
	return fmt.Errorf("grpc-status %d %s: %s", code, grpcCodeName(code), msg)
}

// grpcTimeout formats d as a grpc-timeout header value (at most 8 digits).
func grpcTimeout(d time.Duration) string {
	ms := max(d.Milliseconds(), 1)
	if ms < 1e8 {
		return strconv.FormatInt(ms, 10) + "m"
	}
	return strconv.FormatInt(min(int64(d/time.Second), 1e8-1), 10) + "S"
}
