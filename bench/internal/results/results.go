// Package results holds what one benchmark suite measured, as the JSON
// file each run writes and the report reads.
package results

import (
	"encoding/json"
	"os"
	"time"

	"github.com/cairnhq/cairn/bench/internal/loadgen"
	"github.com/cairnhq/cairn/bench/internal/proc"
	"github.com/cairnhq/cairn/bench/internal/prop"
)

// Suite is one system (cairn or etcd) measured at one size.
type Suite struct {
	System      string `json:"system"` // "cairn" or "etcd"
	Version     string `json:"version"`
	Instances   int    `json:"instances"` // instances (cairn) or keys (etcd) written
	Services    int    `json:"services,omitempty"`
	Concurrency int    `json:"concurrency"`

	// Writes are registrations (cairn) or puts (etcd) of every instance.
	Writes Throughput `json:"writes"`
	// Renewals are lease renewals of every instance, round robin (cairn only).
	Renewals *Throughput `json:"renewals,omitempty"`

	// Memory is the server's memory once the writes (and renewals) stopped
	// and Settle passed.
	Memory proc.Memory        `json:"memory"`
	Settle time.Duration      `json:"settle"`
	GoMem  map[string]float64 `json:"goMem,omitempty"` // go_memstats_* from /metrics (cairn)
	// Churn are re-registrations that change one of a small hot set of
	// instances each time, as many as the change feed holds (cairn), made
	// after the propagation runs; AfterChurn is the memory after them, with
	// the feed full of replaced instance versions it keeps alive.
	Churn      *Throughput   `json:"churn,omitempty"`
	AfterChurn *MemorySample `json:"afterChurn,omitempty"`

	Propagation []Propagation `json:"propagation"`
}

// MemorySample is the server's memory at one moment.
type MemorySample struct {
	proc.Memory
	GoMem map[string]float64 `json:"goMem,omitempty"` // go_memstats_* from /metrics
}

// Throughput is a closed-loop or paced run and the CPU it took.
type Throughput struct {
	Ops      int64         `json:"ops"`
	Errors   int64         `json:"errors"`
	Skipped  int64         `json:"skipped,omitempty"`
	Elapsed  time.Duration `json:"elapsed"`
	Rate     float64       `json:"rate"` // successful ops per second
	FirstErr string        `json:"firstErr,omitempty"`
	// ServerCores and ClientCores are the cores the server and the load
	// generator used on average during the run (CPU time / wall time);
	// OtherCores is what the rest of the machine (the kernel's own threads,
	// the other server, anything else running) used.
	ServerCores float64 `json:"serverCores"`
	ClientCores float64 `json:"clientCores"`
	OtherCores  float64 `json:"otherCores"`
}

// FromLoad converts a loadgen result.
func FromLoad(r loadgen.Result) Throughput {
	t := Throughput{Ops: r.Ops, Errors: r.Errors, Skipped: r.Skipped, Elapsed: r.Elapsed, Rate: r.Rate()}
	if r.FirstErr != nil {
		t.FirstErr = r.FirstErr.Error()
	}
	return t
}

// Propagation is one propagation measurement: write -> watcher latency,
// with or without background load.
type Propagation struct {
	// Load names the background: "idle", "renewals" (cairn), "writes"
	// (cairn re-registrations that change the instance) or "puts" (etcd
	// overwrites of existing keys).
	Load       string      `json:"load"`
	TargetRate float64     `json:"targetRate,omitempty"`
	Background *Throughput `json:"background,omitempty"`
	// OtherCores is what the rest of the machine (neither the server nor
	// the load generator) used while the latencies were measured.
	OtherCores float64 `json:"otherCores"`
	prop.Result
}

// Write stores s as indented JSON in path.
func Write(path string, s *Suite) error { return writeJSON(path, s) }

// Read loads a suite written by Write.
func Read(path string) (*Suite, error) {
	var s Suite
	if err := readJSON(path, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// writeJSON stores v as indented JSON in path; every suite is written so.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// readJSON loads what writeJSON wrote.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
