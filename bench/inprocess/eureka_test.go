package inprocess

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cairnhq/cairn/internal/eureka"
	"github.com/cairnhq/cairn/internal/registry"
)

// eurekaBody is a Spring-shaped registration like cmd/cairnbench's
// (internal/cairnhttp.EurekaBody), for instance i of app a.
func eurekaBody(i, a int) []byte {
	host := fmt.Sprintf("ip-10-%d-%d-%d.bench.internal", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
	base := "http://" + host + ":8080/"
	return fmt.Appendf(nil, `{"instance":{"instanceId":"%s:app-%03d:8080","app":"APP-%03d","appGroupName":null,"ipAddr":"10.%d.%d.%d","sid":"na",`+
		`"homePageUrl":%q,"statusPageUrl":"%sactuator/info","healthCheckUrl":"%sactuator/health","secureHealthCheckUrl":null,`+
		`"vipAddress":"app-%03d","secureVipAddress":"app-%03d","countryId":1,`+
		`"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},`+
		`"hostName":%q,"status":"UP","overriddenStatus":"UNKNOWN",`+
		`"leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":900,"registrationTimestamp":0,"lastRenewalTimestamp":0,"evictionTimestamp":0,"serviceUpTimestamp":0},`+
		`"isCoordinatingDiscoveryServer":false,"lastUpdatedTimestamp":1718000000000,"lastDirtyTimestamp":1718000003456,"actionType":null,"asgName":null,`+
		`"port":{"$":8080,"@enabled":"true"},"securePort":{"$":443,"@enabled":"false"},`+
		`"metadata":{"zone":"zone%d","management.port":"8080","version":"1.4.%d","team":"bench"}}}`,
		host, a, a, (i>>16)&0xff, (i>>8)&0xff, i&0xff, base, base, base, a, a, host, i%3+1, i%10)
}

// BenchmarkEurekaApps is GET /eureka/apps/ with 10,000 instances over 100
// apps registered through the Eureka handler, per format and encoding:
// "cached" reads one revision over and over (the document is encoded
// once); "changed" sets or clears one instance's status override before
// every read, so every read encodes the document again (and gzips it),
// as under the churn of `bench/run.sh --eureka`. MB/op is the body size.
func BenchmarkEurekaApps(b *testing.B) {
	const n, apps = 10_000, 100
	r, err := registry.New(registry.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	mux := http.NewServeMux()
	eureka.New(eureka.Options{Registry: r, Logger: slog.New(slog.DiscardHandler)}).Mount(mux)
	for i := range n {
		req := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/eureka/apps/APP-%03d", i%apps), bytes.NewReader(eurekaBody(i, i%apps)))
		req.Header.Set("Content-Type", "application/json")
		w := &discardWriter{h: http.Header{}}
		mux.ServeHTTP(w, req)
		if w.code != http.StatusNoContent {
			b.Fatalf("register %d: %d", i, w.code)
		}
	}
	key := func(i int) registry.InstanceKey {
		a := i % apps
		return registry.InstanceKey{Namespace: "default", Service: fmt.Sprintf("app-%03d", a),
			ID: fmt.Sprintf("ip-10-%d-%d-%d.bench.internal:app-%03d:8080", (i>>16)&0xff, (i>>8)&0xff, i&0xff, a)}
	}
	flips := 0 // across sub-benchmarks: every flip is a change
	for _, f := range []struct{ name, accept, enc string }{
		{"json", "application/json", ""}, {"json-gzip", "application/json", "gzip"},
		{"xml", "", ""}, {"xml-gzip", "", "gzip"},
	} {
		for _, changed := range []bool{false, true} {
			name := f.name + "/cached"
			if changed {
				name = f.name + "/changed"
			}
			b.Run(name, func(b *testing.B) {
				w := &sizeWriter{h: http.Header{}}
				get := func() {
					req := httptest.NewRequest(http.MethodGet, "/eureka/apps/", nil)
					if f.accept != "" {
						req.Header.Set("Accept", f.accept)
					}
					if f.enc != "" {
						req.Header.Set("Accept-Encoding", f.enc)
					}
					w.code, w.n = http.StatusOK, 0
					mux.ServeHTTP(w, req)
					if w.code != http.StatusOK {
						b.Fatalf("GET /eureka/apps/: %d", w.code)
					}
				}
				get() // the view renders the instances it has not seen yet, and encodes this revision
				b.ReportAllocs()
				for b.Loop() {
					if changed {
						st := registry.StatusOutOfService
						if (flips/n)%2 == 1 {
							st = registry.StatusUnknown // clears the override
						}
						if _, _, err := r.SetOverride(context.Background(), key(flips%n), st); err != nil {
							b.Fatal(err)
						}
						flips++
					}
					get()
				}
				b.ReportMetric(float64(w.n)/1e6, "MB/op")
			})
		}
	}
}

// sizeWriter discards a response and counts its body bytes.
type sizeWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *sizeWriter) Header() http.Header         { return w.h }
func (w *sizeWriter) WriteHeader(code int)        { w.code = code }
func (w *sizeWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
