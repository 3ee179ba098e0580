package web

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// TestBrowserConsentPages audits with axe-core, in Chromium, the pages
// this part of consent adds or changes: a member's read-only device page
// with its "ask" buttons, the owner's home page listing requests and
// manifest changes, the sharing confirmation, and the device page of a
// person who holds their key themselves.
func TestBrowserConsentPages(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h := startHub(t)
	rig := h.withErasure()
	ctx := context.Background()
	alex := h.setup("alex")
	if _, err := h.id.CreateAccount(ctx, identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim", Password: kimPassword, Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	meter, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	door := h.addOwnDevice(alex, "Front door", "door-sensor")
	// Readings sealed under alex's keys while the hub still holds them.
	if _, err := rig.vault.Enroll(ctx, alex.ID, vault.Settings{Mode: vault.HubAssisted}); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	sealed, err := rig.vault.Seal(alex.ID, []byte(`{"open": true}`), vault.AppendReadingAAD(nil, door.ID, "contact", at))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.st.AppendReadings(ctx, []store.Reading{{DeviceID: door.ID, Stream: "contact", Time: at, Payload: sealed, ManifestVersion: 1}}); err != nil {
		t.Fatal(err)
	}
	h.web.cfg.History = history.New(history.Options{Store: h.st, Vault: rig.vault, Log: h.alog})
	h.web.cfg.KeyOpener = rig.vault

	// The door sensor's maker now asks for more.
	b, err := os.ReadFile("../manifest/templates/door-sensor.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	contact := m["events"].(map[string]any)["contact"].(map[string]any)
	contact["candor:retention"] = "P1Y"
	contact["dpv:hasRecipient"] = []any{map[string]any{"name": "Insurance partner", "@type": "dpv:ThirdParty",
		"dpv:hasPurpose": "candor:HomeSecurity", "candor:terms": "https://example.com/insurer/privacy", "candor:retention": "P1Y",
		"candor:contact": "mailto:privacy@insurer.invalid", "candor:identifiable": "linked"}}
	doc, _ := json.Marshal(m)
	if _, err := h.cat.Put(ctx, doc); err != nil {
		t.Fatalf("store door sensor version 2: %v", err)
	}

	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	login := func(user, pw string) {
		tb.open("/login")
		tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), pw))
		tb.submit("log in", "main form button[type=submit]")
	}

	login("kim", kimPassword)
	tb.open("/devices/" + meter.ID)
	tb.checkA11y("device, member")
	tb.submit("ask to turn on", "button[data-consent-ask]")
	if msg := eval[string](tb, `document.querySelector('.status-message').textContent`); !strings.Contains(msg, "Your request is sent.") {
		t.Errorf("after asking the page says %q", msg)
	}
	tb.checkA11y("device, member asked")
	tb.submit("log out", `form[action="/logout"] button`)
	login("alex", goodPassword)
	tb.open("/")
	text := eval[string](tb, `document.querySelector('main').innerText`)
	for _, want := range []string{"Asked of you", "Changes that wait for you", "Nothing changes until you say yes.", "What your devices show together"} {
		if !strings.Contains(text, want) {
			t.Errorf("home page lacks %q", want)
		}
	}
	tb.checkA11y("home, requests and changes")
	tb.checkFocusVisible("home, requests and changes")

	tb.open("/devices/" + meter.ID)
	tb.submit("turn on sharing", `form[action$="/consent"] input[value="Your energy supplier"] ~ button`)
	if p := tb.path(); !strings.HasSuffix(p, "/consent") {
		t.Fatalf("the switch led to %s, want the confirmation", p)
	}
	tb.checkA11y("share confirmation")
	tb.checkFocusVisible("share confirmation")

	if _, err := rig.vault.Enroll(ctx, alex.ID, vault.Settings{Mode: vault.UserHeld, GenerateIdentity: true}); err != nil {
		t.Fatal(err)
	}
	tb.open("/devices/" + door.ID)
	if !strings.Contains(eval[string](tb, `document.querySelector('main').innerText`), "Your readings are locked") {
		t.Error("the device page of a user-held device does not say its readings are locked")
	}
	tb.checkA11y("device, readings locked")
}
