package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// A device that stops reading, with a keep-alive of 0 (so no deadline of
// mochi's), must not hold up whoever publishes to it for ever: a write to
// it waits writeTimeout at most, then the connection ends, and the
// publishes waiting for the client's lock go on.
func TestStalledReaderCannotHoldPublishes(t *testing.T) {
	old := writeTimeout
	writeTimeout = 300 * time.Millisecond
	t.Cleanup(func() { writeTimeout = old })
	const v = 5
	in, _, _ := storedPipeline(t, false)
	b := startStoredBroker(t, Config{}, in)
	nc, c := dialSmallRcvbuf(t, b.Addr("tcp"))
	defer nc.Close()
	c.Send(mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 0}.Encode())
	if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
		t.Fatalf("connect refused: % x", ack.Raw)
	}
	ctl := ControlTopic(devA, "x")
	c.Send(mqtttest.Subscribe(v, 1, ctl, 1))
	c.Expect(mqtttest.SUBACK)
	// The device reads nothing from here on.
	floodStalledDevice(t, b, ctl, "a device")
}

// The same over WebSocket, whose library sets its own deadline on the
// socket for every frame it writes, so a deadline of ours would be undone:
// each write there is bounded by a timer instead.
func TestStalledWebSocketReaderCannotHoldPublishes(t *testing.T) {
	old := writeTimeout
	writeTimeout = 300 * time.Millisecond
	t.Cleanup(func() { writeTimeout = old })
	const v = 5
	in, _, _ := storedPipeline(t, false)
	wsAddr := freeAddr(t)
	b := startStoredBroker(t, Config{WSAddr: wsAddr}, in)
	dialer := websocket.Dialer{
		Subprotocols:   []string{"mqtt"},
		NetDialContext: (&net.Dialer{Timeout: 5 * time.Second, Control: smallRcvbuf}).DialContext,
	}
	var ws *websocket.Conn
	waitFor(t, "the WebSocket listener", 5*time.Second, func() bool {
		var err error
		ws, _, err = dialer.DialContext(context.Background(), "ws://"+wsAddr+"/", http.Header{})
		return err == nil
	})
	defer ws.Close()
	send := func(p []byte) {
		t.Helper()
		if err := ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
			t.Fatal(err)
		}
	}
	send(mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 0}.Encode())
	ctl := ControlTopic(devA, "x")
	send(mqtttest.Subscribe(v, 1, ctl, 1))
	waitFor(t, "the device connected", 5*time.Second, func() bool { return b.Connected(devA) })
	time.Sleep(100 * time.Millisecond) // the SUBSCRIBE is handled
	// The device reads nothing from here on.
	floodStalledDevice(t, b, ctl, "a WebSocket device")
}

// floodStalledDevice publishes far more to ctl than the socket buffers
// hold, from another goroutine as the hub would, to devA, which reads
// nothing, and fails unless the publishes finish and devA is disconnected
// (writeTimeout is 300 ms in these tests).
func floodStalledDevice(t *testing.T, b *Broker, ctl, who string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		big := bytes.Repeat([]byte("a"), 8192)
		for i := 0; i < 2000; i++ {
			_ = b.Publish(ctl, big, false)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("publishes to %s that stopped reading still blocked after 20 s (write timeout 300 ms)", who)
	}
	waitFor(t, "the stalled device disconnected", 20*time.Second, func() bool { return !b.Connected(devA) })
}

// A client may be silent for one and a half times its keep-alive before
// MQTT lets the server drop it, so a write to a client with a long
// keep-alive waits that long, not writeTimeout: a device (keep-alive 60 s)
// that stops reading for five times writeTimeout with its buffers full
// stays connected, and gets messages again once it reads again.
func TestStalledWriteWaitsForTheKeepAlive(t *testing.T) {
	old := writeTimeout
	writeTimeout = 300 * time.Millisecond
	t.Cleanup(func() { writeTimeout = old })
	const v = 5
	in, _, _ := storedPipeline(t, false)
	b := startStoredBroker(t, Config{}, in)
	// A receive buffer of the usual size, so that reading again is quick
	// (a small one's window stays small).
	c := mqtttest.Dial(t, b.Addr("tcp"), nil)
	c.Send(mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 60}.Encode())
	if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
		t.Fatalf("connect refused: % x", ack.Raw)
	}
	ctl := ControlTopic(devA, "x")
	c.Send(mqtttest.Subscribe(v, 1, ctl, 1))
	c.Expect(mqtttest.SUBACK)

	done := make(chan struct{})
	go func() {
		defer close(done)
		big := bytes.Repeat([]byte("a"), 8192)
		for range 1500 { // 12 MiB: more than the socket buffers hold
			_ = b.Publish(ctl, big, false)
		}
	}()
	time.Sleep(5 * writeTimeout) // the device reads nothing meanwhile
	if !b.Connected(devA) {
		t.Fatal("a device with a 60 s keep-alive was dropped after its writes waited 1.5 s (write timeout 300 ms)")
	}
	// The device reads again, acknowledging as a client does, until it
	// gets "end". mochi drops what overflows a connection's queue of
	// pending publishes, so "end" is published until it arrives.
	got := make(chan error, 1)
	go func() {
		for {
			p, err := c.Next()
			if err != nil {
				got <- err
				return
			}
			if p.Type != mqtttest.PUBLISH {
				continue
			}
			if bytes.HasSuffix(p.Raw, []byte("end")) {
				got <- nil
				return
			}
			if p.Flags&0x06 == 0x02 { // QoS 1
				at := 2 + int(binary.BigEndian.Uint16(p.Body))
				_, _ = c.Write(mqtttest.Puback(binary.BigEndian.Uint16(p.Body[at:])))
			}
		}
	}()
	<-done
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("reading again after the stall: %v", err)
			}
			if !b.Connected(devA) {
				t.Fatal("the device was dropped")
			}
			return
		case <-tick.C:
			_ = b.Publish(ctl, []byte("end"), false)
		}
	}
}

// The bound is writeTimeout for a keep-alive of 0 (MQTT sets none) or a
// short one, and one and a half times a long one.
func TestWriteBound(t *testing.T) {
	for _, tc := range []struct {
		keepAlive int
		want      time.Duration
	}{
		{0, writeTimeout},
		{10, writeTimeout},
		{20, writeTimeout},
		{21, 31500 * time.Millisecond},
		{120, 180 * time.Second},
		{65535, 98302500 * time.Millisecond},
	} {
		if got := writeBound(tc.keepAlive); got != tc.want {
			t.Errorf("writeBound(%d) = %v; want %v", tc.keepAlive, got, tc.want)
		}
	}
}
