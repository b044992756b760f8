package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat;
// Linux fixes it at 100 for user space on every architecture.
const clockTicks = 100

// procTree returns pid followed by all of its descendants (nginx: master
// then workers), found through the parent field of every /proc/N/stat.
func procTree(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pid}
	}
	children := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fields, err := statFields(child)
		if err != nil {
			continue
		}
		parent, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		children[parent] = append(children[parent], child)
	}
	tree := []int{pid}
	for i := 0; i < len(tree) && i < 10000; i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// statFields returns the fields of /proc/PID/stat after the command name,
// which may itself hold spaces and parentheses: [0] is the state, [1] the
// parent PID, [11] utime, [12] stime.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return nil, fmt.Errorf("parsing /proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+2:]))
	if len(fields) < 13 {
		return nil, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(fields))
	}
	return fields, nil
}

// cpuTime sums user and system CPU time of the given processes.
func cpuTime(pids []int) (time.Duration, error) {
	var ticks int64
	for _, pid := range pids {
		fields, err := statFields(pid)
		if err != nil {
			return 0, fmt.Errorf("reading CPU time: %w", err)
		}
		for _, f := range fields[11:13] {
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing CPU time of %d: %w", pid, err)
			}
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// memory sums VmRSS and VmHWM (peak RSS) of the given processes, in bytes.
func memory(pids []int) (rss, hwm int64, err error) {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, 0, fmt.Errorf("reading memory: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok || (name != "VmRSS" && name != "VmHWM") {
				continue
			}
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("parsing %s of %d: %w", name, pid, err)
			}
			if name == "VmRSS" {
				rss += kib << 10
			} else {
				hwm += kib << 10
			}
		}
	}
	return rss, hwm, nil
}

// resetPeak sets VmHWM back to the current VmRSS (clear_refs value 5,
// Linux 4.0+), so that a later memory() reports the peak of one phase only.
func resetPeak(pids []int) error {
	for _, pid := range pids {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			return fmt.Errorf("resetting peak RSS: %w", err)
		}
	}
	return nil
}

// raiseNoFile lifts the soft open-file limit to the hard one through
// syscall.Setrlimit, which (unlike the Go runtime's own silent raise) is
// inherited by children: a thread-per-connection proxy holding 1,000
// streams needs 2,000 descriptors.
func raiseNoFile() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
	}
	return nil
}

// childAttr makes the kernel send SIGKILL to a child if the benchmark dies
// without stopping it (SIGKILL of the benchmark, a crash).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
