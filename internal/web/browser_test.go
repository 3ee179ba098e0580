package web

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testenv"
)

// The browser tests drive Debian's Chromium with chromedp through the
// pages a person uses, check each with axe-core (zero violations of WCAG
// 2.0-2.2 A and AA and of axe's best practices), use the keyboard alone
// where a mouse is not needed, and fail on any script error or
// Content-Security-Policy report. With CANDOR_SCREENSHOTS=1 they save
// screenshots of the main pages under docs/screenshots.

const chromiumPath = "/usr/bin/chromium"

// axeTags are the axe-core rule sets every page must pass.
var axeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"}

// axeSource returns axe.min.js: from CANDOR_AXE_JS when set, else from a
// fresh `npm install axe-core@4` in a temporary directory. When neither
// works it skips the test with the reason, or fails it in CI. The npm
// install runs once per test binary (it took seconds per browser test).
func axeSource(t *testing.T) string {
	t.Helper()
	axeOnce.Do(func() { axeJS, axeMissing, axeErr = loadAxe() })
	if axeErr != nil {
		t.Fatal(axeErr)
	}
	if axeMissing != "" {
		testenv.Missing(t, "%s", axeMissing)
	}
	return axeJS
}

var (
	axeOnce    sync.Once
	axeJS      string
	axeMissing string // why axe-core could not be had (a skip, or a failure in CI)
	axeErr     error  // a fault that fails every test that needs axe
)

func loadAxe() (js, missing string, err error) {
	if p := os.Getenv("CANDOR_AXE_JS"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", "", fmt.Errorf("CANDOR_AXE_JS: %w", err)
		}
		return string(b), "", nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", "npm not found, so axe-core cannot be installed: install Debian package npm (or set CANDOR_AXE_JS to an axe.min.js)", nil
	}
	dir, err := os.MkdirTemp("", "candor-axe")
	if err != nil {
		return "", "", fmt.Errorf("temporary directory for axe-core: %w", err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--no-save", "--silent", "--prefix", dir, "axe-core@4")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("npm install axe-core@4 failed, so the accessibility checks cannot run: %v\n%s", err, out), nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		return "", fmt.Sprintf("axe-core installed without axe.min.js: %v", err), nil
	}
	return string(b), "", nil
}

// The browser tests share one Chromium per test binary (starting one took
// about a second per test, more under load), and each test gets a tab in
// a browser context of its own: cookies, storage and cache start empty and
// go with the test, as they did with a browser per test.
var (
	chromeMu     sync.Mutex
	chromeCtx    context.Context    // the first tab of the shared browser; nil until started
	chromeCancel context.CancelFunc // ends the browser
	chromeDir    string             // its profile, removed with it
)

