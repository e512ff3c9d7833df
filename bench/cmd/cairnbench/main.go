// Command cairnbench is the load generator of bench/run.sh: it measures a
// running Cairn server or etcd member and reports the results.
//
//	cairnbench cairn  -url http://127.0.0.1:P -pid PID -n 10000 -out cairn-10000.json
//	cairnbench etcd   -endpoint http://127.0.0.1:P -pid PID -n 10000 -out etcd-10000.json
//	cairnbench report FILE.json...
//	cairnbench eureka -url URL -pid PID -nginx-url URL -nginx-root DIR -etcd URL -etcd-pid PID -out eureka.json
//	cairnbench eureka-report eureka.json
//	cairnbench dns -url URL -pid PID -dns ADDR -coredns ADDR -coredns-pid PID -workdir DIR -out dns.json
//	cairnbench dns-zone -out FILE   the DNS benchmark's records as a zone file for CoreDNS
//	cairnbench dns-report dns.json
//	cairnbench gateway -target direct=URL -target cairn=URL -pid cairn=PID ... -backend-pids P1,P2 -workdir DIR -out gateway.json
//	cairnbench gateway-report gateway.json
//	cairnbench paced -url URL -rate 2000 -c 32 -for 10s   open-loop GETs of one URL at a fixed rate
//	cairnbench get -url URL [-accept A] [-gzip] -c 4 -for 5s   closed-loop GETs of one URL
//	cairnbench freeport [-udp] print a free TCP (and UDP) port on 127.0.0.1
//	cairnbench wait -url URL   wait until URL answers 200 (-dns ADDR: until a DNS server answers)
//	cairnbench busy -for 2s    print the cores the machine keeps busy (is it quiet?)
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// common are the flags both suites share.
type common struct {
	pid         int
	n           int
	concurrency int
	propN       int
	propTimeout time.Duration
	bgRate      float64
	settle      time.Duration
	out         string
	raw         string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.IntVar(&c.pid, "pid", 0, "process id of the server (for memory and CPU figures)")
	fs.IntVar(&c.n, "n", 10_000, "instances (cairn) or keys (etcd) to write")
	fs.IntVar(&c.concurrency, "c", 64, "concurrent clients of the closed-loop runs")
	fs.IntVar(&c.propN, "prop-n", 2000, "writes per propagation measurement")
	fs.DurationVar(&c.propTimeout, "prop-timeout", 5*time.Second, "how long one write's change may take to be seen")
	fs.Float64Var(&c.bgRate, "bg-rate", 5000, "operations per second of the background load during propagation")
	fs.DurationVar(&c.settle, "settle", 5*time.Second, "pause before reading the server's memory")
	fs.StringVar(&c.out, "out", "", "file to write the JSON results to (required)")
	fs.StringVar(&c.raw, "raw", "", "if set, write every propagation sample to RAW-<load>.csv (sent time, latency)")
}

func (c *common) check() error {
	switch {
	case c.pid <= 0:
		return fmt.Errorf("-pid is required")
	case c.n <= 0 || c.concurrency <= 0 || c.propN < 0 || c.bgRate <= 0:
		return fmt.Errorf("-n, -c and -bg-rate must be positive, -prop-n not negative")
	case c.out == "":
		return fmt.Errorf("-out is required")
	}
	return nil
}

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("cairnbench: ")
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: cairnbench cairn|etcd|report|eureka|eureka-report|dns|dns-zone|dns-report|gateway|gateway-report|paced|get|freeport|wait|busy [flags]")
		os.Exit(2)
	}
	// Bounded in time whatever the flags say: nothing here should run for an hour.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()

	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "cairn":
		err = runCairn(ctx, args)
	case "etcd":
		err = runEtcd(ctx, args)
	case "report":
		err = runReport(args)
	case "eureka":
		err = runEureka(ctx, args)
	case "eureka-report":
		err = runEurekaReport(args)
	case "dns":
		err = runDNS(ctx, args)
	case "dns-zone":
		err = runDNSZone(args)
	case "dns-report":
		err = runDNSReport(args)
	case "gateway":
		err = runGateway(ctx, args)
	case "gateway-report":
		err = runGatewayReport(args)
	case "paced":
		err = runPaced(ctx, args)
	case "get":
		err = runGet(ctx, args)
	case "freeport":
		err = freePort(args)
	case "wait":
		err = waitHTTP(ctx, args)
	case "busy":
		err = machineBusy(ctx, args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		log.Printf("%s: %v", os.Args[1], err)
		os.Exit(1)
	}
}
