package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/broker/mqtttest"
	"github.com/candor-iot/candor/internal/store"
)

// clashConnect is devA's CONNECT with a persistent session (an hour's
// Session Expiry Interval in MQTT 5), plus extra MQTT 5 properties.
func clashConnect(version byte, props ...byte) []byte {
	c := mqtttest.Connect{Version: version, ClientID: devA, Username: devA, Password: secretA,
		KeepAlive: 30, Persistent: true}
	if version == 5 {
		c.Props = append(mqtttest.PropUint32(0x11, 3600), props...)
	}
	return c.Encode()
}

// controlPending connects devA, subscribes it to its control topics at
// QoS 1, has the hub publish a control message and reads it without
// acknowledging it: the hub's message is in flight under the packet id it
// returns, an id in the hub's numbering, which MQTT keeps apart from the
// device's own (MQTT 5 §2.2.1: each direction has its own set).
func controlPending(t *testing.T, tb *testBroker, version byte, props ...byte) (*mqtttest.Conn, uint16) {
	t.Helper()
	c := mqtttest.Dial(t, tb.addr, nil)
	c.Send(clashConnect(version, props...))
	if p := c.Expect(mqtttest.CONNACK); p.ReasonCode(version) != 0 {
		t.Fatalf("CONNACK % x", p.Raw)
	}
	c.Send(mqtttest.Subscribe(version, 1, TopicRoot+"/"+devA+"/control/#", 1))
	if p := c.Expect(mqtttest.SUBACK); p.ReasonCode(version) != 1 {
		t.Fatalf("SUBACK % x, want QoS 1 granted", p.Raw)
	}
	if err := tb.Publish(ControlTopic(devA, "temp"), []byte(`{"hold":true}`), false); err != nil {
		t.Fatal(err)
	}
	return c, publishID(t, c.Expect(mqtttest.PUBLISH))
}

// publishID is the packet id of a QoS 1 or 2 PUBLISH read from the broker.
func publishID(t *testing.T, p mqtttest.Packet) uint16 {
	t.Helper()
	if p.Flags&0x06 == 0 || len(p.Body) < 2 {
		t.Fatalf("want a QoS 1 or 2 PUBLISH, got % x", p.Raw)
	}
	n := int(binary.BigEndian.Uint16(p.Body))
	if len(p.Body) < 2+n+2 {
		t.Fatalf("short PUBLISH % x", p.Raw)
	}
	return binary.BigEndian.Uint16(p.Body[2+n:])
}

// answer reads one packet and checks its type, packet id and (MQTT 5)
// reason code.
func answer(t *testing.T, c *mqtttest.Conn, version, typ byte, id uint16, code byte) {
	t.Helper()
	p := c.Expect(typ)
	if got := binary.BigEndian.Uint16(p.Body); got != id {
		t.Fatalf("packet type %d for id %d, want id %d: % x", typ, got, id, p.Raw)
	}
	if version == 5 || typ == mqtttest.SUBACK {
		if got := p.ReasonCode(version); got != code {
			t.Fatalf("packet type %d reason 0x%02x, want 0x%02x: % x", typ, got, code, p.Raw)
		}
	}
}

