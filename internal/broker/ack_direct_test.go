package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/tlscert"
)

// deviceQueue returns the ack queue of the one device connected to b, nil
// if there is none yet.
func deviceQueue(b *Broker) *ackQueue {
	for _, cl := range b.srv.Clients.GetAll() {
		if gc := guardOf(cl); gc != nil && gc.dev != nil {
			if q := gc.dev.acks.Load(); q != nil {
				return q
			}
		}
	}
	return nil
}

// connectA logs devA in over c with protocol version v.
func connectA(t *testing.T, c *mqtttest.Conn, v byte) {
	t.Helper()
	c.Send(mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
	if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
		t.Fatalf("v%d connect refused: % x", v, ack.Raw)
	}
}

// expectPuback reads the next packet and fails unless it is the PUBACK of
// packet id with reason code code (0 is success).
func expectPuback(t *testing.T, c *mqtttest.Conn, v byte, id uint16, code byte) {
	t.Helper()
	ack := c.Expect(mqtttest.PUBACK)
	if got := uint16(ack.Body[0])<<8 | uint16(ack.Body[1]); got != id || ack.ReasonCode(v) != code {
		t.Fatalf("v%d PUBACK % x, want packet id %d, reason code %#x", v, ack.Raw, id, code)
	}
}

// On a plain TCP connection the commit writes the PUBACKs itself: no
// PUBACK before its commit (the PINGRESP of a PINGREQ sent after the
// PUBLISH comes first while the commit is held), the queue registers with
// the next batch after writing, and no goroutine is started for any of it.
func TestCommitWritesPubacks(t *testing.T) {
	in, _, gs := storedPipeline(t, true)
	b := startStoredBroker(t, Config{}, in)
	t.Cleanup(func() { close(gs.open) })

	for _, v := range []byte{4, 5} {
		c := mqtttest.Dial(t, b.Addr("tcp"), nil)
		connectA(t, c, v)
		runs := b.hook.ackRuns.Load()
		base := uint16(v) * 100
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, base+1, false))
		<-gs.entered // the first batch is held
		for id := base + 2; id <= base+4; id++ {
			c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, id, false))
		}
		c.Send(mqtttest.Pingreq())
		c.Expect(mqtttest.PINGRESP) // no PUBACK while its commit is held
		gs.open <- struct{}{}
		expectPuback(t, c, v, base+1, 0)
		<-gs.entered // the second batch (readings 2-4) is held
		c.Send(mqtttest.Pingreq())
		c.Expect(mqtttest.PINGRESP)
		gs.open <- struct{}{}
		for id := base + 2; id <= base+4; id++ {
			expectPuback(t, c, v, id, 0)
		}
		if got := b.hook.ackRuns.Load() - runs; got != 0 {
			t.Errorf("v%d: %d ack goroutines started, want none", v, got)
		}
		c.Send(mqtttest.Disconnect())
		c.ExpectClosed()
	}
}

// A paced device (one reading at a time) gets every PUBACK, in both ack
// modes, without an ack goroutine: from the commit in the default mode,
// from the read loop in the window mode.
func TestPacedPubacksWithoutGoroutine(t *testing.T) {
	for _, mode := range []struct {
		name   string
		within time.Duration
	}{{"commit", 0}, {"window", time.Hour}} {
		t.Run(mode.name, func(t *testing.T) {
			in, db, _ := storedPipeline(t, false)
			b := startStoredBroker(t, Config{AckWithin: mode.within}, in)
			c := mqtttest.Dial(t, b.Addr("tcp"), nil)
			connectA(t, c, 4)
			const n = 20
			for id := uint16(1); id <= n; id++ {
				c.Send(mqtttest.Publish(4, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, id, false))
				expectPuback(t, c, 4, id, 0)
			}
			if got := b.hook.ackRuns.Load(); got != 0 {
				t.Errorf("%d ack goroutines started for %d paced readings, want none", got, n)
			}
			c.Send(mqtttest.Disconnect())
			c.ExpectClosed()
			in.Close()
			if got, err := db.CountReadings(t.Context(), devA); err != nil || got != n {
				t.Fatalf("%d readings stored (%v), want %d", got, err, n)
			}
		})
	}
}

