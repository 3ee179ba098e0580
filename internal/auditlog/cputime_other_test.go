//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package auditlog

import "time"

func cpuTime() time.Duration { return 0 }
