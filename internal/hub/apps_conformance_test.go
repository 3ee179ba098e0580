package hub

import (
	"bytes"
	"testing"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// TestConformanceApp checks, packet by packet, what an app's connection
// is refused on purpose in MQTT 3.1.1 and 5: a will, a client id outside
// its name, publishing (readings come from devices), and subscriptions
// that can match nothing it may see.
func TestConformanceApp(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	dev, _ := th.thermostat()
	app, secret := th.addApp("Node-RED", "candor:HomeAutomation")
	connect := func(v byte) mqtttest.Connect {
		return mqtttest.Connect{Version: v, ClientID: app, Username: app, Password: secret, KeepAlive: 30}
	}
	for _, v := range []byte{5, 4} {
		refusals := []struct {
			name   string
			c      mqtttest.Connect
			v5, v3 byte
		}{
			{"a will", func() mqtttest.Connect {
				c := connect(v)
				c.Will = &mqtttest.Will{Topic: "candor/" + dev + "/temperature", Payload: []byte(`{"celsius":1}`), QoS: 1}
				return c
			}(), 0x87, 0x05},
			{"a client id outside the app's", func() mqtttest.Connect { c := connect(v); c.ClientID = dev; return c }(), 0x85, 0x02},
			{"a wrong secret", func() mqtttest.Connect { c := connect(v); c.Password = secret + "x"; return c }(), 0x86, 0x05},
		}
		for _, r := range refusals {
			c := mqtttest.Dial(t, th.MQTTAddr(), nil)
			c.Send(r.c.Encode())
			want := r.v5
			if v == 4 {
				want = r.v3
			}
			if got := c.Expect(mqtttest.CONNACK).ReasonCode(v); got != want {
				t.Errorf("v%d app with %s: CONNACK code %#x, want %#x", v, r.name, got, want)
			}
			c.Close()
		}

		c := mqtttest.Dial(t, th.MQTTAddr(), nil)
		c.Send(connect(v).Encode())
		if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
			t.Fatalf("v%d app connect: CONNACK % x", v, ack.Raw)
		}
		c.Send(mqtttest.Publish(v, "candor/"+dev+"/temperature", []byte(`{"celsius":9}`), 1, 7, false))
		ack := c.Expect(mqtttest.PUBACK)
		if v == 4 {
			if want := []byte{0x40, 2, 0, 7}; !bytes.Equal(ack.Raw, want) {
				t.Errorf("v3 app publish: PUBACK % x, want % x (acknowledged, not kept)", ack.Raw, want)
			}
		} else if got := ack.ReasonCode(v); got != 0x87 {
			t.Errorf("v5 app publish: PUBACK code %#x, want 0x87", got)
		}
		fail := byte(0x87)
		if v == 4 {
			fail = 0x80
		}
		for i, f := range []struct {
			filter string
			want   byte
		}{
			{"candor/#", 1},
			{"candor/+/temperature", 1},
			{"#", 1},
			{"candor/" + dev + "/control/#", fail},
			{"candor/dev_elsewhere/#", fail},
			{"$SYS/#", fail},
			{"$share/g/candor/#", fail},
			{"candor/" + dev + "/temperature", fail}, // one topic, not allowed yet
		} {
			c.Send(mqtttest.Subscribe(v, uint16(20+i), f.filter, 1))
			if got := c.Expect(mqtttest.SUBACK).ReasonCode(v); got != f.want {
				t.Errorf("v%d app subscribes to %q: SUBACK code %#x, want %#x", v, f.filter, got, f.want)
			}
		}
		c.Send(mqtttest.Pingreq())
		c.Expect(mqtttest.PINGRESP)
		c.Send(mqtttest.Disconnect())
		c.ExpectClosed()
	}
	if rs := th.readings(dev, ""); len(rs) != 0 {
		t.Errorf("an app's publish was stored: %+v", rs)
	}
}
