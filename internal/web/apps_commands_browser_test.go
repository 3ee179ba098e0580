package web

import (
	"slices"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/bridge"
	"github.com/candor-iot/candor/internal/store"
)

// TestBrowserAppCommandSwitches audits with axe-core the device page and
// the apps page with command and last-value switches, off and on.
func TestBrowserAppCommandSwitches(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	var svc *apps.Service
	var zb *bridge.Service
	h := startHub(t, withApps(t, &svc), withBridge(t, &svc, &zb))
	h.putBoostThermostat()
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Hall", "boost-thermostat")
	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	tb.open("/login")
	tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), "alex"), chromedp.SendKeys(chromedp.ID("password"), goodPassword))
	tb.submit("log in", "main form button[type=submit]")
	tb.open("/apps")
	tb.step("name the app", chromedp.SendKeys(chromedp.ID("app-name"), "Home Assistant"))
	tb.submit("add the app", "#add-app")

	tb.open("/devices/" + d.ID)
	tb.checkA11y("device, command off")
	tb.submit("turn on the command", `form[action='/apps/switch'] input[name=use][value=command] ~ button`)
	tb.checkA11y("device, command on")
	tb.submit("turn on temperature", `form[action='/apps/switch'] input[name=use][value=stream] ~ button`)
	tb.checkA11y("device, last value offered")
	tb.submit("turn on the last value", `form[action='/apps/switch'] input[name=use][value=retain] ~ button`)
	tb.checkA11y("device, last value on")
	za, _, err := svc.Add(t.Context(), apps.NewApp{HouseholdID: alex.HouseholdID, Name: "Zigbee2MQTT",
		Kind: apps.KindZigbee2MQTT, Purposes: []string{"dpv:ServiceProvision"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := zb.Publish(t.Context(), za.ID, "zigbee2mqtt/bridge/devices",
		[]byte(`[{"friendly_name":"hallway/motion","definition":{"model":"9290012607","vendor":"Philips","exposes":[]}}]`)); err != nil {
		t.Fatal(err)
	}
	tb.open("/apps")
	tb.checkA11y("apps, command and last value on")
	tb.checkFocusVisible("apps, command and last value on")
	tb.checkProblems("end")
	list, err := svc.List(t.Context(), alex.HouseholdID)
	list = slices.DeleteFunc(list, func(a store.App) bool { return a.Kind == apps.KindZigbee2MQTT })
	if err != nil || len(list) != 1 {
		t.Fatalf("apps: %v %v", list, err)
	}
	if !svc.MayCommand(list[0].ID, d.ID, "boost") {
		t.Error("the command turned on in the browser is not held")
	}
	kept := false
	for _, stream := range svc.GrantsForDevice(d.ID)[list[0].ID] {
		kept = kept || svc.KeepsLast(list[0].ID, d.ID, stream)
	}
	if !kept {
		t.Errorf("the last value turned on in the browser is not held: %v", svc.GrantsForDevice(d.ID))
	}
}
