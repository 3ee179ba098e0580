//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package auditlog

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time, for benchmark figures
// that do not depend on how busy the machine is.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