// TestDevicePacketIDsApartFromHubs: a device's own packet ids are its
// own, whatever the hub numbered the message it is sending the device
// (MQTT 5 §2.2.1, 3.1.1 §2.3.1: a packet id is unique per direction).
// mochi keeps both directions' ids in one map per session, so a device
// packet reusing the id of a control message still unacknowledged did
// damage: a QoS 1 or 2 reading deleted the hub's message from the session
// (never resent after a reconnect: the device lost the control change), a
// SUBSCRIBE or UNSUBSCRIBE was refused "packet identifier in use", a
// PUBREL for a flow the hub did not know took the hub's message's place
// (PUBCOMP "success" instead of "not found"), and a QoS 2 reading's
// PUBREC state was deleted by the device's PUBACK of the hub's message
// (PUBCOMP "not found"). Devices commonly number from 1, as mochi does
// for each connection, so the ids meet on the first control message.
func TestDevicePacketIDsApartFromHubs(t *testing.T) {
	reading := TopicRoot + "/" + devA + "/temp"
	cases := []struct {
		name string
		// act sends the device's packets using the control message's id
		// and checks the answers; it returns whether the control message
		// is still unacknowledged (and so must be resent on resuming).
		act func(t *testing.T, c *mqtttest.Conn, v byte, id uint16) bool
	}{
		{"qos1 reading", func(t *testing.T, c *mqtttest.Conn, v byte, id uint16) bool {
			c.Send(mqtttest.Publish(v, reading, []byte(`{"t":1}`), 1, id, false))
			answer(t, c, v, mqtttest.PUBACK, id, 0)
			return true
		}},
		{"qos2 reading", func(t *testing.T, c *mqtttest.Conn, v byte, id uint16) bool {
			c.Send(mqtttest.Publish(v, reading, []byte(`{"t":1}`), 2, id, false))
			answer(t, c, v, mqtttest.PUBREC, id, 0)
			c.Send(mqtttest.Pubrel(id))
			answer(t, c, v, mqtttest.PUBCOMP, id, 0)
			return true
		}},
		{"qos2 reading, control acknowledged mid-flow", func(t *testing.T, c *mqtttest.Conn, v byte, id uint16) bool {
			c.Send(mqtttest.Publish(v, reading, []byte(`{"t":1}`), 2, id, false))
			answer(t, c, v, mqtttest.PUBREC, id, 0)
			c.Send(mqtttest.Puback(id)) // the control message, in the hub's numbering
			c.Send(mqtttest.Pubrel(id)) // the reading, in the device's
			answer(t, c, v, mqtttest.PUBCOMP, id, 0)
			return false
		}},
		{"subscribe", func(t *testing.T, c *mqtttest.Conn, v byte, id uint16) bool {
			c.Send(mqtttest.Subscribe(v, id, TopicRoot+"/"+devA+"/control/humidity", 1))
			answer(t, c, v, mqtttest.SUBACK, id, 1)
			return true
		}},
		{"unsubscribe", func(t *testing.T, c *mqtttest.Conn, v byte, id uint16) bool {
			c.Send(mqtttest.Unsubscribe(v, id, TopicRoot+"/"+devA+"/control/none"))
			answer(t, c, v, mqtttest.UNSUBACK, id, 0) // MQTT 5: 0x11 checked below
			return true
		}},
		{"pubrel of no flow", func(t *testing.T, c *mqtttest.Conn, v byte, id uint16) bool {
			c.Send(mqtttest.Pubrel(id))
			answer(t, c, v, mqtttest.PUBCOMP, id, 0x92) // packet identifier not found
			return true
		}},
	}
	for _, v := range []byte{4, 5} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("v%d/%s", v, tc.name), func(t *testing.T) {
				if v == 5 && tc.name == "unsubscribe" {
					t.Skip("see TestDeviceUnsubscribeIDApartFromHubs")
				}
				tb := startBroker(t)
				c, id := controlPending(t, tb, v)
				pending := tc.act(t, c, v, id)
				// Every answer came: nothing of the device's is outstanding.
				c.Send(mqtttest.Pingreq())
				c.Expect(mqtttest.PINGRESP)
				c.Close()

				// Resuming the session, the hub resends what the device did
				// not acknowledge, before reading anything (so before the
				// PINGRESP).
				r := mqtttest.Dial(t, tb.addr, nil)
				r.Send(clashConnect(v))
				if p := r.Expect(mqtttest.CONNACK); p.ReasonCode(v) != 0 || p.Body[0]&1 == 0 {
					t.Fatalf("CONNACK % x, want the session present", p.Raw)
				}
				r.Send(mqtttest.Pingreq())
				if pending {
					p := r.Expect(mqtttest.PUBLISH)
					if p.Flags&0x08 == 0 || publishID(t, p) != id {
						t.Fatalf("resent % x, want a DUP PUBLISH with id %d", p.Raw, id)
					}
					r.Send(mqtttest.Puback(id))
				}
				r.Expect(mqtttest.PINGRESP)
			})
		}
	}
}

// TestDeviceUnsubscribeIDApartFromHubs: MQTT 5's UNSUBACK carries a
// reason code per filter, which a clash turned into "packet identifier in
// use" instead of "no subscription existed".
func TestDeviceUnsubscribeIDApartFromHubs(t *testing.T) {
	tb := startBroker(t)
	c, id := controlPending(t, tb, 5)
	c.Send(mqtttest.Unsubscribe(5, id, TopicRoot+"/"+devA+"/control/none"))
	p := c.Expect(mqtttest.UNSUBACK)
	// Packet id, an empty property length, then the one reason code.
	if len(p.Body) != 4 || binary.BigEndian.Uint16(p.Body) != id || p.Body[3] != 0x11 {
		t.Fatalf("UNSUBACK % x, want id %d and 0x11 (no subscription existed)", p.Raw, id)
	}
}

// TestControlsFlowAfterIDClash: a device with a Receive Maximum of 1
// takes one QoS 1 message from the hub at a time. When its reading
// reused the id of the hub's message in flight, mochi dropped that message
// from the session without giving back its place in the quota, so the
// device's PUBACK freed nothing and every later control message waited in
// the session for ever.
func TestControlsFlowAfterIDClash(t *testing.T) {
	tb := startBroker(t)
	c, id := controlPending(t, tb, 5, mqtttest.PropUint16(0x21, 1)...)
	c.Send(mqtttest.Publish(5, TopicRoot+"/"+devA+"/temp", []byte(`{"t":1}`), 1, id, false))
	answer(t, c, 5, mqtttest.PUBACK, id, 0)
	c.Send(mqtttest.Puback(id))
	if err := tb.Publish(ControlTopic(devA, "temp"), []byte(`{"hold":false}`), false); err != nil {
		t.Fatal(err)
	}
	// Bounded so the failure is reported, not the 20 s safety.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := c.Next()
	if err != nil || p.Type != mqtttest.PUBLISH {
		t.Fatalf("second control message: got % x, %v", p.Raw, err)
	}
}

