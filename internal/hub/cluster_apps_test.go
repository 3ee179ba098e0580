package hub

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestAppSessionTakenOverAcrossNodes: an app's client id connecting to
// node B ends its session on node A, as for devices.
func TestAppSessionTakenOverAcrossNodes(t *testing.T) {
	nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	a.addDevice("Hall", "thermostat") // the household an app belongs to
	app, secret := a.addApp("Dashboard", "candor:HomeAutomation")

	onA := connectWatched(t, a.MQTTAddr(), app, app, secret)
	start := time.Now()
	onB := connectWatched(t, b.MQTTAddr(), app, app, secret)
	onA.waitEnded(t, "takeover of the app's client id by node B", start)
	deadline := time.Now().Add(5 * time.Second)
	for !b.Broker().Connected(app) {
		if time.Now().After(deadline) {
			t.Fatal("the app's connection to B was ended too")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-onB.ended:
		t.Fatal("the app's connection to B was ended")
	default:
	}

}

// TestHomeAssistantDiscoveryAcrossNodes: a Home Assistant app connected
// to node B is told of a stream switched on through node A, and of its
// removal when switched off, without reconnecting or a restart of B:
// each node announces the change on its own broker as it applies it.
func TestHomeAssistantDiscoveryAcrossNodes(t *testing.T) {
	nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	dev, _ := a.thermostat()
	code, out, _ := call(t, a.local, "POST", "http://candor/api/v1/apps", "", map[string]any{
		"name": "Home Assistant", "purposes": []string{"candor:HomeAutomation"}, "kind": "home-assistant"})
	if code != http.StatusCreated {
		t.Fatalf("add app: %d %v", code, out)
	}
	app, secret := out["app"].(map[string]any)["id"].(string), out["secret"].(string)

	ha := &haConsumer{entities: map[string]map[string]any{}, states: map[string]string{}}
	c, _, err := v5(t, b.MQTTAddr(), app, app, secret, ha.handle)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "homeassistant/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	celsius := "homeassistant/sensor/" + app + "/" + dev + "_temperature_celsius/config"

	a.allowApp(app, dev, "temperature", true)
	waitFor(t, "the app on B told of the stream switched on through A", 10*time.Second, func() bool { return ha.entity(celsius) != nil })
	if cfg := ha.entity(celsius); cfg["unit_of_measurement"] != "°C" {
		t.Errorf("entity announced by B: %v", cfg)
	}

	a.allowApp(app, dev, "temperature", false)
	waitFor(t, "the app on B told of the stream switched off through A", 10*time.Second, func() bool { return ha.entity(celsius) == nil })
}