// In the window mode the PUBACKs of readings read from the socket together
// leave together: a burst of readings sent in one write is answered in
// far fewer writes than readings, in order, with no ack goroutine.
func TestWindowPubacksGathered(t *testing.T) {
	in, _, _ := storedPipeline(t, false)
	b := startStoredBroker(t, Config{AckWithin: time.Hour}, in)
	c := mqtttest.Dial(t, b.Addr("tcp"), nil)
	connectA(t, c, 4)
	const n = 200
	var burst []byte
	for id := uint16(1); id <= n; id++ {
		burst = append(burst, mqtttest.Publish(4, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, id, false)...)
	}
	writes := b.hook.ackWrites.Load()
	c.Send(burst)
	for id := uint16(1); id <= n; id++ {
		expectPuback(t, c, 4, id, 0)
	}
	got := b.hook.ackWrites.Load() - writes
	t.Logf("%d PUBACKs in %d writes", n, got)
	if got < 1 || got > n/4 {
		t.Errorf("%d readings acknowledged in %d writes, want at least 4 PUBACKs a write", n, got)
	}
	if runs := b.hook.ackRuns.Load(); runs != 0 {
		t.Errorf("%d ack goroutines started, want none", runs)
	}
}

// When the socket does not take the PUBACKs at once (the client stopped
// reading and the buffers filled), the rest goes to the run goroutine and
// later PUBACKs wait behind it: once the client reads again every PUBACK
// arrives, once, in publish order, across many batches, with refusals
// (answered in turn) among them.
func TestPubackOrderThroughFallback(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			in, _, _ := storedPipeline(t, false)
			b := startStoredBroker(t, Config{}, in)
			// Small socket buffers on both sides, so a client that stops
			// reading soon leaves the broker's writes nowhere to go.
			nc, c := dialSmallRcvbuf(t, b.Addr("tcp"))
			connectA(t, c, v)
			c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, 1, false))
			expectPuback(t, c, v, 1, 0)
			q := deviceQueue(b)
			if q == nil || q.gc == nil {
				t.Fatal("no ack queue writing to the socket directly")
			}
			if err := q.gc.Conn.(*net.TCPConn).SetWriteBuffer(2048); err != nil {
				t.Fatal(err)
			}
			short, writes := b.hook.ackShort.Load(), b.hook.ackWrites.Load()

			const n = 8000
			// Refusals only among the later readings, which the broker
			// reads once the client reads again: an early one would hand
			// the queue to the run goroutine before any write fell short.
			refused := func(id uint16) bool { return id > n-2000 && id%300 == 0 }
			sent := make(chan error, 1)
			go func() {
				var pk []byte
				for id := uint16(2); id <= n; id++ {
					payload := []byte(`{"c":1}`)
					if refused(id) {
						payload = []byte(`not json`)
					}
					pk = append(pk, mqtttest.Publish(v, ReadingTopic(devA, "temperature"), payload, 1, id, false)...)
					if len(pk) > 4096 || id == n {
						if _, err := nc.Write(pk); err != nil {
							sent <- err
							return
						}
						pk = pk[:0]
					}
				}
				sent <- nil
			}()
			// Not reading until the broker has had to hand PUBACKs to the
			// run goroutine.
			waitFor(t, "a PUBACK write the socket did not take", 15*time.Second, func() bool {
				return b.hook.ackShort.Load() > short
			})
			for id := uint16(2); id <= n; id++ {
				code := byte(0)
				if refused(id) && v == 5 {
					code = 0x99 // payload format invalid
				}
				expectPuback(t, c, v, id, code)
			}
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			// Nothing more (no PUBACK twice): the PINGRESP comes next.
			c.Send(mqtttest.Pingreq())
			c.Expect(mqtttest.PINGRESP)
			if b.hook.ackWrites.Load() == writes {
				t.Error("no PUBACK was written without the goroutine")
			}
			t.Logf("%d non-blocking writes, %d handed to the run goroutine", b.hook.ackWrites.Load()-writes, b.hook.ackShort.Load()-short)
			// Once the run goroutine has caught up and ended, PUBACKs go
			// out without it again.
			waitFor(t, "the run goroutine to end", 10*time.Second, func() bool {
				q.mu.Lock()
				defer q.mu.Unlock()
				return q.state.Load() != ackRunning
			})
			runs := b.hook.ackRuns.Load()
			for id := uint16(n + 1); id <= n+5; id++ {
				c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, id, false))
				expectPuback(t, c, v, id, 0)
			}
			if got := b.hook.ackRuns.Load() - runs; got != 0 {
				t.Errorf("%d ack goroutines started after the fallback ended, want none", got)
			}
		})
	}
}

