package hub

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// The MQTT conformance tests talk raw MQTT 3.1.1 and 5 to the hub's own
// listener and check the exact packets it answers with: CONNECT packets
// the specifications say to refuse, codes 3.1.1 does not have, and every
// refusal the hub makes on purpose.

// thermostat adds a thermostat (streams temperature {celsius,
// humidity_percent}, setpoint, heating {on}; 256-byte payloads).
func (th *testHub) thermostat() (id, secret string) {
	return th.addDevice("Hall", "thermostat")
}

func TestConformanceConnect(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.thermostat()
	other, _ := th.addDevice("Cam", "motion-camera")
	dev := func(v byte) mqtttest.Connect {
		return mqtttest.Connect{Version: v, ClientID: id, Username: id, Password: secret, KeepAlive: 30}
	}
	with := func(c mqtttest.Connect, f func(*mqtttest.Connect)) mqtttest.Connect { f(&c); return c }
	will := func(v byte, topic string, payload []byte) mqtttest.Connect {
		return with(dev(v), func(c *mqtttest.Connect) {
			c.Will = &mqtttest.Will{Topic: topic, Payload: payload, QoS: 1}
		})
	}
	const (
		closeOnly = -1 // closed without a CONNACK
	)
	big := []byte(`{"celsius":20,"humidity_percent":` + strings.Repeat("1", 300) + `}`)
	tests := []struct {
		name    string
		v       byte
		connect []byte
		code    int    // CONNACK code, or closeOnly
		exact   []byte // the whole CONNACK, when the test pins it
	}{
		{"v5 accepted", 5, dev(5).Encode(), 0x00, nil},
		{"v3 accepted", 4, dev(4).Encode(), 0x00, []byte{0x20, 2, 0, 0}},

		// Refusals the hub makes on purpose.
		{"v5 bad credentials", 5, with(dev(5), func(c *mqtttest.Connect) { c.Password = secret + "x" }).Encode(), 0x86, nil},
		{"v3 bad credentials", 4, with(dev(4), func(c *mqtttest.Connect) { c.Password = secret + "x" }).Encode(), 0x05, []byte{0x20, 2, 0, 5}},
		{"v5 default password (user name as password)", 5, with(dev(5), func(c *mqtttest.Connect) { c.Password = id }).Encode(), 0x86, nil},
		{"v3 default password (user name as password)", 4, with(dev(4), func(c *mqtttest.Connect) { c.Password = id }).Encode(), 0x05, []byte{0x20, 2, 0, 5}},
		{"v5 mirai default pair", 5, mqtttest.Connect{Version: 5, ClientID: "root", Username: "root", Password: "xc3511"}.Encode(), 0x86, nil},
		{"v3 anonymous", 4, mqtttest.Connect{Version: 4, ClientID: "anon"}.Encode(), 0x05, []byte{0x20, 2, 0, 5}},
		{"v5 client id of another device", 5, with(dev(5), func(c *mqtttest.Connect) { c.ClientID = other }).Encode(), 0x85, []byte{0x20, 3, 0, 0x85, 0}},
		{"v3 client id of another device", 4, with(dev(4), func(c *mqtttest.Connect) { c.ClientID = other }).Encode(), 0x02, []byte{0x20, 2, 0, 2}},

		// Wills are held to the rules of a reading.
		{"v5 will to an undeclared stream", 5, will(5, "candor/"+id+"/motion", []byte(`{"x":1}`)).Encode(), 0x90, []byte{0x20, 3, 0, 0x90, 0}},
		{"v3 will to an undeclared stream", 4, will(4, "candor/"+id+"/motion", []byte(`{"x":1}`)).Encode(), 0x05, []byte{0x20, 2, 0, 5}},
		{"v5 will not JSON", 5, will(5, "candor/"+id+"/heating", []byte(`off`)).Encode(), 0x99, []byte{0x20, 3, 0, 0x99, 0}},
		{"v5 will with an undeclared field", 5, will(5, "candor/"+id+"/heating", []byte(`{"on":false,"where":"hall"}`)).Encode(), 0x99, []byte{0x20, 3, 0, 0x99, 0}},
		{"v3 will not JSON", 4, will(4, "candor/"+id+"/heating", []byte(`off`)).Encode(), 0x05, []byte{0x20, 2, 0, 5}},
		{"v5 will over the size limit", 5, will(5, "candor/"+id+"/temperature", big).Encode(), 0x95, []byte{0x20, 3, 0, 0x95, 0}},
		{"v3 will over the size limit", 4, will(4, "candor/"+id+"/temperature", big).Encode(), 0x05, []byte{0x20, 2, 0, 5}},
		{"v5 will into another device", 5, will(5, "candor/"+other+"/motion", []byte(`{"x":1}`)).Encode(), 0x87, []byte{0x20, 3, 0, 0x87, 0}},
		{"v3 will on the control topic", 4, will(4, "candor/"+id+"/control/heating", []byte(`{"x":1}`)).Encode(), 0x05, []byte{0x20, 2, 0, 5}},
		{"v5 empty will (accepted, nothing to keep)", 5, will(5, "candor/"+id+"/heating", nil).Encode(), 0x00, nil},
		{"v3 empty will (accepted, nothing to keep)", 4, will(4, "candor/"+id+"/heating", nil).Encode(), 0x00, []byte{0x20, 2, 0, 0}},

		// What the specifications say must be refused or closed.
		{"unsupported protocol level", 4, with(dev(4), func(c *mqtttest.Connect) { c.Version = 6 }).Encode(), 0x01, []byte{0x20, 2, 0, 1}},
		{"v5 will QoS without will flag", 5, with(dev(5), func(c *mqtttest.Connect) { c.ExtraFlags = 0x08 }).Encode(), 0x81, []byte{0x20, 3, 0, 0x81, 0}},
		{"v3 will QoS without will flag", 4, with(dev(4), func(c *mqtttest.Connect) { c.ExtraFlags = 0x08 }).Encode(), closeOnly, nil},
		{"v3 will retain without will flag", 4, with(dev(4), func(c *mqtttest.Connect) { c.ExtraFlags = 0x20 }).Encode(), closeOnly, nil},
		{"v5 reserved flag", 5, with(dev(5), func(c *mqtttest.Connect) { c.ExtraFlags = 0x01 }).Encode(), 0x81, []byte{0x20, 3, 0, 0x81, 0}},
		{"v3 reserved flag", 4, with(dev(4), func(c *mqtttest.Connect) { c.ExtraFlags = 0x01 }).Encode(), closeOnly, nil},
		{"v5 duplicated property", 5, with(dev(5), func(c *mqtttest.Connect) {
			c.Props = append(mqtttest.PropUint32(0x11, 60), mqtttest.PropUint32(0x11, 120)...)
		}).Encode(), 0x82, []byte{0x20, 3, 0, 0x82, 0}},
		{"v5 receive maximum 0", 5, with(dev(5), func(c *mqtttest.Connect) { c.Props = mqtttest.PropUint16(0x21, 0) }).Encode(), 0x82, []byte{0x20, 3, 0, 0x82, 0}},
		{"v3 empty client id with a persistent session", 4, with(dev(4), func(c *mqtttest.Connect) { c.ClientID = ""; c.Persistent = true }).Encode(), 0x02, []byte{0x20, 2, 0, 2}},
		{"not a CONNECT first", 4, []byte{0xc0, 0}, closeOnly, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mqtttest.Dial(t, th.MQTTAddr(), nil)
			c.Send(tc.connect)
			if tc.code == closeOnly {
				c.ExpectClosed()
				return
			}
			ack := c.Expect(mqtttest.CONNACK)
			if got := ack.ReasonCode(tc.v); int(got) != tc.code {
				t.Errorf("CONNACK % x: code %#x, want %#x", ack.Raw, got, tc.code)
			}
			if tc.exact != nil && !bytes.Equal(ack.Raw, tc.exact) {
				t.Errorf("CONNACK % x, want % x", ack.Raw, tc.exact)
			}
			if tc.code == 0 {
				c.Send(mqtttest.Disconnect())
			}
			c.ExpectClosed()
		})
	}
}

