package bench

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
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
	if why := primeRxStamps(); why != "" {
		return plainRx{nc}, why
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

// The kernel stamps received packets only while some socket asks for
// it, and when the first one asks (or the last one stops) it switches
// that on (off) from a deferred work item, not at once: packets that
// arrive in between carry no receive time. A connection dialled just
// after the previous phase's connections closed could then have its
// first PUBACKs unstamped (seen in CI: "1 unstamped", the test's first
// PUBACK on a fresh process). So the first load connection of the
// process opens a UDP socket that asks for receive times, sends itself
// datagrams until one comes back stamped, and keeps the socket open
// until the process ends: stamping is on before any load connection
// reads, and stays on.
var rxPrime struct {
	once sync.Once
	why  string
}

// primeRxStamps turns the kernel's receive stamping on for the rest of
// the process, or says why it could not.
func primeRxStamps() string {
	rxPrime.once.Do(func() { rxPrime.why = primeRx() })
	return rxPrime.why
}

func primeRx() string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Sprintf("receive-time primer: socket: %v", err)
	}
	fail := func(format string, args ...any) string {
		_ = unix.Close(fd)
		return fmt.Sprintf("receive-time primer: "+format, args...)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("setsockopt SO_TIMESTAMPNS: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail("bind: %v", err)
	}
	self, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname: %v", err)
	}
	// A bound on the wait for the deferred switch (it takes a few
	// milliseconds on an idle machine).
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("setsockopt SO_RCVTIMEO: %v", err)
	}
	buf := make([]byte, 1)
	oob := make([]byte, 2*unix.CmsgSpace(rxTimespecSize))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := unix.Sendto(fd, buf, 0, self); err != nil {
			return fail("send: %v", err)
		}
		_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			return fail("recvmsg: %v", err)
		}
		if err == nil && rxTime(oob[:oobn]) != 0 {
			// fd is never closed: stamping stays on.
			return ""
		}
		time.Sleep(time.Millisecond)
	}
	return fail("no datagram came back stamped within 10 s")
}
