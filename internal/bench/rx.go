package bench

import "net"

// rxSource reads bytes from a connection together with the kernel's
// receive time of what it read (Unix ns, CLOCK_REALTIME like time.Now; 0
// when the kernel gave none).
type rxSource interface {
	readRx(p []byte) (n int, rx int64, err error)
}

// plainRx reads without receive times: off Linux, or where the socket
// option was refused.
type plainRx struct{ nc net.Conn }

func (s plainRx) readRx(p []byte) (int, int64, error) {
	n, err := s.nc.Read(p)
	return n, 0, err
}

// rxReader is the client's read buffer. It reads from its source only
// when every byte of the previous read has been consumed, so all the
// bytes it holds come from one read, and rx is the receive time of the
// read that delivered the last byte handed out. A packet is therefore
// stamped with the read that brought its last byte, never an earlier one;
// it can be a later one's time only when that read brought more (the
// kernel stamps a read with its last segment), which overstates, never
// understates. bufio.Reader would not do: its Peek and ReadSlice read more
// while bytes are still buffered, and it does not tell which read a byte
// came from.
type rxReader struct {
	src  rxSource
	buf  []byte
	r, w int
	rx   int64
}

func newRxReader(src rxSource, size int) *rxReader {
	return &rxReader{src: src, buf: make([]byte, size)}
}

// fill reads into the empty buffer until it holds at least a byte.
func (b *rxReader) fill() error {
	b.r, b.w = 0, 0
	for {
		n, rx, err := b.src.readRx(b.buf)
		if n > 0 {
			b.w, b.rx = n, rx
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ReadByte returns the next byte.
func (b *rxReader) ReadByte() (byte, error) {
	if b.r == b.w {
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	c := b.buf[b.r]
	b.r++
	return c, nil
}

// Read copies buffered bytes into p; with nothing buffered it reads once
// first, straight into p when p is at least as large as the buffer.
func (b *rxReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if len(p) >= len(b.buf) {
			for {
				n, rx, err := b.src.readRx(p)
				if n > 0 {
					b.rx = rx
					return n, nil
				}
				if err != nil {
					return 0, err
				}
			}
		}
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// Buffered is how many bytes are held and not yet consumed.
func (b *rxReader) Buffered() int { return b.w - b.r }

// stamp is the kernel's receive time of the read that delivered the last
// byte consumed (0: none).
func (b *rxReader) stamp() int64 { return b.rx }