// TestStrayAckLeavesDeviceFlowAlone: a PUBACK or PUBREC names a message of
// the hub's; one for an id the hub never sent must not touch the device's
// own QoS 2 flow under the same id (mochi's one map: a PUBACK deleted the
// flow, so its PUBREL got "not found"; a PUBREC was answered with a
// PUBREL "success" for a message the hub never sent).
func TestStrayAckLeavesDeviceFlowAlone(t *testing.T) {
	const id = 5
	for _, tc := range []struct {
		name  string
		stray []byte
		// answer is what the stray packet gets: 0 for nothing, else a
		// PUBREL with this reason code.
		answer byte
	}{
		{"puback", mqtttest.Puback(id), 0},
		{"pubrec", []byte{mqtttest.PUBREC << 4, 2, 0, id}, 0x92},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := startBroker(t)
			c := mqtttest.Dial(t, tb.addr, nil)
			c.Send(clashConnect(5))
			c.Expect(mqtttest.CONNACK)
			c.Send(mqtttest.Publish(5, TopicRoot+"/"+devA+"/temp", []byte(`{"t":1}`), 2, id, false))
			answer(t, c, 5, mqtttest.PUBREC, id, 0)
			c.Send(tc.stray)
			if tc.answer != 0 {
				p := c.Expect(mqtttest.PUBREL)
				if binary.BigEndian.Uint16(p.Body) != id || len(p.Body) < 3 || p.Body[2] != tc.answer {
					t.Fatalf("PUBREL % x, want id %d reason 0x%02x", p.Raw, id, tc.answer)
				}
			}
			c.Send(mqtttest.Pubrel(id))
			answer(t, c, 5, mqtttest.PUBCOMP, id, 0)
		})
	}
}

// oneApp is an Apps that knows one app, allowed every reading and every
// command.
type oneApp struct{ id, secret string }

func (a oneApp) Authenticate(_ context.Context, id, secret string) (store.App, error) {
	if id != a.id || secret != a.secret {
		return store.App{}, apps.ErrUnauthenticated
	}
	return store.App{ID: id}, nil
}
func (oneApp) MayMatch(context.Context, string, string) bool { return true }
func (oneApp) Visible(string, string) bool                   { return true }
func (oneApp) Delivered(string)                              {}
func (oneApp) Dropped(string)                                {}
func (oneApp) Command(context.Context, string, string, string, []byte) error {
	return nil
}

// TestAppPacketIDsApartFromHubs: an app receives readings at QoS 1 under
// the hub's packet ids and publishes commands under its own. A command
// reusing the id of a reading the app had not acknowledged yet deleted the
// reading from the app's session (not resent when the app resumed it: a
// consented reading lost to the app); a SUBSCRIBE reusing it was refused.
func TestAppPacketIDsApartFromHubs(t *testing.T) {
	app := oneApp{id: apps.IDPrefix + "x", secret: "secret-of-app-x-0123"}
	tb := startBrokerWith(t, func(c *Config) { c.Apps = app })
	connect := mqtttest.Connect{Version: 5, ClientID: app.id, Username: app.id, Password: app.secret,
		KeepAlive: 30, Persistent: true, Props: mqtttest.PropUint32(0x11, 3600)}.Encode()
	c := mqtttest.Dial(t, tb.addr, nil)
	c.Send(connect)
	c.Expect(mqtttest.CONNACK)
	c.Send(mqtttest.Subscribe(5, 1, TopicRoot+"/"+devA+"/+", 1))
	answer(t, c, 5, mqtttest.SUBACK, 1, 1)
	tb.PublishReading(devA, "temp", []byte(`{"t":21}`))
	id := publishID(t, c.Expect(mqtttest.PUBLISH))

	c.Send(mqtttest.Subscribe(5, id, TopicRoot+"/"+devB+"/+", 1))
	answer(t, c, 5, mqtttest.SUBACK, id, 1)
	c.Send(mqtttest.Publish(5, TopicRoot+"/"+devA+"/command/reboot", []byte(`{}`), 1, id, false))
	answer(t, c, 5, mqtttest.PUBACK, id, 0)
	c.Close()

	r := mqtttest.Dial(t, tb.addr, nil)
	r.Send(connect)
	if p := r.Expect(mqtttest.CONNACK); p.Body[0]&1 == 0 {
		t.Fatalf("CONNACK % x, want the session present", p.Raw)
	}
	r.Send(mqtttest.Pingreq())
	p := r.Expect(mqtttest.PUBLISH)
	if p.Flags&0x08 == 0 || publishID(t, p) != id {
		t.Fatalf("resent % x, want a DUP PUBLISH with id %d", p.Raw, id)
	}
	r.Expect(mqtttest.PINGRESP)
}

