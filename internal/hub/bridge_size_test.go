package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// bigDeviceList is a zigbee2mqtt/bridge/devices of n devices, each with a
// definition as long as Zigbee2MQTT's (its exposes), about 1 MiB for 256.
func bigDeviceList(n int) []byte {
	type def struct {
		Model       string `json:"model"`
		Vendor      string `json:"vendor"`
		Description string `json:"description"`
		Exposes     []any  `json:"exposes"`
	}
	type dev struct {
		FriendlyName string `json:"friendly_name"`
		Type         string `json:"type"`
		Definition   def    `json:"definition"`
	}
	var list []dev
	for i := range n {
		var exposes []any
		for j := range 40 {
			exposes = append(exposes, map[string]any{"type": "numeric", "name": fmt.Sprintf("property_%d", j), "property": fmt.Sprintf("property_%d", j),
				"access": 1, "unit": "lqi", "description": "Link quality (signal strength) of the device as the coordinator sees it"})
		}
		list = append(list, dev{FriendlyName: fmt.Sprintf("room %d/sensor", i), Type: "EndDevice",
			Definition: def{Model: "9290012607", Vendor: "Philips", Description: "Hue motion sensor", Exposes: exposes}})
	}
	b, _ := json.Marshal(list)
	return b
}

// TestZigbee2MQTTBridgeLargePackets: Zigbee2MQTT's retained
// bridge/devices (and bridge/definitions) outgrow the packet limit of
// readings in a large network. The bridge's connection takes them, up to
// --bridge-max-packet-bytes, on its zigbee2mqtt/bridge/… topics only; the
// same packet from a device or an app ends its connection, and the
// CONNECT before anyone logged in keeps the small limit.
func TestZigbee2MQTTBridgeLargePackets(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	dev, devSecret := th.addDevice("Hall", "thermostat") // the household
	app, appSecret := th.addApp("Node-RED", "candor:HomeAutomation")
	code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/apps", "", map[string]any{
		"name": "Zigbee2MQTT", "kind": apps.KindZigbee2MQTT, "purposes": []string{"dpv:ServiceProvision"}})
	if code != http.StatusCreated {
		t.Fatalf("add bridge: %d %v", code, out)
	}
	bridgeID, bridgeSecret := out["app"].(map[string]any)["id"].(string), out["secret"].(string)
	list := bigDeviceList(256)
	if len(list) < 1<<20 || len(list) > 4<<20 {
		t.Fatalf("the device list is %d bytes, want 1 to 4 MiB", len(list))
	}

	z := zigbee2mqtt(t, th.MQTTAddr(), bridgeID, bridgeSecret, func(paho.PublishReceived) {})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pr, err := z.Publish(ctx, &paho.Publish{Topic: "zigbee2mqtt/bridge/devices", QoS: 1, Retain: true, Payload: list})
	if err != nil || pr.ReasonCode != 0 {
		t.Fatalf("the bridge's 1 MiB bridge/devices: %v %+v, want accepted", err, pr)
	}
	code, out, _ = call(t, th.local, "GET", "http://candor/api/v1/bridges/zigbee2mqtt/devices", "", nil)
	if b, _ := json.Marshal(out); code != http.StatusOK || !strings.Contains(string(b), "room 255/sensor") {
		t.Errorf("the bridge's device list was not taken in: %d %.300s", code, b)
	}
	// A reading as large is held to the limit of readings: refused, and
	// the connection stays (paho reports the refusal as an error too).
	pr, err = z.Publish(ctx, &paho.Publish{Topic: "zigbee2mqtt/room 1/sensor", QoS: 1, Payload: list})
	if pr == nil || pr.ReasonCode != 0x95 {
		t.Errorf("the bridge's 1 MiB reading: %v %+v, want PUBACK 0x95", err, pr)
	}
	pr, err = z.Publish(ctx, &paho.Publish{Topic: "zigbee2mqtt/bridge/state", QoS: 1, Payload: []byte(`{"state":"online"}`)})
	if err != nil || pr.ReasonCode != 0 {
		t.Errorf("the bridge after a refused reading: %v %+v, want still connected", err, pr)
	}

	// In MQTT 3.1.1 the same, the reading acknowledged and dropped.
	c3 := mqtttest.Dial(t, th.MQTTAddr(), nil)
	c3.Send(mqtttest.Connect{Version: 4, ClientID: bridgeID, Username: bridgeID, Password: bridgeSecret, KeepAlive: 30}.Encode())
	if ack := c3.Expect(mqtttest.CONNACK); ack.ReasonCode(4) != 0 {
		t.Fatalf("v3 bridge connect: % x", ack.Raw)
	}
	for i, topic := range []string{"zigbee2mqtt/bridge/devices", "zigbee2mqtt/room 1/sensor"} {
		c3.Send(mqtttest.Publish(4, topic, list, 1, uint16(i+1), false))
		if ack := c3.Expect(mqtttest.PUBACK); len(ack.Body) != 2 || ack.Body[1] != byte(i+1) {
			t.Errorf("v3 bridge's 1 MiB on %s: PUBACK % x", topic, ack.Raw)
		}
	}
	c3.Send(mqtttest.Pingreq())
	c3.Expect(mqtttest.PINGRESP)
	c3.Close()

	// The same packet from a device or an app: MQTT 5 gets DISCONNECT
	// 0x95, 3.1.1 the connection closed, as soon as the packet's fixed
	// header says how long it is. (Only the header is sent here: a hub
	// that closes a socket with unread data resets it, and the reset may
	// overtake the DISCONNECT.)
	header := mqtttest.Publish(5, "zigbee2mqtt/bridge/devices", list, 1, 1, false)[:4]
	for _, who := range []struct{ name, id, secret string }{{"device", dev, devSecret}, {"app", app, appSecret}} {
		for _, v := range []byte{5, 4} {
			c := mqtttest.Dial(t, th.MQTTAddr(), nil)
			c.Send(mqtttest.Connect{Version: v, ClientID: who.id, Username: who.id, Password: who.secret, KeepAlive: 30}.Encode())
			if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
				t.Fatalf("v%d %s connect: % x", v, who.name, ack.Raw)
			}
			c.Send(header)
			if v == 5 {
				if d := c.Expect(mqtttest.DISCONNECT); d.ReasonCode(v) != 0x95 {
					t.Errorf("v5 %s's 1 MiB packet: DISCONNECT % x, want 0x95", who.name, d.Raw)
				}
			}
			c.ExpectClosed()
		}
	}
	// And from a real client, the whole packet: the hub ends its
	// connection (paho then shuts the client down).
	d, _, err := v5(t, th.MQTTAddr(), dev, dev, devSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = d.Publish(ctx, &paho.Publish{Topic: "zigbee2mqtt/bridge/devices", QoS: 1, Payload: list})
	}()
	select {
	case <-d.Done():
	case <-ctx.Done():
		t.Error("a device's 1 MiB publish did not end its connection")
	}

	// Before logging in, even as the bridge, the CONNECT keeps the small
	// limit.
	// The hub closes the socket once the fixed header says how long the
	// packet is, so writing the rest may fail with a reset: that error is
	// expected and ignored. A hub that read the CONNECT would answer it
	// with a CONNACK, which ExpectClosed refuses.
	c := mqtttest.Dial(t, th.MQTTAddr(), nil)
	_, _ = c.Write(mqtttest.Connect{Version: 5, ClientID: bridgeID, Username: bridgeID, Password: bridgeSecret + strings.Repeat("x", 1<<20), KeepAlive: 30}.Encode())
	c.ExpectClosed()
}
