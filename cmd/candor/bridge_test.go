package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBridgeCommands adds a Zigbee2MQTT bridge and a Zigbee device with
// the CLI: the bridge's configuration is printed once, and a device needs
// a type with a confirmed manifest.
func TestBridgeCommands(t *testing.T) {
	t.Parallel()
	dir, _ := startServe(t)
	if _, stderr, code := run(t, "", "device", "add", "Kitchen", "--type", "thermostat", "--data", dir); code != 0 {
		t.Fatalf("device add: %d %s", code, stderr) // the household
	}
	if _, stderr, code := run(t, "", "bridge", "add", "zwave", "--data", dir); code != 1 || !strings.Contains(stderr, "zigbee2mqtt") {
		t.Errorf("bridge add zwave: exit %d %q", code, stderr)
	}
	out, stderr, code := run(t, "", "bridge", "add", "zigbee2mqtt", "--data", dir)
	if code != 0 {
		t.Fatalf("bridge add: %d %s", code, stderr)
	}
	for _, want := range []string{"base_topic: zigbee2mqtt", "user: app_", "password: ", "candor bridge device"} {
		if !strings.Contains(out, want) {
			t.Errorf("bridge add does not print %q:\n%s", want, out)
		}
	}
	if _, stderr, code = run(t, "", "bridge", "device", "desk plug", "--type", "no-such-type", "--data", dir); code != 1 || !strings.Contains(stderr, "confirmed manifest") {
		t.Errorf("bridge device of a type without a manifest: exit %d %q", code, stderr)
	}
	// thermostat has a manifest in force; any confirmed type will do.
	out, stderr, code = run(t, "", "bridge", "device", "desk plug", "--type", "thermostat", "--data", dir, "--json")
	if code != 0 {
		t.Fatalf("bridge device: %d %s", code, stderr)
	}
	var dev struct {
		Device struct{ ID, Name string } `json:"device"`
	}
	if err := json.Unmarshal([]byte(out), &dev); err != nil || !strings.HasPrefix(dev.Device.ID, "zb_") || dev.Device.Name != "desk plug" {
		t.Errorf("bridge device answered %s (%v)", out, err)
	}
}
