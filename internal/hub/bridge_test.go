package hub

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/candor-iot/candor/internal/apps"
)

// importZigbee imports a Zigbee2MQTT bridge/devices entry as a device type
// and confirms the draft, as the admin does.
func (th *testHub) importZigbee(file, typ string) {
	th.t.Helper()
	raw, err := os.ReadFile("../manifest/importer/testdata/zigbee2mqtt/" + file)
	if err != nil {
		th.t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://candor/api/v1/manifests/import/zigbee2mqtt?type="+typ, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := th.local.Do(req)
	if err != nil {
		th.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		th.t.Fatalf("import %s: %d", file, resp.StatusCode)
	}
	code, out, _ := call(th.t, th.local, "POST", "http://candor/api/v1/manifests/"+typ+"/versions/1/confirm", "", nil)
	if code != http.StatusCreated {
		th.t.Fatalf("confirm %s: %d %v", typ, code, out)
	}
}

func (th *testHub) addZigbeeDevice(friendly, typ string) string {
	th.t.Helper()
	code, out, _ := call(th.t, th.local, "POST", "http://candor/api/v1/bridges/zigbee2mqtt/devices", "", map[string]string{"friendly_name": friendly, "type": typ})
	if code != http.StatusCreated {
		th.t.Fatalf("add zigbee device %s: %d %v", friendly, code, out)
	}
	return out["device"].(map[string]any)["id"].(string)
}

// zigbee2mqtt connects a paho MQTT 5 client the way Zigbee2MQTT does: its
// bridge credential, a will on bridge/state, a subscription to
// zigbee2mqtt/#, and bridge/state "online" retained.
func zigbee2mqtt(t *testing.T, addr, id, secret string, onPub func(paho.PublishReceived)) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{Conn: conn, ClientID: id, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) { onPub(pr); return true, nil },
	}}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: id, PasswordFlag: true, Password: []byte(secret),
		WillMessage: &paho.WillMessage{Topic: "zigbee2mqtt/bridge/state", Payload: []byte(`{"state":"offline"}`), Retain: true, QoS: 1}}); err != nil {
		t.Fatalf("Zigbee2MQTT connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}); conn.Close() })
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "zigbee2mqtt/#", QoS: 1}}}); err != nil {
		t.Fatalf("Zigbee2MQTT subscribe: %v", err)
	}
	for topic, payload := range map[string]string{
		"zigbee2mqtt/bridge/state":   `{"state":"online"}`,
		"zigbee2mqtt/bridge/info":    `{"version":"1.40.0","coordinator":{"type":"zStack3x0"}}`,
		"zigbee2mqtt/bridge/devices": `[{"ieee_address":"0x00178801","friendly_name":"hallway/motion","type":"EndDevice"}]`,
	} {
		pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload)})
		if err != nil || pr.ReasonCode != 0 {
			t.Fatalf("Zigbee2MQTT publish %s: %v %v", topic, err, pr)
		}
	}
	return c
}

