//go:build !unix

package bench

import (
	"errors"
	"fmt"
	"time"
)

// selfCPU is 0 where getrusage is missing: the report then shows no load
// generator CPU rather than a wrong one.
func selfCPU() time.Duration { return 0 }

// raiseFileLimit cannot change the open-file limit here (no setrlimit); the
// bench's phases that need many connections say so (bench.go).
func raiseFileLimit() (uint64, error) {
	return 0, fmt.Errorf("raise open-file limit: %w", errors.ErrUnsupported)
}
