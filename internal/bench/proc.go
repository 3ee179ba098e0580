package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK)
// needs cgo to ask).
const clockTicks = 100

// procSample is one reading of a process's resource use from /proc.
type procSample struct {
	CPU time.Duration // user + system time since the process started
	RSS int64         // resident set size now, bytes (VmRSS)
	HWM int64         // peak resident set size, bytes (VmHWM)
	// RunqWait is how long the process's threads (those alive now) have
	// waited on a run queue for a CPU: high when other work competes.
	RunqWait time.Duration
	// DiskWrites is what the process caused to be written to storage
	// (write_bytes of /proc/<pid>/io: WAL frames and checkpoints, not
	// socket writes), bytes; -1 when the kernel does not report it.
	DiskWrites int64
}

// readProc reads a process's CPU time and memory from /proc.
func readProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may contain
	// spaces; the fields after its closing parenthesis start at field 3.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("read CPU time of process %d: malformed /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("read CPU time of process %d: /proc/%d/stat has %d fields", pid, pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("read CPU time of process %d: bad utime/stime %q %q", pid, f[11], f[12])
	}
	s.CPU = time.Duration(utime+stime) * time.Second / clockTicks

	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			s.RSS = parseKB(line)
		case strings.HasPrefix(line, "VmHWM:"):
			s.HWM = parseKB(line)
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	s.RunqWait = runqWait(pid)
	s.DiskWrites = diskWrites(pid)
	return s, nil
}

// diskWrites reads write_bytes from /proc/<pid>/io, -1 if it is missing.
func diskWrites(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// runqWait sums the run-queue wait (the second field of schedstat, ns)
// over the process's threads; 0 when the kernel does not report it.
func runqWait(pid int) time.Duration {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil {
		return 0
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			total += n
		}
	}
	return time.Duration(total)
}

// parseKB parses a /proc/<pid>/status line such as "VmHWM:   1234 kB".
func parseKB(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n << 10
}

// resetPeakRSS resets a process's VmHWM to its current RSS (writing 5 to
// /proc/<pid>/clear_refs, Linux 4.0+), so each phase reports its own peak.
// It reports whether the reset worked.
func resetPeakRSS(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// memTotal is the machine's memory in bytes, from /proc/meminfo.
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			return parseKB(line)
		}
	}
	return 0
}

// connsPerSource is how many idle connections dial from one loopback
// source address, below Linux's default ephemeral port range (32768-60999).
const connsPerSource = 10_000

// idleSource is the source address of idle connection k to a broker at
// addr: 127.0.0.2, .3, … in groups of connsPerSource when the broker is on
// IPv4 loopback (all of 127/8 is local on Linux), nil (the kernel's choice)
// otherwise.
func idleSource(addr string, k int) net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host).To4()
	if ip == nil || ip[0] != 127 {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(2+k/connsPerSource))
}