// TestQoS2ResendAcknowledged: until the PUBREL, a QoS 2 PUBLISH sent again
// under the same id (DUP set: the device did not see the PUBREC, and
// resends on resuming its session) must be answered with a PUBREC, and
// not delivered twice [MQTT-4.3.3-10]. mochi answered 0x91 "packet
// identifier in use", which tells the device its reading was not taken: it
// drops the flow without a PUBREL, so mochi's PUBREC state (and its place
// in the receive quota) stayed for the session's life, and a device may
// well send the reading again as a new message.
func TestQoS2ResendAcknowledged(t *testing.T) {
	const id = 7
	tb := startBroker(t)
	reading := mqtttest.Publish(5, TopicRoot+"/"+devA+"/temp", []byte(`{"t":1}`), 2, id, false)
	c := mqtttest.Dial(t, tb.addr, nil)
	c.Send(clashConnect(5))
	c.Expect(mqtttest.CONNACK)
	c.Send(reading)
	answer(t, c, 5, mqtttest.PUBREC, id, 0)
	c.Close() // as if the PUBREC never arrived

	r := mqtttest.Dial(t, tb.addr, nil)
	r.Send(clashConnect(5))
	if p := r.Expect(mqtttest.CONNACK); p.Body[0]&1 == 0 {
		t.Fatalf("CONNACK % x, want the session present", p.Raw)
	}
	dup := append([]byte(nil), reading...)
	dup[0] |= 0x08
	r.Send(dup)
	r.Send(mqtttest.Pingreq())
	// mochi resends its PUBREC on resuming (the session's state, sent
	// before anything is read); then comes the answer to the resent
	// PUBLISH.
	for seen := 0; ; {
		p := r.Expect(mqtttest.PUBREC)
		if binary.BigEndian.Uint16(p.Body) != id || p.ReasonCode(5) != 0 {
			t.Fatalf("PUBREC % x, want id %d success", p.Raw, id)
		}
		if seen++; seen == 2 {
			break
		}
	}
	r.Expect(mqtttest.PINGRESP)
	r.Send(mqtttest.Pubrel(id))
	answer(t, r, 5, mqtttest.PUBCOMP, id, 0)
	if n := len(tb.in.submissions()); n != 1 {
		t.Fatalf("%d readings handed to ingest, want 1", n)
	}
}

// TestControlsFlowWithReceiveMaximum: a device with a Receive Maximum of 1
// is sent control messages faster than it acknowledges them. mochi holds
// the second until the first's PUBACK, then sends it and drops it from
// the session, so its PUBACK gave back no quota and every later message
// waited for ever.
func TestControlsFlowWithReceiveMaximum(t *testing.T) {
	tb := startBroker(t)
	c, first := controlPending(t, tb, 5, mqtttest.PropUint16(0x21, 1)...)
	if err := tb.Publish(ControlTopic(devA, "temp"), []byte(`{"hold":false}`), false); err != nil {
		t.Fatal(err)
	}
	c.Send(mqtttest.Puback(first))
	second := publishID(t, c.Expect(mqtttest.PUBLISH))
	c.Send(mqtttest.Puback(second))
	if err := tb.Publish(ControlTopic(devA, "temp"), []byte(`{"hold":true}`), false); err != nil {
		t.Fatal(err)
	}
	// Bounded so the failure is reported, not the 20 s safety.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := c.Next()
	if err != nil || p.Type != mqtttest.PUBLISH {
		t.Fatalf("third control message: got % x, %v", p.Raw, err)
	}
}

// TestHeldControlResent: the message mochi held for the device's Receive
// Maximum and then sent stays in the session until acknowledged, so it is
// resent when the device resumes the session without having acknowledged
// it (mochi had deleted it on sending).
func TestHeldControlResent(t *testing.T) {
	tb := startBroker(t)
	c, first := controlPending(t, tb, 5, mqtttest.PropUint16(0x21, 1)...)
	if err := tb.Publish(ControlTopic(devA, "temp"), []byte(`{"hold":false}`), false); err != nil {
		t.Fatal(err)
	}
	c.Send(mqtttest.Puback(first))
	second := publishID(t, c.Expect(mqtttest.PUBLISH))
	c.Close()

	r := mqtttest.Dial(t, tb.addr, nil)
	r.Send(clashConnect(5, mqtttest.PropUint16(0x21, 1)...))
	if p := r.Expect(mqtttest.CONNACK); p.Body[0]&1 == 0 {
		t.Fatalf("CONNACK % x, want the session present", p.Raw)
	}
	r.Send(mqtttest.Pingreq())
	p := r.Expect(mqtttest.PUBLISH)
	if p.Flags&0x08 == 0 || publishID(t, p) != second {
		t.Fatalf("resent % x, want a DUP PUBLISH with id %d", p.Raw, second)
	}
	r.Expect(mqtttest.PINGRESP)
}

