package broker

import (
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// slowPuback holds the read loop just after it wrote a PUBACK (mochi
// writes the PUBACK of a QoS 1 publish from a session entry, which it
// deletes right after the write), long enough for the client to close
// and resume its session in between.
type slowPuback struct {
	mqtt.HookBase
	armed chan struct{}
}

func (h *slowPuback) ID() string           { return "test-slow-puback" }
func (h *slowPuback) Provides(b byte) bool { return b == mqtt.OnPacketSent }
func (h *slowPuback) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if cl.Net.Inline || pk.FixedHeader.Type != packets.Puback {
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
	h := &slowPuback{armed: make(chan struct{})}
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
