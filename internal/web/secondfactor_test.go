package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/candor-iot/candor/internal/testsupport/readability"
)

var (
	totpSecretRe = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7]+)</code>`)
	recoveryRe   = regexp.MustCompile(`<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>`)
	// step moves a code past the one used before: each is accepted once.
	codeOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
)

func appCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, codeOpts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A person turns on codes from the security page, then logging in asks
// for one: a wrong code is refused, a spare code works once, and turning
// codes off brings back the password-only login. Every page on the way
// reads plainly.
func TestSecondFactorPages(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.setup("alex")
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/security")
	mustContain(t, "security page", p.body, "Codes from an app", "Add a code app")
	texts := map[string]string{"security, codes off": visibleText(p.body)}

	if p = b.post("/security/second-factor", url.Values{"password": {"not my password at all"}}); p.status != http.StatusUnprocessableEntity ||
		!strings.Contains(p.body, "This is not your password now.") {
		t.Fatalf("enrol with a wrong password: %d %s", p.status, visibleText(p.body))
	}
	p = b.post("/security/second-factor", url.Values{"password": {goodPassword}})
	m := totpSecretRe.FindStringSubmatch(p.body)
	codes := recoveryRe.FindAllStringSubmatch(p.body, -1)
	if p.status != 200 || m == nil || len(codes) != 10 || !strings.Contains(p.body, "otpauth://totp/Candor:alex?") {
		t.Fatalf("enrolment page: %d, secret %v, %d codes:\n%s", p.status, m, len(codes), visibleText(p.body))
	}
	if cc := p.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("the page with the secret may be cached: %q", cc)
	}
	texts["security, key shown"] = visibleText(p.body)
	secret := m[1]
	// Shown once: the page does not show it again.
	if p = b.get("/security"); strings.Contains(p.body, secret) || !strings.Contains(p.body, "Turn codes on") {
		t.Fatalf("after a reload: %s", visibleText(p.body))
	}
	if p = b.post("/security/second-factor/confirm", url.Values{"code": {"12345"}}); p.status != http.StatusUnprocessableEntity {
		t.Fatalf("confirm with a bad code: %d", p.status)
	}
	texts["security, wrong code"] = visibleText(p.body)
	now := time.Now()
	if p = b.post("/security/second-factor/confirm", url.Values{"code": {appCode(t, secret, now)}}); p.url != "/security?done=second-factor-on" {
		t.Fatalf("confirm: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	mustContain(t, "security page, codes on", p.body, "Login codes are on.", "You have 10 spare codes left.", "Turn codes off")
	texts["security, codes on"] = visibleText(p.body)

	// A new browser: the password alone is not enough.
	b2 := h.browser()
	b2.get("/login")
	p = b2.post("/login", url.Values{"username": {"alex"}, "password": {goodPassword}, "next": {"/security"}})
	if p.status != 200 || !strings.Contains(p.body, "Enter your code") || b2.cookie(sessionCookie) != nil {
		t.Fatalf("login with the password only: %d %s", p.status, visibleText(p.body))
	}
	texts["login, code step"] = visibleText(p.body)
	challenge := regexp.MustCompile(`name="challenge" value="([^"]+)"`).FindStringSubmatch(p.body)[1]
	p = b2.post("/login/code", url.Values{"challenge": {challenge}, "code": {"000000"}, "next": {"/security"}})
	if appCode(t, secret, time.Now()) != "000000" && (p.status != http.StatusUnauthorized || !strings.Contains(p.body, "This code is wrong or too old.")) {
		t.Fatalf("wrong code: %d %s", p.status, visibleText(p.body))
	}
	texts["login, wrong code"] = visibleText(p.body)
	// A spare code works once.
	p = b2.post("/login/code", url.Values{"challenge": {challenge}, "code": {codes[0][1]}, "next": {"/security"}})
	if p.url != "/security" || !strings.Contains(p.body, "You have 9 spare codes left.") {
		t.Fatalf("spare code: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	b3 := h.browser()
	b3.get("/login")
	p = b3.post("/login", url.Values{"username": {"alex"}, "password": {goodPassword}})
	challenge = regexp.MustCompile(`name="challenge" value="([^"]+)"`).FindStringSubmatch(p.body)[1]
	if p = b3.post("/login/code", url.Values{"challenge": {challenge}, "code": {codes[0][1]}}); p.status != http.StatusUnauthorized {
		t.Fatalf("spare code used twice: %d at %s", p.status, p.url)
	}

	// Off again, with the password.
	if p = b.post("/security/second-factor/disable", url.Values{"password": {goodPassword}}); p.url != "/security?done=second-factor-off" {
		t.Fatalf("turn off: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	texts["security, codes off again"] = visibleText(p.body)
	h.browser().login("alex", goodPassword)

	for name, text := range texts {
		if s := readability.Score(text); s.Ease < readability.PlainEnglish {
			t.Errorf("page %s scores %.1f, want at least %.0f:\n%s", name, s.Ease, readability.PlainEnglish, text)
		}
	}
}

// The security page in each state of the code app, and the login's code
// step, pass the axe audit in Chromium.
func TestBrowserSecondFactor(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h := startHub(t)
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
	tb.open("/security")
	tb.checkA11y("security, codes off")
	tb.step("fill the password", chromedp.SendKeys(chromedp.ID("second-factor-password"), goodPassword))
	tb.submit("add a code app", `form[action="/security/second-factor"] button[type=submit]`)
	secret := eval[string](tb, `document.getElementById('totp-secret').textContent`)
	if secret == "" {
		t.Fatal("no key shown")
	}
	tb.checkA11y("security, key shown")
	tb.checkFocusVisible("security, key shown")
	tb.screenshot("second-factor-key")
	tb.step("type a wrong code", chromedp.SendKeys(chromedp.ID("second-factor-code"), "123456"))
	if appCode(t, secret, time.Now()) != "123456" {
		tb.submit("turn codes on (wrong code)", `form[action="/security/second-factor/confirm"] button[type=submit]`)
		tb.checkA11y("security, wrong code")
	}
	tb.step("type the code", chromedp.SetValue(chromedp.ID("second-factor-code"), appCode(t, secret, time.Now())))
	tb.submit("turn codes on", `form[action="/security/second-factor/confirm"] button[type=submit]`)
	if msg := eval[string](tb, `document.querySelector('.status-message').textContent`); !strings.Contains(msg, "Login codes are on.") {
		t.Errorf("after turning codes on the page says %q", msg)
	}
	tb.checkA11y("security, codes on")

	// A fresh login asks for the code.
	tb.submit("log out", `form[action^="/security/sessions/"] button[type=submit]`)
	tb.open("/login")
	tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), "alex"), chromedp.SendKeys(chromedp.ID("password"), goodPassword))
	tb.submit("log in", "main form button[type=submit]")
	if eval[string](tb, `document.querySelector('h1').textContent`) != "Enter your code" {
		t.Fatalf("after the password: %q", eval[string](tb, `document.querySelector('h1').textContent`))
	}
	tb.checkA11y("login, code step")
	tb.checkFocusVisible("login, code step")
	tb.screenshot("login-code")
}
