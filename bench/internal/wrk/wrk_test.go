package wrk

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// What wrk 4.1.0 (Debian bookworm's package) printed with --latency and Script.
const output = `Running 3s test @ http://127.0.0.1:19001/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.00ms    1.50ms  14.74ms   88.35%
    Req/Sec    59.39k     6.51k   75.43k    71.67%
  Latency Distribution
     50%  466.00us
     75%    1.09ms
     90%    2.84ms
     99%    7.34ms
  354900 requests in 3.00s, 75.81MB read
Requests/sec: 118151.13
Transfer/sec:     25.24MB
WRKJSON {"requests":354900,"durationUs":3003780,"bytes":79497600,"connect":0,"read":0,"write":0,"status":2,"timeout":1,"meanUs":998.7,"stdevUs":1497.8,"minUs":9,"maxUs":14738,"p50Us":466,"p75Us":1094,"p90Us":2841,"p99Us":7338,"p999Us":10639}
`

func TestParse(t *testing.T) {
	r, err := Parse(output)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 354900 || r.Bytes != 79497600 || r.Duration != 3003780*time.Microsecond {
		t.Errorf("requests %d bytes %d duration %v", r.Requests, r.Bytes, r.Duration)
	}
	if r.Rate < 118151 || r.Rate > 118152 {
		t.Errorf("rate %f, want wrk's 118151.13", r.Rate)
	}
	if r.P50 != 466*time.Microsecond || r.P99 != 7338*time.Microsecond || r.P999 != 10639*time.Microsecond || r.Max != 14738*time.Microsecond {
		t.Errorf("latencies %v %v %v %v", r.P50, r.P99, r.P999, r.Max)
	}
	if r.Mean != 998700*time.Nanosecond {
		t.Errorf("mean %v", r.Mean)
	}
	if r.Errors() != 3 {
		t.Errorf("errors %d, want 3", r.Errors())
	}
	if got := r.BytesPerResponse(); got != 224 {
		t.Errorf("bytes per response %f, want 224", got)
	}
	if strings.Contains(r.Output, "WRKJSON") || !strings.Contains(r.Output, "Requests/sec: 118151.13") {
		t.Errorf("output:\n%s", r.Output)
	}
	if _, err := Parse("Running 3s test\n"); err == nil {
		t.Error("Parse without the JSON line succeeded")
	}
}

func TestArgs(t *testing.T) {
	c := Config{URL: "http://127.0.0.1:1/", Threads: 2, Conns: 64, Duration: 15 * time.Second, Script: "/tmp/s.lua"}
	want := []string{"-t", "2", "-c", "64", "-d", "15s", "--latency", "-s", "/tmp/s.lua", "http://127.0.0.1:1/"}
	if got := c.Args(); !slices.Equal(got, want) {
		t.Errorf("Args() = %q, want %q", got, want)
	}
}
