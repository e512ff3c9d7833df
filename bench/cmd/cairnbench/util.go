package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/cairnhq/cairn/bench/internal/loadgen"
	"github.com/cairnhq/cairn/bench/internal/proc"
	"github.com/cairnhq/cairn/bench/internal/prop"
	"github.com/cairnhq/cairn/bench/internal/results"
)

var logf = log.Printf

const (
	// maxRegister bounds the closed-loop write runs (registrations, puts) in time.
	maxRegister = 5 * time.Minute
	// ttl keeps the instances' leases well beyond the run, so that no
	// eviction adds events to the feed while latencies are measured.
	ttl = "300s"
)

// freePort prints a TCP port that was free on 127.0.0.1 a moment ago;
// with -udp, one free for UDP too (a DNS server's).
func freePort(args []string) error {
	fs := flag.NewFlagSet("freeport", flag.ContinueOnError)
	udp := fs.Bool("udp", false, "the port must be free for UDP too")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if *udp {
			pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				ln.Close()
				continue
			}
			pc.Close()
		}
		ln.Close()
		fmt.Println(port)
		return nil
	}
	return fmt.Errorf("no port free for TCP and UDP after 100 tries")
}

// waitHTTP polls -url until it answers 200 or -timeout passes.
func waitHTTP(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	url := fs.String("url", "", "URL to poll")
	dnsAddr := fs.String("dns", "", "instead of -url: a DNS server (ip:port) to ask for -name's SOA until it answers")
	name := fs.String("name", "cairn.", "with -dns: the name to ask for")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dnsAddr != "" {
		return waitDNS(ctx, *dnsAddr, *name, *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	for {
		if resp, err := hc.Get(*url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v", *url, *timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// measured runs fn while metering the CPU of the server and of this process.
func measured(pid int, fn func() loadgen.Result) results.Throughput {
	m := proc.StartCPU(pid, os.Getpid())
	r := fn()
	cores, machine := m.Cores()
	t := results.FromLoad(r)
	t.ServerCores, t.ClientCores = cores[0], cores[1]
	t.OtherCores = machine - cores[0] - cores[1]
	return t
}

// settle waits d and reads the server's memory.
func settle(ctx context.Context, pid int, d time.Duration) (proc.Memory, error) {
	select {
	case <-ctx.Done():
		return proc.Memory{}, ctx.Err()
	case <-time.After(d):
	}
	return proc.ReadMemory(pid)
}

func logThroughput(what string, t results.Throughput) {
	logf("%s: %d ok, %d errors in %v: %.0f/s (cores used: server %.2f, generator %.2f, rest of the machine %.2f)",
		what, t.Ops, t.Errors, t.Elapsed.Round(time.Millisecond), t.Rate, t.ServerCores, t.ClientCores, t.OtherCores)
	if t.FirstErr != "" {
		logf("%s: first error: %s", what, t.FirstErr)
	}
}

// finishProp ends a propagation run of system under load: it stores the
// raw samples under the raw prefix and logs the run.
func finishProp(system, raw, load string, p results.Propagation, err error) (results.Propagation, error) {
	p.Load = load
	if err != nil {
		return p, err
	}
	if err := writeRaw(raw, load, p.Samples); err != nil {
		return p, err
	}
	if p.Background != nil {
		logThroughput(system+" background "+load, *p.Background)
	}
	logProp(system, load, p)
	return p, nil
}

func logProp(system, load string, p results.Propagation) {
	logf("%s propagation (%s): n=%d p50=%v p99=%v max=%v timeouts=%d (rest of the machine used %.2f cores)",
		system, load, p.Count, p.P50.Round(time.Microsecond), p.P99.Round(time.Microsecond), p.Max.Round(time.Microsecond),
		p.Timeouts, p.OtherCores)
}

// writeRaw stores the samples of a propagation run as CSV in
// <prefix>-<load>.csv: send time (Unix ns) and latency (ns), one per line.
func writeRaw(prefix, load string, samples []prop.Sample) error {
	if prefix == "" {
		return nil
	}
	var b []byte
	b = append(b, "sent_unix_ns,latency_ns\n"...)
	for _, s := range samples {
		b = fmt.Appendf(b, "%d,%d\n", s.Sent.UnixNano(), s.Latency.Nanoseconds())
	}
	return os.WriteFile(prefix+"-"+load+".csv", b, 0o644)
}

// machineBusy prints the cores the whole machine kept busy during -for:
// run before a benchmark, it shows whether something else is running.
func machineBusy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("busy", flag.ContinueOnError)
	d := fs.Duration("for", 2*time.Second, "how long to watch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m := proc.StartCPU()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(*d):
	}
	_, busy := m.Cores()
	fmt.Printf("%.2f\n", busy)
	return nil
}

// probeID names propagation write i: the instance ID (Cairn) or the key suffix (etcd).
func probeID(i int) string { return fmt.Sprintf("p-%06d", i) }

// withBackground runs measure while bg runs paced at rate on workers
// goroutines (no background when bg is nil). The background starts a
// moment before measure, to reach its pace, and stops right after. The
// result carries the background's throughput and the cores the rest of
// the machine used while measure ran.
func withBackground(ctx context.Context, pid int, bg loadgen.Op, rate float64, workers int,
	measure func() (prop.Result, error)) (results.Propagation, error) {
	var p results.Propagation
	var done chan results.Throughput
	stop := func() {}
	if bg != nil {
		bctx, cancel := context.WithCancel(ctx)
		stop = cancel
		done = make(chan results.Throughput, 1)
		go func() {
			done <- measured(pid, func() loadgen.Result { return loadgen.Paced(bctx, rate, workers, 10*time.Minute, bg) })
		}()
		time.Sleep(time.Second)
	}
	m := proc.StartCPU(pid, os.Getpid())
	r, err := measure()
	cores, machine := m.Cores()
	stop()
	p.Result = r
	p.OtherCores = machine - cores[0] - cores[1]
	if done != nil {
		t := <-done
		p.Background, p.TargetRate = &t, rate
	}
	return p, err
}