// sharedChromium returns the shared browser's context, starting Chromium
// when there is none yet or the last one has died.
func sharedChromium(t *testing.T) context.Context {
	t.Helper()
	chromeMu.Lock()
	defer chromeMu.Unlock()
	if chromeCtx != nil && chromeCtx.Err() == nil {
		return chromeCtx
	}
	stopChromiumLocked()
	dir, err := os.MkdirTemp("", "candor-chromium")
	if err != nil {
		t.Fatalf("chromium profile directory: %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("lang", "en-GB"),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		cancelCtx()
		cancelAlloc()
		os.RemoveAll(dir)
		t.Fatalf("start chromium: %v", err)
	}
	chromeCtx, chromeDir = ctx, dir
	chromeCancel = func() { cancelCtx(); cancelAlloc() }
	return chromeCtx
}

// stopChromium ends the shared browser, if any (TestMain, after the tests).
func stopChromium() {
	chromeMu.Lock()
	defer chromeMu.Unlock()
	stopChromiumLocked()
}

func stopChromiumLocked() {
	if chromeCancel != nil {
		chromeCancel()
		os.RemoveAll(chromeDir)
	}
	chromeCtx, chromeCancel, chromeDir = nil, nil, ""
}

// tab is one browser tab on the test hub.
type tab struct {
	t        *testing.T
	ctx      context.Context
	base     string
	axe      string
	shotsDir string // "" unless CANDOR_SCREENSHOTS=1

	mu       sync.Mutex
	problems []string // script errors and CSP reports
	results  []string // axe results per page, for the log
}

func startBrowser(t *testing.T, base string) *tab {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Missing(t, "chromium not found at %s: install Debian package chromium", chromiumPath)
	}
	axe := axeSource(t)
	ctx, cancelCtx := chromedp.NewContext(sharedChromium(t), chromedp.WithNewBrowserContext())
	t.Cleanup(cancelCtx) // closes the tab and drops its browser context
	tb := &tab{t: t, ctx: ctx, base: base, axe: axe + "\n;true"}
	if os.Getenv("CANDOR_SCREENSHOTS") == "1" {
		tb.shotsDir = filepath.Join("..", "..", "docs", "screenshots")
		if err := os.MkdirAll(tb.shotsDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Open the tab, then listen for script errors and CSP reports.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("open a chromium tab: %v", err)
	}
	logs := chromedp.Events(ctx, log.EntryAdded)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range logs {
			if err != nil {
				return
			}
			// A page answered with 404 or 422 is logged as a failed
			// load; that is the page working, not a fault.
			pageStatus := ev.Entry.Source == log.EntrySourceNetwork && !strings.Contains(ev.Entry.URL, "/static/")
			if (ev.Entry.Level == log.EntryLevelError && !pageStatus) || strings.Contains(ev.Entry.Text, "Content Security Policy") {
				tb.problem(fmt.Sprintf("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			tb.problem(fmt.Sprintf("script error at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		}
	}()
	return tb
}

func (tb *tab) problem(s string) {
	tb.mu.Lock()
	tb.problems = append(tb.problems, s)
	tb.mu.Unlock()
}

// checkProblems fails the test for any script error or CSP report so far.
func (tb *tab) checkProblems(where string) {
	tb.t.Helper()
	tb.mu.Lock()
	ps := tb.problems
	tb.problems = nil
	tb.mu.Unlock()
	for _, p := range ps {
		tb.t.Errorf("%s: %s", where, p)
	}
}

func (tb *tab) step(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// submit clicks a button that submits a form and waits for the next page.
func (tb *tab) submit(what, selector string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(selector))); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.step("open "+path, chromedp.Navigate(tb.base+path))
}

func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %.60q: %v", js, err)
	}
	return v
}

func (tb *tab) path() string { return eval[string](tb, `location.pathname + location.search`) }

type axeNode struct {
	Target  string `json:"target"`
	HTML    string `json:"html"`
	Summary string `json:"summary"`
}

type axeViolation struct {
	ID     string    `json:"id"`
	Impact string    `json:"impact"`
	Help   string    `json:"help"`
	Nodes  []axeNode `json:"nodes"`
}

type axeResult struct {
	Violations []axeViolation `json:"violations"`
	Passes     int            `json:"passes"`
	Incomplete []string       `json:"incomplete"`
}

// checkA11y runs axe-core on the page and fails on any violation, naming
// each rule and the elements it found.
func (tb *tab) checkA11y(name string) {
	tb.t.Helper()
	tb.step("inject axe-core", chromedp.Evaluate[chromedp.Void](tb.axe))
	tags, _ := json.Marshal(axeTags)
	res := eval[axeResult](tb, `axe.run(document, {runOnly: {type: 'tag', values: `+string(tags)+`}, resultTypes: ['violations']}).then(r => ({
		violations: r.violations.map(v => ({id: v.id, impact: v.impact || '', help: v.help,
			nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html.slice(0, 200), summary: n.failureSummary || ''}))})),
		passes: r.passes.length,
		incomplete: r.incomplete.map(i => i.id + ' [' + i.nodes.map(n => n.target.join(' ')).slice(0, 5).join(', ') + ']')}))`)
	line := fmt.Sprintf("axe %-28s %d violations, %d rules passed", name+":", len(res.Violations), res.Passes)
	if len(res.Incomplete) > 0 {
		line += fmt.Sprintf(", needs review: %s", strings.Join(res.Incomplete, ", "))
	}
	tb.results = append(tb.results, line)
	for _, v := range res.Violations {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: axe %s (%s): %s", name, v.ID, v.Impact, v.Help)
		for _, n := range v.Nodes {
			fmt.Fprintf(&b, "\n    at %s: %s\n      %s", n.Target, n.HTML, strings.ReplaceAll(n.Summary, "\n", "\n      "))
		}
		tb.t.Error(b.String())
	}
	tb.checkProblems(name)
}

