package broker

import (
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// The DISCONNECT 0x95 the size guard writes is bounded like every other
// write (review of session 7). On a connection without write deadlines
// (WebSocket: net.Pipe stands in for mochi's wsConn) a client that stopped
// reading held the read loop, the guard's lock, and through mochi's write
// loop publishers to the device, for good: this test waited 3 s and failed.
func TestTooLargeDisconnectBoundedWithoutDeadline(t *testing.T) {
	old := writeTimeout
	writeTimeout = 200 * time.Millisecond
	t.Cleanup(func() { writeTimeout = old })
	server, client := net.Pipe()
	defer client.Close()
	defer server.Close()
	c := &guardConn{Conn: server, v5: true, acked: true, watch: !deadlineBounds(server)}
	done := make(chan struct{})
	go func() { _ = c.tooLarge(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("tooLarge's DISCONNECT still waiting for a client that reads nothing, 10 s on (write timeout 200 ms)")
	}
}

// On TCP the DISCONNECT gets a fresh deadline: with the one the last write
// left (long past for a device the hub has written nothing to for a while,
// here after its CONNACK) it failed at once and the MQTT 5 client saw a
// bare close, no 0x95 (EOF in this test before the fix).
func TestTooLargeDisconnectAfterQuiet(t *testing.T) {
	old := writeTimeout
	writeTimeout = 200 * time.Millisecond
	t.Cleanup(func() { writeTimeout = old })
	const v = 5
	in, _, _ := storedPipeline(t, false)
	b := startStoredBroker(t, Config{MaxPacketBytes: 1024}, in)
	c := mqtttest.Dial(t, b.Addr("tcp"), nil)
	connectA(t, c, v)
	time.Sleep(3 * writeTimeout) // the CONNACK's write deadline passes
	big := mqtttest.Publish(v, ReadingTopic(devA, "temperature"), make([]byte, 1500), 0, 0, false)
	c.Send(big[:8])
	if d := c.Expect(mqtttest.DISCONNECT); d.ReasonCode(v) != packets.ErrPacketTooLarge.Code {
		t.Fatalf("DISCONNECT % x, want reason 0x95", d.Raw)
	}
}