// TestZigbee2MQTTBridge runs a real MQTT client as Zigbee2MQTT with two
// Zigbee devices, a Hue motion sensor and an Aqara plug, against the hub.
// Each property is a stream of its own: an app allowed occupancy gets
// occupancy and never battery; an undeclared property is refused and
// counted while the rest of the message is kept; a command the app is
// allowed reaches Zigbee2MQTT on <friendly_name>/set, and nothing else
// does.
func TestZigbee2MQTTBridge(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	th.addDevice("Hall", "thermostat") // the household
	th.importZigbee("philips_9290012607.json", "hue-motion")
	th.importZigbee("xiaomi_zncz02lm.json", "aqara-plug")
	code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/apps", "", map[string]any{
		"name": "Zigbee2MQTT", "kind": apps.KindZigbee2MQTT, "purposes": []string{"dpv:ServiceProvision"}})
	if code != http.StatusCreated {
		t.Fatalf("add bridge: %d %v", code, out)
	}
	bridgeID, bridgeSecret := out["app"].(map[string]any)["id"].(string), out["secret"].(string)
	motion := th.addZigbeeDevice("hallway/motion", "hue-motion")
	plug := th.addZigbeeDevice("desk plug", "aqara-plug")
	if code, _, _ := call(t, th.local, "POST", "http://candor/api/v1/bridges/zigbee2mqtt/devices", "", map[string]string{"friendly_name": "desk plug", "type": "aqara-plug"}); code != http.StatusUnprocessableEntity {
		t.Errorf("a second device with the same friendly name: %d, want 422", code)
	}
	if code, _, _ := call(t, th.local, "POST", "http://candor/api/v1/bridges/zigbee2mqtt/devices", "", map[string]string{"friendly_name": "lamp", "type": "thermostat-nope"}); code != http.StatusUnprocessableEntity {
		t.Errorf("a device of a type without a manifest: %d, want 422", code)
	}
	if code, _, _ := call(t, th.local, "PUT", "http://candor/api/v1/apps/"+bridgeID+"/receives/"+motion+"/occupancy", "", map[string]bool{"on": true}); code != http.StatusUnprocessableEntity {
		t.Errorf("allowing the bridge itself a stream: %d, want 422", code)
	}

	app, appSecret := th.addApp("Home Assistant", "candor:HomeAutomation")
	th.allowApp(app, motion, "occupancy", true)
	got := &received{}
	a, _, err := v5(t, th.MQTTAddr(), app, app, appSecret, func(pr paho.PublishReceived) {
		got.add(pr.Packet.Topic + " " + string(pr.Packet.Payload))
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	sets := &received{}
	z := zigbee2mqtt(t, th.MQTTAddr(), bridgeID, bridgeSecret, func(pr paho.PublishReceived) {
		sets.add(pr.Packet.Topic + " " + string(pr.Packet.Payload))
	})
	publish := func(topic, payload string) byte {
		t.Helper()
		pr, err := z.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
		if pr == nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
		return pr.ReasonCode
	}
	if rc := publish("zigbee2mqtt/hallway/motion", `{"battery":87,"illuminance_lux":12,"linkquality":120,"occupancy":true}`); rc != 0 {
		t.Errorf("a declared state: PUBACK %#x, want 0", rc)
	}
	if rc := publish("zigbee2mqtt/desk plug", `{"state":"OFF","power":0,"energy":0.52,"linkquality":90}`); rc != 0 {
		t.Errorf("the plug's state: PUBACK %#x, want 0", rc)
	}
	if rc := publish("zigbee2mqtt/hallway/motion", `{"occupancy":false,"last_seen":"2026-12-06T10:00:00Z"}`); rc != 0x90 {
		t.Errorf("a state with an undeclared property: PUBACK %#x, want 0x90 (topic name invalid)", rc)
	}
	if rc := publish("zigbee2mqtt/someone else's sensor", `{"occupancy":true}`); rc != 0x90 {
		t.Errorf("a friendly name that is no device: PUBACK %#x, want 0x90", rc)
	}
	if rc := publish("zigbee2mqtt/hallway/motion/availability", `{"state":"online"}`); rc != 0 {
		t.Errorf("availability: PUBACK %#x, want 0 (accepted, not kept)", rc)
	}
	if rc := publish("candor/"+motion+"/battery", `{"battery":1}`); rc != 0x87 {
		t.Errorf("a bridge publishing outside zigbee2mqtt/: PUBACK %#x, want 0x87", rc)
	}
	want := []string{
		"candor/" + motion + "/occupancy " + `{"occupancy":true}`,
		"candor/" + motion + "/occupancy " + `{"occupancy":false}`,
	}
	waitFor(t, "the app to receive occupancy", 10*time.Second, func() bool { return got.has(want[1]) })
	if g := got.list(); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("the app received:\n%s\nwant exactly (occupancy only, never battery):\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
	if n := th.device(motion)["counters"].(map[string]any)["refused"].(float64); n != 1 {
		t.Errorf("refused readings of the motion sensor = %v, want 1 (last_seen)", n)
	}

	// Commands: a declared, allowed property reaches Zigbee2MQTT on
	// <friendly_name>/set; one not allowed or read-only does not. Each
	// refusal is proved by the allowed command that follows it.
	command := func(dev, name, payload string) byte {
		t.Helper()
		pr, err := a.Publish(ctx, &paho.Publish{Topic: apps.CommandTopic(dev, name), QoS: 1, Payload: []byte(payload)})
		if pr == nil {
			t.Fatalf("command %s: %v", name, err)
		}
		return pr.ReasonCode
	}
	if rc := command(plug, "state", `{"state":"ON"}`); rc != 0x87 {
		t.Errorf("a command no one allowed: PUBACK %#x, want 0x87", rc)
	}
	if code, _, _ := call(t, th.local, "PUT", "http://candor/api/v1/apps/"+app+"/commands/"+plug+"/energy", "", map[string]bool{"on": true}); code != http.StatusUnprocessableEntity {
		t.Errorf("allowing a read-only property as a command: %d, want 422", code)
	}
	if code, out, _ := call(t, th.local, "PUT", "http://candor/api/v1/apps/"+app+"/commands/"+plug+"/state", "", map[string]bool{"on": true}); code != 200 {
		t.Fatalf("allow the plug's state: %d %v", code, out)
	}
	if rc := command(plug, "state", `{"state":"TOGGLE"}`); rc != 0x99 {
		t.Errorf("a value outside the schema: PUBACK %#x, want 0x99", rc)
	}
	if rc := command(plug, "state", `{"state":"ON"}`); rc != 0 {
		t.Errorf("an allowed command: PUBACK %#x, want 0", rc)
	}
	wantSet := "zigbee2mqtt/desk plug/set " + `{"state":"ON"}`
	waitFor(t, "Zigbee2MQTT to receive the command", 10*time.Second, func() bool { return sets.has(wantSet) })
	if g := sets.list(); len(g) != 1 {
		t.Errorf("Zigbee2MQTT received %q, want only %q (its own messages are not echoed)", g, wantSet)
	}

	// bridge/devices is kept in memory for the admin: each device with its
	// definition (to import) and the hub device it is, never its IEEE address.
	var entries []string
	for name, file := range map[string]string{"hallway/motion": "philips_9290012607.json", "front door": "aqara_mccgq11lm.json"} {
		raw, err := os.ReadFile("../manifest/importer/testdata/zigbee2mqtt/" + file)
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]any
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		e["friendly_name"] = name
		b, _ := json.Marshal(e)
		entries = append(entries, string(b))
	}
	list := `[{"ieee_address":"0x00124b0000000000","type":"Coordinator","friendly_name":"Coordinator"},` + strings.Join(entries, ",") + `]`
	if rc := publish("zigbee2mqtt/bridge/devices", list); rc != 0 {
		t.Fatalf("bridge/devices: PUBACK %#x", rc)
	}
	code, out, _ = call(t, th.local, "GET", "http://candor/api/v1/bridges/zigbee2mqtt/devices", "", nil)
	if code != http.StatusOK {
		t.Fatalf("list Zigbee devices: %d %v", code, out)
	}
	seen := out["devices"].([]any)
	if len(seen) != 2 {
		t.Fatalf("seen %v, want the two devices without the Coordinator", seen)
	}
	door, hall := seen[0].(map[string]any), seen[1].(map[string]any)
	if door["friendly_name"] != "front door" || door["device_id"] != nil || hall["device_id"] != motion || door["model"] != "MCCGQ11LM" {
		t.Errorf("seen devices: %v", seen)
	}
	if b, _ := json.Marshal(seen); strings.Contains(string(b), "ieee") || strings.Contains(string(b), "0x0017") {
		t.Errorf("an IEEE address was kept: %s", b)
	}
	def, _ := json.Marshal(door["definition"])
	req, _ := http.NewRequest("POST", "http://candor/api/v1/manifests/import/zigbee2mqtt?type=front-door", strings.NewReader(string(def)))
	resp, err := th.local.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("import the definition the list gave: %d", resp.StatusCode)
	}
}

