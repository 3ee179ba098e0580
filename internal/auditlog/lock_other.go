//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package auditlog

import (
	"fmt"
	"os"
)

// lockFile creates the lock file. Without flock there is no cross-process
// lock on this platform: run one hub per data directory.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
