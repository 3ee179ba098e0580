package web

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/api"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
	"github.com/candor-iot/candor/internal/vault"
)

// Tests that do not drive the browser call t.Parallel: each has a hub of
// its own (store, services, server on an ephemeral port) and the package
// keeps no state between them. The package is the last in `go test
// ./...`'s import-path order and was the longest, so the end of CI ran it
// with little else beside it; in parallel it uses both cores there. The
// browser tests stay one at a time, since they press keys in tabs of one
// shared Chromium.
func TestMain(m *testing.M) {
	credential.DefaultParams = cheapHash
	code := m.Run()
	stopChromium()
	os.Exit(code)
}

// cheapHash is argon2id at its smallest cost for these tests' passwords
// and device secrets: the pages behave the same whatever the cost, and at
// the real 19 MiB and 2 passes each hash took 0.13 s under -race (0.33 s at
// load 12), several per test. Package credential tests the real
// parameters; Verify reads them from each stored hash, so both work.
var cheapHash = credential.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// goodPassword passes the password rules.
const goodPassword = "violet-canyon-drifting-41"

// testHub is a hub as internal/hub wires it, minus the MQTT broker: a real
// SQLite store in a temp dir, the manifest catalog, identity, the ingest
// pipeline, and the web pages mounted at "/" next to the API, served on an
// ephemeral loopback port.
type testHub struct {
	t          *testing.T
	st         *sqlite.DB
	cat        *catalog.Catalog
	id         *identity.Service
	in         *ingest.Pipeline
	consent    *consent.Service
	alog       *auditlog.Log
	web        *Server
	srv        *httptest.Server
	setupToken string
}

func startHub(t *testing.T, mods ...func(*Config)) *testHub {
	t.Helper()
	return startHubRecording(t, nil, mods...)
}

// startHubRecording is startHub with the services recording their
// transparency-log events with rec instead of the hub's log (nil: the
// log).
func startHubRecording(t *testing.T, rec auditlog.Recorder, mods ...func(*Config)) *testHub {
	t.Helper()
	return startHubIdentity(t, rec, identity.Options{}, mods...)
}

// startHubIdentity is startHubRecording with identity options (Log and
// Box are set here).
func startHubIdentity(t *testing.T, rec auditlog.Recorder, idOpts identity.Options, mods ...func(*Config)) *testHub {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "candor.db")
	sqlitetest.Write(t, path) // migrated once per test binary
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := catalog.Open(ctx, st, catalog.Options{})
	if err != nil {
		t.Fatalf("open catalog: %v", err)
	}
	// Consent and the transparency log as the hub wires them: ingest
	// asks consent about each reading.
	_, ckey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	lkey, err := auditlog.GenerateKey("test.candor.local")
	if err != nil {
		t.Fatal(err)
	}
	alog, err := auditlog.Open(ctx, filepath.Join(t.TempDir(), "auditlog"), lkey, auditlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open transparency log: %v", err)
	}
	t.Cleanup(func() { alog.Close() })
	if rec == nil {
		rec = alog
	}
	hubKey, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idOpts.Log, idOpts.Box = rec, vault.NewHubBox(hubKey)
	id := identity.New(st, idOpts)
	cs, err := consent.New(ctx, consent.Options{Store: st, Manifests: cat, Key: ckey, Log: rec})
	if err != nil {
		t.Fatalf("consent: %v", err)
	}
	hist := history.New(history.Options{Store: st, Log: rec})
	in := ingest.New(st, ingest.Options{Manifests: cat, BatchMaxWait: 2 * time.Millisecond, Consent: cs})
	t.Cleanup(in.Close) // runs before st.Close
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("web log:\n%s", logs.String())
		}
	})
	cfg := Config{Identity: id, Store: st, Catalog: cat, Ingest: in, MQTTAddr: "127.0.0.1:1883",
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Consent: cs, Log: alog, History: hist}
	for _, m := range mods {
		m(&cfg)
	}
	w := New(cfg)
	a := api.New(api.Config{Identity: id, Catalog: cat, Store: st, Ingest: in, MQTTAddr: "127.0.0.1:1883", Consent: cs, Log: alog, History: hist})

	// The same mount the hub uses: the API keeps its paths, the pages
	// get everything else.
	root := http.NewServeMux()
	apiH := a.Handler()
	for _, p := range []string{"/api/", "/livez", "/readyz", "/metrics", "/openapi.json"} {
		root.Handle(p, apiH)
	}
	root.Handle("/", w.Handler())
	srv := httptest.NewServer(root)
	t.Cleanup(srv.Close)

	tok, err := id.SetupToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &testHub{t: t, st: st, cat: cat, id: id, in: in, consent: cs, alog: alog, web: w, srv: srv, setupToken: tok}
}

