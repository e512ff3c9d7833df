package dnsperf

import (
	"slices"
	"testing"
	"time"
)

// The end of what dnsperf 2.10.0 prints (Debian bookworm's package).
const summary = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 15353 -d q -c 2 -l 1
[Status] Sending queries (to 127.0.0.1:15353)
[Status] Started at: Mon Nov 23 14:26:14 2026
[Status] Stopping after 1.000000 seconds
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         85802
  Queries completed:    85800 (100.00%)
  Queries lost:         2 (0.00%)

  Response codes:       NOERROR 42901 (50.00%), NXDOMAIN 42899 (50.00%)
  Average packet size:  request 37, response 128
  Run time (s):         1.000572
  Queries per second:   85752.949313

  Average Latency (s):  0.001023 (min 0.000014, max 0.009232)
  Latency StdDev (s):   0.000653

`

func TestParseSummary(t *testing.T) {
	r, err := ParseSummary(summary)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 85802 || r.Completed != 85800 || r.Lost != 2 {
		t.Errorf("sent/completed/lost = %d/%d/%d", r.Sent, r.Completed, r.Lost)
	}
	if r.RCodes["NOERROR"] != 42901 || r.RCodes["NXDOMAIN"] != 42899 || len(r.RCodes) != 2 {
		t.Errorf("rcodes = %v", r.RCodes)
	}
	if r.RequestBytes != 37 || r.ResponseBytes != 128 {
		t.Errorf("sizes = %d, %d", r.RequestBytes, r.ResponseBytes)
	}
	if r.QPS < 85752.9 || r.QPS > 85753 {
		t.Errorf("qps = %v", r.QPS)
	}
	if r.RunTime != 1000572*time.Microsecond || r.AvgLatency != 1023*time.Microsecond ||
		r.MinLatency != 14*time.Microsecond || r.MaxLatency != 9232*time.Microsecond || r.StdDev != 653*time.Microsecond {
		t.Errorf("times = %v %v %v %v %v", r.RunTime, r.AvgLatency, r.MinLatency, r.MaxLatency, r.StdDev)
	}
	if _, err := ParseSummary("Error: no such file"); err == nil {
		t.Error("no error for output without statistics")
	}
}

func TestVerboseLatency(t *testing.T) {
	for line, want := range map[string]time.Duration{
		"> NOERROR a.default.svc.cairn A 0.000284":  284 * time.Microsecond,
		"> NXDOMAIN x.default.svc.cairn A 1.500000": 1500 * time.Millisecond,
		"> NOERROR big.default.svc.cairn A 0.1":     100 * time.Millisecond,
	} {
		if got, ok := VerboseLatency([]byte(line)); !ok || got != want {
			t.Errorf("%q: %v, %v; want %v", line, got, ok, want)
		}
	}
	for _, line := range []string{"> T a.default.svc.cairn A", "> NOERROR a A 0.00x1", ">"} {
		if got, ok := VerboseLatency([]byte(line)); ok {
			t.Errorf("%q: %v, want no latency", line, got)
		}
	}
}

func TestArgs(t *testing.T) {
	c := Config{Server: "127.0.0.1", Port: 53, Queries: "q", Clients: 4, Duration: 10 * time.Second,
		QPS: 1234.4, EDNS: true, TCP: true, Timeout: 2 * time.Second, Verbose: true}
	want := []string{"-s", "127.0.0.1", "-p", "53", "-d", "q", "-c", "4", "-l", "10", "-Q", "1234", "-e", "-m", "tcp", "-t", "2", "-v"}
	if got := c.Args(); !slices.Equal(got, want) {
		t.Errorf("args = %v, want %v", got, want)
	}
}
