//go:build !unix && !windows

package broker

import "errors"

// rawSockets is false where there are no Unix socket descriptors (plan9,
// js, wasip1): connections are read through net.Conn and acknowledged by
// the ack queue's run goroutine, as TLS and WebSocket ones are everywhere.
const rawSockets = false

// plainReadBuffer is mochi's per-connection read buffer (mochiReadBuffer):
// a fill per system call on a plain TCP connection.
const plainReadBuffer = 1 << 10

func readFD(uintptr, []byte) (int, bool, error) { return 0, false, errors.ErrUnsupported }

func writeFD(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }

// setReceiveBuffer leaves the system's default receive buffer.
func setReceiveBuffer(uintptr, int) error { return nil }
