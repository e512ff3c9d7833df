package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTelemetryAccessLog(t *testing.T) {
	a := startBackend(t, "a", nil)
	down := startBackend(t, "down", nil)
	down.fail.Store(503)
	var buf bytes.Buffer
	al := NewAccessLog(&buf, nil)
	g := startGateway(t, Options{AccessLog: al}, routeDoc("ok", "  match: {path: {value: /ok}}\n  backends: [{address: "+addr(a)+"}]")+
		routeDoc("down", "  match: {path: {value: /down}}\n  retries: {attempts: 2, backoff: {base: 1ms}}\n  backends: [{address: "+addr(down)+"}]")+
		routeDoc("dead", "  match: {path: {value: /dead}}\n  retries: {attempts: 0}\n  backends: [{address: \""+deadAddr(t)+"\"}]"))
	get(t, g.url+"/ok/x?q=1", "X-Request-Id", "rid-1", "Host", "shop.example.com")
	get(t, g.url+"/down")
	get(t, g.url+"/dead")
	get(t, g.url+"/nowhere")
	resp, err := testClient.Head(g.url + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Every handler has returned once the server is drained.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.s.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	type line struct {
		Time       string   `json:"time"`
		RequestID  string   `json:"request_id"`
		Route      string   `json:"route"`
		Method     string   `json:"method"`
		Host       string   `json:"host"`
		Path       string   `json:"path"`
		Proto      string   `json:"proto"`
		Client     string   `json:"client"`
		Status     int      `json:"status"`
		BytesSent  int64    `json:"bytes_sent"`
		DurationMS *float64 `json:"duration_ms"`
		UpstreamMS *float64 `json:"upstream_ms"`
		Backend    string   `json:"backend"`
		Upstream   string   `json:"upstream"`
		Retries    *int     `json:"retries"`
		Error      string   `json:"error"`
	}
	var lines []line
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var l line
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("not one JSON object per line: %v: %s", err, sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil || l.DurationMS == nil || l.UpstreamMS == nil || l.Retries == nil ||
			!regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(l.Client) || l.Proto != "HTTP/1.1" {
			t.Fatalf("missing fields: %s", sc.Text())
		}
		lines = append(lines, l)
	}
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5:\n%s", len(lines), buf.String())
	}
	ok, dn, dead, nf, head := lines[0], lines[1], lines[2], lines[3], lines[4]
	if ok.RequestID != "rid-1" || ok.Route != "default/ok" || ok.Method != "GET" || ok.Host != "shop.example.com" || ok.Path != "/ok/x" ||
		ok.Status != 200 || ok.BytesSent == 0 || ok.Backend != a.addr || ok.Upstream != a.addr || *ok.Retries != 0 || ok.Error != "" {
		t.Errorf("ok: %+v", ok)
	}
	if dn.Route != "default/down" || dn.Status != 503 || *dn.Retries != 2 || dn.Upstream != down.addr || len(dn.RequestID) != 32 {
		t.Errorf("down: %+v", dn)
	}
	if dead.Route != "default/dead" || dead.Status != 502 || dead.Error == "" || dead.Upstream == "" || dead.BytesSent == 0 {
		t.Errorf("dead: %+v", dead)
	}
	if nf.Route != "" || nf.Status != 404 || nf.Backend != "" {
		t.Errorf("not found: %+v", nf)
	}
	if head.Method != "HEAD" || head.Status != 200 || head.BytesSent != 0 {
		t.Errorf("head: %+v", head)
	}
}

func TestTelemetryAccessLogEscapes(t *testing.T) {
	var buf bytes.Buffer
	al := NewAccessLog(&buf, nil)
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.Host = "ex\"ample\n\x01\xff"
	r.URL.Path = `/a\b` + "\u2028é"
	al.write(r, &logRecord{requestID: "id\t", route: "ns/r", err: "boom \"quoted\""})
	al.Close()
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if m["host"] != "ex\"ample\n\x01\ufffd" || m["path"] != `/a\b`+"\u2028é" || m["request_id"] != "id\t" || m["error"] != "boom \"quoted\"" {
		t.Fatalf("%v", m)
	}
}

func TestTelemetryMetrics(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	g := startGateway(t, Options{}, "")
	services := svc("web", inst(a), inst(b))
	g.apply(t, routeDoc("web", "  retries: {backoff: {base: 1ms}}\n  outlierDetection: {consecutiveFailures: 2, baseEjection: 10s}\n  backends: [{service: web}]")+
		routeDoc("other", "  hosts: [other.example.com]\n  match: {path: {type: exact, value: /o}}\n  backends: [{address: "+addr(a)+"}]"), services)
	for i := 0; i < 10; i++ {
		get(t, g.url+"/")
	}
	b.fail.Store(503)
	for i := 0; i < 10; i++ {
		if code, _, _ := get(t, g.url+"/"); code != 200 {
			t.Fatalf("503 not retried: %d", code)
		}
	}
	get(t, g.url+"/o", "Host", "other.example.com")
	get(t, g.url+"/p", "Host", "other.example.com") // no route

	be := "web.default"
	m := func(name string, labels ...string) float64 { return metric(t, g.reg, name, labels...) }
	if n := m("cairn_proxy_requests_total", "route", "default/web", "backend", be, "class", "2xx"); n != 20 {
		t.Errorf("2xx %v", n)
	}
	if n := m("cairn_proxy_requests_total", "route", "default/web", "class", "5xx"); n != 0 {
		t.Errorf("5xx %v (retried answers count once, as answered)", n)
	}
	if n := m("cairn_proxy_request_duration_seconds", "route", "default/web", "backend", be); n != 20 {
		t.Errorf("duration histogram count %v", n)
	}
	if n := m("cairn_proxy_upstream_latency_seconds", "route", "default/web", "backend", be); n != 20 {
		t.Errorf("upstream latency histogram count %v", n)
	}
	// b failed twice in a row, then was ejected: two retries.
	if n := m("cairn_proxy_retries_total", "route", "default/web"); n != 2 {
		t.Errorf("retries %v", n)
	}
	if n := m("cairn_proxy_outlier_ejections_total", "route", "default/web", "backend", be); n != 1 {
		t.Errorf("ejections %v", n)
	}
	if n := m("cairn_proxy_upstream_ejected", "instance", b.addr); n != 1 {
		t.Errorf("ejected gauge %v", n)
	}
	if n := m("cairn_proxy_upstream_ejected", "instance", a.addr); n != 0 {
		t.Errorf("a ejected %v", n)
	}
	if n := m("cairn_proxy_upstream_active_requests"); n != 0 {
		t.Errorf("active %v", n)
	}
	if n := m("cairn_proxy_requests_total", "route", "default/other", "backend", a.addr, "class", "2xx"); n != 1 {
		t.Errorf("other route %v", n)
	}
	if n := m("cairn_proxy_unrouted_requests_total"); n != 1 {
		t.Errorf("unrouted %v", n)
	}
	if n := m("cairn_proxy_config_updates_total", "result", "applied"); n != 1 {
		t.Errorf("config updates %v", n)
	}
	// A route that goes away takes its series with it.
	g.apply(t, routeDoc("web", "  backends: [{service: web}]"), services)
	if n := m("cairn_proxy_requests_total", "route", "default/other"); n != 0 {
		t.Errorf("series of a removed route remain: %v", n)
	}
	if n := m("cairn_proxy_requests_total", "route", "default/web", "class", "2xx"); n != 20 {
		t.Errorf("series of a kept route reset: %v", n)
	}
}
