package web

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/firmware"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/operator"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// withLifecycle wires the real firmware, advisories and operator services
// over the test hub's SQLite store, as the hub does.
func withLifecycle(cfg *Config) {
	db := cfg.Store.(*sqlite.DB)
	cfg.Firmware = firmware.New(db, nil, nil, nil)
	cfg.Advisories = advisories.New(advisories.Options{Store: db, Inventory: advisories.StoreInventory{Store: db,
		Manifest: func(typ string) *manifest.Manifest {
			e, err := cfg.Catalog.Current(typ)
			if err != nil || e == nil {
				return nil
			}
			return e.Manifest
		}}, Feeds: db})
	cfg.Feeds = cfg.Advisories.(*advisories.Service)
	cfg.Operator = operator.New(db, nil, nil)
}

// lifecycleHub is a hub with one thermostat at firmware 1.3.0 and the demo
// OSV advisory about it imported.
func lifecycleHub(t *testing.T) (*testHub, string) {
	t.Helper()
	h := startHub(t, withLifecycle)
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Hall thermostat", "thermostat")
	ctx := context.Background()
	if err := h.web.cfg.Firmware.(*firmware.Service).ReportState(ctx, d.ID, []byte(`{"firmware":"1.3.0"}`)); err != nil {
		t.Fatal(err)
	}
	if err := h.web.cfg.Firmware.(*firmware.Service).ReportState(ctx, d.ID, []byte(`{"firmware":"1.2.0"}`)); err != nil {
		t.Fatal(err)
	}
	if err := h.web.cfg.Firmware.(*firmware.Service).ReportState(ctx, d.ID, []byte(`{"firmware":"1.3.0","hardware":"rev-b"}`)); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../advisories/testdata/osv-thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.web.cfg.Advisories.(*advisories.Service).Import(ctx, []advisories.Document{{Source: "osv.json", Data: doc}}); err != nil {
		t.Fatal(err)
	}
	// A maker's feed last read nine days ago, and one read today.
	db := h.web.cfg.Store.(*sqlite.DB)
	now := time.Now().UTC()
	for _, f := range []store.AdvisoryFeed{
		{URL: staleFeed, Kind: "csaf", Origin: "operator", AddedAt: now.AddDate(0, 0, -30), LastAttempt: now, LastSuccess: now.AddDate(0, 0, -9), LastError: "GET: connection refused"},
		{URL: "https://osv.example/all.zip", Kind: "osv", Origin: "manifest:thermostat", AddedAt: now.AddDate(0, 0, -30), LastAttempt: now, LastSuccess: now, Documents: 4},
	} {
		if err := db.PutAdvisoryFeed(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	return h, d.ID
}

const staleFeed = "https://maker.example/.well-known/csaf/provider-metadata.json"

func TestLifecyclePages(t *testing.T) {
	t.Parallel()
	h, devID := lifecycleHub(t)
	b := h.browser()
	b.login("alex", goodPassword)

	home := b.get("/")
	i, j := strings.Index(home.body, "Security flaws that affect your devices"), strings.Index(home.body, `class="devices"`)
	if i < 0 || j < 0 || i > j {
		t.Errorf("the home page does not list the open advisory before the devices (at %d, devices at %d)", i, j)
	}
	mustContain(t, "home", home.body, "CANDOR-DEMO-2026-0001", "Someone on your home network could", "Version 1.4.2 fixes this flaw",
		"News of security flaws is late", "from one source for a week or more")
	warning := visibleText(home.body[strings.Index(home.body, `id="stale-feeds-title"`):strings.Index(home.body, `id="advisories-title"`)])
	if s := readability.Score(warning); s.Ease < 60 {
		t.Errorf("the stale feed warning scores %.1f, want at least 60:\n%s", s.Ease, warning)
	}
	admin := b.get("/admin")
	mustContain(t, "admin", admin.body, "Where news of security flaws comes from", staleFeed, "was last read 9 days ago", "connection refused", "This feed is up to date.")
	if strings.Index(admin.body, staleFeed) > strings.Index(admin.body, "osv.example") {
		t.Error("the admin page does not list the stale feed first")
	}
	// The admin adds, reads and removes feeds on the same page.
	badFeed := b.post("/admin/feeds", url.Values{"url": {"http://maker.example/.well-known/csaf/provider-metadata.json"}, "kind": {"csaf"}})
	if badFeed.status != http.StatusUnprocessableEntity {
		t.Fatalf("plain http feed: status %d", badFeed.status)
	}
	mustContain(t, "refused feed", badFeed.body, `id="feed-url-error"`, "https URL", `value="http://maker.example/.well-known/csaf/provider-metadata.json"`)
	added := b.post("/admin/feeds", url.Values{"url": {"https://127.0.0.1:1/osv/all.zip"}, "kind": {"osv"}})
	mustContain(t, "added feed", added.body, "is added", "https://127.0.0.1:1/osv/all.zip", "This feed has not been read yet.")
	read := b.post("/admin/feeds/refresh", url.Values{"url": {"https://127.0.0.1:1/osv/all.zip"}})
	mustContain(t, "read feed", read.body, "The hub could not read the feed.", "connection refused")
	gone := b.post("/admin/feeds/remove", url.Values{"url": {"https://127.0.0.1:1/osv/all.zip"}})
	mustContain(t, "removed feed", gone.body, "The feed is removed.")
	mustNotContain(t, "removed feed", gone.body, "<code>https://127.0.0.1:1/osv/all.zip</code>")
	// A CSAF feed with the maker's key pinned and unsigned files let in.
	const fpr = "0123456789ABCDEF0123456789ABCDEF01234567"
	pinned := b.post("/admin/feeds", url.Values{"url": {"https://127.0.0.1:1/.well-known/csaf/provider-metadata.json"}, "kind": {"csaf"},
		"fingerprint": {"0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567"}, "unsigned": {"on"}})
	mustContain(t, "pinned feed", pinned.body, "is added")
	if fs, err := h.st.AdvisoryFeeds(t.Context()); err != nil || !slices.ContainsFunc(fs, func(f store.AdvisoryFeed) bool {
		return f.Kind == "csaf" && f.Fingerprint == fpr && f.UnsignedAllowed
	}) {
		t.Errorf("feeds %+v, %v; want the CSAF feed with its key pinned and unsigned files allowed", fs, err)
	}
	badKey := b.post("/admin/feeds", url.Values{"url": {"https://127.0.0.1:2/.well-known/csaf/provider-metadata.json"}, "kind": {"csaf"}, "fingerprint": {"abc"}})
	mustContain(t, "bad key", badKey.body, `id="feed-url-error"`, "not an OpenPGP fingerprint", `value="abc"`)
	feeds := visibleText(admin.body[strings.Index(admin.body, `id="feeds-title"`):])
	if s := readability.Score(feeds); s.Ease < 60 {
		t.Errorf("the feeds section scores %.1f, want at least 60:\n%s", s.Ease, feeds)
	}

	dev := b.get("/devices/" + devID)
	mustContain(t, "device page", dev.body, "It runs", "1.3.0", "on hardware rev-b", "Earlier versions", "1.2.0",
		"High: 7.1 out of 10. The hub worked this out from the CVSS 3.1 code in the advisory.")
	section := visibleText(dev.body[strings.Index(dev.body, `id="advisories-title"`):strings.Index(dev.body, `id="responsible-title"`)])
	if s := readability.Score(section); s.Ease < 60 {
		t.Errorf("the firmware and flaws section scores %.1f, want at least 60:\n%s", s.Ease, section)
	}

	// The operator: unnamed at first, then named by the admin; a bad
	// contact is refused next to its field and changes nothing.
	mustContain(t, "footer", home.body, "This hub is run by "+operator.Unnamed)
	b.get("/operator")
	bad := b.post("/operator", url.Values{"csrf": {b.csrf()}, "name": {"Ada's home"}, "contact": {"ada@example.org"}})
	if bad.status != http.StatusUnprocessableEntity {
		t.Fatalf("a bare e-mail address: status %d", bad.status)
	}
	mustContain(t, "refused operator form", bad.body, `id="operator-contact-error"`, "mailto:")
	ok := b.post("/operator", url.Values{"csrf": {b.csrf()}, "name": {"Ada's home"}, "contact": {"mailto:ada@example.org"}})
	if ok.status != http.StatusOK {
		t.Fatalf("save operator: status %d", ok.status)
	}
	mustContain(t, "footer after saving", b.get("/").body, "This hub is run by Ada&#39;s home.", "mailto:ada@example.org")
}

// TestBrowserLifecyclePages audits the home page with an open advisory,
// the device page with firmware and advisories, and the operator form
// (empty and refused) with axe-core in Chromium.
func TestBrowserLifecyclePages(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h, devID := lifecycleHub(t)
	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	tb.open("/login")
	tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), "alex"), chromedp.SendKeys(chromedp.ID("password"), goodPassword))
	tb.submit("log in", "main form button[type=submit]")
	tb.open("/")
	tb.checkA11y("home, open advisory")
	tb.open("/devices/" + devID)
	tb.checkA11y("device, firmware and advisory")
	tb.open("/admin")
	tb.checkA11y("admin, advisory feeds with a stale one")
	tb.step("fill a plain http feed", chromedp.SendKeys(chromedp.ID("feed-url"), "http://maker.example/provider-metadata.json"))
	tb.submit("add the feed", `form[action="/admin/feeds"] button[type=submit]`)
	tb.checkA11y("admin, refused feed")
	tb.open("/operator")
	tb.checkA11y("operator")
	tb.checkFocusVisible("operator")
	tb.step("fill a bad contact", chromedp.SendKeys(chromedp.ID("operator-contact"), "ada@example.org"))
	tb.submit("save operator", "main form button[type=submit]")
	tb.checkA11y("operator, refused")
}

