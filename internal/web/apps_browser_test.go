package web

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/bridge"
)

// TestBrowserAppsPage adds an app, turns on a stream for it from the
// device page, and audits every state of both pages with axe-core.
func TestBrowserAppsPage(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	var svc *apps.Service
	h := startHub(t, withApps(t, &svc))
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Hall", "thermostat")
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
	tb.checkA11y("apps, none yet")
	tb.checkFocusVisible("apps, none yet")
	tb.submit("add an app without a name", "#add-app")
	tb.checkA11y("apps, refused")
	tb.step("name the app", chromedp.SendKeys(chromedp.ID("app-name"), "Home Assistant"))
	tb.submit("add the app", "#add-app")
	if !eval[bool](tb, `document.getElementById('new-app-title') !== null`) {
		t.Fatal("the new app's key is not shown")
	}
	tb.checkA11y("apps, key shown once")
	tb.screenshot("apps")

	tb.open("/devices/" + d.ID)
	tb.checkA11y("device with an app")
	tb.submit("turn on temperature for the app", `form[action='/apps/switch'] button`)
	if msg := eval[string](tb, `document.querySelector('.status-message').textContent`); !strings.Contains(msg, "now gets this data") {
		t.Errorf("after turning it on the page says %q", msg)
	}
	tb.checkA11y("device, app turned on")
	tb.checkProblems("end")
}

// TestBrowserAppsPageZigbee adds a Zigbee device Zigbee2MQTT announced
// from the apps page, and audits the page before and after with axe-core.
func TestBrowserAppsPageZigbee(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
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
	if err := zb.Publish(ctx, a.ID, "zigbee2mqtt/bridge/devices", []byte(`[
		{"friendly_name":"hallway/motion","definition":{"model":"9290012607","vendor":"Philips","exposes":[]}},
		{"friendly_name":"desk plug","definition":{"model":"ZNCZ02LM","vendor":"Xiaomi","exposes":[]}}]`)); err != nil {
		t.Fatal(err)
	}
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
	tb.checkA11y("apps, Zigbee devices to add")
	tb.checkFocusVisible("apps, Zigbee devices to add")
	tb.submit("add hallway/motion", `form[action='/apps/zigbee'] button`)
	if p := tb.path(); !strings.HasPrefix(p, "/devices/"+bridge.DevicePrefix) {
		t.Fatalf("after adding, the browser is at %s, want the device's page", p)
	}
	tb.checkA11y("the added Zigbee device's page")
	tb.open("/apps")
	if !eval[bool](tb, `document.querySelector("a[href^='/devices/`+bridge.DevicePrefix+`']") !== null`) {
		t.Error("the apps page does not link the added device")
	}
	tb.checkA11y("apps, one Zigbee device added")
	tb.checkProblems("end")
}
