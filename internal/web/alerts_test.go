package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// The admin chooses the action per alarm level on a page; the choice takes
// effect at once and is logged. Nobody else sees the page.
func TestAdminChoosesMonitorActions(t *testing.T) {
	t.Parallel()
	h, mon, _ := startHubWithMonitor(t)
	alex := h.setup("alex")
	if _, err := h.id.CreateAccount(context.Background(), identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim",
		Password: "quiet-harbour-lantern-7", Role: store.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	kim := h.browser()
	kim.login("kim", "quiet-harbour-lantern-7")
	if p := kim.get("/admin/monitoring"); p.status != http.StatusNotFound {
		t.Errorf("an owner who is not the admin: GET %d; want 404", p.status)
	}

	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/admin/monitoring")
	mustContain(t, "monitoring page", p.body, `id="action-warning-rate_limit" name="warning" value="rate_limit" aria-describedby="action-warning-rate_limit-hint" checked`)
	if e := readability.Ease(visibleText(p.body)); e < 60 {
		t.Errorf("monitoring page scores %.0f on Flesch reading ease; want at least 60", e)
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
		says   string
		want   monitor.Policy
	}{
		{"one level left out", url.Values{"info": {"notify"}, "warning": {"quarantine"}}, http.StatusUnprocessableEntity,
			"Choose what to do about serious trouble.", monitor.DefaultPolicy()},
		{"all three", url.Values{"info": {"notify"}, "warning": {"quarantine"}, "critical": {"revoke"}}, http.StatusOK,
			"Saved. The hub acts this way on the next alarm.", monitor.Policy{monitor.Info: monitor.ActNotify, monitor.Warning: monitor.ActQuarantine, monitor.Critical: monitor.ActRevoke}},
	}
	for _, tc := range tests {
		b.get("/admin/monitoring")
		p := b.post("/admin/monitoring", tc.form)
		if p.status != tc.status || !strings.Contains(visibleText(p.body), tc.says) {
			t.Errorf("%s: %d, page lacks %q", tc.name, p.status, tc.says)
		}
		if got := mon.Policy(); got.String() != tc.want.String() {
			t.Errorf("%s: policy %v; want %v", tc.name, got, tc.want)
		}
	}
	n := 0
	for e, err := range h.alog.Entries(context.Background(), 0, h.alog.Size()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Event.Action == monitor.ActionPolicyChange && e.Event.Actor.ID == alex.ID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d policy changes by alex in the log; want 1", n)
	}
}

// Each person chooses which alarms reach them by e-mail; a choice without
// an address, or a wrong address, is refused next to its field.
func TestPersonChoosesAlerts(t *testing.T) {
	t.Parallel()
	h, _, _ := startHubWithMonitor(t)
	alex := h.setup("alex")
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/alerts")
	text := visibleText(p.body)
	i, j := strings.Index(text, "Alarms by e-mail"), strings.Index(text, "Save")
	if i < 0 || j < i {
		t.Fatalf("no alerts form in %q", text)
	}
	if e := readability.Ease(text[i:j]); e < 60 {
		t.Errorf("alerts page scores %.0f on Flesch reading ease; want at least 60:\n%s", e, text[i:j])
	}
	tests := []struct {
		name, min, email string
		status           int
		says             string
		stored           store.AlertPrefs // zero: unchanged
	}{
		{"no address", "warning", "", http.StatusUnprocessableEntity, "Give the e-mail address the alarms go to.", store.AlertPrefs{}},
		{"not an address", "warning", "alex at home", http.StatusUnprocessableEntity, "Give an e-mail address", store.AlertPrefs{}},
		{"unknown level", "loud", "alex@example.org", http.StatusUnprocessableEntity, "Choose which alarms reach you.", store.AlertPrefs{}},
		{"warnings and worse", "warning", "alex@example.org", http.StatusOK, "Saved. New alarms reach you as you chose.",
			store.AlertPrefs{AccountID: alex.ID, MinSeverity: "warning", Email: "alex@example.org"}},
		{"none", "", "", http.StatusOK, "Saved.", store.AlertPrefs{AccountID: alex.ID}},
	}
	for _, tc := range tests {
		b.get("/alerts")
		p := b.post("/alerts", url.Values{"min": {tc.min}, "email": {tc.email}})
		if p.status != tc.status || !strings.Contains(visibleText(p.body), tc.says) {
			t.Errorf("%s: %d, page lacks %q", tc.name, p.status, tc.says)
		}
		if tc.stored == (store.AlertPrefs{}) {
			continue
		}
		ps, err := h.st.AlertPrefs(context.Background(), alex.HouseholdID)
		if err != nil || len(ps) != 1 || ps[0] != tc.stored {
			t.Errorf("%s: stored %+v, %v; want %+v", tc.name, ps, err, tc.stored)
		}
	}
}

// Both pages, and the admin's with an error, pass the axe audit.
func TestBrowserMonitoringPages(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h, _, _ := startHubWithMonitor(t)
	h.setup("alex")
	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	tb.open("/login")
	tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), "alex"), chromedp.SendKeys(chromedp.ID("password"), goodPassword))
	tb.submit("log in", "main form button[type=submit]")
	tb.open("/admin/monitoring")
	tb.checkA11y("admin monitoring")
	tb.checkFocusVisible("admin monitoring")
	tb.open("/alerts")
	tb.checkA11y("alerts")
	tb.step("choose warnings", chromedp.Click(chromedp.ID("alerts-min-warning")))
	tb.submit("save without address", "main form button[type=submit]")
	tb.checkA11y("alerts with an error")
}