// TestResumeHonoursReceiveMaximum: control messages queued while a device
// with a Receive Maximum of 1 was offline are sent one at a time when it
// resumes its session, each after the PUBACK of the one before, in the
// order the hub published them [MQTT-3.3.4-9, MQTT-4.6.0-2]. mochi resent
// every one at once (in an order of its map's choosing within a second)
// and then sent those it had held a second time.
func TestResumeHonoursReceiveMaximum(t *testing.T) {
	tb := startBroker(t)
	rm1 := mqtttest.PropUint16(0x21, 1)
	c := connectRM(t, tb, 1)
	const n = 4
	queueWhileOffline(t, tb, c, n)

	r := mqtttest.Dial(t, tb.addr, nil)
	r.Send(clashConnect(5, rm1...))
	if p := r.Expect(mqtttest.CONNACK); p.Body[0]&1 == 0 {
		t.Fatalf("CONNACK % x, want the session present", p.Raw)
	}
	for i := range n {
		r.Send(mqtttest.Pingreq())
		p := r.Expect(mqtttest.PUBLISH)
		if want := fmt.Sprintf(`{"n":%d}`, i); !strings.HasSuffix(string(p.Body), want) {
			t.Fatalf("message %d: % x, want payload %s", i, p.Raw, want)
		}
		// Nothing more until this one is acknowledged: the PINGRESP
		// comes next.
		r.Expect(mqtttest.PINGRESP)
		r.Send(mqtttest.Puback(publishID(t, p)))
	}
	r.Send(mqtttest.Pingreq())
	r.Expect(mqtttest.PINGRESP)
}