// Zigbee2MQTT speaks MQTT 3.1.1 unless told otherwise: the same bridge
// over paho.mqtt.golang, with its will, gets its states split and the
// allowed property to the app, and an undeclared property is counted.
func TestZigbee2MQTTBridgeMQTT311(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	th.addDevice("Hall", "thermostat")
	th.importZigbee("aqara_mccgq11lm.json", "door-contact")
	code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/apps", "", map[string]any{
		"name": "Zigbee2MQTT", "kind": apps.KindZigbee2MQTT, "purposes": []string{"dpv:ServiceProvision"}})
	if code != http.StatusCreated {
		t.Fatalf("add bridge: %d %v", code, out)
	}
	bridgeID, bridgeSecret := out["app"].(map[string]any)["id"].(string), out["secret"].(string)
	door := th.addZigbeeDevice("front door", "door-contact")
	app, appSecret := th.addApp("Node-RED", "candor:HomeAutomation")
	th.allowApp(app, door, "contact", true)
	got := &received{}
	a, _, err := v5(t, th.MQTTAddr(), app, app, appSecret, func(pr paho.PublishReceived) {
		got.add(pr.Packet.Topic + " " + string(pr.Packet.Payload))
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	opts := paho3.NewClientOptions().AddBroker("tcp://"+th.MQTTAddr()).SetClientID(bridgeID).
		SetUsername(bridgeID).SetPassword(bridgeSecret).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10*time.Second).
		SetWill("zigbee2mqtt/bridge/state", `{"state":"offline"}`, 1, true)
	z := paho3.NewClient(opts)
	if tok := z.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("Zigbee2MQTT (3.1.1) connect: %v", tok.Error())
	}
	t.Cleanup(func() { z.Disconnect(100) })
	for _, m := range []struct{ topic, payload string }{
		{"zigbee2mqtt/bridge/state", `{"state":"online"}`},
		{"zigbee2mqtt/front door", `{"contact":true,"battery":100,"linkquality":99}`},
		{"zigbee2mqtt/front door", `{"contact":false,"update":{"state":"idle"}}`},
	} {
		if tok := z.Publish(m.topic, 1, false, m.payload); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", m.topic, tok.Error())
		}
	}
	want := "candor/" + door + `/contact {"contact":false}`
	waitFor(t, "the app to receive contact", 10*time.Second, func() bool { return got.has(want) })
	if g := got.list(); len(g) != 2 || g[0] != "candor/"+door+`/contact {"contact":true}` {
		t.Errorf("the app received %q, want the two contact readings only", g)
	}
	if n := th.device(door)["counters"].(map[string]any)["refused"].(float64); n != 1 {
		t.Errorf("refused readings = %v, want 1 (update_state, undeclared)", n)
	}
	if !z.IsConnected() {
		t.Error("the 3.1.1 bridge was disconnected")
	}
}
