package assess

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/readability"
	"github.com/candor-iot/candor/internal/tlscert"
)

func TestPlainListener(t *testing.T) {
	e := newEnv(t)
	e.cfg.Listeners = []Listener{{Name: "MQTT", Flag: "--mqtt-addr", Addr: "0.0.0.0:1883"}}
	e.rebuild()
	f := e.mustFind(checkPlainListener)
	if f.Severity != High || !contains(f.Evidence, "0.0.0.0:1883") || !contains(f.Fix, "--mqtt-addr") {
		t.Fatalf("finding: %+v", f)
	}
	e.cfg.Listeners = []Listener{{Name: "MQTT", Flag: "--mqtt-addr", Addr: "127.0.0.1:1883"}}
	e.rebuild()
	e.mustClose(checkPlainListener, f.ID)
}

// openOf counts a check's open, unsuppressed findings.
func openOf(rep Report, check string) int {
	n := 0
	for _, f := range rep.Findings {
		if f.Check == check && f.Open() {
			n++
		}
	}
	return n
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true,
		":1883": false, "0.0.0.0:1": false, "[::]:1": false, "192.168.1.5:1": false, "hub.local:1": false, "junk": false} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// certificate makes a real certificate for names, valid until notAfter.
func certificate(t *testing.T, notAfter time.Time, names ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "hub"},
		NotBefore: notAfter.Add(-400 * 24 * time.Hour), NotAfter: notAfter, DNSNames: names}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCertificate(t *testing.T) {
	e := newEnv(t)
	var hosts tlscert.Hosts
	for _, n := range []string{"hub.home.arpa", "localhost"} {
		if err := hosts.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	e.cfg.Hosts = hosts
	e.cfg.Certificate = certificate(t, e.now.Add(10*24*time.Hour), "localhost")
	e.rebuild()
	cover := e.mustFind(checkCertCoverage)
	if !contains(cover.Evidence, "hub.home.arpa") {
		t.Fatalf("coverage evidence: %q", cover.Evidence)
	}
	expiry := e.mustFind(checkCertExpiry)
	if expiry.Severity != Medium || !contains(expiry.Evidence, "10 days") {
		t.Fatalf("expiry: %+v", expiry)
	}
	// Expired is critical.
	e.cfg.Certificate = certificate(t, e.now.Add(-time.Hour), "localhost")
	e.rebuild()
	if f := e.mustFind(checkCertExpiry); f.Severity != Critical {
		t.Fatalf("expired: %+v", f)
	}
	e.cfg.Certificate = certificate(t, e.now.Add(200*24*time.Hour), "localhost", "hub.home.arpa")
	e.rebuild()
	e.mustClose(checkCertCoverage, cover.ID)
	e.mustClose(checkCertExpiry, expiry.ID)
}

func TestCredentialAge(t *testing.T) {
	e := newEnv(t)
	e.household("h1")
	old := e.now.Add(-400 * 24 * time.Hour)
	if err := e.st.CreateDevice(t.Context(), store.Device{ID: "dev_old", HouseholdID: "h1", Name: "meter", Type: "smart-meter",
		SecretHash: "$argon2id$x", CredentialSetAt: old, CreatedAt: old}); err != nil {
		t.Fatal(err)
	}
	// Keep the device "seen" so only the age check speaks.
	if err := e.st.AppendReadings(t.Context(), []store.Reading{{DeviceID: "dev_old", Stream: "power", Time: e.now, Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	f := e.mustFind(checkDeviceCredentialAge)
	if f.Household != "h1" || f.FixURL != "/devices/dev_old/rotate" || !contains(f.Evidence, "400 days") {
		t.Fatalf("finding: %+v", f)
	}
	if _, err := e.id.RotateDevice(t.Context(), "dev_old", ""); err != nil {
		t.Fatal(err)
	}
	e.mustClose(checkDeviceCredentialAge, f.ID)

	// No rotation period: the check says so instead of passing.
	e.cfg.RotationPeriod = 0
	e.rebuild()
	rep := e.run()
	i := slices.IndexFunc(rep.Checks, func(c CheckStatus) bool { return c.Name == checkDeviceCredentialAge })
	if rep.Checks[i].Available || rep.Checks[i].Note == "" {
		t.Fatalf("status without a period: %+v", rep.Checks[i])
	}
}

func TestUnseenDevice(t *testing.T) {
	e := newEnv(t)
	e.household("h1")
	for _, id := range []string{"dev_quiet", "dev_lost"} {
		set := e.now.Add(-100 * 24 * time.Hour)
		if err := e.st.CreateDevice(t.Context(), store.Device{ID: id, HouseholdID: "h1", Name: "door", Type: "door-sensor",
			SecretHash: "$argon2id$x", CredentialSetAt: set, CreatedAt: set}); err != nil {
			t.Fatal(err)
		}
	}
	rep := e.run()
	fs := open(rep, checkUnseen)
	if len(fs) != 2 || fs[0].FixURL == "" {
		t.Fatalf("findings: %+v", fs)
	}
	// One fix: the device speaks again. The other: its secret is revoked.
	if err := e.st.AppendReadings(t.Context(), []store.Reading{{DeviceID: "dev_quiet", Stream: "door", Time: e.now, Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := e.id.RevokeDevice(t.Context(), "dev_lost"); err != nil {
		t.Fatal(err)
	}
	if fs := open(e.run(), checkUnseen); len(fs) != 0 {
		t.Fatalf("still open: %+v", fs)
	}
}

func TestChosenSecretAndSuppression(t *testing.T) {
	e := newEnv(t)
	e.household("h1")
	d := e.addDevice("h1", "thermostat", "correct-horse-battery-staple-42")
	e.addDevice("h1", "thermostat", "")
	f := e.mustFind(checkChosenSecret)
	if f.Subject != d.ID || f.FixURL != "/devices/"+d.ID+"/rotate" {
		t.Fatalf("finding: %+v", f)
	}

	// Suppressed: still listed, with its reason, but no longer open.
	owner := access.Person(store.Account{ID: "acc_1", HouseholdID: "h1", Role: store.RoleOwner}, store.Session{})
	member := access.Person(store.Account{ID: "acc_2", HouseholdID: "h1", Role: store.RoleMember}, store.Session{})
	stranger := access.Person(store.Account{ID: "acc_3", HouseholdID: "h2", Role: store.RoleOwner}, store.Session{})
	until := e.now.Add(24 * time.Hour)
	if err := e.svc.Suppress(t.Context(), member, f.ID, "the maker sets it", until); err == nil {
		t.Fatal("a member suppressed a finding")
	}
	if err := e.svc.Suppress(t.Context(), stranger, f.ID, "not mine", until); err == nil {
		t.Fatal("another household suppressed a finding")
	}
	if err := e.svc.Suppress(t.Context(), owner, f.ID, "x", until); err == nil {
		t.Fatal("a suppression without a reason was accepted")
	}
	if err := e.svc.Suppress(t.Context(), owner, f.ID, "the maker's app sets it; replacing it in March", until); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(logActions(t, e.alog), ActionFindingSuppress) {
		t.Fatal("the suppression is not in the transparency log")
	}
	rep := e.run()
	got := open(rep, checkChosenSecret)
	if len(got) != 1 || got[0].Suppressed == nil || got[0].Open() || openOf(rep, checkChosenSecret) != 0 {
		t.Fatalf("suppressed finding: %+v", got)
	}
	// The stranger does not see it at all.
	if srep, err := e.svc.Findings(t.Context(), stranger, true); err != nil || len(srep.Findings) != 0 {
		t.Fatalf("another household sees %+v %v", srep.Findings, err)
	}

	// The suppression expires: the finding is back.
	e.now = until.Add(time.Minute)
	rep = e.run()
	if got := open(rep, checkChosenSecret); len(got) != 1 || got[0].Suppressed != nil || openOf(rep, checkChosenSecret) != 1 {
		t.Fatalf("after expiry: %+v", got)
	}

	// The fix: a generated secret.
	if _, err := e.id.RotateDevice(t.Context(), d.ID, ""); err != nil {
		t.Fatal(err)
	}
	e.mustClose(checkChosenSecret, f.ID)
}

func TestRecipientTermsAndPlaceholders(t *testing.T) {
	e := newEnv(t)
	e.household("h1")
	e.addDevice("h1", "smart-meter", "")
	e.run()
	if fs := open(e.run(), checkRecipientTerms); len(fs) != 0 {
		t.Fatalf("the shipped template is flagged: %+v", fs)
	}
	e.putManifest("smart-meter", func(doc string) string {
		return strings.Replace(doc, `"candor:terms": "https://example.com/energy-supplier/privacy",`, "", 1)
	})
	f := e.mustFind(checkRecipientTerms)
	if f.Household != "h1" || !contains(f.Evidence, "Your energy supplier") || f.FixURL == "" {
		t.Fatalf("finding: %+v", f)
	}
	e.putManifest("smart-meter", func(doc string) string { return doc })
	e.mustClose(checkRecipientTerms, f.ID)

	e.putManifest("smart-meter", func(doc string) string {
		return strings.Replace(doc, "mailto:devices@candor.invalid", "mailto:"+placeholderContact, 1)
	})
	p := e.mustFind(checkPlaceholders)
	if !contains(p.Evidence, "maker contact") {
		t.Fatalf("placeholder: %+v", p)
	}
	e.putManifest("smart-meter", func(doc string) string { return doc })
	e.mustClose(checkPlaceholders, p.ID)
}

func TestOpenMetrics(t *testing.T) {
	var locked atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if locked.Load() && r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("# metrics\n"))
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t)
	// The check reads the configured address; the probe itself goes to
	// the loopback listener only.
	e.cfg.Listeners = []Listener{{Name: "HTTP", Flag: "--http-addr", Addr: "0.0.0.0:8080", TLS: true}}
	e.cfg.MetricsURL = srv.URL + "/metrics"
	e.rebuild()
	f := e.mustFind(checkMetrics)
	if !contains(f.Evidence, "200") {
		t.Fatalf("finding: %+v", f)
	}
	locked.Store(true)
	e.mustClose(checkMetrics, f.ID)
}

func TestFilePermissions(t *testing.T) {
	e := newEnv(t)
	if err := os.Chmod(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The directory, and the database files SQLite made 0644 inside it,
	// which others can now reach.
	fs := open(e.run(), checkFilePermissions)
	subjects := map[string]Finding{}
	for _, f := range fs {
		subjects[f.Subject] = f
	}
	if f, ok := subjects["."]; !ok || !contains(f.Fix, "chmod 0700") || subjects["candor.db"].ID == "" {
		t.Fatalf("findings: %+v", fs)
	}
	if err := os.Chmod(e.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.mustClose(checkFilePermissions, subjects["."].ID)
	e.mustClose(checkFilePermissions, subjects["candor.db"].ID)
}

func TestCheckpointKeptLocal(t *testing.T) {
	e := newEnv(t)
	e.household("h1")
	e.addDevice("h1", "thermostat", "") // a log entry
	f := e.mustFind(checkCheckpoint)
	e.svc.CheckpointFetched(context.Background())
	e.mustClose(checkCheckpoint, f.ID)
	// Thirty days on with no fetch, it is back.
	e.now = e.now.Add(31 * 24 * time.Hour)
	e.mustFind(checkCheckpoint)
}

// Unit-test doubles of the optional parts: they stand for branches not
// on this hub, and let each check be seen to open and close.
type fakeParts struct {
	ended, advisory, stale, expired, quarantined, noSecondFactor bool
	held                                                         string // the quarantined device (default dev_q)
}

func (f *fakeParts) SupportEnded(context.Context, store.Device) (time.Time, bool, bool, error) {
	return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), f.ended, true, nil
}
func (f *fakeParts) OpenAdvisories(context.Context, store.Device) ([]string, error) {
	if f.advisory {
		return []string{"OSV-2026-1"}, nil
	}
	return nil, nil
}
func (f *fakeParts) StaleFeeds(context.Context) ([]StaleFeed, error) {
	if f.stale {
		return []StaleFeed{{Name: "osv"}}, nil
	}
	return nil, nil
}
func (f *fakeParts) ExpiredMetadata(context.Context) ([]ExpiredMetadata, error) {
	if f.expired {
		return []ExpiredMetadata{{Repository: "maker", Role: "timestamp", Expired: time.Now()}}, nil
	}
	return nil, nil
}
func (f *fakeParts) Quarantined(ctx context.Context) ([]Quarantine, error) {
	if f.quarantined {
		id := f.held
		if id == "" {
			id = "dev_q"
		}
		return []Quarantine{{DeviceID: id, Reason: "declared_rate", Stream: "power", Severity: "critical", Observed: 540, Limit: 12, Since: time.Now()}}, nil
	}
	return nil, nil
}
func (f *fakeParts) HasSecondFactor(context.Context, string) (bool, error) {
	return !f.noSecondFactor, nil
}

func TestOptionalChecks(t *testing.T) {
	e := newEnv(t)
	e.household("h1")
	e.addDevice("h1", "thermostat", "")
	if _, err := e.st.CreateFirstAccount(t.Context(), store.Household{ID: "h1"}, store.Account{ID: "acc_admin", HouseholdID: "h1",
		Username: "admin", PasswordHash: "$argon2id$x", Role: store.RoleOwner, Admin: true, CreatedAt: e.now}); err != nil {
		t.Fatal(err)
	}
	// Without the parts: reported as not available, never as passing.
	rep := e.run()
	optional := []string{checkSupport, checkAdvisories, checkFeeds, checkUpdates, checkQuarantine, checkSecondFactor}
	for _, name := range optional {
		i := slices.IndexFunc(rep.Checks, func(c CheckStatus) bool { return c.Name == name })
		if i < 0 || rep.Checks[i].Available || rep.Checks[i].Note != NotAvailable {
			t.Errorf("%s without its part: %+v", name, rep.Checks)
		}
	}
	parts := &fakeParts{ended: true, advisory: true, stale: true, expired: true, quarantined: true, noSecondFactor: true}
	e.cfg.Support, e.cfg.Advisories, e.cfg.Feeds, e.cfg.Updates, e.cfg.Quarantine, e.cfg.SecondFA = parts, parts, parts, parts, parts, parts
	e.rebuild()
	ids := map[string]string{}
	for _, name := range optional {
		ids[name] = e.mustFind(name).ID
	}
	*parts = fakeParts{}
	for _, name := range optional {
		e.mustClose(name, ids[name])
	}
}

// Every sentence the audit shows a household reads easily.
func TestFindingsReadable(t *testing.T) {
	e := newEnv(t)
	e.household("h1")
	e.addDevice("h1", "smart-meter", "correct-horse-battery-staple-42")
	set := e.now.Add(-400 * 24 * time.Hour)
	if err := e.st.CreateDevice(t.Context(), store.Device{ID: "dev_old", HouseholdID: "h1", Name: "door", Type: "door-sensor",
		SecretHash: "$argon2id$x", CredentialSetAt: set, CreatedAt: set}); err != nil {
		t.Fatal(err)
	}
	e.putManifest("smart-meter", func(doc string) string {
		doc = strings.Replace(doc, `"candor:terms": "https://example.com/energy-supplier/privacy",`, "", 1)
		return strings.Replace(doc, "mailto:devices@candor.invalid", "mailto:"+placeholderContact, 1)
	})
	parts := &fakeParts{ended: true, advisory: true, quarantined: true, held: "dev_old"}
	e.cfg.Support, e.cfg.Advisories, e.cfg.Quarantine = parts, parts, parts
	e.rebuild()
	rep := e.run()
	seen := map[string]bool{}
	for _, f := range rep.Findings {
		if f.Household == "" {
			continue
		}
		seen[f.Check] = true
		for _, text := range []string{f.Title + ".", f.Why, f.Fix} {
			if ease := readability.Ease(text); ease < 60 {
				t.Errorf("%s: %q scores %.0f, want at least 60", f.Check, text, ease)
			}
		}
	}
	for _, c := range []string{checkDeviceCredentialAge, checkUnseen, checkChosenSecret, checkRecipientTerms, checkPlaceholders, checkSupport, checkAdvisories, checkQuarantine} {
		if !seen[c] {
			t.Errorf("no household finding of %s to read", c)
		}
	}
}

// A quarantine finding is as severe as the alarm behind the hold, one
// step milder when the device is only slowed down.
func TestQuarantineSeverity(t *testing.T) {
	for _, c := range []struct {
		alarm   string
		limited bool
		want    Severity
	}{
		{"critical", false, Critical}, {"critical", true, High},
		{"warning", false, High}, {"warning", true, Medium},
		{"info", false, Medium}, {"info", true, Low}, {"", false, Medium},
	} {
		if got := quarantineSeverity(Quarantine{Severity: c.alarm, RateLimited: c.limited}); got != c.want {
			t.Errorf("alarm %q, rate limited %v: %s, want %s", c.alarm, c.limited, got, c.want)
		}
	}
	e := newEnv(t)
	parts := &fakeParts{quarantined: true}
	e.cfg.Quarantine = parts
	e.rebuild()
	f := e.mustFind(checkQuarantine)
	if f.Severity != Critical || f.FixURL != "/devices/dev_q" || !contains(f.Evidence, "critical alarm (declared_rate on power: 540 seen where 12 is the limit)") {
		t.Fatalf("finding: %+v", f)
	}
	parts.quarantined = false
	e.mustClose(checkQuarantine, f.ID)
}

// An admin without a second factor is a high finding when the login page
// faces the network, medium when it is on loopback only.
func TestSecondFactorSeverity(t *testing.T) {
	for _, c := range []struct {
		addr string
		want Severity
	}{{"127.0.0.1:8080", Medium}, {"0.0.0.0:8080", High}, {"192.168.1.20:443", High}} {
		e := newEnv(t)
		e.household("h1")
		if _, err := e.st.CreateFirstAccount(t.Context(), store.Household{ID: "h1"}, store.Account{ID: "acc_admin", HouseholdID: "h1",
			Username: "admin", PasswordHash: "$argon2id$x", Role: store.RoleOwner, Admin: true, CreatedAt: e.now}); err != nil {
			t.Fatal(err)
		}
		parts := &fakeParts{noSecondFactor: true}
		e.cfg.SecondFA = parts
		e.cfg.Listeners = []Listener{{Name: "HTTP", Flag: "--http-addr", Addr: c.addr, TLS: true}}
		e.rebuild()
		f := e.mustFind(checkSecondFactor)
		if f.Severity != c.want || f.FixURL != "/security" || !contains(f.Evidence, "acc_admin") {
			t.Errorf("HTTP on %s: %+v", c.addr, f)
		}
		parts.noSecondFactor = false
		e.mustClose(checkSecondFactor, f.ID)
	}
}

// presence answers which devices are connected and records who was asked.
type presence struct {
	online map[string]bool
	asked  []string
}

func (p *presence) Connected(id string) bool {
	p.asked = append(p.asked, id)
	return p.online[id]
}

// A connected device is not reported as silent, and the broker is asked
// only about devices that would be: a device with a recent secret is
// settled without it (asking walks every connection, O(n²) over a fleet).
func TestUnseenAsksPresenceOnlyForSilentDevices(t *testing.T) {
	e := newEnv(t)
	e.household("h1")
	for id, age := range map[string]time.Duration{"dev_new": time.Hour, "dev_quiet": 100 * 24 * time.Hour, "dev_online": 100 * 24 * time.Hour} {
		set := e.now.Add(-age)
		if err := e.st.CreateDevice(t.Context(), store.Device{ID: id, HouseholdID: "h1", Name: "door", Type: "door-sensor",
			SecretHash: "$argon2id$x", CredentialSetAt: set, CreatedAt: set}); err != nil {
			t.Fatal(err)
		}
	}
	p := &presence{online: map[string]bool{"dev_online": true}}
	e.cfg.Presence = p
	e.rebuild()
	fs := open(e.run(), checkUnseen)
	if len(fs) != 1 || fs[0].Subject != "dev_quiet" {
		t.Fatalf("findings: %+v, want dev_quiet alone", fs)
	}
	slices.Sort(p.asked)
	if !slices.Equal(p.asked, []string{"dev_online", "dev_quiet"}) {
		t.Fatalf("presence asked about %v, want only the two silent devices", p.asked)
	}
}
