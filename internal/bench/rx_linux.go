package bench

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rxTimespecSize is the size of the kernel's struct timespec for
// SO_TIMESTAMPNS on this architecture (32-bit fields on 32-bit ones).
const rxTimespecSize = int(unsafe.Sizeof(unix.Timespec{}))

// newRxSource turns on the kernel's software receive timestamps for nc
// (SO_TIMESTAMPNS) and reads it with recvmsg, taking each read's
// timestamp from its control message. If that is not possible it returns
// a plain reader and why.
//
// Turning the option on makes the kernel read the clock for every packet
// it receives on this machine (a global switch, not per socket): a few
// tens of ns per packet, for the broker's packets too.
func newRxSource(nc net.Conn) (rxSource, string) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return plainRx{nc}, "not a TCP connection"
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return plainRx{nc}, fmt.Sprintf("no raw connection: %v", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		serr = err
	}
	if serr != nil {
		return plainRx{nc}, fmt.Sprintf("setsockopt SO_TIMESTAMPNS: %v", serr)
	}
	s := &rawRx{rc: rc, oob: make([]byte, 2*unix.CmsgSpace(rxTimespecSize))}
	s.recv = s.recvmsg
	return s, ""
}

// rawRx reads with recvmsg through the connection's RawConn, so the Go
// runtime's poller still waits for data and deadlines and Close still
// apply. The call's buffer and results live in the struct, and recv is
// made once, so a read allocates nothing.
type rawRx struct {
	rc   syscall.RawConn
	oob  []byte
	recv func(fd uintptr) bool

	p              []byte
	n, oobn, flags int
	err            error
}

func (s *rawRx) recvmsg(fd uintptr) bool {
	for {
		s.n, s.oobn, s.flags, _, s.err = unix.Recvmsg(int(fd), s.p, s.oob, 0)
		if s.err != unix.EINTR {
			return s.err != unix.EAGAIN
		}
	}
}

func (s *rawRx) readRx(p []byte) (int, int64, error) {
	s.p = p
	rerr := s.rc.Read(s.recv)
	s.p = nil
	n, err := s.n, s.err
	if rerr != nil {
		return 0, 0, rerr
	}
	if err != nil {
		return 0, 0, os.NewSyscallError("recvmsg", err)
	}
	if n == 0 {
		return 0, 0, io.EOF
	}
	if s.flags&unix.MSG_CTRUNC != 0 {
		return n, 0, nil
	}
	return n, rxTime(s.oob[:s.oobn]), nil
}

// rxTime is the SCM_TIMESTAMPNS time in a recvmsg's control messages (0:
// none). For TCP the kernel gives the timestamp of the last segment the
// read took bytes from.
func rxTime(oob []byte) int64 {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= rxTimespecSize {
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			return ts.Nano()
		}
		oob = rest
	}
	return 0
}
