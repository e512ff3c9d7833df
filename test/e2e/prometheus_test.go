package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A real Prometheus server discovers what registers in Cairn through the
// HTTP SD endpoint, scrapes it with its metadata as labels, and drops it
// when it deregisters.
func TestPrometheusScrapesRegisteredInstances(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: run scripts/test.sh, which installs Debian's prometheus package")
	}
	s := startCairn(t, "server", "--in-memory", "--log-level", "warn")

	// The application Prometheus will scrape.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE demo_requests_total counter\ndemo_requests_total 42")
	}))
	defer app.Close()
	_, portStr, _ := net.SplitHostPort(app.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	reg := instance{Service: "web", ID: "web-1", Address: "127.0.0.1", TTL: "0s",
		Ports:    []map[string]any{{"name": "http", "port": 1}, {"name": "metrics", "port": port}},
		Metadata: map[string]string{"team": "core", "version": "1.2.3"}}
	if code, err := call("POST", s.URL+"/v1/instances", reg, nil); code != 201 || err != nil {
		t.Fatalf("register: %d %v", code, err)
	}
	// A DOWN instance must not be scraped.
	down := instance{Service: "web", ID: "web-2", Address: "127.0.0.1", TTL: "0s", Status: "DOWN",
		Ports: []map[string]any{{"name": "metrics", "port": port}}}
	call("POST", s.URL+"/v1/instances", down, nil)

	promPort := freePort(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: cairn
    http_sd_configs:
      - url: %s/v1/sd/prometheus
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_cairn_service]
        target_label: service
      - source_labels: [__meta_cairn_instance_id]
        target_label: cairn_instance
      - action: labelmap
        regex: __meta_cairn_metadata_(.+)
`, s.URL)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort), "--log.level=warn")
	promLog := &syncBuffer{}
	prom.Stdout, prom.Stderr = promLog, promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { prom.Process.Kill(); prom.Wait() }()
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)

	query := func(q string) ([]promSample, error) {
		resp, err := http.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var ans struct {
			Data struct {
				Result []promSample `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&ans)
		return ans.Data.Result, err
	}
	eventually(t, 60*time.Second, "Prometheus scrapes the registered instance with its metadata as labels", func() (bool, string) {
		res, err := query(`demo_requests_total{service="web",team="core",version="1.2.3",cairn_instance="web-1"}`)
		if err != nil {
			return false, err.Error() + "\n" + promLog.String()
		}
		return len(res) == 1, fmt.Sprintf("%+v", res)
	})
	if res, _ := query(`up{cairn_instance="web-2"}`); len(res) != 0 {
		t.Fatalf("the DOWN instance was scraped: %+v", res)
	}

	// Deregister: Prometheus drops the target.
	if code, _ := call("DELETE", s.URL+"/v1/services/default/web/instances/web-1", nil, nil); code != 200 {
		t.Fatalf("deregister: %d", code)
	}
	eventually(t, 30*time.Second, "Prometheus drops the deregistered target", func() (bool, string) {
		resp, err := http.Get(promURL + "/api/v1/targets?state=active")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var ans struct {
			Data struct {
				ActiveTargets []map[string]any `json:"activeTargets"`
			} `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&ans)
		return len(ans.Data.ActiveTargets) == 0, fmt.Sprintf("%d active targets", len(ans.Data.ActiveTargets))
	})
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
