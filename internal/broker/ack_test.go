package broker

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// The PUBACKs of readings committed together leave in one write, and a
// PUBACK is never held back for a reading still committing: with the
// first commit held, then a second batch of five held, the connection
// gets exactly two writes, one PUBACK and then five, in publish order.
func TestAckQueueOneWritePerCommit(t *testing.T) {
	in, _, gs := storedPipeline(t, true)
	t.Cleanup(func() { close(gs.open) })

	writes := make(chan []byte, 8)
	cl := &mqtt.Client{}
	cl.Properties.ProtocolVersion = 4
	q := newAckQueue(cl, newHook(nil, in, slog.New(slog.DiscardHandler), nil), func(p []byte) error {
		writes <- bytes.Clone(p)
		return nil
	})
	t.Cleanup(q.close)

	enqueue := func(id uint16) {
		tk, err := in.Enqueue(context.Background(), devA, "temperature", []byte(`{"c":21.5}`))
		if err != nil {
			t.Fatal(err)
		}
		q.push(ackItem{id: id, ticket: tk})
	}
	enqueue(1)
	<-gs.entered // the first batch is held at the gate
	for id := uint16(2); id <= 6; id++ {
		enqueue(id) // these form the next batch
	}
	gs.open <- struct{}{}
	if got, want := <-writes, pubacks(1); !bytes.Equal(got, want) {
		t.Fatalf("first write % x, want % x", got, want)
	}
	<-gs.entered
	gs.open <- struct{}{}
	if got, want := <-writes, pubacks(2, 3, 4, 5, 6); !bytes.Equal(got, want) {
		t.Fatalf("second write % x, want % x (one write for the whole batch)", got, want)
	}
}

// The goroutine that sends a connection's PUBACKs runs only while
// readings wait: it starts with a QoS 1 reading, ends (dropping its
// buffers) once that reading is acknowledged, and the next reading starts
// a new one, whose PUBACK still arrives, after the earlier ones.
func TestAckQueueGoroutineEndsWhenIdle(t *testing.T) {
	in, _, _ := storedPipeline(t, false)

	writes := make(chan []byte, 8)
	exited := make(chan struct{}, 8)
	cl := &mqtt.Client{}
	cl.Properties.ProtocolVersion = 4
	q := newAckQueue(cl, newHook(nil, in, slog.New(slog.DiscardHandler), nil), func(p []byte) error {
		writes <- bytes.Clone(p)
		return nil
	})
	q.exited = func() { exited <- struct{}{} }
	t.Cleanup(q.close)

	running := func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.state.Load() != ackIdle || q.items != nil || q.out != nil || q.n != 0
	}
	if running() {
		t.Fatal("a queue nothing was pushed to has a goroutine or buffers")
	}
	for id := uint16(1); id <= 3; id++ {
		tk, err := in.Enqueue(context.Background(), devA, "temperature", []byte(`{"c":21.5}`))
		if err != nil {
			t.Fatal(err)
		}
		q.push(ackItem{id: id, ticket: tk})
		if got, want := <-writes, pubacks(id); !bytes.Equal(got, want) {
			t.Fatalf("write % x, want % x", got, want)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("reading %d acknowledged, but the PUBACK goroutine did not end", id)
		}
		if running() {
			t.Fatalf("after reading %d: the queue still holds a goroutine or buffers", id)
		}
	}
}

