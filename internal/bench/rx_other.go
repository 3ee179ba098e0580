//go:build !linux

package bench

import (
	"net"
	"runtime"
)

// newRxSource reads without receive times: the kernel's receive timestamp
// of a socket read (SO_TIMESTAMPNS through recvmsg) is taken only on
// Linux, so the PUBACK latency at the client socket is not measured here.
func newRxSource(nc net.Conn) (rxSource, string) {
	return plainRx{nc}, "the kernel's receive time of a PUBACK is read only on Linux (SO_TIMESTAMPNS), not on " + runtime.GOOS
}
