package web

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// putBoostThermostat puts in force a thermostat type that declares one
// command an app may be allowed, "boost" (a WoT action with a closed
// input schema).
func (h *testHub) putBoostThermostat() {
	h.t.Helper()
	raw, err := os.ReadFile("../manifest/templates/thermostat.json")
	if err != nil {
		h.t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		h.t.Fatal(err)
	}
	doc["candor:deviceType"] = "boost-thermostat"
	doc["actions"] = map[string]any{"boost": map[string]any{"title": "Heat for a while", "input": map[string]any{
		"type": "object", "additionalProperties": false, "required": []string{"minutes"},
		"properties": map[string]any{"minutes": map[string]any{"type": "integer", "minimum": 1, "maximum": 60}},
	}}}
	out, err := json.Marshal(doc)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.cat.Put(context.Background(), out); err != nil {
		h.t.Fatalf("put manifest: %v", err)
	}
}

// The pages switch commands and the last value, not only streams: the
// device page and the apps page both offer them, each switch says what it
// does, and turning one on or off is what the apps service then holds.
func TestAppsPageCommandsAndLastValue(t *testing.T) {
	t.Parallel()
	var svc *apps.Service
	h := startHub(t, withApps(t, &svc))
	h.putBoostThermostat()
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Hall", "boost-thermostat")
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.post("/apps/add", url.Values{"name": {"Home Assistant"}, "purpose": {"candor:HomeAutomation"}})
	appID := appIDRe.FindString(p.body)
	if appID == "" {
		t.Fatalf("add app: %d", p.status)
	}

	page := visibleText(b.get("/devices/" + d.ID).body)
	if !strings.Contains(page, "Home Assistant may change boost") {
		t.Fatalf("the device page offers no command switch:\n%s", page)
	}
	if strings.Contains(page, "as soon as it connects") {
		t.Error("the last-value switch is offered before the app gets the stream")
	}
	tests := []struct {
		name, use, stream, on, back, says string
		holds                             func() bool
	}{
		{"command on from the device page", "command", "boost", "1", "device", "may now change this", func() bool { return svc.MayCommand(appID, d.ID, "boost") }},
		{"stream on", "stream", "temperature", "1", "", "now gets this data", func() bool { return svc.Visible(appID, "candor/"+d.ID+"/temperature") }},
		{"last value on", "retain", "temperature", "1", "", "as soon as it connects", func() bool { return svc.KeepsLast(appID, d.ID, "temperature") }},
		{"last value off", "retain", "temperature", "0", "device", "forgot it", func() bool { return !svc.KeepsLast(appID, d.ID, "temperature") }},
		{"command off from the apps page", "command", "boost", "0", "", "may no longer change this", func() bool { return !svc.MayCommand(appID, d.ID, "boost") }},
	}
	for _, tc := range tests {
		p := b.post("/apps/switch", url.Values{"app": {appID}, "device": {d.ID}, "stream": {tc.stream}, "use": {tc.use}, "on": {tc.on}, "back": {tc.back}})
		if p.status != 200 {
			t.Fatalf("%s: %d", tc.name, p.status)
		}
		if !tc.holds() {
			t.Errorf("%s: the apps service does not hold it", tc.name)
		}
		if !strings.Contains(visibleText(p.body), tc.says) {
			t.Errorf("%s: the page does not say %q: %s", tc.name, tc.says, visibleText(p.body))
		}
	}
	if p := b.post("/apps/switch", url.Values{"app": {appID}, "device": {d.ID}, "stream": {"selfdestruct"}, "use": {"command"}, "on": {"1"}}); p.status < 400 {
		t.Errorf("an undeclared command switched on from a page: %d", p.status)
	}
	// A Zigbee2MQTT bridge is listed as what it is, with no switches: it
	// passes data to the hub and gets none.
	if _, _, err := svc.Add(context.Background(), apps.NewApp{HouseholdID: alex.HouseholdID, Name: "Zigbee2MQTT",
		Kind: apps.KindZigbee2MQTT, Purposes: []string{"dpv:ServiceProvision"}}); err != nil {
		t.Fatal(err)
	}
	if text := visibleText(b.get("/apps").body); !strings.Contains(text, "This is Zigbee2MQTT") {
		t.Errorf("the apps page does not say what the bridge is:\n%s", text)
	}
	if text := visibleText(b.get("/devices/" + d.ID).body); strings.Contains(text, "to Zigbee2MQTT") || strings.Contains(text, "Zigbee2MQTT may change") {
		t.Errorf("the device page offers switches for the bridge:\n%s", text)
	}
	for _, path := range []string{"/apps", "/devices/" + d.ID} {
		text := visibleText(b.get(path).body)
		if !strings.Contains(text, "as soon as it connects") || !strings.Contains(text, "may change") {
			t.Errorf("page %s does not show both switches:\n%s", path, text)
		}
		if s := readability.Score(text); s.Ease < readability.PlainEnglish {
			t.Errorf("page %s scores %.1f, want at least %.0f:\n%s", path, s.Ease, readability.PlainEnglish, text)
		}
	}
}
