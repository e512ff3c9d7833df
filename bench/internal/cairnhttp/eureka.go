package cairnhttp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// The Eureka side of the client: what Spring Cloud Netflix's
// RestTemplateEurekaHttpClient sends to Cairn's Eureka API (/eureka/...),
// and plain GETs of documents with chosen headers (also used against the
// static-file peer).

// EurekaApp names the Eureka application of app number a (APP-017).
func EurekaApp(a int) string { return fmt.Sprintf("APP-%03d", a) }

// EurekaID is the instanceId Spring gives instance i of app a: host:app:port.
func EurekaID(i, a int) string {
	return fmt.Sprintf("ip-10-%d-%d-%d.bench.internal:app-%03d:8080", (i>>16)&0xff, (i>>8)&0xff, i&0xff, a)
}

// EurekaDirty is the lastDirtyTimestamp of every benchmark instance; the
// renewals send it back, as Spring does.
const EurekaDirty = 1718000003456

// EurekaBody returns a registration body shaped like Spring Cloud Netflix
// 4.x's (RestTemplateEurekaHttpClient, Jackson; the captured
// internal/eureka/testdata/spring/register-up.json) for instance i of app a,
// with four metadata keys. leaseSecs is durationInSecs (Spring's default
// is 90; the benchmark uses a longer lease so that nothing expires while
// it runs).
func EurekaBody(i, a, leaseSecs int) []byte {
	host := fmt.Sprintf("ip-10-%d-%d-%d.bench.internal", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
	ip := fmt.Sprintf("10.%d.%d.%d", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
	vip := fmt.Sprintf("app-%03d", a)
	base := "http://" + host + ":8080/"
	return fmt.Appendf(nil, `{"instance":{"instanceId":%q,"app":%q,"appGroupName":null,"ipAddr":%q,"sid":"na",`+
		`"homePageUrl":%q,"statusPageUrl":%q,"healthCheckUrl":%q,"secureHealthCheckUrl":null,`+
		`"vipAddress":%q,"secureVipAddress":%q,"countryId":1,`+
		`"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},`+
		`"hostName":%q,"status":"UP","overriddenStatus":"UNKNOWN",`+
		`"leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":%d,"registrationTimestamp":0,"lastRenewalTimestamp":0,"evictionTimestamp":0,"serviceUpTimestamp":0},`+
		`"isCoordinatingDiscoveryServer":false,"lastUpdatedTimestamp":1718000000000,"lastDirtyTimestamp":%d,"actionType":null,"asgName":null,`+
		`"port":{"$":8080,"@enabled":"true"},"securePort":{"$":443,"@enabled":"false"},`+
		`"metadata":{"zone":"zone%d","management.port":"8080","version":"1.4.%d","team":"bench"}}}`,
		EurekaID(i, a), EurekaApp(a), ip, base, base+"actuator/info", base+"actuator/health",
		vip, vip, host, leaseSecs, EurekaDirty, i%3+1, i%10)
}

// eurekaHeaders are the headers Spring's client sends with every request.
func eurekaHeaders(h http.Header) {
	h.Set("Accept", "application/json, application/*+json")
	h.Set("Accept-Encoding", "gzip, x-gzip, deflate")
}

func (c *Client) eureka(ctx context.Context, method, path string, body []byte, ok ...int) error {
	return c.doHeaders(ctx, method, path, body, eurekaHeaders, ok...)
}

// EurekaRegister is POST /eureka/apps/{APP} with a JSON body (204).
func (c *Client) EurekaRegister(ctx context.Context, app string, body []byte) error {
	return c.eureka(ctx, http.MethodPost, "/eureka/apps/"+app, body, http.StatusNoContent)
}

// EurekaRenew is Spring's heartbeat, PUT
// /eureka/apps/{APP}/{id}?status=UP&lastDirtyTimestamp=… without a body (200).
func (c *Client) EurekaRenew(ctx context.Context, app, id string, dirty int64) error {
	return c.eureka(ctx, http.MethodPut, "/eureka/apps/"+app+"/"+id+"?status=UP&lastDirtyTimestamp="+strconv.FormatInt(dirty, 10),
		nil, http.StatusOK)
}

// EurekaSetStatus sets a status override: PUT /eureka/apps/{APP}/{id}/status?value=… (200).
func (c *Client) EurekaSetStatus(ctx context.Context, app, id, status string) error {
	return c.eureka(ctx, http.MethodPut, "/eureka/apps/"+app+"/"+id+"/status?value="+status, nil, http.StatusOK)
}

// EurekaClearStatus removes the status override: DELETE /eureka/apps/{APP}/{id}/status (200).
func (c *Client) EurekaClearStatus(ctx context.Context, app, id string) error {
	return c.eureka(ctx, http.MethodDelete, "/eureka/apps/"+app+"/"+id+"/status", nil, http.StatusOK)
}

// EurekaCancel deregisters: DELETE /eureka/apps/{APP}/{id} (200).
func (c *Client) EurekaCancel(ctx context.Context, app, id string) error {
	return c.eureka(ctx, http.MethodDelete, "/eureka/apps/"+app+"/"+id, nil, http.StatusOK)
}

// doHeaders is do with extra request headers set by hdr.
func (c *Client) doHeaders(ctx context.Context, method, path string, body []byte, hdr func(http.Header), ok ...int) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	hdr(req.Header)
	return c.send(req, ok...)
}

// Doc is a GET of one document with the request headers a client sends.
type Doc struct {
	Path           string
	Accept         string // "" sends no Accept header
	AcceptEncoding string // "" sends none
}

func (d Doc) request(ctx context.Context, base string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+d.Path, nil)
	if err != nil {
		return nil, err
	}
	if d.Accept != "" {
		req.Header.Set("Accept", d.Accept)
	}
	if d.AcceptEncoding != "" {
		req.Header.Set("Accept-Encoding", d.AcceptEncoding)
	}
	return req, nil
}

// Fetch gets d and returns the body of a 200 answer as it came over the
// wire (never decompressed) and the answer's Content-Encoding.
func (c *Client) Fetch(ctx context.Context, d Doc) (body []byte, encoding string, err error) {
	req, err := d.request(ctx, c.base)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s: %s", d.Path, resp.Status, strings.TrimSpace(string(b[:min(len(b), 256)])))
	}
	return b, resp.Header.Get("Content-Encoding"), nil
}

// Read gets d and reads the whole body into buf, a chunk at a time (large
// reads go straight from the socket into buf), returning the body's size
// in bytes as sent (compressed bodies are not decompressed).
func (c *Client) Read(ctx context.Context, d Doc, buf []byte) (int64, error) {
	req, err := d.request(ctx, c.base)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", d.Path, resp.Status)
	}
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
