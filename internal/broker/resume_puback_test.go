package broker

import (
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// slowAnswer holds the read loop just after it wrote an answer of type
// typ to the client's own flow: mochi (and takePubrel, for a client whose
// quota is pinned) writes a PUBACK of a QoS 1 publish, or a PUBCOMP of a
// PUBREL, from a session entry it deletes right after the write; held
// there long enough, the client closes and resumes its session in
// between.
type slowAnswer struct {
	mqtt.HookBase
	typ   byte
	armed chan struct{}
}

func (h *slowAnswer) ID() string           { return "test-slow-answer" }
func (h *slowAnswer) Provides(b byte) bool { return b == mqtt.OnPacketSent }
func (h *slowAnswer) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if cl.Net.Inline || pk.FixedHeader.Type != h.typ {
		return
	}
	select {
	case <-h.armed:
		time.Sleep(300 * time.Millisecond)
	default:
	}
}

// TestResumeSendsNoStalePuback: a client that resumes its session right
// after the PUBACK of its QoS 1 publish arrived gets no second PUBACK on
// the new connection. mochi answers a QoS 1 publish from a session entry
// it deletes after the write; a session copied in between (a takeover)
// kept the entry, and mochi's resend wrote it again, under the id the hub
// had moved the publish to (keepIDsApart) when it met one of the hub's:
// a PUBACK of an id the client never used (CI: "got 40 02 ff fe").
func TestResumeSendsNoStalePuback(t *testing.T) {
	app := oneApp{id: apps.IDPrefix + "x", secret: "secret-of-app-x-0123"}
	tb := startBrokerWith(t, func(c *Config) { c.Apps = app })
	h := &slowAnswer{typ: packets.Puback, armed: make(chan struct{})}
	if err := tb.srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	connect := mqtttest.Connect{Version: 5, ClientID: app.id, Username: app.id, Password: app.secret,
		KeepAlive: 30, Persistent: true, Props: mqtttest.PropUint32(0x11, 3600)}.Encode()
	c := mqtttest.Dial(t, tb.addr, nil)
	c.Send(connect)
	c.Expect(mqtttest.CONNACK)
	c.Send(mqtttest.Subscribe(5, 1, TopicRoot+"/"+devA+"/+", 1))
	answer(t, c, 5, mqtttest.SUBACK, 1, 1)
	tb.PublishReading(devA, "temp", []byte(`{"t":21}`))
	id := publishID(t, c.Expect(mqtttest.PUBLISH))
	close(h.armed)
	// A command under the id of the reading not yet acknowledged: the
	// hub moves it apart.
	c.Send(mqtttest.Publish(5, TopicRoot+"/"+devA+"/command/reboot", []byte(`{}`), 1, id, false))
	answer(t, c, 5, mqtttest.PUBACK, id, 0)
	c.Close()

	r := mqtttest.Dial(t, tb.addr, nil)
	r.Send(connect)
	if p := r.Expect(mqtttest.CONNACK); p.Body[0]&1 == 0 {
		t.Fatalf("CONNACK % x, want the session present", p.Raw)
	}
	r.Send(mqtttest.Pingreq())
	var publishes int
	for {
		_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
		p, err := r.Next()
		if err != nil {
			t.Fatalf("no PINGRESP: %v", err)
		}
		switch p.Type {
		case mqtttest.PINGRESP:
			if publishes != 1 {
				t.Fatalf("%d PUBLISH resent, want the reading once", publishes)
			}
			return
		case mqtttest.PUBLISH:
			if p.Flags&0x08 == 0 || publishID(t, p) != id {
				t.Fatalf("resent % x, want a DUP PUBLISH with id %d", p.Raw, id)
			}
			publishes++
		default:
			t.Fatalf("on the resumed connection: % x, want only the resent reading and the PINGRESP", p.Raw)
		}
	}
}

// TestResumeSendsNoStalePubcomp: a device that resumes its session right
// after the PUBCOMP of its QoS 2 reading arrived gets no second PUBCOMP
// on the new connection. mochi's resend wrote the session's copy of it
// again: a PUBCOMP for a flow the client completed, and whose id it may
// already have used again for its next QoS 2 publish, which that PUBCOMP
// would then seem to complete before its PUBREC. MQTT 5 with a Receive
// Maximum (takePubrel answers the PUBREL) and 3.1.1 (mochi does).
func TestResumeSendsNoStalePubcomp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version byte
		props   []byte
	}{
		{"v5-receive-maximum", 5, append(mqtttest.PropUint32(0x11, 3600), mqtttest.PropUint16(0x21, 4)...)},
		{"v3.1.1", 4, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := startBroker(t)
			h := &slowAnswer{typ: packets.Pubcomp, armed: make(chan struct{})}
			if err := tb.srv.AddHook(h, nil); err != nil {
				t.Fatal(err)
			}
			v := tc.version
			connect := mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA,
				KeepAlive: 30, Persistent: true, Props: tc.props}.Encode()
			c := mqtttest.Dial(t, tb.addr, nil)
			c.Send(connect)
			c.Expect(mqtttest.CONNACK)
			const id = 7
			c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temp"), []byte(`{"t":1}`), 2, id, false))
			answer(t, c, v, mqtttest.PUBREC, id, 0)
			close(h.armed)
			c.Send(mqtttest.Pubrel(id))
			answer(t, c, v, mqtttest.PUBCOMP, id, 0)
			c.Close()

			r := mqtttest.Dial(t, tb.addr, nil)
			r.Send(connect)
			if p := r.Expect(mqtttest.CONNACK); p.Body[0]&1 == 0 {
				t.Fatalf("CONNACK % x, want the session present", p.Raw)
			}
			r.Send(mqtttest.Pingreq())
			_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
			p, err := r.Next()
			if err != nil {
				t.Fatalf("no PINGRESP: %v", err)
			}
			if p.Type != mqtttest.PINGRESP {
				t.Fatalf("on the resumed connection: % x, want only the PINGRESP", p.Raw)
			}
			// A client that missed the PUBCOMP resends its PUBREL and
			// is answered: 0x92 in MQTT 5, "not an error during recovery".
			r.Send(mqtttest.Pubrel(id))
			answer(t, r, v, mqtttest.PUBCOMP, id, packets.ErrPacketIdentifierNotFound.Code)
		})
	}
}