// TestPahoReceiveMaximumGetsEveryControl: the Receive Maximum defect with
// a real client (paho.golang), which acknowledges each message as it
// comes. With a Receive Maximum of 1 and three control changes published
// at once, mochi sent the second after the first's PUBACK and dropped it
// from the session, so the third never left the hub.
func TestPahoReceiveMaximumGetsEveryControl(t *testing.T) {
	tb := startBroker(t)
	rm := uint16(1)
	c, _, err := dialV5With(t, tb.addr, &paho.Connect{ClientID: devA, KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: devA, PasswordFlag: true, Password: []byte(secretA),
		Properties: &paho.ConnectProperties{ReceiveMaximum: &rm}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(testCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: ControlTopic(devA, "+"), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := tb.Publish(ControlTopic(devA, "temp"), fmt.Appendf(nil, `{"n":%d}`, i), false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three control messages", 5*time.Second, func() bool { return len(c.messages()) == 3 })
	for i, m := range c.messages() {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(m.Payload) != want {
			t.Fatalf("message %d is %s, want %s", i, m.Payload, want)
		}
	}
}

// TestHeldControlsInOrder: control messages mochi holds for a device's
// Receive Maximum go out in the order the hub published them. mochi
// picks the next held message by its time in whole seconds, and those of
// one second in map order: a device could get a hold lifted before it
// was set, and keep the older state.
func TestHeldControlsInOrder(t *testing.T) {
	tb := startBroker(t)
	c, first := controlPending(t, tb, 5, mqtttest.PropUint16(0x21, 1)...)
	const n = 6
	for i := 1; i <= n; i++ {
		if err := tb.Publish(ControlTopic(devA, "temp"), fmt.Appendf(nil, `{"n":%d}`, i), false); err != nil {
			t.Fatal(err)
		}
	}
	c.Send(mqtttest.Puback(first))
	for i := 1; i <= n; i++ {
		p := c.Expect(mqtttest.PUBLISH)
		if want := fmt.Sprintf(`{"n":%d}`, i); !strings.HasSuffix(string(p.Body), want) {
			t.Fatalf("message %d: % x, want payload %s", i, p.Raw, want)
		}
		c.Send(mqtttest.Puback(publishID(t, p)))
	}
}

// BenchmarkKeepIDsApart measures what the packet id repairs add to every
// QoS 1 reading a device sends (nothing moved, nothing held: the common
// case): keepIDsApart on a guarded connection with an empty session.
//
//	go test -run '^$' -bench KeepIDsApart -benchmem ./internal/broker/
func BenchmarkKeepIDsApart(b *testing.B) {
	cl := &mqtt.Client{}
	cl.Net.Conn = &guardConn{}
	cl.State.Inflight = mqtt.NewInflights()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 7}
	b.ReportAllocs()
	for b.Loop() {
		keepIDsApart(cl, &pk)
	}
}

// publishAtConnack publishes a control message to devA once armed, just
// after its CONNACK (after: packets.Connack) or the first message mochi
// resends (packets.Publish) is written: a live publish while mochi resends
// the resumed session (between the CONNACK and OnSessionEstablished),
// before or after the resend read the session. The publish runs on a
// goroutine of its own, as every publish of the hub's does: before the
// resend read the session it waits at the connection's gate (resumeGate),
// and the hook goes on once it does.
type publishAtConnack struct {
	mqtt.HookBase
	tb    *testBroker
	after byte
	arm   chan struct{}
	done  chan struct{}
	gated chan struct{}
	once  sync.Once
}

func (h *publishAtConnack) ID() string           { return "test-publish-at-connack" }
func (h *publishAtConnack) Provides(b byte) bool { return b == mqtt.OnPacketSent }
func (h *publishAtConnack) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != h.after || cl.ID != devA {
		return
	}
	select {
	case <-h.arm:
	default:
		return
	}
	select {
	case <-h.done:
		return
	default:
	}
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		_ = h.tb.Publish(ControlTopic(devA, "temp"), []byte(`{"new":1}`), false)
	}()
	select {
	case <-pubDone:
	case <-h.gated:
	case <-time.After(5 * time.Second):
	}
	close(h.done)
}

// TestResumeParkedSurvivesLivePublish: a control message published while
// a device's resumed session is resent takes no parked message's place
// (parkBeyondReceiveMaximum). mochi numbers a new connection's messages
// from 1, skipping only ids in the session, so the live message took the
// id of one parked beyond the Receive Maximum (out of the session while
// mochi resends), and unpark dropped that one.
func TestResumeParkedSurvivesLivePublish(t *testing.T) {
	t.Run("before the resend", func(t *testing.T) { testParkedSurvivesLivePublish(t, packets.Connack) })
	t.Run("during the resend", func(t *testing.T) { testParkedSurvivesLivePublish(t, packets.Publish) })
}

func testParkedSurvivesLivePublish(t *testing.T, after byte) {
	tb := startBroker(t)
	hk := &publishAtConnack{tb: tb, after: after, arm: make(chan struct{}), done: make(chan struct{}), gated: make(chan struct{})}
	tb.hook.gateWaiting = func(*mqtt.Client) { hk.once.Do(func() { close(hk.gated) }) }
	if err := tb.srv.AddHook(hk, nil); err != nil {
		t.Fatal(err)
	}
	rm1 := mqtttest.PropUint16(0x21, 1)
	c := connectRM(t, tb, 1)
	const n = 4
	queueWhileOffline(t, tb, c, n)
	close(hk.arm)
	r := mqtttest.Dial(t, tb.addr, nil)
	r.Send(clashConnect(5, rm1...))
	r.Expect(mqtttest.CONNACK)
	<-hk.done
	// Each PINGREQ's PINGRESP follows what the hub had sent by then;
	// every message is acknowledged as it comes.
	got := map[string]int{}
	var order []string
	for range 2 * (n + 1) {
		r.Send(mqtttest.Pingreq())
		for {
			p, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if p.Type == mqtttest.PINGRESP {
				break
			}
			if p.Type != mqtttest.PUBLISH {
				t.Fatalf("unexpected packet % x", p.Raw)
			}
			m := string(p.Body[bytes.IndexByte(p.Body, '{'):])
			got[m]++
			order = append(order, m)
			r.Send(mqtttest.Puback(publishID(t, p)))
		}
	}
	for i := range n + 1 {
		want := fmt.Sprintf(`{"n":%d}`, i)
		if i == n {
			want = `{"new":1}`
		}
		if got[want] != 1 {
			t.Errorf("message %s arrived %d times, want once; got %v", want, got[want], got)
		}
	}
	// Held after the resend, the live message goes after the parked ones,
	// in the order published (its id comes after theirs: settleSession).
	if after == packets.Publish && !t.Failed() && order[n] != `{"new":1}` {
		t.Errorf("messages in the order %v, want the live one last", order)
	}
}

// pauseInResend holds devA's connection just after mochi's resend wrote
// its first message, once armed, until proceed is closed: the session's
// messages beyond the Receive Maximum are parked (out of the session), and
// the connection's gate is open (resumeGate), so a takeover goes ahead.
type pauseInResend struct {
	mqtt.HookBase
	arm, arrived, proceed chan struct{}
}

func (h *pauseInResend) ID() string           { return "test-pause-in-resend" }
func (h *pauseInResend) Provides(b byte) bool { return b == mqtt.OnPacketSent }
func (h *pauseInResend) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Publish || !pk.FixedHeader.Dup || cl.ID != devA {
		return
	}
	select {
	case <-h.arm:
	default:
		return
	}
	select {
	case <-h.arrived:
		return
	default:
	}
	close(h.arrived)
	<-h.proceed
}

