package broker

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// connectRM connects devA as an MQTT 5 client with Receive Maximum rm,
// subscribed to its control topics at QoS 1.
func connectRM(t *testing.T, tb *testBroker, rm uint16) *mqtttest.Conn {
	t.Helper()
	c := mqtttest.Dial(t, tb.addr, nil)
	c.Send(clashConnect(5, mqtttest.PropUint16(0x21, rm)...))
	c.Expect(mqtttest.CONNACK)
	c.Send(mqtttest.Subscribe(5, 1, TopicRoot+"/"+devA+"/control/#", 1))
	c.Expect(mqtttest.SUBACK)
	return c
}

// expectWithin reads the next packet, failing with what if none comes
// within d (a bound on a hang, not a measured time).
func expectWithin(t *testing.T, c *mqtttest.Conn, typ byte, d time.Duration, what string) mqtttest.Packet {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	p, err := c.Next()
	if err != nil {
		t.Fatalf("%s: nothing came (%v)", what, err)
	}
	if p.Type != typ {
		t.Fatalf("%s: got % x, want packet type %d", what, p.Raw, typ)
	}
	return p
}

// TestFreshReceiveMaximumOneAtATime: on a fresh connection with Receive
// Maximum 2, hub messages published one at a time, each acknowledged
// before the next, all arrive. The device acknowledges, and the hub
// publishes, before the hub's read loop handled the acknowledgements, so
// mochi holds a message for the maximum just as those PUBACKs give room;
// it then sat held until the device sent another packet, or, the quota
// lost twice, for good. This is what stalled advanceNumbering (ten round
// trips: 8 of 960 runs under load on main 7eaf220, 4 in parallel). With
// 100 round trips it failed 1 of 10 runs (-race) on main (5 of 160 with
// four runs in parallel), with 300 3 of 5;
// TestHeldWhileAckHandledIsSent is the one that fails every time.
func TestFreshReceiveMaximumOneAtATime(t *testing.T) {
	tb := startBroker(t)
	c := connectRM(t, tb, 2)
	// 30 round trips (ten, as advanceNumbering sends, rarely stalled; 100
	// stalled 1 of 10 runs on main). The deterministic test below covers
	// the release itself; TestAcksWhilePublishingDoNotDeadlock the
	// deadlock more round trips found on the code before session 8.
	const n = 30
	for i := range n {
		publishWithin(t, tb, fmt.Appendf(nil, `{"w":%d}`, i))
		p := expectWithin(t, c, mqtttest.PUBLISH, 10*time.Second, fmt.Sprintf("message %d of %d", i, n))
		c.Send(mqtttest.Puback(publishID(t, p)))
	}
}

// publishWithin publishes a control message to devA, failing if the
// publish does not return: mochi v2.7.9's Inflight.NextImmediate takes the
// session's read lock twice, so a publish storing a message in the same
// instant blocked for good with the read loop (release.go keeps mochi
// from calling it).
func publishWithin(t *testing.T, tb *testBroker, payload []byte) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tb.Publish(ControlTopic(devA, "temp"), payload, false) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		// Said at once: the broker's Close in the cleanup then hangs too.
		t.Log("publish blocked: mochi's NextImmediate deadlock with the read loop? (see publishWithin)")
		t.Fatal("publish blocked")
	}
}

// windowHook holds a publish to devA between mochi storing the message
// and deciding to hold it (OnQosPublish comes between the two) until the
// read loop handled the PUBACK that gives room, and a moment more for
// mochi's own look for a held message after it: the interleaving that
// left a message held with room to spare.
type windowHook struct {
	mqtt.HookBase
	armed   chan struct{} // closed: hold the next publish
	inside  chan struct{} // the publish is held
	acked   chan struct{} // the read loop handled a PUBACK
	ackedOK bool
}

func (h *windowHook) ID() string { return "window" }
func (h *windowHook) Provides(b byte) bool {
	return b == mqtt.OnQosPublish || b == mqtt.OnPacketProcessed
}
func (h *windowHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	select {
	case <-h.armed:
	default:
		return
	}
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return
	}
	close(h.inside)
	<-h.acked
}
func (h *windowHook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type != packets.Puback || cl.Net.Inline || h.ackedOK {
		return
	}
	select {
	case <-h.inside:
	default:
		return
	}
	h.ackedOK = true
	// mochi looks for a held message right after this hook returns; the
	// publish marks its message held after that.
	time.AfterFunc(50*time.Millisecond, func() { close(h.acked) })
}

// TestHeldWhileAckHandledIsSent: a message mochi marks held just after
// the read loop handled the PUBACK that gave room (and looked for a held
// message, finding none yet) is sent without the client sending anything
// more. Before, it waited for the client's next packet, however long.
func TestHeldWhileAckHandledIsSent(t *testing.T) {
	tb := startBroker(t)
	wh := &windowHook{armed: make(chan struct{}), inside: make(chan struct{}), acked: make(chan struct{})}
	if err := tb.srv.AddHook(wh, nil); err != nil {
		t.Fatal(err)
	}
	c := connectRM(t, tb, 1)
	if err := tb.Publish(ControlTopic(devA, "temp"), []byte(`{"n":0}`), false); err != nil {
		t.Fatal(err)
	}
	first := expectWithin(t, c, mqtttest.PUBLISH, 10*time.Second, "the first message")
	close(wh.armed)
	published := make(chan error, 1)
	go func() { published <- tb.Publish(ControlTopic(devA, "temp"), []byte(`{"n":1}`), false) }()
	select {
	case <-wh.inside:
	case <-time.After(10 * time.Second):
		t.Fatal("the second publish never reached mochi's OnQosPublish")
	}
	c.Send(mqtttest.Puback(publishID(t, first)))
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	p := expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, "the second message, held as the PUBACK was handled")
	if got := payloadOf(p); got != `{"n":1}` {
		t.Fatalf("got %s, want the second message", got)
	}
}

// BenchmarkControlRoundTripRM2: one hub message to a device with Receive
// Maximum 2, received and acknowledged, per op (the path release.go adds
// to: OnQosPublish, OnPublished, the PUBACK's look for held messages).
func BenchmarkControlRoundTripRM2(b *testing.B) {
	br, err := New(Config{TCPAddr: "127.0.0.1:0"}, &fakeAuth{secrets: map[string]string{devA: secretA}}, &fakeIngester{})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	c := mqtttest.Dial(b, br.Addr("tcp"), nil)
	c.Send(clashConnect(5, mqtttest.PropUint16(0x21, 2)...))
	c.Expect(mqtttest.CONNACK)
	c.Send(mqtttest.Subscribe(5, 1, TopicRoot+"/"+devA+"/control/#", 1))
	c.Expect(mqtttest.SUBACK)
	topic := ControlTopic(devA, "temp")
	payload := []byte(`{"w":1}`)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := br.Publish(topic, payload, false); err != nil {
			b.Fatal(err)
		}
		p := c.Expect(mqtttest.PUBLISH)
		id := binary.BigEndian.Uint16(p.Body[2+int(binary.BigEndian.Uint16(p.Body)):])
		c.Send(mqtttest.Puback(id))
	}
}
