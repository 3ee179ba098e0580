//go:build unix

package bench

import (
	"fmt"
	"syscall"
	"time"
)

// selfCPU is the CPU time (user + system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// wantFiles is the open-file limit the bench asks for: 100,000 idle
// connections, each an open file in the bench and one in the broker, and
// room for everything else.
const wantFiles = 250_000

// raiseFileLimit lifts this process's soft limit on open files to the hard
// limit, and first the hard limit to wantFiles where the process may (as
// root, within fs.nr_open). Calling Setrlimit explicitly (rather than
// relying on the Go runtime's own raise) also makes the brokers started as
// subprocesses inherit the higher limit, which the connection-scale phase
// needs.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read open-file limit: %w", err)
	}
	if lim.Max < wantFiles {
		up := syscall.Rlimit{Cur: wantFiles, Max: wantFiles}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return wantFiles, nil
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("raise open-file limit to %d: %w", lim.Max, err)
	}
	// Rlimit's fields are uint64 on Linux but int64 on the BSDs; a limit
	// is never negative, so the conversion loses nothing.
	return uint64(lim.Cur), nil
}
