package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// APIError is an answer of the server other than 2xx.
type APIError struct {
	// StatusCode is the HTTP status code (400, 404, 409, 503, ...).
	StatusCode int
	// Message is the server's "error" text (it usually starts with Field).
	Message string
	// Field names the offending input (body field, path segment or query
	// parameter) when the input is at fault; empty otherwise.
	Field string
	// RetryAfter is the server's Retry-After (503), or zero.
	RetryAfter time.Duration
}

// Error returns the server's message, prefixed with the field when the
// message does not already name it: "ports[0].port: must be between 1 and 65535".
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.StatusCode))
		if msg == "" {
			msg = "HTTP " + strconv.Itoa(e.StatusCode)
		}
	}
	if e.Field != "" && !strings.HasPrefix(msg, e.Field) {
		return e.Field + ": " + msg
	}
	return msg
}

// Temporary reports whether retrying the same request later may succeed:
// 408, 429 and 5xx answers.
func (e *APIError) Temporary() bool {
	return e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// IsNotFound reports whether err is (or wraps) an APIError with status 404:
// an unknown service or instance, or a lease the server does not know.
func IsNotFound(err error) bool {
	return StatusCode(err) == http.StatusNotFound
}

// StatusCode returns the HTTP status of an APIError in err's chain, or 0.
func StatusCode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

// isPermanent reports whether err is an answer that retrying will not
// change: a 4xx other than 404, 408 and 429.
func isPermanent(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode >= 400 && ae.StatusCode < 500 && !ae.Temporary() &&
		ae.StatusCode != http.StatusNotFound
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// readAPIError turns a non-2xx response into an *APIError. The body is
// expected to be {"error": "...", "field": "..."}; anything else (a proxy's
// HTML page) becomes the message, trimmed to one short line.
func readAPIError(resp *http.Response) *APIError {
	e := &APIError{StatusCode: resp.StatusCode}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 && s < 86400 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message, e.Field = body.Error, body.Field
		return e
	}
	text := strings.Join(strings.Fields(string(b)), " ")
	if len(text) > 200 {
		text = strings.ToValidUTF8(text[:200], "") + "..."
	}
	e.Message = fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if text != "" {
		e.Message += ": " + text
	}
	return e
}
