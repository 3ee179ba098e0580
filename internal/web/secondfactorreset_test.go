package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// addKimWithCodes adds Kim to the admin's household, with login codes on.
func addKimWithCodes(t *testing.T, h *testHub, admin store.Account) {
	t.Helper()
	ctx := context.Background()
	kim, err := h.id.CreateAccount(ctx, identity.NewAccount{HouseholdID: admin.HouseholdID, Username: "kim", Password: kimPassword, Role: store.RoleMember})
	if err != nil {
		t.Fatal(err)
	}
	en, err := h.id.BeginSecondFactor(ctx, kim.ID, kimPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.id.ConfirmSecondFactor(ctx, kim.ID, appCode(t, en.Secret, time.Now())); err != nil {
		t.Fatal(err)
	}
}

// The admin turns off the login codes of a person of the household who
// lost their phone, from the household page; the person is told on the
// Security page at their next login, once. A member cannot do it.
func TestSecondFactorResetPages(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	addKimWithCodes(t, h, alex)
	texts := map[string]string{}

	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/household")
	mustContain(t, "household page", p.body, "Lost login codes", "Turn off the login codes of kim")
	if strings.Contains(p.body, "login codes of alex") {
		t.Fatal("the admin is offered to turn off their own codes")
	}
	texts["household, lost codes"] = visibleText(p.body)
	p = b.post("/household/members/kim/second-factor/reset", url.Values{})
	if p.url != "/household?done=changed" || !strings.Contains(p.body, "The login codes of kim are removed.") || strings.Contains(p.body, "Lost login codes") {
		t.Fatalf("reset: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	texts["household, codes removed"] = visibleText(p.body)
	if p = b.post("/household/members/kim/second-factor/reset", url.Values{}); p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "There are no login codes of kim to turn off.") {
		t.Fatalf("reset again: %d %s", p.status, visibleText(p.body))
	}

	k := h.browser()
	k.get("/login")
	p = k.post("/login", url.Values{"username": {"kim"}, "password": {kimPassword}, "next": {"/devices"}})
	if p.url != "/security?done=changed" || !strings.Contains(visibleText(p.body), "Your login codes were turned off by the hub's admin") {
		t.Fatalf("kim's next login: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	texts["security, told of the reset"] = visibleText(p.body)
	k2 := h.browser()
	k2.login("kim", kimPassword) // no notice twice: lands on the home page
	// A member cannot turn off anyone's codes.
	if p = k2.post("/household/members/alex/second-factor/reset", url.Values{}); p.status != http.StatusNotFound {
		t.Fatalf("a member resets the admin: %d %s", p.status, visibleText(p.body))
	}
	for name, text := range texts {
		if s := readability.Score(text); s.Ease < readability.PlainEnglish {
			t.Errorf("page %s scores %.1f, want at least %.0f:\n%s", name, s.Ease, readability.PlainEnglish, text)
		}
	}
}

// With login codes required for the admin, an admin without them lands
// on the Security page after the password; every other page leads back
// there and forms elsewhere are refused, until the codes are on.
func TestAdminEnrolFirstPages(t *testing.T) {
	t.Parallel()
	h := startHubIdentity(t, nil, identity.Options{AdminSecondFactor: true})
	h.setup("alex")
	b := h.browser()
	b.get("/login")
	p := b.post("/login", url.Values{"username": {"alex"}, "password": {goodPassword}, "next": {"/devices"}})
	if p.url != "/security" || !strings.Contains(p.body, "This hub asks its admin to use codes from an app") {
		t.Fatalf("login: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	if s := readability.Score(visibleText(p.body)); s.Ease < readability.PlainEnglish {
		t.Errorf("security page, enrol first, scores %.1f:\n%s", s.Ease, visibleText(p.body))
	}
	for _, path := range []string{"/", "/household", "/log", "/my-data"} {
		if p = b.get(path); p.url != "/security" {
			t.Errorf("GET %s before enrolling: at %s", path, p.url)
		}
	}
	if p = b.post("/household/members", url.Values{"username": {"kim"}, "password": {kimPassword}, "role": {"member"}}); p.status != http.StatusForbidden ||
		!strings.Contains(p.body, "asks the admin to add login codes first") {
		t.Fatalf("add a member before enrolling: %d %s", p.status, visibleText(p.body))
	}
	p = b.post("/security/second-factor", url.Values{"password": {goodPassword}})
	m := totpSecretRe.FindStringSubmatch(p.body)
	if p.status != 200 || m == nil {
		t.Fatalf("enrol: %d %s", p.status, visibleText(p.body))
	}
	if p = b.post("/security/second-factor/confirm", url.Values{"code": {appCode(t, m[1], time.Now())}}); p.url != "/security?done=second-factor-on" ||
		strings.Contains(p.body, "This hub asks its admin") {
		t.Fatalf("confirm: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	if p = b.get("/household"); p.url != "/household" || p.status != 200 {
		t.Fatalf("household once enrolled: %d at %s", p.status, p.url)
	}
}

// The new states pass the axe audit in Chromium: the household page
// offering to turn off a person's codes, the Security page telling a
// person their codes were turned off, and the Security page asking the
// admin to add codes first.
func TestBrowserSecondFactorReset(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	login := func(tb *tab, user, password string) {
		tb.open("/login")
		tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), password))
		tb.submit("log in", "main form button[type=submit]")
	}
	h := startHub(t)
	alex := h.setup("alex")
	addKimWithCodes(t, h, alex)
	tb := startBrowser(t, h.srv.URL)
	login(tb, "alex", goodPassword)
	tb.open("/household")
	tb.checkA11y("household, lost codes")
	tb.checkFocusVisible("household, lost codes")
	tb.submit("turn off kim's codes", `form[action="/household/members/kim/second-factor/reset"] button[type=submit]`)
	tb.checkA11y("household, codes removed")
	tb.submit("log out", `form[action="/logout"] button[type=submit]`)
	login(tb, "kim", kimPassword)
	if got := tb.path(); got != "/security?done=changed" {
		t.Fatalf("kim lands on %s", got)
	}
	tb.checkA11y("security, told of the reset")

	h2 := startHubIdentity(t, nil, identity.Options{AdminSecondFactor: true})
	h2.setup("alex")
	tb2 := startBrowser(t, h2.srv.URL)
	login(tb2, "alex", goodPassword)
	if got := tb2.path(); got != "/security" {
		t.Fatalf("the admin lands on %s", got)
	}
	tb2.checkA11y("security, enrol first")
	tb2.checkFocusVisible("security, enrol first")
}
