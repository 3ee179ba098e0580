package broker

import "syscall"

// ReceiveBufferBytes is the kernel receive buffer asked for on every MQTT
// connection (Linux doubles it for its own bookkeeping).
//
// Without it Linux grows a busy connection's buffer to megabytes: at QoS 0
// full speed 100 devices parked 45 MB of readings in the hub's kernel
// buffers, and a reading waited 1.6 s (p50) to 5.6 s (p99) there before the
// policy path even saw it. A fixed, small buffer makes the TCP window close
// as soon as the read loop falls behind (the read loop already stops while
// the ingest queue is full), so a publisher is pushed back within a few
// hundred readings instead of seconds (docs/benchmarks.md, "QoS 0
// back-pressure"). 8 KiB still lets one connection carry about 80 100-byte
// readings per round trip: some 1,600 a second over a 50 ms WAN, far above
// what a device sends (a bridge over a long link gets the same cap). The
// figures are Linux's; the other Unix systems and Windows take the same
// option (setReceiveBuffer, sock_*.go).
const ReceiveBufferBytes = 8 << 10

// boundReceiveBuffer sets the listening socket's receive buffer, which
// accepted connections inherit (set before accept, the window scale is
// chosen to match).
func boundReceiveBuffer(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = setReceiveBuffer(fd, ReceiveBufferBytes)
	})
	if err != nil {
		return err
	}
	return serr
}
