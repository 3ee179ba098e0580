//go:build linux

package broker

import (
	"bufio"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// A slow-reading device: the hub's non-blocking PUBACK writes (tryWrite)
// are taken in part, at times in the middle of a PUBACK; the rest goes to
// the run goroutine, and mochi's PINGRESP for a PINGREQ read meanwhile
// must not be written in between, into the middle of a PUBACK
// (guardConn.tail). Every PUBACK must also arrive, in order: a tail that
// nobody sent would stall the stream.
//
// The client reads nothing until the hub's writes come up short (or a
// while has passed): it must not wait for a short write, since the
// PINGRESP mochi writes from the read loop may be the write that finds
// the socket full, and it waits for the client to read, so no PUBACK
// write follows it (the reviewer's version of this test stalled so in
// CI).
func TestPartialPubackNotSplitByOtherPackets(t *testing.T) {
	for _, v := range []byte{4} {
		in, _, _ := storedPipeline(t, false)
		b := startStoredBroker(t, Config{AckWithin: time.Hour}, in)
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
		}}
		nc, err := d.Dial("tcp", b.Addr("tcp"))
		if err != nil {
			t.Fatal(err)
		}
		c := mqtttest.Wrap(t, nc)
		// mqtttest's 20 s deadline is for the whole connection; this test
		// moves 16,000 PUBACKs, which under -race on a loaded machine
		// took up to 19 s. Still only a safety bound.
		_ = nc.SetDeadline(time.Now().Add(90 * time.Second))
		connectA(t, c, v)
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, 1, false))
		expectPuback(t, c, v, 1, 0)
		q := deviceQueue(b)
		if err := q.gc.Conn.(*net.TCPConn).SetWriteBuffer(2048); err != nil {
			t.Fatal(err)
		}
		short, tails := b.hook.ackShort.Load(), b.hook.ackTails.Load()
		const rounds, per = 400, 40
		go func() {
			id := uint16(1)
			for range rounds {
				var buf []byte
				for range per {
					id++
					if id == 0 {
						id = 1
					}
					buf = append(buf, mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, id, false)...)
				}
				buf = append(buf, mqtttest.Pingreq()...)
				if _, err := nc.Write(buf); err != nil {
					return
				}
			}
		}()
		for wait := time.Now().Add(2 * time.Second); b.hook.ackShort.Load() == short && time.Now().Before(wait); {
			time.Sleep(5 * time.Millisecond) // not an assertion: reading starts either way
		}
		defer func() {
			t.Logf("short writes: %d, PUBACKs cut: %d", b.hook.ackShort.Load()-short, b.hook.ackTails.Load()-tails)
		}()
		r := bufio.NewReaderSize(nc, 64)
		next := uint16(2)
		pings := 0
		for n := 0; n < rounds*per; {
			if n%500 == 0 {
				time.Sleep(time.Millisecond)
			}
			h, err := r.ReadByte()
			if err != nil {
				t.Fatalf("after %d PUBACKs, %d PINGRESPs: %v", n, pings, err)
			}
			l, err := r.ReadByte()
			if err != nil {
				t.Fatal(err)
			}
			body := make([]byte, l)
			if _, err := io.ReadFull(r, body); err != nil {
				t.Fatal(err)
			}
			switch {
			case h == 0x40 && l == 2:
				if id := uint16(body[0])<<8 | uint16(body[1]); id != next {
					t.Fatalf("PUBACK %d, want %d (after %d, %d PINGRESPs)", id, next, n, pings)
				}
				next++
				n++
			case h == 0xD0 && l == 0:
				pings++
			default:
				t.Fatalf("corrupt stream after %d PUBACKs, %d PINGRESPs: header % x, body % x", n, pings, []byte{h, l}, body)
			}
		}
		if pings == 0 {
			t.Fatal("no PINGRESP read: the test did not interleave anything")
		}
		if b.hook.ackShort.Load() == short {
			t.Fatal("no PUBACK write came up short: the test tested nothing")
		}
	}
}

func TestPacketEnd(t *testing.T) {
	two := []byte{0x40, 0x02, 0x00, 0x01}                          // PUBACK id 1
	v5 := []byte{0x40, 0x03, 0x00, 0x02, 0x87}                     // PUBACK id 2, 0x87
	long := append([]byte{0x30, 0x80, 0x01}, make([]byte, 128)...) // remaining length 128
	p := append(append(append([]byte{}, two...), v5...), long...)
	for _, tc := range []struct {
		off, want int
	}{
		{0, 0},
		{1, 4},
		{3, 4},
		{4, 4},
		{5, 9},
		{9, 9},
		{10, 9 + 3 + 128},
		{len(p), len(p)},
	} {
		if got := packetEnd(p, tc.off); got != tc.want {
			t.Errorf("packetEnd(p, %d) = %d; want %d", tc.off, got, tc.want)
		}
	}
	// A truncated encoding is not followed past what p holds.
	if got := packetEnd(p[:6], 5); got != 5 {
		t.Errorf("packetEnd of a cut packet = %d; want 5 (the offset)", got)
	}
}

// The rest of a cut PUBACK (guardConn.tail) goes out before whatever is
// written next on the connection: mochi's packets through Write (MQTT 5
// straight, 3.1.1 through the filter) and tooLarge's DISCONNECT; and
// finishTail sends it when nothing else is written.
func TestTailGoesFirst(t *testing.T) {
	ping := []byte{0xD0, 0x00}
	for _, tc := range []struct {
		name  string
		v5    bool
		write func(c *guardConn) error
		want  []byte
	}{
		{"v5 Write", true, func(c *guardConn) error { _, err := c.Write(ping); return err }, []byte{0x00, 0x07, 0xD0, 0x00}},
		{"3.1.1 Write", false, func(c *guardConn) error { _, err := c.Write(ping); return err }, []byte{0x00, 0x07, 0xD0, 0x00}},
		{"v5 tooLarge", true, func(c *guardConn) error { _ = c.tooLarge(); return nil }, []byte{0x00, 0x07, 0xE0, 0x01, 0x95}},
		{"finishTail", true, func(c *guardConn) error { c.finishTail(nil); return nil }, []byte{0x00, 0x07}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			c := &guardConn{Conn: server, v5: tc.v5, acked: true}
			// A PUBACK of id 7, of which the socket took the first two bytes.
			c.tail = []byte{0x00, 0x07}
			if err := tc.write(c); err != nil {
				t.Fatal(err)
			}
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := make([]byte, len(tc.want))
			if _, err := io.ReadFull(client, got); err != nil {
				t.Fatal(err)
			}
			if string(got) != string(tc.want) {
				t.Fatalf("wrote % x; want % x", got, tc.want)
			}
			if len(c.tail) != 0 {
				t.Fatalf("tail % x left after it was sent", c.tail)
			}
		})
	}
}
