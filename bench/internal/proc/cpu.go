package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of the CPU times in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPUTime returns the user plus system CPU time process pid has used.
func CPUTime(pid int) (time.Duration, error) {
	user, sys, err := CPUTimes(pid)
	return user + sys, err
}

// CPUTimes returns the user and the system CPU time process pid has used.
func CPUTimes(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it are plain.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(utime) * clockTick, time.Duration(stime) * clockTick, nil
}

// MachineBusy returns the CPU time all CPUs of the machine have spent
// busy (anything but idle and iowait) since boot, from /proc/stat.
func MachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user and nice.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * clockTick, nil
}

// CPUMeter measures the cores a set of processes, and the whole machine,
// use over an interval.
type CPUMeter struct {
	pids    []int
	start   time.Time
	used    []time.Duration
	machine time.Duration
}

// StartCPU starts measuring the CPU use of pids and of the machine.
func StartCPU(pids ...int) *CPUMeter {
	m := &CPUMeter{pids: pids, start: time.Now(), used: make([]time.Duration, len(pids))}
	for i, p := range pids {
		m.used[i], _ = CPUTime(p)
	}
	m.machine, _ = MachineBusy()
	return m
}

// Cores returns, for each pid, the average number of cores it used since
// StartCPU (CPU time over wall time), and the same for the whole machine;
// -1 for what could not be read.
func (m *CPUMeter) Cores() (procs []float64, machine float64) {
	wall := time.Since(m.start)
	procs = make([]float64, len(m.pids))
	for i, p := range m.pids {
		t, err := CPUTime(p)
		if err != nil || wall <= 0 {
			procs[i] = -1
			continue
		}
		procs[i] = float64(t-m.used[i]) / float64(wall)
	}
	machine = -1
	if t, err := MachineBusy(); err == nil && wall > 0 {
		machine = float64(t-m.machine) / float64(wall)
	}
	return procs, machine
}
