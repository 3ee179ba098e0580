package bench

import (
	"io"
	"sync/atomic"
	"testing"
)

// chunk is one read the kernel would return, with its receive time.
type chunk struct {
	b  []byte
	rx int64
}

// scriptedRx returns its chunks in order, as many bytes of the current
// one as the read asks for; what is left of a chunk comes in the next
// read with the same receive time, as the rest of a TCP segment does.
type scriptedRx struct{ chunks []chunk }

func (s *scriptedRx) readRx(p []byte) (int, int64, error) {
	if len(s.chunks) == 0 {
		return 0, 0, io.EOF
	}
	c := &s.chunks[0]
	n := copy(p, c.b)
	c.b = c.b[n:]
	rx := c.rx
	if len(c.b) == 0 {
		s.chunks = s.chunks[1:]
	}
	return n, rx, nil
}

// Each PUBACK is stamped with the receive time of the read that brought
// its last byte: a PUBACK split over two reads gets the second's, one
// read after another PUBACK in the same read gets that read's, a read
// without a receive time leaves its PUBACK unstamped (not the previous
// read's), and a packet read straight into the caller's buffer gets that
// read's.
func TestPubackStampedByTheReadOfItsLastByte(t *testing.T) {
	puback := func(id byte) []byte { return []byte{pktPuback << 4, 2, 0, id} }
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	src := &scriptedRx{chunks: []chunk{
		{cat(puback(1), puback(2)[:2]), 10},
		{cat(puback(2)[2:], puback(3)), 20},
		{puback(4), 0},
		// A QoS 0 PUBLISH of 10 body bytes: its header, then its body in
		// a read larger than the 8-byte buffer, so straight into the
		// packet buffer.
		{[]byte{pktPublish << 4, 10}, 30},
		{[]byte{0, 1, 't', 'p', 'a', 'y', 'l', 'o', 'a', 'd'}, 40},
		{puback(5), 50},
	}}
	const window = 8
	c := &Conn{
		r:       newRxReader(src, 8),
		window:  window,
		free:    make(chan uint16, window),
		sentAt:  make([]atomic.Int64, window),
		wroteAt: make([]atomic.Int64, window),
		sockLat: new(Histogram),
	}
	// Every publish was written at 1 ns, so a PUBACK's socket latency is
	// its stamp - 1 (values below 64 are recorded exactly).
	for id := 1; id <= 5; id++ {
		c.sentAt[id-1].Store(1)
		c.wroteAt[id-1].Store(1)
	}
	want := []int64{10, 20, 20, 0, 40, 50} // stamp after each packet
	var buf []byte
	for i, w := range want {
		if err := c.readPacket(&buf); err != nil {
			t.Fatalf("packet %d: %v", i+1, err)
		}
		if got := c.r.stamp(); got != w {
			t.Errorf("packet %d stamped %d, want %d", i+1, got, w)
		}
	}
	if err := c.readPacket(&buf); err != io.EOF {
		t.Fatalf("after the script: %v, want EOF", err)
	}
	for _, v := range []int64{9, 19, 49} {
		if got := c.sockLat.counts[histIndex(v)]; got != map[int64]uint64{9: 1, 19: 2, 49: 1}[v] {
			t.Errorf("%d socket latencies of %d ns", got, v)
		}
	}
	if c.sockLat.Count() != 4 || c.sockUnstamped != 1 || c.ackLat.Count() != 5 {
		t.Errorf("%d socket latencies, %d unstamped, %d client-observed; want 4, 1, 5", c.sockLat.Count(), c.sockUnstamped, c.ackLat.Count())
	}
}