// TestResumeParkedSurvivesTakeover: a connection that takes the session
// over from one still resending it (messages parked beyond the Receive
// Maximum, out of the session) gets the parked messages too. The parked
// ones go back into the old connection's session as it is closed, before
// mochi copies it.
func TestResumeParkedSurvivesTakeover(t *testing.T) {
	tb := startBroker(t)
	hk := &pauseInResend{arm: make(chan struct{}), arrived: make(chan struct{}), proceed: make(chan struct{})}
	if err := tb.srv.AddHook(hk, nil); err != nil {
		t.Fatal(err)
	}
	rm1 := mqtttest.PropUint16(0x21, 1)
	c := connectRM(t, tb, 1)
	const n = 4
	queueWhileOffline(t, tb, c, n)
	close(hk.arm)
	r := mqtttest.Dial(t, tb.addr, nil)
	r.Send(clashConnect(5, rm1...))
	<-hk.arrived // r's session parked, its resend under way
	s := mqtttest.Dial(t, tb.addr, nil)
	s.Send(clashConnect(5, rm1...))
	if p := s.Expect(mqtttest.CONNACK); p.Body[0]&1 == 0 {
		t.Fatalf("CONNACK % x, want the session present", p.Raw)
	}
	close(hk.proceed)
	for i := range n {
		s.Send(mqtttest.Pingreq())
		p := s.Expect(mqtttest.PUBLISH)
		if want := fmt.Sprintf(`{"n":%d}`, i); !strings.HasSuffix(string(p.Body), want) {
			t.Fatalf("message %d: % x, want payload %s", i, p.Raw, want)
		}
		s.Expect(mqtttest.PINGRESP)
		s.Send(mqtttest.Puback(publishID(t, p)))
	}
	s.Send(mqtttest.Pingreq())
	s.Expect(mqtttest.PINGRESP)
}

