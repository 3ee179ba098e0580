package web

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/apps"
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
