package broker

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// publishInAck publishes C to devA from inside the read loop's handling
// of the armed PUBACK: from OnQosComplete (mochi's processPuback, after it
// gave the place back to its send quota and before OnPacketProcessed,
// where the held message is released), or, if mochi never got to that
// (the PUBACK taken over), from OnPacketProcessed. This is the window a
// concurrent publisher hit (TestPahoReceiveMaximumGetsEveryControl).
type publishInAck struct {
	mqtt.HookBase
	tb    *testBroker
	armed atomic.Bool
	once  sync.Once
	err   error
}

func (h *publishInAck) ID() string { return "test-publish-in-ack" }
func (h *publishInAck) Provides(b byte) bool {
	return b == mqtt.OnQosComplete || b == mqtt.OnPacketProcessed
}
func (h *publishInAck) publish(cl *mqtt.Client, pk packets.Packet) {
	if cl.ID != devA || pk.FixedHeader.Type != packets.Puback || !h.armed.Load() {
		return
	}
	h.once.Do(func() { h.err = h.tb.Publish(ControlTopic(devA, "temp"), []byte(`{"n":"C"}`), false) })
}
func (h *publishInAck) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.publish(cl, pk) }
func (h *publishInAck) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	h.publish(cl, pk)
}

// TestPublishDuringAckWaitsBehindHeld: Receive Maximum 1, A sent, B held.
// The PUBACK of A frees the place; C, published while the read loop
// handles that PUBACK, must reach the client after B (MQTT-4.6.0-6: a
// "hold set" published before a "hold lifted" arrives first). On the code
// before, mochi's processPuback gave the place back to its send quota
// before the held B was released (OnPacketProcessed), C read that place
// and went to the write queue at once, and the release then found no
// room for B: "got {"n":"C"}, want B" (the 1 in 400 to 1 in 700 runs of
// TestPahoReceiveMaximumGetsEveryControl).
func TestPublishDuringAckWaitsBehindHeld(t *testing.T) {
	tb := startBroker(t)
	h := &publishInAck{tb: tb}
	if err := tb.srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	c := connectRM(t, tb, 1)
	for _, m := range []string{`{"n":"A"}`, `{"n":"B"}`} {
		if err := tb.Publish(ControlTopic(devA, "temp"), []byte(m), false); err != nil {
			t.Fatal(err)
		}
	}
	pa := expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, "A")
	if got := payloadOf(pa); got != `{"n":"A"}` {
		t.Fatalf("got %s, want A", got)
	}
	h.armed.Store(true)
	c.Send(mqtttest.Puback(publishID(t, pa)))
	for _, want := range []string{`{"n":"B"}`, `{"n":"C"}`} {
		p := expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, want)
		if got := payloadOf(p); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
		c.Send(mqtttest.Puback(publishID(t, p)))
	}
	if h.err != nil {
		t.Fatalf("publish of C: %v", h.err)
	}
	c.Send(mqtttest.Pingreq())
	expectWithin(t, c, mqtttest.PINGRESP, 5*time.Second, "PINGRESP, nothing more")
}
