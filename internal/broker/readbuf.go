package broker

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// A device connection spends nearly all its life waiting for its next
// packet, and whatever buffer that wait reads into is held for as long as
// it lasts. mochi reads through a bufio.Reader it makes per connection and
// keeps for life, so every idle connection held a read buffer
// (ClientNetReadBufferSize, 1 KiB). Instead mochi's buffer is now the
// smallest bufio allows (mochiReadBuffer) and guardConn buffers what it
// reads from a plain TCP socket itself, in a buffer taken from a pool only
// when the socket has bytes to give and returned once they are all handed
// on: it waits for the socket with syscall.RawConn, which waits for
// readability without a buffer, and reads (non-blocking) only once the
// socket is readable. An idle connection then holds no read buffer at all,
// and a busy one reads as many bytes per system call as before or more
// (readChunk, against the 1 KiB buffer's).
//
// TLS and WebSocket connections have no socket of ours (their libraries
// read, decrypt or unframe into buffers of their own); mochi's small
// buffer reads through to those buffers, with no system call per read.

// mochiReadBuffer is mochi's per-connection read buffer, the smallest
// bufio.NewReaderSize makes. It holds a fixed header's bytes while mochi
// reads them one at a time; a packet's body larger than it is read past it,
// straight into the packet. Where there is no raw socket path
// (rawSockets), plain TCP connections are read through net.Conn, a system
// call per fill of this buffer, so it is then 1 KiB, as it was before
// guardConn buffered reads itself (sock_windows.go, sock_other.go).
const mochiReadBuffer = plainReadBuffer

// readChunk is the size of the pooled buffers guardConn reads a plain TCP
// socket into: about twenty 100-byte readings per system call when a
// device sends faster than the hub reads, which is when it matters.
const readChunk = 2 << 10

var readChunks = sync.Pool{New: func() any {
	b := make([]byte, readChunk)
	return &b
}}

// sockReader reads a plain TCP socket into a pooled buffer (see above).
// Only the connection's read loop uses it.
type sockReader struct {
	raw   syscall.RawConn
	conn  net.Conn              // for the addresses in errors
	fn    func(fd uintptr) bool // made once, so a read allocates nothing
	chunk *[]byte               // the pooled buffer, nil when empty
	pos   int                   // chunk[pos:end] not yet handed on
	end   int
	dst   []byte // what fn reads into
	n     int    // fn's result
	err   error
}

// newSockReader returns a reader for c, or nil if c is not a plain TCP
// connection or the platform has no raw socket path (rawSockets): the
// guard then reads c itself.
func newSockReader(c net.Conn) *sockReader {
	if !rawSockets {
		return nil
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &sockReader{raw: raw, conn: c}
	r.fn = r.readFD
	return r
}

// buffered reports whether bytes read from the socket wait to be handed on.
func (r *sockReader) buffered() bool { return r.chunk != nil }

// take hands on what is buffered, as much as fits in p.
func (r *sockReader) take(p []byte) int {
	n := copy(p, (*r.chunk)[r.pos:r.end])
	r.pos += n
	if r.pos == r.end {
		r.release()
	}
	return n
}

func (r *sockReader) release() {
	readChunks.Put(r.chunk)
	r.chunk, r.pos, r.end = nil, 0, 0
}

// read waits for the socket to be readable and reads from it: into p if p
// is at least a chunk (as bufio does, so a large packet's body costs no
// copy), otherwise into a pooled chunk whose first bytes it hands on. It
// returns what net.TCPConn.Read would: the socket's errors as *net.OpError,
// the read deadline as one wrapping os.ErrDeadlineExceeded, io.EOF at the
// end.
func (r *sockReader) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.dst = p
	if len(p) < readChunk {
		r.dst = nil // fn takes a chunk once the socket is readable
	}
	err := r.raw.Read(r.fn)
	n, rerr := r.n, r.err
	r.dst, r.n, r.err = nil, 0, nil
	if err != nil {
		// The deadline or a closed connection, from the poller; the
		// same errors a plain Read returns, under the same operation.
		var oe *net.OpError
		if errors.As(err, &oe) {
			oe.Op = "read"
		}
		return 0, err
	}
	if rerr != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	}
	if n == 0 {
		return 0, io.EOF
	}
	if r.chunk == nil {
		return n, nil // read straight into p
	}
	r.end = n
	return r.take(p), nil
}

// readFD is r.fn: one non-blocking read, or false (wait for readability)
// if the socket has nothing yet, with the chunk given back meanwhile.
func (r *sockReader) readFD(fd uintptr) bool {
	dst := r.dst
	if dst == nil {
		r.chunk = readChunks.Get().(*[]byte)
		dst = *r.chunk
	}
	n, again, err := readFD(fd, dst)
	if again {
		if r.chunk != nil {
			r.release()
		}
		return false
	}
	if n <= 0 && r.chunk != nil {
		r.release() // the end, or an error: nothing to hand on
	}
	r.n, r.err = max(n, 0), err
	return true
}
