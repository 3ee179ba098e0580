// Package porttest lets a test hold a TCP address, as another program
// would, to check how the hub copes when its default ports are taken.
package porttest

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// Hold keeps addr taken until the test ends. When another program (such
// as a system Mosquitto on 1883) already holds it, it is taken all the
// same, and the test says so in its log.
func Hold(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		t.Logf("%s is already taken by another program", addr)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}
