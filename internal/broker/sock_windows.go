//go:build windows

package broker

import (
	"errors"
	"syscall"
)

// rawSockets is false on Windows: a socket there is a handle served by I/O
// completion ports, not a descriptor a non-blocking read(2) or write(2) can
// be tried on, so plain TCP connections are read through net.Conn (as TLS
// and WebSocket ones are everywhere) and the ack queue's run goroutine
// writes their acknowledgements. newSockReader returns nil, so readFD and
// writeFD are never called.
const rawSockets = false

// plainReadBuffer is mochi's per-connection read buffer (mochiReadBuffer):
// a fill per system call on a plain TCP connection.
const plainReadBuffer = 1 << 10

func readFD(uintptr, []byte) (int, bool, error) { return 0, false, errors.ErrUnsupported }

func writeFD(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }

// setReceiveBuffer sets the socket's receive buffer, as net.TCPConn's
// SetReadBuffer does on Windows; accepted sockets inherit the listening
// socket's, as on Linux.
func setReceiveBuffer(fd uintptr, n int) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