// setup creates the first account (owner and admin) directly.
func (h *testHub) setup(username string) store.Account {
	h.t.Helper()
	acc, err := h.id.Setup(context.Background(), h.setupToken, "Home", identity.NewAccount{Username: username, Password: goodPassword})
	if err != nil {
		h.t.Fatalf("setup: %v", err)
	}
	return acc
}

// addDevice adds a device to a household directly.
func (h *testHub) addDevice(householdID, name, typ string) (store.Device, string) {
	h.t.Helper()
	d, secret, err := h.id.AddDevice(context.Background(), identity.NewDevice{HouseholdID: householdID, Name: name, Type: typ})
	if err != nil {
		h.t.Fatalf("add device: %v", err)
	}
	return d, secret
}

// submit sends a reading through the ingest pipeline and waits for the
// commit; a refusal is returned.
func (h *testHub) submit(deviceID, stream, payload string) error {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.in.Submit(ctx, deviceID, stream, []byte(payload), true)
}

// browser is an HTTP client with a cookie jar that follows redirects and
// remembers the last page, like a browser without JavaScript.
type browser struct {
	t    *testing.T
	h    *testHub
	c    *http.Client
	last page2
}

// page2 is an answer as the browser saw it.
type page2 struct {
	status int
	url    string
	header http.Header
	body   string
}

func (h *testHub) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: h.t, h: h, c: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

func (b *browser) do(req *http.Request) page2 {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.last = page2{status: resp.StatusCode, url: resp.Request.URL.Path, header: resp.Header, body: string(body)}
	if resp.Request.URL.RawQuery != "" {
		b.last.url += "?" + resp.Request.URL.RawQuery
	}
	return b.last
}

func (b *browser) get(path string) page2 {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.h.srv.URL+path, nil)
	return b.do(req)
}

// post submits a form with the CSRF token of the last page shown (unless
// the form sets its own), as a same-origin browser would.
func (b *browser) post(path string, form url.Values, headers ...string) page2 {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form[csrfField]; !ok {
		form.Set(csrfField, b.csrf())
	}
	req, _ := http.NewRequest("POST", b.h.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) csrf() string {
	m := csrfRe.FindStringSubmatch(b.last.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// login logs the browser in through the login page.
func (b *browser) login(username, password string) {
	b.t.Helper()
	b.get("/login")
	p := b.post("/login", url.Values{"username": {username}, "password": {password}})
	if p.status != 200 || p.url != "/" {
		b.t.Fatalf("login as %s: %d at %s: %s", username, p.status, p.url, visibleText(p.body))
	}
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.h.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s does not contain %q", what, w)
		}
	}
}

func mustNotContain(t *testing.T, what, body string, nots ...string) {
	t.Helper()
	for _, w := range nots {
		if strings.Contains(body, w) {
			t.Errorf("%s contains %q", what, w)
		}
	}
}

var (
	svgRe    = regexp.MustCompile(`(?s)<svg.*?</svg>`)
	blockRe  = regexp.MustCompile(`(?i)</?(p|li|h[1-6]|dt|dd|tr|th|td|caption|div|label|legend|figcaption|pre|summary|ul|ol|dl|table|section|nav|header|footer|main|form|button)\b[^>]*>`)
	tagRe    = regexp.MustCompile(`<[^>]*>`)
	spacesRe = regexp.MustCompile(`[ \t]+`)
	blankRe  = regexp.MustCompile(`\n\s*\n\s*`)
)

// visibleText is the page's text roughly as a reader meets it: each block
// is a paragraph of its own; charts are read from their captions.
func visibleText(body string) string {
	s := body
	if i := strings.Index(s, "<body"); i >= 0 {
		s = s[i:]
	}
	s = svgRe.ReplaceAllString(s, "\n\n")
	s = blockRe.ReplaceAllString(s, "\n\n")
	s = tagRe.ReplaceAllString(s, "")
	s = html.UnescapeString(s)
	s = spacesRe.ReplaceAllString(s, " ")
	s = blankRe.ReplaceAllString(s, "\n\n")
	return strings.TrimSpace(s)
}

// logBuffer keeps the server's log for a failing test to print.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
