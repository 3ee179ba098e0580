package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// withApps gives the test hub the apps service, over its own store,
// catalog and transparency log, as the hub wires it.
func withApps(t *testing.T, out **apps.Service) func(*Config) {
	return func(c *Config) {
		svc, err := apps.New(context.Background(), apps.Options{Store: c.Store.(*sqlite.DB), Manifests: c.Catalog.(apps.Manifests), Log: c.Log})
		if err != nil {
			t.Fatal(err)
		}
		c.Apps, *out = svc, svc
	}
}

var appIDRe = regexp.MustCompile(`app_[a-z2-7]+`)

func TestAppsPage(t *testing.T) {
	t.Parallel()
	var svc *apps.Service
	h := startHub(t, withApps(t, &svc))
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Hall", "thermostat")
	b := h.browser()
	b.login("alex", goodPassword)

	p := b.get("/apps")
	if p.status != 200 || !strings.Contains(visibleText(p.body), "You have no apps yet") {
		t.Fatalf("apps page: %d %s", p.status, visibleText(p.body))
	}
	p = b.post("/apps/add", url.Values{"name": {"Home Assistant"}, "purpose": {"candor:HomeAutomation"}, "home_assistant": {"1"}})
	if p.status != http.StatusCreated {
		t.Fatalf("add app: %d %s", p.status, visibleText(p.body))
	}
	appID := appIDRe.FindString(p.body)
	if appID == "" || !strings.Contains(visibleText(p.body), "shows it only this once") {
		t.Fatalf("the new app's key is not shown: %s", visibleText(p.body))
	}
	secretShown := p.body
	if again := b.get("/apps"); strings.Contains(again.body, "Password") && again.body == secretShown {
		t.Error("the key is shown again")
	}
	if a, err := svc.App(context.Background(), appID); err != nil || a.Kind != apps.KindHomeAssistant {
		t.Errorf("the app added as Home Assistant: %+v %v", a, err)
	}
	topic := "candor/" + d.ID + "/temperature"
	if svc.Visible(appID, topic) {
		t.Fatal("a new app gets a stream before anyone turned it on")
	}
	p = b.post("/apps/switch", url.Values{"app": {appID}, "device": {d.ID}, "stream": {"temperature"}, "on": {"1"}, "back": {"device"}})
	if p.status != 200 || !strings.HasPrefix(p.url, "/devices/"+d.ID) {
		t.Fatalf("switch on from the device page: %d at %s", p.status, p.url)
	}
	if !svc.Visible(appID, topic) {
		t.Fatal("turned on, but the app does not get it")
	}
	if !strings.Contains(visibleText(p.body), "Home Assistant now gets this data") {
		t.Errorf("the device page does not say what changed: %s", visibleText(p.body))
	}
	for _, path := range []string{"/apps", "/devices/" + d.ID} {
		text := visibleText(b.get(path).body)
		if s := readability.Score(text); s.Ease < readability.PlainEnglish {
			t.Errorf("page %s scores %.1f, want at least %.0f:\n%s", path, s.Ease, readability.PlainEnglish, text)
		}
	}

	// A member may switch what an app gets, but not add or revoke apps.
	if _, err := h.id.CreateAccount(context.Background(), identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim",
		Password: "quiet-harbour-lantern-7", Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	kim := h.browser()
	kim.login("kim", "quiet-harbour-lantern-7")
	kim.get("/apps")
	if p := kim.post("/apps/switch", url.Values{"app": {appID}, "device": {d.ID}, "stream": {"temperature"}, "on": {"0"}}); p.status != 200 {
		t.Errorf("a member switching off: %d", p.status)
	}
	if svc.Visible(appID, topic) {
		t.Error("switched off by a member, but the app still gets it")
	}
	if p := kim.post("/apps/revoke", url.Values{"app": {appID}}); p.status != http.StatusForbidden {
		t.Errorf("a member revoking an app: %d, want 403", p.status)
	}
	if p := kim.post("/apps/add", url.Values{"name": {"Mine"}, "purpose": {"candor:HomeAutomation"}}); p.status != http.StatusForbidden {
		t.Errorf("a member adding an app: %d, want 403", p.status)
	}

	// Another household cannot see or switch the app.
	_, sam, err := h.id.CreateHousehold(context.Background(), "Flat", identity.NewAccount{Username: "sam", Password: "velvet-kettle-orchard-52"})
	if err != nil {
		t.Fatal(err)
	}
	_ = sam
	other := h.browser()
	other.login("sam", "velvet-kettle-orchard-52")
	other.get("/apps")
	if p := other.post("/apps/switch", url.Values{"app": {appID}, "device": {d.ID}, "stream": {"temperature"}, "on": {"1"}}); p.status != http.StatusNotFound {
		t.Errorf("another household switching the app: %d, want 404", p.status)
	}
	if strings.Contains(other.get("/apps").body, appID) {
		t.Error("another household sees the app")
	}

	b.get("/apps")
	if p := b.post("/apps/revoke", url.Values{"app": {appID}}); p.status != 200 || !strings.Contains(visibleText(p.body), "is revoked") {
		t.Errorf("revoke: %d %s", p.status, visibleText(p.body))
	}
}
