package proc

import (
	"os"
	"slices"
	"testing"
)

func TestReadMemorySelf(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS < 1<<20 || m.HWM < m.RSS {
		t.Fatalf("implausible %+v", m)
	}
}

func TestMetrics(t *testing.T) {
	page := []byte("# HELP go_memstats_heap_inuse_bytes x\n# TYPE go_memstats_heap_inuse_bytes gauge\n" +
		"go_memstats_heap_inuse_bytes 1.2e+07\ngo_gc_duration_seconds{quantile=\"0\"} 1\ngo_goroutines 12\n")
	got := Metrics(page, "go_memstats_heap_inuse_bytes", "go_goroutines", "missing")
	if len(got) != 2 || got["go_memstats_heap_inuse_bytes"] != 1.2e7 || got["go_goroutines"] != 12 {
		t.Fatalf("Metrics = %v", got)
	}
}

func TestCPUMeter(t *testing.T) {
	m := StartCPU(os.Getpid())
	x := 0
	for i := range 50_000_000 {
		x += i
	}
	_ = x
	procs, machine := m.Cores()
	if c := procs[0]; c < 0 || c > 64 {
		t.Fatalf("cores = %v", c)
	}
	if machine < 0 || machine > 1024 {
		t.Fatalf("machine cores = %v", machine)
	}
}

func TestChildren(t *testing.T) {
	if got := Children(os.Getppid()); !slices.Contains(got, os.Getpid()) {
		t.Fatalf("Children(parent) = %v, lacks %d", got, os.Getpid())
	}
}
