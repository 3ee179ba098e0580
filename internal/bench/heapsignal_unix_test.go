//go:build unix

package bench

import (
	"os"
	"syscall"
)

// heapProfileSignal asks the test hub for its heap profile (serveHub).
var heapProfileSignal os.Signal = syscall.SIGUSR1

// askHeapProfile sends the test hub pid heapProfileSignal.
func askHeapProfile(pid int) error { return syscall.Kill(pid, syscall.SIGUSR1) }
