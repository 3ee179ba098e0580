package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/apps"
)

// boostThermostat puts in force a thermostat type whose manifest declares
// one command, a WoT action "boost" with a closed input schema, and one it
// declares loosely (an open schema), which must never be usable.
func (th *testHub) boostThermostat() {
	th.t.Helper()
	raw, err := os.ReadFile("../manifest/templates/thermostat.json")
	if err != nil {
		th.t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		th.t.Fatal(err)
	}
	doc["candor:deviceType"] = "boost-thermostat"
	doc["actions"] = map[string]any{
		"boost": map[string]any{"title": "Heat for a while", "input": map[string]any{
			"type": "object", "additionalProperties": false, "required": []string{"minutes"},
			"properties": map[string]any{"minutes": map[string]any{"type": "integer", "minimum": 1, "maximum": 60}},
		}},
		"anything": map[string]any{"input": map[string]any{"type": "object"}},
	}
	code, out, _ := call(th.t, th.local, "POST", "http://candor/api/v1/manifests", "", doc)
	if code != http.StatusCreated {
		th.t.Fatalf("put manifest: %d %v", code, out)
	}
}

// TestAppCommandReachesDevice has an app send commands to a simulated
// device (a paho MQTT 5 client on its control namespace): only the
// declared, allowed command with a valid payload arrives; an undeclared,
// loosely declared, invalid or withdrawn one does not (each proved by a
// valid command sent after it that must arrive first).
func TestAppCommandReachesDevice(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	th.boostThermostat()
	dev, devSecret := th.addDevice("Hall", "boost-thermostat")
	app, appSecret := th.addApp("Home Assistant", "candor:HomeAutomation")

	got := make(chan string, 16)
	d, _, err := v5(t, th.MQTTAddr(), dev, dev, devSecret, func(pr paho.PublishReceived) {
		if pr.Packet.Topic == apps.DeviceCommandTopic(dev, "boost") {
			got <- string(pr.Packet.Payload)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := d.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + dev + "/control/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	a, _, err := v5(t, th.MQTTAddr(), app, app, appSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	send := func(name, payload string) byte {
		t.Helper()
		pr, err := a.Publish(ctx, &paho.Publish{Topic: apps.CommandTopic(dev, name), QoS: 1, Payload: []byte(payload)})
		if pr == nil {
			t.Fatalf("publish command %s: %v", name, err)
		}
		return pr.ReasonCode
	}
	allow := func(name string, on bool) int {
		code, _, _ := call(t, th.local, "PUT", "http://candor/api/v1/apps/"+app+"/commands/"+dev+"/"+name, "", map[string]bool{"on": on})
		return code
	}
	if rc := send("boost", `{"minutes":10}`); rc != 0x87 {
		t.Errorf("a command no one allowed: PUBACK %#x, want 0x87", rc)
	}
	if code := allow("boost", true); code != 200 {
		t.Fatalf("allow boost: %d", code)
	}
	if code := allow("anything", true); code != http.StatusUnprocessableEntity {
		t.Errorf("allow a command without a closed schema: %d, want 422", code)
	}
	if code := allow("selfdestruct", true); code != http.StatusUnprocessableEntity {
		t.Errorf("allow an undeclared command: %d, want 422", code)
	}
	for _, c := range []struct {
		name, payload string
		want          byte
	}{
		{"selfdestruct", `{}`, 0x87},
		{"anything", `{"x":1}`, 0x87},
		{"boost", `{"minutes":999}`, 0x99},
		{"boost", `{"minutes":5,"extra":true}`, 0x99},
		{"boost", `not json`, 0x99},
		{"boost", `{"minutes":10}`, 0},
	} {
		if rc := send(c.name, c.payload); rc != c.want {
			t.Errorf("command %s %s: PUBACK %#x, want %#x", c.name, c.payload, rc, c.want)
		}
	}
	next := func() string {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-ctx.Done():
			t.Fatal("the device received no command")
			return ""
		}
	}
	if s := next(); s != `{"minutes":10}` {
		t.Errorf("the device first received %s, want only the valid command", s)
	}
	if code := allow("boost", false); code != 200 {
		t.Fatalf("withdraw boost: %d", code)
	}
	if rc := send("boost", `{"minutes":20}`); rc != 0x87 {
		t.Errorf("a withdrawn command: PUBACK %#x, want 0x87", rc)
	}
	if code := allow("boost", true); code != 200 {
		t.Fatal(code)
	}
	send("boost", `{"minutes":30}`)
	if s := next(); s != `{"minutes":30}` {
		t.Errorf("after withdrawal the device received %s, want the next allowed command", s)
	}

	// Each command sent is in the transparency log, with ids only.
	code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/log/entries", "", nil)
	if code != 200 {
		t.Fatalf("log entries: %d %v", code, out)
	}
	if n := countCommands(out); n != 2 {
		b, _ := json.Marshal(out)
		t.Errorf("logged %d commands, want 2: %s", n, b)
	}
}

func countCommands(out map[string]any) int {
	n := 0
	entries, _ := out["entries"].([]any)
	for _, e := range entries {
		m, _ := e.(map[string]any)
		if ev, ok := m["event"].(map[string]any); ok {
			m = ev
		}
		if slices.Contains([]any{apps.ActionCommand}, m["action"]) {
			n++
		}
	}
	return n
}