// checkFocusVisible tabs through every control on the page and fails when
// one shows no focus indicator.
func (tb *tab) checkFocusVisible(name string) {
	tb.t.Helper()
	tb.step("reset focus", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.getSelection().removeAllRanges(); true`))
	seen := 0
	for range 120 {
		tb.step("tab", chromedp.KeyEvent(kb.Tab))
		f := eval[struct {
			Tag, ID, Text, Outline string
			Width                  float64
			Height                 float64
			Body                   bool
		}](tb, `(() => { const e = document.activeElement; const s = getComputedStyle(e); const r = e.getBoundingClientRect();
			return {Tag: e.tagName, ID: e.id, Text: (e.textContent || e.value || '').trim().slice(0, 40),
				Outline: s.outlineStyle + ' ' + s.outlineWidth, Width: r.width, Height: r.height, Body: e === document.body}; })()`)
		if f.Body {
			break
		}
		seen++
		if !strings.HasPrefix(f.Outline, "solid") || strings.HasPrefix(f.Outline, "solid 0") {
			tb.t.Errorf("%s: focus on <%s id=%q> %q is not visible (outline %s)", name, f.Tag, f.ID, f.Text, f.Outline)
		}
		if f.Tag == "A" && f.Text == "Skip to main content" {
			continue
		}
		if math.Min(f.Width, f.Height) < 24 && f.Tag != "A" {
			tb.t.Errorf("%s: control <%s id=%q> %q is %.0f×%.0f px, under 24×24", name, f.Tag, f.ID, f.Text, f.Width, f.Height)
		}
		if eval[bool](tb, `document.activeElement === document.querySelector('footer a:last-of-type')`) {
			break
		}
	}
	if seen < 3 {
		tb.t.Errorf("%s: only %d controls reachable with Tab", name, seen)
	}
}

// tabTo presses Tab from the top of the page until js is true of the
// focused element.
func (tb *tab) tabTo(what, js string) {
	tb.t.Helper()
	tb.step("reset focus", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); true`))
	for range 200 {
		tb.step("tab", chromedp.KeyEvent(kb.Tab))
		if eval[bool](tb, js) {
			return
		}
	}
	tb.t.Fatalf("Tab never reached %s", what)
}