// TestSupportPeriodOnPages: a type whose security updates end within 90
// days warns on the home and device pages; a type that gives no date says
// "unknown", never a date.
func TestSupportPeriodOnPages(t *testing.T) {
	t.Parallel()
	h := startHub(t, withLifecycle)
	alex := h.setup("alex")
	tpl, err := os.ReadFile("../manifest/templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().UTC().AddDate(0, 0, 30).Format(time.DateOnly)
	for typ, date := range map[string]string{"ending-thermostat": `"securityUpdatesUntil": "` + soon + `",`, "unknown-thermostat": ""} {
		doc := strings.Replace(string(tpl), `"candor:deviceType": "thermostat"`, `"candor:deviceType": "`+typ+`"`, 1)
		doc = strings.Replace(doc, `"securityUpdatesUntil": "2031-12-31",`, date, 1)
		if _, err := h.cat.Put(context.Background(), []byte(doc)); err != nil {
			t.Fatalf("put %s: %v", typ, err)
		}
	}
	ending, _ := h.addDevice(alex.HouseholdID, "Old hall thermostat", "ending-thermostat")
	unknown, _ := h.addDevice(alex.HouseholdID, "Imported thermostat", "unknown-thermostat")
	b := h.browser()
	b.login("alex", goodPassword)
	mustContain(t, "home", b.get("/").body, "Security updates end soon, on")
	mustContain(t, "ending device", b.get("/devices/"+ending.ID).body, "Security updates end soon, on", "Plan to replace it.")
	page := b.get("/devices/" + unknown.ID).body
	mustContain(t, "unknown device", page, "Security updates: unknown.")
	mustNotContain(t, "unknown device", page, "Security updates until", "Security updates ended")
}
