package hub

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/apps"
)

// The demo has a Zigbee2MQTT bridge with two simulated Zigbee devices and
// a Home Assistant-style app: the app gets the motion sensor's occupancy
// (its last value at once), never its battery, and switching the plug
// from the app goes through the bridge to the simulated Zigbee2MQTT,
// which reports the plug on.
func TestDemoZigbeeAndHomeAssistantApp(t *testing.T) {
	th := startHub(t, func(c *configT) { c.Demo = true; c.DemoSpeed = 20 })
	if th.demoApp == nil {
		t.Fatal("the demo has no Home Assistant app")
	}
	code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices", "", nil)
	if code != http.StatusOK {
		t.Fatalf("devices: %d", code)
	}
	ids := map[string]string{}
	for _, d := range out["devices"].([]any) {
		dm := d.(map[string]any)
		ids[dm["name"].(string)] = dm["id"].(string)
	}
	motion, plug := ids["hallway/motion"], ids["desk plug"]
	if motion == "" || plug == "" {
		t.Fatalf("the demo's Zigbee devices are missing: %v", ids)
	}

	got := &received{}
	a, _, err := v5(t, th.MQTTAddr(), th.demoApp.id, th.demoApp.id, th.demoApp.secret, func(pr paho.PublishReceived) {
		got.add(pr.Packet.Topic + " " + string(pr.Packet.Payload))
	})
	if err != nil {
		t.Fatalf("the demo app cannot connect: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	// The simulated Zigbee2MQTT may still be subscribing: a command is for
	// now, not kept for later, so it is sent again until the plug reports.
	on := "candor/" + plug + `/state {"state":"ON"}`
	deadline := time.Now().Add(20 * time.Second)
	for !got.has(on) {
		if time.Now().After(deadline) {
			t.Fatal("the demo plug never reported itself on")
		}
		pr, err := a.Publish(ctx, &paho.Publish{Topic: apps.CommandTopic(plug, "state"), QoS: 1, Payload: []byte(`{"state":"ON"}`)})
		if err != nil || pr.ReasonCode != 0 {
			t.Fatalf("switch the demo plug on from the app: %v %v", pr, err)
		}
		waitUntil(got, on, 2*time.Second)
	}
	waitFor(t, "occupancy", 20*time.Second, func() bool {
		for _, g := range got.list() {
			if strings.HasPrefix(g, "candor/"+motion+"/occupancy ") {
				return true
			}
		}
		return false
	})
	for _, g := range got.list() {
		if strings.HasPrefix(g, "candor/"+motion+"/battery") || strings.HasPrefix(g, "candor/"+plug+"/linkquality") {
			t.Errorf("the demo app got a stream nobody allowed it: %s", g)
		}
	}
}

// waitUntil waits at most d for got to hold want.
func waitUntil(got *received, want string, d time.Duration) {
	end := time.Now().Add(d)
	for !got.has(want) && time.Now().Before(end) {
		time.Sleep(20 * time.Millisecond)
	}
}
