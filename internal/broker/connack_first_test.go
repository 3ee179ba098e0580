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

// publishBeforeConnack publishes a control message to devA, once armed,
// while mochi encodes the CONNACK of its resumed session: mochi has made
// the client one publishes reach (Clients.Add) and not yet written the
// CONNACK. It waits until the message was written or the publish waits at
// the connection's gate (resumeGate).
type publishBeforeConnack struct {
	mqtt.HookBase
	tb      *testBroker
	armed   atomic.Bool
	written chan struct{}
	gated   chan struct{}
	done    chan struct{}
	once    sync.Once
	sent    sync.Once
}

func (h *publishBeforeConnack) ID() string { return "test-publish-before-connack" }
func (h *publishBeforeConnack) Provides(b byte) bool {
	return b == mqtt.OnPacketEncode || b == mqtt.OnPacketSent
}

func (h *publishBeforeConnack) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.ID != devA || pk.FixedHeader.Type != packets.Connack || !h.armed.CompareAndSwap(true, false) {
		return pk
	}
	go func() {
		defer close(h.done)
		_ = h.tb.Publish(ControlTopic(devA, "temp"), []byte(`{"n":"live"}`), false)
	}()
	select {
	case <-h.written:
	case <-h.gated:
	case <-time.After(5 * time.Second):
	}
	return pk
}

func (h *publishBeforeConnack) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if cl.ID == devA && pk.FixedHeader.Type == packets.Publish {
		h.sent.Do(func() { close(h.written) })
	}
}

// TestResumeConnackFirst: a message published to a device while its
// session is resumed goes out after the CONNACK, whatever the session's
// QoS and the client's protocol, also for a client without a Receive
// Maximum (MQTT 3.1.1 has none). MQTT requires the CONNACK before any
// other packet [MQTT-3.2.0-1]. mochi makes the client reachable before it
// writes the CONNACK, and a message to a client with no Receive Maximum
// (or at QoS 0) goes to its write queue at once: on the code before, it
// was written ahead of the CONNACK.
func TestResumeConnackFirst(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version byte
		qos     byte
		props   []byte
	}{
		{"3.1.1 QoS 1", 4, 1, nil},
		{"3.1.1 QoS 0", 4, 0, nil},
		{"5 QoS 0, Receive Maximum 4", 5, 0, mqtttest.PropUint16(0x21, 4)},
		{"5 QoS 1, Receive Maximum 4", 5, 1, mqtttest.PropUint16(0x21, 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := startBroker(t)
			h := &publishBeforeConnack{tb: tb, written: make(chan struct{}), gated: make(chan struct{}), done: make(chan struct{})}
			tb.hook.gateWaiting = func(*mqtt.Client) { h.once.Do(func() { close(h.gated) }) }
			if err := tb.srv.AddHook(h, nil); err != nil {
				t.Fatal(err)
			}
			c := mqtttest.Dial(t, tb.addr, nil)
			c.Send(clashConnect(tc.version, tc.props...))
			c.Expect(mqtttest.CONNACK)
			c.Send(mqtttest.Subscribe(tc.version, 1, TopicRoot+"/"+devA+"/control/#", tc.qos))
			c.Expect(mqtttest.SUBACK)
			queueWhileOffline(t, tb, c, 0)

			h.armed.Store(true)
			c = mqtttest.Dial(t, tb.addr, nil)
			c.Send(clashConnect(tc.version, tc.props...))
			expectWithin(t, c, mqtttest.CONNACK, 10*time.Second, "CONNACK first")
			select {
			case <-h.done:
			case <-time.After(10 * time.Second):
				t.Fatal("the publish during the resume did not return")
			}
			p := expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, "the live message after the CONNACK")
			if tc.qos == 1 {
				c.Send(mqtttest.Puback(publishID(t, p)))
			}
			c.Send(mqtttest.Pingreq())
			expectWithin(t, c, mqtttest.PINGRESP, 5*time.Second, "PINGRESP, no message more")
		})
	}
}
