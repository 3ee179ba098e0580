package broker

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// Connections accepted by a listener the broker opens inherit the fixed
// receive buffer (Linux reports twice the size asked for).
func TestAcceptedConnectionHasBoundedReceiveBuffer(t *testing.T) {
	lc := net.ListenConfig{Control: boundReceiveBuffer}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw, err := s.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		got, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if got > 2*ReceiveBufferBytes {
		t.Errorf("SO_RCVBUF of an accepted connection = %d, want at most %d", got, 2*ReceiveBufferBytes)
	}
}
