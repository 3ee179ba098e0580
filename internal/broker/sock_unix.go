//go:build unix

package broker

import "syscall"

// rawSockets reports whether plain TCP connections are read and written
// through their file descriptors with non-blocking system calls
// (readbuf.go's sockReader, the ack queue's direct writes). On Unix the
// descriptor syscall.RawConn hands over is the socket's, in non-blocking
// mode, and read and write act on it as such.
const rawSockets = true

// plainReadBuffer is mochi's per-connection read buffer (mochiReadBuffer):
// the smallest bufio.NewReaderSize makes (readbuf.go).
const plainReadBuffer = 16

// readFD reads once from the non-blocking socket fd into p, retrying when
// a signal interrupts the call. again reports that the socket has nothing
// to read yet (EAGAIN), so the caller waits for readability.
func readFD(fd uintptr, p []byte) (n int, again bool, err error) {
	for {
		n, err := syscall.Read(int(fd), p)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, true, nil
		}
		return n, false, err
	}
}

// writeFD writes p to the non-blocking socket fd once, taking what the
// socket's buffer has room for.
func writeFD(fd uintptr, p []byte) (int, error) {
	return syscall.Write(int(fd), p)
}

// setReceiveBuffer sets the socket fd's kernel receive buffer to n bytes.
func setReceiveBuffer(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
