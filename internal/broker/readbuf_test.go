package broker

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// tcpPair returns both ends of a loopback TCP connection: the server's as
// accepted (a *net.TCPConn) and the client's.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// TestSockReaderHandsOnInOrder: bytes written in pieces of every size come
// out whole and in order through reads of every size, including reads of a
// chunk or more (straight into the caller's buffer), and the pooled chunk
// is given back each time its bytes are all handed on. The end of the
// stream is io.EOF.
func TestSockReaderHandsOnInOrder(t *testing.T) {
	server, client := tcpPair(t)
	r := newSockReader(server)
	if r == nil {
		t.Fatal("no socket reader for a TCP connection")
	}
	want := make([]byte, 64<<10)
	for i := range want {
		want[i] = byte(rand.IntN(256))
	}
	go func() {
		rest := want
		for len(rest) > 0 {
			k := min(len(rest), []int{1, 7, 100, readChunk - 1, readChunk + 3, 9000}[rand.IntN(6)])
			if _, err := client.Write(rest[:k]); err != nil {
				return
			}
			rest = rest[k:]
		}
		client.Close()
	}()
	var got []byte
	for i := 0; ; i++ {
		p := make([]byte, []int{1, 16, 5, readChunk, readChunk + 100, 300}[i%6])
		var n int
		var err error
		if r.buffered() {
			n = r.take(p)
		} else {
			n, err = r.read(p)
		}
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if r.buffered() && r.pos >= r.end {
			t.Fatalf("read %d: a chunk is held with nothing in it", i)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want the %d written, in order", len(got), len(want))
	}
	if r.chunk != nil {
		t.Error("the chunk is held after the end of the stream")
	}
}

// TestSockReaderWaitsWithoutChunk: while the socket has nothing to read,
// the reader holds no buffer (the point of it: an idle connection costs
// none), and a read deadline ends the wait as it ends net.Conn.Read's.
func TestSockReaderWaitsWithoutChunk(t *testing.T) {
	server, client := tcpPair(t)
	r := newSockReader(server)
	// The wait itself: each time the socket has nothing, readFD gives the
	// chunk back before it asks to wait for readability.
	polls, heldWhileWaiting := 0, false
	err := r.raw.Read(func(fd uintptr) bool {
		done := r.readFD(fd)
		polls++
		if !done && r.chunk != nil {
			heldWhileWaiting = true
		}
		return true // one poll is enough: do not wait
	})
	if err != nil || polls != 1 {
		t.Fatalf("raw read: %v after %d polls", err, polls)
	}
	if heldWhileWaiting || r.chunk != nil {
		t.Fatal("a chunk is held while the socket has nothing to read")
	}
	if r.n != 0 || r.err != nil {
		t.Fatalf("an empty socket read %d bytes, error %v", r.n, r.err)
	}
	r.n, r.err = 0, nil

	// The keep-alive deadline mochi sets.
	_ = server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := r.read(make([]byte, 16))
	var oe *net.OpError
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read past the deadline: %d, %v; want 0 and a read error wrapping os.ErrDeadlineExceeded", n, err)
	}
	if r.chunk != nil {
		t.Fatal("a chunk is held after the deadline")
	}

	// Bytes that arrive while a read waits are handed on.
	_ = server.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = client.Write([]byte("hello"))
	}()
	p := make([]byte, 16)
	n, err = r.read(p)
	if err != nil || string(p[:n]) != "hello" {
		t.Fatalf("read %q, %v; want hello", p[:n], err)
	}
	if r.chunk != nil {
		t.Fatal("a chunk is held once its bytes are all handed on")
	}
}

// TestMaxSizePublishThroughSmallBuffers: mochi's read buffer is 16 bytes
// and the guard reads the socket in 2 KiB chunks, so a packet of exactly
// the connection's limit is read across many chunks and straight into
// mochi's packet; it must arrive whole and be acknowledged, and one byte
// more must still end the connection (MQTT 5: DISCONNECT 0x95) before
// mochi reads it. Over plain TCP (the guard's chunks) and TLS (mochi's
// buffer reading through tls.Conn's), MQTT 3.1.1 and 5.
func TestMaxSizePublishThroughSmallBuffers(t *testing.T) {
	const limit = 70 << 10
	cert, pool := testCert(t)
	tb := startBrokerWith(t, func(c *Config) {
		c.MaxPacketBytes = limit
		c.TLSAddr = "127.0.0.1:0"
		c.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	})
	dial := map[string]func(t *testing.T) *mqtttest.Conn{
		"tcp": func(t *testing.T) *mqtttest.Conn { return mqtttest.Dial(t, tb.addr, nil) },
		"tls": func(t *testing.T) *mqtttest.Conn {
			c, err := tls.Dial("tcp", tb.Addr("tls"), &tls.Config{RootCAs: pool, ServerName: "localhost"})
			if err != nil {
				t.Fatal(err)
			}
			return mqtttest.Wrap(t, c)
		},
	}
	topic := ReadingTopic(devA, "power")
	for _, via := range []string{"tcp", "tls"} {
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("%s/v%d", via, v), func(t *testing.T) {
				c := dial[via](t)
				c.Send(mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
				c.Expect(mqtttest.CONNACK)
				// The largest packet the limit allows, as mochi counts it
				// (its remaining length plus one), and one byte more.
				payload := func(remaining int) []byte {
					n := 100
					for {
						pk := mqtttest.Publish(v, topic, make([]byte, n), 1, 1, false)
						_, hn := remainingLength(pk)
						if got := len(pk) - hn; got != remaining {
							n += remaining - got
							continue
						}
						p := bytes.Repeat([]byte("x"), n)
						copy(p, `{"v":"`)
						copy(p[n-2:], `"}`)
						return p
					}
				}
				p := payload(limit - 1)
				pk := mqtttest.Publish(v, topic, p, 1, 7, false)
				before := len(tb.in.submissions())
				// In pieces, as a slow link delivers it, and whole.
				for i := 0; i < len(pk); i += 1000 {
					c.Send(pk[i:min(i+1000, len(pk))])
				}
				ack := c.Expect(mqtttest.PUBACK)
				if ack.Body[0] != 0 || ack.Body[1] != 7 {
					t.Fatalf("PUBACK % x, want packet id 7", ack.Raw)
				}
				subs := tb.in.submissions()
				if len(subs) != before+1 || subs[len(subs)-1].payload != string(p) {
					t.Fatalf("the %d-byte reading did not arrive whole", len(p))
				}
				c.Send(mqtttest.Pingreq())
				c.Expect(mqtttest.PINGRESP)

				// The guard ends the connection on the header: the body
				// need not come (and a closed socket's unread bytes would
				// make its close a reset, losing the DISCONNECT).
				c.Send(mqtttest.Publish(v, topic, payload(limit), 1, 8, false)[:100])
				if v == 5 {
					d := c.Expect(mqtttest.DISCONNECT)
					if d.ReasonCode(5) != 0x95 {
						t.Fatalf("DISCONNECT % x, want reason 0x95", d.Raw)
					}
				}
				c.ExpectClosed()
				if got := len(tb.in.submissions()); got != before+1 {
					t.Fatalf("%d readings after the packet over the limit, want %d", got, before+1)
				}
			})
		}
	}
}