// Over TLS the queue has no socket of its own to write to, so PUBACKs go
// through the run goroutine and TLS's own writer, as before.
func TestPubackOverTLS(t *testing.T) {
	cert, roots := testCert(t)
	for _, within := range []time.Duration{0, time.Hour} {
		in, db, _ := storedPipeline(t, false)
		b := startStoredBroker(t, Config{AckWithin: within, TLSAddr: "127.0.0.1:0", TLSConfig: tlscert.ServerConfig(cert)}, in)
		raw := mqtttest.Dial(t, b.Addr("tls"), nil)
		tc := tls.Client(raw.Conn, &tls.Config{RootCAs: roots, ServerName: "localhost"})
		c := mqtttest.Wrap(t, tc)
		connectA(t, c, 4)
		runs := b.hook.ackRuns.Load()
		var burst []byte
		for id := uint16(1); id <= 50; id++ {
			burst = append(burst, mqtttest.Publish(4, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, id, false)...)
		}
		c.Send(burst)
		for id := uint16(1); id <= 50; id++ {
			expectPuback(t, c, 4, id, 0)
		}
		if b.hook.ackRuns.Load() == runs {
			t.Errorf("within %v: PUBACKs over TLS without the run goroutine", within)
		}
		if q := deviceQueue(b); q == nil || q.raw != nil {
			t.Errorf("within %v: the TLS connection's queue writes to the socket directly", within)
		}
		c.Send(mqtttest.Disconnect())
		c.ExpectClosed()
		in.Close()
		if got, err := db.CountReadings(t.Context(), devA); err != nil || got != 50 {
			t.Fatalf("within %v: %d readings stored (%v), want 50", within, got, err)
		}
	}
}

// failingStore is a real SQLite store whose commits of readings fail
// while fail is set.
type failingStore struct {
	*sqlite.DB
	fail atomic.Bool
}

func (f *failingStore) AppendReadings(ctx context.Context, rs []store.Reading) error {
	if f.fail.Load() {
		return errors.New("disk on fire")
	}
	return f.DB.AppendReadings(ctx, rs)
}

// A failed commit is answered as before, through the run goroutine: MQTT
// 5 gets a PUBACK with an error code, in turn; 3.1.1 has the connection
// closed without a PUBACK. The direct path carries on for what follows.
func TestFailedCommitThroughDirectPath(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "candor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fs := &failingStore{DB: db}
	in := ingest.New(fs, ingest.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(in.Close)
	b := startStoredBroker(t, Config{}, in)
	for _, v := range []byte{5, 4} {
		c := mqtttest.Dial(t, b.Addr("tcp"), nil)
		connectA(t, c, v)
		base := uint16(v) * 10
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, base+1, false))
		expectPuback(t, c, v, base+1, 0)
		fs.fail.Store(true)
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":2}`), 1, base+2, false))
		if v == 4 {
			c.ExpectClosed()
			fs.fail.Store(false)
			continue
		}
		expectPuback(t, c, v, base+2, packets.ErrImplementationSpecificError.Code)
		fs.fail.Store(false)
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":3}`), 1, base+3, false))
		expectPuback(t, c, v, base+3, 0)
		c.Send(mqtttest.Disconnect())
		c.ExpectClosed()
	}
}

// A device that sends a reading less often than the write timeout still
// gets its PUBACKs from the non-blocking path: that path must keep the
// write deadline ahead itself (the socket refuses a raw write once the
// deadline has passed, and nothing else writes to a quiet device's
// connection), or every PUBACK after a quiet spell would fall back to a
// goroutine.
func TestPubacksAfterQuietSpellWithoutGoroutine(t *testing.T) {
	old := writeTimeout
	writeTimeout = 200 * time.Millisecond
	t.Cleanup(func() { writeTimeout = old })
	for _, mode := range []struct {
		name   string
		within time.Duration
	}{{"commit", 0}, {"window", time.Hour}} {
		t.Run(mode.name, func(t *testing.T) {
			in, _, _ := storedPipeline(t, false)
			b := startStoredBroker(t, Config{AckWithin: mode.within}, in)
			c := mqtttest.Dial(t, b.Addr("tcp"), nil)
			connectA(t, c, 4)
			for id := uint16(1); id <= 3; id++ {
				time.Sleep(2 * writeTimeout) // the deadline armed by the last write has passed
				c.Send(mqtttest.Publish(4, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, id, false))
				expectPuback(t, c, 4, id, 0)
			}
			if got := b.hook.ackRuns.Load(); got != 0 {
				t.Errorf("%d ack goroutines started for 3 readings after quiet spells, want none", got)
			}
		})
	}
}

