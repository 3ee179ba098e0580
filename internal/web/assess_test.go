package web

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/assess"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
)

// startAuditHub is a test hub whose pages show the security audit of its
// own store, catalog and log.
func startAuditHub(t *testing.T) (*testHub, *assess.Service) {
	t.Helper()
	var svc *assess.Service
	h := startHub(t, func(c *Config) {
		svc = assess.New(assess.Config{Store: c.Store.(*sqlite.DB), Manifests: c.Catalog.(*catalog.Catalog), Log: c.Log})
		c.Assess = svc
	})
	return h, svc
}

func TestAuditPageShowsAndSuppresses(t *testing.T) {
	t.Parallel()
	h, svc := startAuditHub(t)
	alex := h.setup("alex")
	if _, _, err := h.id.AddDevice(context.Background(), identity.NewDevice{HouseholdID: alex.HouseholdID, Name: "Hall thermostat",
		Type: "thermostat", Secret: "correct-horse-battery-staple-42"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.id.CreateAccount(context.Background(), identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim",
		Password: "quiet-harbour-lantern-7", Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	kim := h.browser()
	kim.login("kim", "quiet-harbour-lantern-7")
	p := kim.get("/audit")
	mustContain(t, "member's check-up", p.body, "A device uses a secret a person chose", "Why it matters")
	mustNotContain(t, "member's check-up", p.body, "Why can this wait?")

	b := h.browser()
	b.login("alex", goodPassword)
	p = b.get("/audit")
	mustContain(t, "owner's check-up", p.body, "A device uses a secret a person chose", "Why can this wait?", "/rotate")
	rep, err := svc.Findings(context.Background(), access.Operator(), false)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, f := range rep.Findings {
		if f.Household == alex.HouseholdID {
			id = f.ID
		}
	}
	p = b.post("/audit/findings/"+url.PathEscape(id)+"/suppress", url.Values{"reason": {""}, "days": {"7"}})
	if p.status != 422 {
		t.Fatalf("suppress without a reason: %d", p.status)
	}
	p = b.post("/audit/findings/"+url.PathEscape(id)+"/suppress", url.Values{"reason": {"The maker's app sets it"}, "days": {"7"}})
	mustContain(t, "after suppressing", p.body, "put off for 7 days", "Put off for now", "The maker&#39;s app sets it")
	if p = kim.post("/audit/findings/"+url.PathEscape(id)+"/unsuppress", url.Values{}); p.status != 403 {
		t.Fatalf("a member lifted a suppression: %d", p.status)
	}
}

func TestBrowserAuditPage(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h, svc := startAuditHub(t)
	alex := h.setup("alex")
	if _, _, err := h.id.AddDevice(context.Background(), identity.NewDevice{HouseholdID: alex.HouseholdID, Name: "Hall thermostat",
		Type: "thermostat", Secret: "correct-horse-battery-staple-42"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Run(context.Background()); err != nil {
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
	tb.open("/audit")
	tb.checkA11y("check-up")
	tb.checkFocusVisible("check-up")
	tb.step("give a reason", chromedp.SendKeys(chromedp.ID("finding-1-reason"), "The maker's app sets it"))
	tb.submit("put it off", "form[action$='/suppress'] button[type=submit]")
	tb.checkA11y("check-up, one put off")
	tb.checkProblems("check-up")
}

// startReportHub is an audit hub whose service also signs reports.
func startReportHub(t *testing.T) (*testHub, *assess.Service) {
	t.Helper()
	var svc *assess.Service
	h := startHub(t, func(c *Config) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		svc = assess.New(assess.Config{Store: c.Store.(*sqlite.DB), Manifests: c.Catalog.(*catalog.Catalog), Log: c.Log,
			Consent: c.Consent, Key: key})
		c.Assess = svc
	})
	return h, svc
}

func TestReportPages(t *testing.T) {
	t.Parallel()
	h, _ := startReportHub(t)
	alex := h.setup("alex")
	h.addDevice(alex.HouseholdID, "Front door", "door-sensor")
	h.addDevice(alex.HouseholdID, "Hall camera", "motion-camera")
	if _, err := h.id.CreateAccount(context.Background(), identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim",
		Password: "quiet-harbour-lantern-7", Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/privacy-assessment")
	mustContain(t, "privacy assessment", p.body, "1. What is done with your data", "3. Risks to you", "Front door", "This is the first version.")
	p = b.get("/conformance")
	mustContain(t, "conformance", p.body, "5.1-1", "2A", "Not met", "What is missing")
	kim := h.browser()
	kim.login("kim", "quiet-harbour-lantern-7")
	if p = kim.get("/conformance"); p.status != 403 {
		t.Fatalf("a member saw the conformance report: %d", p.status)
	}
	if p = kim.get("/privacy-assessment"); p.status != 200 {
		t.Fatalf("a member cannot see the household's assessment: %d", p.status)
	}
}

func TestBrowserReportPages(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h, _ := startReportHub(t)
	alex := h.setup("alex")
	h.addDevice(alex.HouseholdID, "Front door", "door-sensor")
	h.addDevice(alex.HouseholdID, "Hall camera", "motion-camera")
	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	tb.open("/login")
	tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), "alex"), chromedp.SendKeys(chromedp.ID("password"), goodPassword))
	tb.submit("log in", "main form button[type=submit]")
	tb.open("/privacy-assessment")
	tb.checkA11y("privacy assessment")
	tb.open("/conformance")
	tb.checkA11y("conformance report")
	tb.checkProblems("reports")
}