// Through a real connection: a device that sends a QoS 1 reading now and
// then gets every PUBACK, though the goroutine sending them ends between
// readings.
func TestPubackAfterAckGoroutineEnded(t *testing.T) {
	in, db, _ := storedPipeline(t, false)
	b := startStoredBroker(t, Config{}, in)
	exited := make(chan struct{}, 8)
	queue := func() *ackQueue {
		for _, cl := range b.srv.Clients.GetAll() {
			if gc := guardOf(cl); gc != nil && gc.dev != nil {
				if q := gc.dev.acks.Load(); q != nil {
					return q
				}
			}
		}
		return nil
	}

	c := mqtttest.Dial(t, b.Addr("tcp"), nil)
	c.Send(mqtttest.Connect{Version: 4, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
	c.Expect(mqtttest.CONNACK)
	if queue() != nil {
		t.Fatal("an acknowledgement queue exists before the first QoS 1 reading")
	}
	for id := uint16(1); id <= 3; id++ {
		c.Send(mqtttest.Publish(4, ReadingTopic(devA, "temperature"), []byte(`{"c":21.5}`), 1, id, false))
		ack := c.Expect(mqtttest.PUBACK)
		if got := uint16(ack.Body[0])<<8 | uint16(ack.Body[1]); got != id {
			t.Fatalf("PUBACK for packet %d, want %d", got, id)
		}
		q := queue()
		q.mu.Lock()
		idle := q.state.Load() != ackRunning
		if !idle {
			q.exited = func() { exited <- struct{}{} }
		}
		q.mu.Unlock()
		if !idle {
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Fatalf("reading %d acknowledged, but the PUBACK goroutine did not end", id)
			}
		}
	}
	in.Close()
	if n, err := db.CountReadings(context.Background(), devA); err != nil || n != 3 {
		t.Fatalf("%d readings stored (%v), want 3", n, err)
	}
}

func pubacks(ids ...uint16) []byte {
	var b []byte
	for _, id := range ids {
		b = appendPuback(b, 4, id, 0)
	}
	return b
}

// appendPuback encodes what mochi's own encoder does for the same packet.
func TestAppendPubackMatchesMochi(t *testing.T) {
	for _, c := range []struct {
		version byte
		code    byte
	}{{4, 0}, {5, 0}, {5, 0x83}} {
		var want bytes.Buffer
		got := appendPuback(nil, c.version, 0x1234, c.code)
		pk := packetsPuback(c.version, 0x1234, c.code)
		if err := pk.PubackEncode(&want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("v%d code %#x: % x, mochi % x", c.version, c.code, got, want.Bytes())
		}
	}
}

func packetsPuback(version byte, id uint16, code byte) packets.Packet {
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Puback},
		ProtocolVersion: version,
		PacketID:        id,
		ReasonCode:      code,
	}
}

// In the bounded-window mode a QoS 1 reading is acknowledged while its
// commit is still held, as long as the queue is younger than the window;
// the reading is then committed all the same.
func TestAckWithinWindowDoesNotWaitForCommit(t *testing.T) {
	in, db, gs := storedPipeline(t, true)
	b := startStoredBroker(t, Config{AckWithin: time.Hour}, in)

	c := mqtttest.Dial(t, b.Addr("tcp"), nil)
	c.Send(mqtttest.Connect{Version: 4, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
	c.Expect(mqtttest.CONNACK)
	c.Send(mqtttest.Publish(4, ReadingTopic(devA, "temperature"), []byte(`{"c":21.5}`), 1, 9, false))
	<-gs.entered                     // the commit is held...
	ack := c.Expect(mqtttest.PUBACK) // ...and the PUBACK came anyway
	if got := uint16(ack.Body[0])<<8 | uint16(ack.Body[1]); got != 9 {
		t.Fatalf("PUBACK for packet %d, want 9", got)
	}
	close(gs.open)
	in.Close() // commits what is queued
	if n, err := db.CountReadings(context.Background(), devA); err != nil || n != 1 {
		t.Fatalf("%d readings stored (%v), want the acknowledged one", n, err)
	}
}

// A window the queue is already older than falls back to waiting for the
// commit: no PUBACK while the commit is held.
func TestAckWithinWindowWaitsWhenBehind(t *testing.T) {
	in, _, gs := storedPipeline(t, true)
	// 1ns: any queued reading is older than that.
	b := startStoredBroker(t, Config{AckWithin: time.Nanosecond}, in)
	t.Cleanup(func() { close(gs.open) })

	c := mqtttest.Dial(t, b.Addr("tcp"), nil)
	c.Send(mqtttest.Connect{Version: 4, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
	c.Expect(mqtttest.CONNACK)
	c.Send(mqtttest.Publish(4, ReadingTopic(devA, "temperature"), []byte(`{"c":21.5}`), 1, 9, false))
	<-gs.entered
	// The PUBLISH was handled before the PINGREQ, so an early PUBACK
	// would arrive before the PINGRESP.
	c.Send(mqtttest.Pingreq())
	c.Expect(mqtttest.PINGRESP)
	gs.open <- struct{}{}
	c.Expect(mqtttest.PUBACK)
}