// In the window mode a PUBACK waits in the connection's buffer for the
// read loop's next read. A client that sends its last readings and then
// its DISCONNECT in one write gives it no next read: the PUBACKs still go
// out before the connection is closed. So they do when what follows the
// readings is a protocol error (a second CONNECT) that ends the
// connection: before the MQTT 5 DISCONNECT that says so.
func TestWindowPubackBeforeDisconnect(t *testing.T) {
	for _, end := range []string{"disconnect", "second connect"} {
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("%s v%d", end, v), func(t *testing.T) {
				in, _, _ := storedPipeline(t, false)
				b := startStoredBroker(t, Config{AckWithin: time.Hour}, in)
				c := mqtttest.Dial(t, b.Addr("tcp"), nil)
				connectA(t, c, v)
				var last []byte
				for id := uint16(1); id <= 3; id++ {
					last = append(last, mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, id, false)...)
				}
				if end == "disconnect" {
					last = append(last, mqtttest.Disconnect()...)
				} else {
					last = append(last, mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode()...)
				}
				c.Send(last)
				for id := uint16(1); id <= 3; id++ {
					expectPuback(t, c, v, id, 0)
				}
				if end == "second connect" && v == 5 {
					if d := c.Expect(mqtttest.DISCONNECT); d.ReasonCode(v) != 0x82 {
						t.Fatalf("DISCONNECT % x, want reason 0x82 (protocol error)", d.Raw)
					}
				}
				c.ExpectClosed()
			})
		}
	}
}

// The same when mochi ends the connection without another read and
// without OnPacketProcessed: a packet that fails mochi's checks (MQTT 5:
// its DISCONNECT follows the PUBACKs), one of a type only a server sends,
// and one it cannot decode (closed at once, from the read loop).
func TestWindowPubackBeforeInvalidPacket(t *testing.T) {
	ends := []struct {
		name       string
		pk         func(v byte) []byte
		disconnect bool // an MQTT 5 client is sent a DISCONNECT
	}{
		{"wildcard publish", func(v byte) []byte {
			return mqtttest.Publish(v, ReadingTopic(devA, "temp+x"), []byte(`{"c":1}`), 1, 9, false)
		}, true},
		{"qos1 publish id 0", func(v byte) []byte {
			return mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, 0, false)
		}, true},
		{"subscribe id 0", func(v byte) []byte {
			return mqtttest.Subscribe(v, 0, ControlTopic(devA, "#"), 1)
		}, true},
		{"pingresp from client", func(byte) []byte { return []byte{0xD0, 0} }, false},
		{"malformed puback", func(byte) []byte { return []byte{0x40, 1, 0} }, false},
	}
	for _, end := range ends {
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("%s v%d", end.name, v), func(t *testing.T) {
				in, _, _ := storedPipeline(t, false)
				b := startStoredBroker(t, Config{AckWithin: time.Hour}, in)
				c := mqtttest.Dial(t, b.Addr("tcp"), nil)
				connectA(t, c, v)
				var last []byte
				for id := uint16(1); id <= 3; id++ {
					last = append(last, mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, id, false)...)
				}
				c.Send(append(last, end.pk(v)...))
				for id := uint16(1); id <= 3; id++ {
					expectPuback(t, c, v, id, 0)
				}
				if end.disconnect && v == 5 {
					c.Expect(mqtttest.DISCONNECT)
				}
				c.ExpectClosed()
			})
		}
	}
}

// The same when the packet after the readings is over the connection's
// size limit, which the guard refuses before mochi reads it (MQTT 5:
// DISCONNECT 0x95 after the PUBACKs).
func TestWindowPubackBeforeTooLarge(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			in, _, _ := storedPipeline(t, false)
			b := startStoredBroker(t, Config{AckWithin: time.Hour, MaxPacketBytes: 1024}, in)
			c := mqtttest.Dial(t, b.Addr("tcp"), nil)
			connectA(t, c, v)
			var last []byte
			for id := uint16(1); id <= 3; id++ {
				last = append(last, mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, id, false)...)
			}
			big := mqtttest.Publish(v, ReadingTopic(devA, "temperature"), make([]byte, 1500), 1, 4, false)
			c.Send(append(last, big[:8]...)) // the header of one over the limit
			for id := uint16(1); id <= 3; id++ {
				expectPuback(t, c, v, id, 0)
			}
			if v == 5 {
				if d := c.Expect(mqtttest.DISCONNECT); d.ReasonCode(v) != packets.ErrPacketTooLarge.Code {
					t.Fatalf("DISCONNECT % x, want reason 0x95", d.Raw)
				}
			}
			c.ExpectClosed()
		})
	}
}