// Publishes and subscriptions the hub refuses: MQTT 5 gets the reason
// code, MQTT 3.1.1 an acknowledgement (never a DISCONNECT, which 3.1.1
// does not have), and nothing refused is stored.
func TestConformancePublishAndSubscribe(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.thermostat()
	other, _ := th.addDevice("Cam", "motion-camera")
	big := []byte(`{"celsius":20,"humidity_percent":` + strings.Repeat("1", 300) + `}`)
	tests := []struct {
		name, topic string
		payload     []byte
		v5          byte // PUBACK reason code for MQTT 5
	}{
		{"another device's topic", "candor/" + other + "/motion", []byte(`{"x":1}`), 0x87},
		{"the control topic", "candor/" + id + "/control/heating", []byte(`{"on":true}`), 0x87},
		{"not JSON", "candor/" + id + "/temperature", []byte(`21.5`), 0x99},
		{"undeclared field", "candor/" + id + "/temperature", []byte(`{"celsius":21,"where":"hall"}`), 0x99},
		{"undeclared stream", "candor/" + id + "/motion", []byte(`{"x":1}`), 0x90},
		{"over the manifest's size limit", "candor/" + id + "/temperature", big, 0x95},
	}
	for _, v := range []byte{5, 4} {
		c := mqtttest.Dial(t, th.MQTTAddr(), nil)
		c.Send(mqtttest.Connect{Version: v, ClientID: id, Username: id, Password: secret, KeepAlive: 30}.Encode())
		c.Expect(mqtttest.CONNACK)
		for i, tc := range tests {
			pid := uint16(100 + i)
			c.Send(mqtttest.Publish(v, tc.topic, tc.payload, 1, pid, true))
			ack := c.Expect(mqtttest.PUBACK)
			if v == 4 {
				if want := []byte{0x40, 2, byte(pid >> 8), byte(pid)}; !bytes.Equal(ack.Raw, want) {
					t.Errorf("v3 %s: PUBACK % x, want % x", tc.name, ack.Raw, want)
				}
			} else if got := ack.ReasonCode(v); got != tc.v5 || ack.Body[1] != byte(pid) {
				t.Errorf("v5 %s: PUBACK % x, want packet id %d with code %#x", tc.name, ack.Raw, pid, tc.v5)
			}
		}
		// A QoS 0 publish outside the namespace is dropped silently.
		c.Send(mqtttest.Publish(v, "candor/"+other+"/motion", []byte(`{"x":1}`), 0, 0, false))
		c.Send(mqtttest.Subscribe(v, 9, "candor/"+other+"/#", 1))
		sub := c.Expect(mqtttest.SUBACK)
		want := byte(0x87)
		if v == 4 {
			want = 0x80 // 3.1.1 has one failure code
		}
		if got := sub.ReasonCode(v); got != want {
			t.Errorf("v%d subscription outside the namespace: SUBACK % x, want code %#x", v, sub.Raw, want)
		}
		// The connection survived every refusal.
		c.Send(mqtttest.Pingreq())
		c.Expect(mqtttest.PINGRESP)
		c.Send(mqtttest.Publish(v, "candor/"+id+"/temperature", fmt.Appendf(nil, `{"celsius":%d}`, 20+v), 1, 1, false))
		if ack := c.Expect(mqtttest.PUBACK); ack.ReasonCode(v) != 0 {
			t.Errorf("v%d: good reading after the refusals: PUBACK % x", v, ack.Raw)
		}
		c.Send(mqtttest.Disconnect())
		c.ExpectClosed()
	}
	rs := th.readings(id, "")
	if len(rs) != 2 {
		t.Errorf("stored %d readings, want only the 2 good ones: %+v", len(rs), rs)
	}
	if n := len(th.readings(other, "")); n != 0 {
		t.Errorf("%d readings stored under the other device", n)
	}
}

