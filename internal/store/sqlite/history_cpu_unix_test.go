//go:build unix

package sqlite

import (
	"syscall"
	"testing"
	"time"
)

// procCPU is the CPU time (user and system) this process has used so far:
// on a shared machine it moves less than wall time with other people's
// load, as it leaves out the time spent waiting for a CPU.
func procCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
