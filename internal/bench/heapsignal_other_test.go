//go:build !unix

package bench

import (
	"errors"
	"os"
)

// heapProfileSignal is nil: there is no user signal to ask the test hub
// for its heap profile with here.
var heapProfileSignal os.Signal

func askHeapProfile(int) error {
	return errors.New("asking the hub for a heap profile needs a Unix signal (SIGUSR1)")
}