// A session taken over by a new connection ends: MQTT 5 is told why in a
// DISCONNECT, MQTT 3.1.1 only sees the close (it has no server DISCONNECT).
func TestConformanceServerDisconnect(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.thermostat()
	for _, v := range []byte{5, 4} {
		first := mqtttest.Dial(t, th.MQTTAddr(), nil)
		connect := mqtttest.Connect{Version: v, ClientID: id, Username: id, Password: secret, KeepAlive: 30}.Encode()
		first.Send(connect)
		first.Expect(mqtttest.CONNACK)
		second := mqtttest.Dial(t, th.MQTTAddr(), nil)
		second.Send(connect)
		second.Expect(mqtttest.CONNACK)
		if v == 5 {
			d := first.Expect(mqtttest.DISCONNECT)
			if d.ReasonCode(5) != 0x8e {
				t.Errorf("v5 DISCONNECT % x, want session taken over (0x8e)", d.Raw)
			}
		}
		first.ExpectClosed()
		second.Send(mqtttest.Disconnect())
		second.ExpectClosed()
	}
}

// A will that passes the policy path is stored as a reading when the
// connection drops; after a DISCONNECT it is not.
func TestWillStoredAsReading(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.thermostat()
	connect := func(clientID, payload string) *mqtttest.Conn {
		c := mqtttest.Dial(t, th.MQTTAddr(), nil)
		c.Send(mqtttest.Connect{Version: 5, ClientID: clientID, Username: id, Password: secret, KeepAlive: 30,
			Will: &mqtttest.Will{Topic: "candor/" + id + "/heating", Payload: []byte(payload), QoS: 1, Retain: true}}.Encode())
		if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(5) != 0 {
			t.Fatalf("connect with a valid will refused: % x", ack.Raw)
		}
		return c
	}
	clean := connect(id+"-a", `{"on":true}`)
	clean.Send(mqtttest.Disconnect())
	clean.ExpectClosed()
	connect(id+"-b", `{"on":false}`).Close()
	waitFor(t, "the will stored", 10*time.Second, func() bool { return len(th.readings(id, "")) > 0 })
	// Barrier for the first connection's will, had it been sent: a
	// reading published now is stored after it.
	last := connect(id+"-c", `{"on":false}`)
	last.Send(mqtttest.Publish(5, "candor/"+id+"/heating", []byte(`{"on":true}`), 1, 1, false))
	last.Expect(mqtttest.PUBACK)
	rs := th.readings(id, "")
	if len(rs) != 2 || rs[0].Stream != "heating" || string(rs[0].Payload) != `{"on":false}` || string(rs[1].Payload) != `{"on":true}` {
		t.Fatalf("readings %+v, want the dropped connection's will, then the published reading", rs)
	}
}
