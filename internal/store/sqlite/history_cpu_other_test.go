//go:build !unix

package sqlite

import (
	"testing"
	"time"
)

// procCPU is not measured here: the benchmarks report 0.
func procCPU(*testing.B) time.Duration { return 0 }