func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	if tb.shotsDir == "" {
		return
	}
	tb.step("blur", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); true`))
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(tb.shotsDir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot %s", p)
}

func TestBrowserJourney(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h := startHubWithExportJobs(t)
	h.withErasure() // the My data actions: delete, unlink, leave, keys
	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()

	// First run: a refused password shows why, then the owner is made.
	tb.open("/")
	if p := tb.path(); p != "/setup" {
		t.Fatalf("a fresh hub opens %s, want /setup", p)
	}
	tb.checkA11y("setup")
	tb.step("fill setup form (weak password)",
		chromedp.SendKeys(chromedp.ID("token"), h.setupToken),
		chromedp.SendKeys(chromedp.ID("username"), "alex"),
		chromedp.SendKeys(chromedp.ID("password"), "xc3511"),
	)
	tb.submit("submit setup", "main form button[type=submit]")
	if msg := eval[string](tb, `document.querySelector('.error-summary').textContent`); !strings.Contains(msg, "This password is refused") {
		t.Errorf("refused setup says %q", msg)
	}
	if eval[string](tb, `document.activeElement.className`) != "error-summary" {
		t.Error("focus did not move to the error summary")
	}
	tb.checkA11y("setup, refused")
	tb.step("fill setup form",
		chromedp.SendKeys(chromedp.ID("password"), goodPassword),
	)
	tb.submit("submit setup", "main form button[type=submit]")
	if p := tb.path(); p != "/?done=setup" {
		t.Fatalf("after setup the browser is at %s", p)
	}
	tb.checkA11y("home, no devices")

	// Log out and in again through the login page.
	tb.submit("log out", "nav form button[type=submit]")
	tb.checkA11y("login")
	tb.step("fill login form",
		chromedp.SendKeys(chromedp.ID("username"), "alex"),
		chromedp.SendKeys(chromedp.ID("password"), goodPassword),
	)
	tb.submit("log in", "main form button[type=submit]")
	if p := tb.path(); p != "/" {
		t.Fatalf("after login the browser is at %s", p)
	}

	// Keyboard only: Tab to the add-device button and press Enter.
	found := false
	for range 20 {
		tb.step("tab", chromedp.KeyEvent(kb.Tab))
		if eval[string](tb, `document.activeElement.id`) == "add-device" {
			found = true
			break
		}
	}
	if !found {
		t.Fatal("Tab never reached the add-device button")
	}
	if o := eval[string](tb, `getComputedStyle(document.activeElement).outlineStyle`); o != "solid" {
		t.Errorf("the focused add-device button has outline %q", o)
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	if _, err := chromedp.RunResponse(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatalf("Enter on add-device: %v", err)
	}
	cancel()
	if p := tb.path(); p != "/add" {
		t.Fatalf("Enter on add-device went to %s", p)
	}
	tb.checkA11y("add: choose a type")

	// Choose a thermostat: its label comes first, then the name.
	tb.step("choose thermostat", chromedp.Click(chromedp.ID("type-thermostat")))
	tb.submit("show label", "main form button[type=submit]")
	if p := tb.path(); p != "/add?type=thermostat" {
		t.Fatalf("choosing a type went to %s", p)
	}
	tb.checkA11y("add: the label")
	tb.step("name it", chromedp.SendKeys(chromedp.ID("name"), "Living room"))
	tb.submit("add device", "#add-submit")
	secret := eval[string](tb, `document.getElementById('secret').textContent`)
	deviceID := eval[string](tb, `document.getElementById('device-id').textContent`)
	if _, err := h.id.AuthenticateDevice(context.Background(), identity.Origin{}, deviceID, secret); err != nil {
		t.Fatalf("the secret read from the page does not work: %v", err)
	}
	if eval[bool](tb, `document.querySelector('button[data-copy=secret]').hidden`) {
		t.Error("the script did not show the copy button")
	}
	if cmd := eval[string](tb, `document.getElementById('command').textContent`); !strings.Contains(cmd, "-P '"+secret+"'") {
		t.Errorf("mosquitto_pub line lacks the secret: %q", cmd)
	}
	tb.checkA11y("add: the credential")
	tb.screenshot("add-device-credential")

	// Readings: an hour of them, a flag and a refused one.
	fillReadings(t, h, deviceID)
	tb.open("/devices/" + deviceID)
	if n := eval[int](tb, `document.querySelectorAll('#data svg polyline').length`); n < 2 {
		t.Errorf("device page shows %d charts, want at least 2", n)
	}
	tb.checkA11y("device")
	tb.checkFocusVisible("device")

	// Keyboard only: Tab to the first consent switch and press Enter; the
	// page comes back with the confirmation and a receipt.
	tb.tabTo("a consent switch", `document.activeElement.hasAttribute('data-consent-toggle')`)
	label := eval[string](tb, `document.activeElement.textContent`)
	if !strings.HasPrefix(label, "Turn off") {
		t.Fatalf("the first consent switch says %q", label)
	}
	ctx, cancel = context.WithTimeout(tb.ctx, 20*time.Second)
	if _, err := chromedp.RunResponse(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatalf("Enter on a consent switch: %v", err)
	}
	cancel()
	if p := tb.path(); !strings.HasPrefix(p, "/devices/"+deviceID+"?done=changed") {
		t.Fatalf("Enter on the consent switch went to %s", p)
	}
	if msg := eval[string](tb, `document.querySelector('.status-message').textContent`); !strings.Contains(msg, "From the next reading on") {
		t.Errorf("after the switch the page says %q", msg)
	}
	if n := eval[int](tb, `document.querySelectorAll('a[href^="/consent/receipts/"]').length`); n != 1 {
		t.Errorf("%d receipt links after one change", n)
	}
	tb.checkA11y("device, after a consent change")
	tb.screenshot("device")
	// Space on the same switch, now "Turn on", turns it back on.
	tb.tabTo("the consent switch again", `document.activeElement.hasAttribute('data-consent-toggle')`)
	if label := eval[string](tb, `document.activeElement.textContent`); !strings.HasPrefix(label, "Turn on") {
		t.Fatalf("the switch that was turned off says %q", label)
	}
	ctx, cancel = context.WithTimeout(tb.ctx, 20*time.Second)
	if _, err := chromedp.RunResponse(ctx, chromedp.KeyEvent(" ")); err != nil {
		t.Fatalf("Space on a consent switch: %v", err)
	}
	cancel()
	if n := eval[int](tb, `document.querySelectorAll('a[href^="/consent/receipts/"]').length`); n != 2 {
		t.Errorf("%d receipt links after two changes", n)
	}
	if !strings.HasPrefix(eval[string](tb, `document.querySelector('[data-consent-toggle]').textContent`), "Turn off") {
		t.Error("Space did not turn the use back on")
	}
	// Live updates, turned on by the person, replace the readings.
	// A reading arrives after the page was shown; turning live updates on
	// fetches it at once.
	if err := h.submit(deviceID, "setpoint", `{"celsius": 23.5}`); err != nil {
		t.Fatal(err)
	}
	if eval[bool](tb, `document.getElementById('data-body').textContent.includes('23.5')`) {
		t.Fatal("the page shows the new reading before it was fetched")
	}
	tb.step("turn on live updates", chromedp.Click(chromedp.ID("live-updates")))
	if !eval[bool](tb, `document.getElementById('live-updates').checked`) {
		t.Fatal("clicking the live-updates checkbox did not check it")
	}
	pctx, pcancel := context.WithTimeout(tb.ctx, 20*time.Second)
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](`document.getElementById('data-body').textContent.includes('23.5')`,
		chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		t.Errorf("live updates did not show the new reading: %v; hidden=%v checked=%v announce=%q", err,
			eval[bool](tb, `document.hidden`), eval[bool](tb, `document.getElementById('live-updates').checked`),
			eval[string](tb, `document.getElementById('announce').textContent`))
	}
	pcancel()
	tb.checkA11y("device, live updates on")

	for _, p := range []struct{ path, name string }{
		{"/devices/" + deviceID + "/rotate", "confirm: new credential"},
		{"/devices/" + deviceID + "/revoke", "confirm: revoke"},
		{"/devices/" + deviceID + "/credential", "credential, already shown"},
		{"/security", "security"},
		{"/household", "household"},
		{"/admin", "all households (admin)"},
		{"/my-data/delete", "delete readings"},
		{"/my-data/delete?device=" + deviceID, "delete readings of a device"},
		{"/my-data/unlink", "unlink my history"},
		{"/my-data/keys", "my keys"},
		{"/my-data/leave", "delete my account"},
		{"/recipients", "where your data goes"},
		{"/learn#de-identified", "learn"},
		{"/devices/dev_nope", "not found"},
	} {
		tb.open(p.path)
		tb.checkA11y(p.name)
	}
	tb.open("/my-data/leave")
	tb.screenshot("delete-account")
	tb.open("/my-data/keys")
	tb.screenshot("keys")
	tb.open("/learn")
	tb.screenshot("learn")
	tb.open("/my-data")
	tb.checkA11y("my data")
	tb.checkFocusVisible("my data")
	tb.screenshot("my-data")
	// Prepare the export in the background and follow its progress page
	// (reloaded by hand: nothing updates by itself unasked) to the file.
	tb.submit("prepare the export", "#prepare-export")
	exportPage := tb.path()
	if !strings.HasPrefix(exportPage, "/my-data/exports/exp_") {
		t.Fatalf("preparing the export went to %s", exportPage)
	}
	tb.checkA11y("export progress")
	for i := 0; i < 300 && !eval[bool](tb, `!!document.getElementById('download-export-file')`); i++ {
		time.Sleep(100 * time.Millisecond)
		tb.open(exportPage)
	}
	tb.checkA11y("export ready")
	tb.checkFocusVisible("export ready")
	tb.screenshot("export-ready")
	if got := eval[string](tb, `fetch(document.getElementById('download-export-file').href).then(r => r.status + ' ' + r.headers.get('content-type'))`); got != "200 application/zip" {
		t.Errorf("the download link answers %q", got)
	}
	tb.open("/log")
	if n := eval[int](tb, `document.querySelectorAll('.log-entry').length`); n < 3 {
		t.Errorf("the log page lists %d entries", n)
	}
	tb.checkA11y("log")
	tb.checkFocusVisible("log")
	tb.screenshot("log")
	tb.open(eval[string](tb, `document.querySelector('.log-entry a[href$="/verify"]').getAttribute('href')`))
	tb.checkA11y("check a log line")
	tb.checkFocusVisible("check a log line")
	d, err := h.st.Device(context.Background(), deviceID)
	if err != nil {
		t.Fatal(err)
	}
	meter, _ := h.addDevice(d.HouseholdID, "Hall meter", "smart-meter")
	if err := h.submit(meter.ID, "power", `{"watts": 420}`); err != nil {
		t.Fatal(err)
	}
	tb.open("/")
	tb.checkA11y("home")
	tb.checkFocusVisible("home")
	tb.screenshot("home")
	tb.checkProblems("end")
}

// fillReadings stores an hour of valid readings (as the ingest path would
// have, spread over time so the charts have a shape) and sends one refused
// reading through the real pipeline.
func fillReadings(t *testing.T, h *testHub, deviceID string) {
	t.Helper()
	now := time.Now().UTC()
	var rs []store.Reading
	for i := range 60 {
		at := now.Add(time.Duration(i-60) * time.Minute)
		c := 20 + 1.5*math.Sin(float64(i)/9)
		hum := 45 + 5*math.Cos(float64(i)/13)
		rs = append(rs, store.Reading{DeviceID: deviceID, Stream: "temperature", Time: at, ManifestVersion: 1,
			Payload: fmt.Appendf(nil, `{"celsius": %.1f, "humidity_percent": %.0f}`, c, hum)})
		if i%10 == 0 {
			rs = append(rs, store.Reading{DeviceID: deviceID, Stream: "setpoint", Time: at, ManifestVersion: 1,
				Payload: fmt.Appendf(nil, `{"celsius": %d}`, 19+i/20)})
			rs = append(rs, store.Reading{DeviceID: deviceID, Stream: "heating", Time: at, ManifestVersion: 1,
				Payload: fmt.Appendf(nil, `{"on": %t}`, i%20 == 0)})
		}
	}
	if err := h.st.AppendReadings(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if err := h.submit(deviceID, "temperature", `{"celsius": 21, "wifi_ssid": "home"}`); err == nil {
		t.Fatal("an undeclared field was accepted")
	}
}
