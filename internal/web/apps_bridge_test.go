package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/bridge"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// withBridge gives the test hub a Zigbee2MQTT bridge over the apps
// service, the store and the ingest pipeline, as the hub wires it (after
// withApps).
func withBridge(t *testing.T, svc **apps.Service, out **bridge.Service) func(*Config) {
	return func(c *Config) {
		zb, err := bridge.New(bridge.Options{Apps: *svc, Store: c.Store.(*sqlite.DB), Ingest: c.Ingest.(*ingest.Pipeline),
			Devices: c.Identity, Manifests: c.Catalog})
		if err != nil {
			t.Fatal(err)
		}
		c.Bridge, *out = zb, zb
	}
}

// The apps page says what a Zigbee2MQTT bridge is, whether it is online
// and which Zigbee devices it announced, added or not.
func TestAppsPageBridge(t *testing.T) {
	t.Parallel()
	var svc *apps.Service
	var zb *bridge.Service
	h := startHub(t, withApps(t, &svc), withBridge(t, &svc, &zb))
	alex := h.setup("alex")
	h.addDevice(alex.HouseholdID, "Hall", "thermostat")
	ctx := context.Background()
	a, _, err := svc.Add(ctx, apps.NewApp{HouseholdID: alex.HouseholdID, Name: "Zigbee2MQTT", Kind: apps.KindZigbee2MQTT, Purposes: []string{"dpv:ServiceProvision"}})
	if err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("alex", goodPassword)
	if text := visibleText(b.get("/apps").body); !strings.Contains(text, "It is not online now") {
		t.Errorf("a bridge that never connected is shown online:\n%s", text)
	}
	for topic, payload := range map[string]string{
		"zigbee2mqtt/bridge/state": `{"state":"online"}`,
		"zigbee2mqtt/bridge/devices": `[{"friendly_name":"Coordinator","type":"Coordinator"},
			{"friendly_name":"hallway/motion","definition":{"model":"9290012607","vendor":"Philips","exposes":[]}}]`,
	} {
		if err := zb.Publish(ctx, a.ID, topic, []byte(payload)); err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
	}
	text := visibleText(b.get("/apps").body)
	for _, want := range []string{"It is online now", "hallway/motion (Philips 9290012607)", "Not added yet"} {
		if !strings.Contains(text, want) {
			t.Errorf("the apps page does not say %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Coordinator") {
		t.Error("the Coordinator is listed as a device")
	}
	if s := readability.Score(text); s.Ease < readability.PlainEnglish {
		t.Errorf("the apps page scores %.1f, want at least %.0f:\n%s", s.Ease, readability.PlainEnglish, text)
	}
}

// An owner adds an announced Zigbee device from the apps page, choosing
// one of the types with a confirmed manifest; a type outside them, or a
// device the bridge did not announce, is refused with the reason.
func TestAppsPageAddZigbeeDevice(t *testing.T) {
	t.Parallel()
	var svc *apps.Service
	var zb *bridge.Service
	h := startHub(t, withApps(t, &svc), withBridge(t, &svc, &zb))
	alex := h.setup("alex")
	h.addDevice(alex.HouseholdID, "Hall", "thermostat")
	ctx := context.Background()
	a, _, err := svc.Add(ctx, apps.NewApp{HouseholdID: alex.HouseholdID, Name: "Zigbee2MQTT", Kind: apps.KindZigbee2MQTT, Purposes: []string{"dpv:ServiceProvision"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := zb.Publish(ctx, a.ID, "zigbee2mqtt/bridge/devices",
		[]byte(`[{"friendly_name":"hallway/motion","definition":{"model":"9290012607","vendor":"Philips","exposes":[]}}]`)); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("alex", goodPassword)
	pg := b.get("/apps")
	mustContain(t, "the apps page", pg.body, `action="/apps/zigbee"`, `name="friendly_name" value="hallway/motion"`, `<option value="thermostat">`)
	if s := readability.Score(visibleText(pg.body)); s.Ease < readability.PlainEnglish {
		t.Errorf("the apps page scores %.1f, want at least %.0f", s.Ease, readability.PlainEnglish)
	}
	for _, bad := range []struct{ name, typ, want string }{
		{"hallway/motion", "no-such-type", "Choose one of the types in the list."},
		{"garden/lamp", "thermostat", "Zigbee2MQTT did not tell the hub about this device"},
	} {
		pg := b.post("/apps/zigbee", url.Values{"csrf": {b.csrf()}, "friendly_name": {bad.name}, "type": {bad.typ}, "field": {"zigbee-x"}})
		if pg.status != http.StatusUnprocessableEntity || !strings.Contains(visibleText(pg.body), bad.want) {
			t.Errorf("adding %s as %s: %d, want 422 saying %q:\n%s", bad.name, bad.typ, pg.status, bad.want, visibleText(pg.body))
		}
	}
	pg = b.post("/apps/zigbee", url.Values{"csrf": {b.csrf()}, "friendly_name": {"hallway/motion"}, "type": {"thermostat"}, "field": {"zigbee-x"}})
	if pg.status != http.StatusOK || !strings.Contains(pg.url, "/devices/"+bridge.DevicePrefix) {
		t.Fatalf("adding hallway/motion: %d at %s, want its device page", pg.status, pg.url)
	}
	seen, err := zb.Seen(ctx, alex.HouseholdID)
	if err != nil || len(seen) != 1 || seen[0].DeviceID == "" {
		t.Fatalf("after adding, the bridge's devices are %+v (%v), want hallway/motion added", seen, err)
	}
	text := visibleText(b.get("/apps").body)
	if !strings.Contains(text, "Added. See its page") {
		t.Errorf("the apps page does not show the device as added:\n%s", text)
	}
	pg = b.post("/apps/zigbee", url.Values{"csrf": {b.csrf()}, "friendly_name": {"hallway/motion"}, "type": {"thermostat"}, "field": {"zigbee-x"}})
	if pg.status != http.StatusUnprocessableEntity {
		t.Errorf("adding it twice: %d, want 422", pg.status)
	}
}
