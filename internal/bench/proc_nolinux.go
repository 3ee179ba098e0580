//go:build !linux

package bench

import "syscall"

// bindNoPort leaves the source port's choice to bind: the option that
// defers it (IP_BIND_ADDRESS_NO_PORT) is Linux's, and its number means
// something else elsewhere (IP_BINDANY on FreeBSD).
func bindNoPort(network, address string, c syscall.RawConn) error { return nil }