// TestResumeParkRacesTakeoverClose: a takeover's Close that runs while the
// old connection is inside parkBeyondReceiveMaximum (past its closed
// check, mu held) waits for the park and puts every parked message back.
// unpark read isParked without mu and parkBeyondReceiveMaximum set it
// only after its loop, so Close returned at once and mochi copied the
// session without the parked messages (nothing else puts them back on a
// closed connection).
func TestResumeParkRacesTakeoverClose(t *testing.T) {
	srv := mqtt.New(nil)
	a, b := net.Pipe()
	defer b.Close()
	gc := &guardConn{Conn: a}
	cl := srv.NewClient(gc, "t", devA, false)
	cl.Properties.ProtocolVersion = 5
	cl.Properties.Props.ReceiveMaximum = 1
	cl.State.Inflight.ResetSendQuota(1)
	var pks []packets.Packet
	for id := uint16(1); id <= 3; id++ {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: id, TopicName: "x", Created: int64(id)}
		cl.State.Inflight.Set(pk)
		pks = append(pks, pk)
	}
	cl.State.Inflight.Lock() // the park stops at its first Delete, mu held
	parked := make(chan struct{})
	go func() { parkBeyondReceiveMaximum(cl, pks); close(parked) }()
	for {
		if ids := gc.ids.Load(); ids != nil && !ids.mu.TryLock() {
			break
		} else if ids != nil {
			ids.mu.Unlock()
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { _ = gc.Close(); close(closed) }()
	select {
	case <-closed:
		t.Error("Close returned while the park it races with still holds mu")
	case <-time.After(100 * time.Millisecond):
	}
	cl.State.Inflight.Unlock()
	<-parked
	<-closed
	if n := cl.State.Inflight.Len(); n != 3 {
		t.Errorf("session after Close holds %d messages, want 3 (parked: %d)", n, len(gc.ids.Load().parked))
	}
}

// advanceNumbering has the hub send devA (connected as c) k control
// messages, each acknowledged, so that the connection's next id is k+1.
func advanceNumbering(t *testing.T, tb *testBroker, c *mqtttest.Conn, k int) {
	t.Helper()
	for i := range k {
		if err := tb.Publish(ControlTopic(devA, "temp"), fmt.Appendf(nil, `{"w":%d}`, i), false); err != nil {
			t.Fatal(err)
		}
		p := c.Expect(mqtttest.PUBLISH)
		c.Send(mqtttest.Puback(publishID(t, p)))
	}
	c.Send(mqtttest.Pingreq())
	c.Expect(mqtttest.PINGRESP)
}

// payloadOf is the JSON payload of a PUBLISH read by mqtttest.
func payloadOf(p mqtttest.Packet) string { return string(p.Body[bytes.IndexByte(p.Body, '{'):]) }

// TestResumeParkedThenLivePublishInOrder: control messages parked on
// resuming a session whose ids do not start at 1 go out before a control
// message published after the resume. Parked messages never sent kept
// their old ids (12-14) when nothing was published during the resend;
// mochi numbers the new connection from 1, and orderHeld sent the new
// message (id 1) first: a device could get "hold lifted" before "hold
// set".
func TestResumeParkedThenLivePublishInOrder(t *testing.T) {
	tb := startBroker(t)
	rm1 := mqtttest.PropUint16(0x21, 1)
	c := connectRM(t, tb, 1)
	advanceNumbering(t, tb, c, 10)
	const n = 4
	queueWhileOffline(t, tb, c, n)
	r := mqtttest.Dial(t, tb.addr, nil)
	r.Send(clashConnect(5, rm1...))
	r.Expect(mqtttest.CONNACK)
	first := r.Expect(mqtttest.PUBLISH) // resent, within the maximum
	r.Send(mqtttest.Pingreq())
	r.Expect(mqtttest.PINGRESP) // the read loop runs: unpark is done
	if err := tb.Publish(ControlTopic(devA, "temp"), []byte(`{"new":1}`), false); err != nil {
		t.Fatal(err)
	}
	order := []string{payloadOf(first)}
	r.Send(mqtttest.Puback(publishID(t, first)))
	for len(order) < n+1 {
		p := r.Expect(mqtttest.PUBLISH)
		order = append(order, payloadOf(p))
		r.Send(mqtttest.Puback(publishID(t, p)))
	}
	for i, m := range order {
		want := fmt.Sprintf(`{"n":%d}`, i)
		if i == n {
			want = `{"new":1}`
		}
		if m != want {
			t.Fatalf("messages in the order %v, want n 0-%d then the new one", order, n-1)
		}
	}
}

// TestResumeParkedSentKeepsID: a message sent but not acknowledged on the
// previous connection, parked beyond a smaller Receive Maximum on
// resuming, is resent under its original id [MQTT-4.4.0-1], at this
// resume and the next (when it was put back held, as the never-sent
// ones). Renumbering it would have a QoS 2 client take it for a new
// message.
func TestResumeParkedSentKeepsID(t *testing.T) {
	tb := startBroker(t)
	c := mqtttest.Dial(t, tb.addr, nil)
	c.Send(clashConnect(5, mqtttest.PropUint16(0x21, 2)...))
	c.Expect(mqtttest.CONNACK)
	c.Send(mqtttest.Subscribe(5, 1, TopicRoot+"/"+devA+"/control/#", 1))
	c.Expect(mqtttest.SUBACK)
	advanceNumbering(t, tb, c, 10)
	var ids [2]uint16
	for i := range ids {
		if err := tb.Publish(ControlTopic(devA, "temp"), fmt.Appendf(nil, `{"n":%d}`, i), false); err != nil {
			t.Fatal(err)
		}
		ids[i] = publishID(t, c.Expect(mqtttest.PUBLISH)) // not acknowledged
	}
	c.Send(mqtttest.Disconnect())
	c.ExpectClosed()
	rm1 := mqtttest.PropUint16(0x21, 1)
	for resume := range 2 {
		waitFor(t, "the device offline", 5*time.Second, func() bool {
			cl, ok := tb.srv.Clients.Get(devA)
			return ok && cl.Closed()
		})
		r := mqtttest.Dial(t, tb.addr, nil)
		r.Send(clashConnect(5, rm1...))
		r.Expect(mqtttest.CONNACK)
		p := r.Expect(mqtttest.PUBLISH)
		if got := publishID(t, p); got != ids[0] || payloadOf(p) != `{"n":0}` {
			t.Fatalf("resume %d: resent %s under id %d, want {\"n\":0} under %d", resume, payloadOf(p), got, ids[0])
		}
		r.Send(mqtttest.Pingreq())
		r.Expect(mqtttest.PINGRESP) // the second is parked: not sent yet
		if resume == 0 {
			r.Send(mqtttest.Disconnect()) // neither acknowledged
			r.ExpectClosed()
			continue
		}
		if err := tb.Publish(ControlTopic(devA, "temp"), []byte(`{"new":1}`), false); err != nil {
			t.Fatal(err)
		}
		r.Send(mqtttest.Puback(ids[0]))
		p = r.Expect(mqtttest.PUBLISH)
		if got := publishID(t, p); got != ids[1] || payloadOf(p) != `{"n":1}` || p.Raw[0]&0x08 == 0 {
			t.Fatalf("resume %d: then % x (id %d), want {\"n\":1} again (DUP) under %d", resume, p.Raw, got, ids[1])
		}
		r.Send(mqtttest.Puback(ids[1]))
		if p = r.Expect(mqtttest.PUBLISH); payloadOf(p) != `{"new":1}` {
			t.Fatalf("then %s, want the new message", payloadOf(p))
		}
		r.Send(mqtttest.Puback(publishID(t, p)))
	}
}

// queueWhileOffline disconnects c (devA, its session kept) and, once the
// hub sees devA offline, publishes n control messages {"n":0}… to it.
func queueWhileOffline(t *testing.T, tb *testBroker, c *mqtttest.Conn, n int) {
	t.Helper()
	c.Send(mqtttest.Disconnect())
	c.ExpectClosed()
	waitFor(t, "the device offline", 5*time.Second, func() bool {
		cl, ok := tb.srv.Clients.Get(devA)
		return ok && cl.Closed()
	})
	for i := range n {
		if err := tb.Publish(ControlTopic(devA, "temp"), fmt.Appendf(nil, `{"n":%d}`, i), false); err != nil {
			t.Fatal(err)
		}
	}
}
