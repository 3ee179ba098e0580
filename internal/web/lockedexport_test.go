package web

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// lockedHub is a hub with export jobs and the vault, where alex's meter
// has 3 readings under a key only alex holds (user-held mode).
func lockedHub(t *testing.T) (*testHub, *export.Jobs, store.Account, string) {
	t.Helper()
	h := startHub(t)
	rig := h.withErasure()
	jobs, err := export.NewJobs(filepath.Join(t.TempDir(), "exports"), export.JobsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jobs.Close() })
	h.web.cfg.Exports = export.NewService(export.ServiceConfig{Store: h.st, Catalog: h.cat, Consent: h.consent,
		Log: h.alog, Recorder: h.alog, Jobs: jobs, Opener: rig.vault, Keys: rig.vault, IdentityOpener: rig.vault})

	alex := h.setup("alex")
	d := h.addOwnDevice(alex, "Meter", "smart-meter")
	en, err := rig.vault.Enroll(context.Background(), alex.ID, vault.Settings{Mode: vault.UserHeld, GenerateIdentity: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Hour)
	var rs []store.Reading
	var aad []byte
	for i := range 3 {
		ts := at.Add(time.Duration(i) * time.Second)
		aad = vault.AppendReadingAAD(aad[:0], d.ID, "power", ts)
		sealed, err := rig.vault.Seal(alex.ID, []byte(`{"watts": 5}`), aad)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, store.Reading{DeviceID: d.ID, Stream: "power", Time: ts, ManifestVersion: 1, Payload: sealed})
	}
	if err := h.st.AppendReadings(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	// A restart would drop the live key; rotating ends its epoch the same way.
	if _, err := rig.vault.Rotate(context.Background(), alex.ID); err != nil {
		t.Fatal(err)
	}
	return h, jobs, alex, en.Identity
}

// TestExportOfLockedHistoryAsksForTheKey puts a person's keys in user-held
// mode: My data then asks for the secret key with the export and offers no
// direct download; a wrong paste is refused without being echoed; the
// right key starts the export.
func TestExportOfLockedHistoryAsksForTheKey(t *testing.T) {
	t.Parallel()
	h, jobs, alex, key := lockedHub(t)
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/my-data")
	mustContain(t, "my data", p.body, `id="export-identity"`)
	mustNotContain(t, "my data", p.body, `id="download-export"`)

	// Without the key: refused, with a plain reason.
	p = b.post("/my-data/export", nil)
	if p.status != http.StatusConflict || !strings.Contains(visibleText(p.body), "locked with a key") {
		t.Errorf("export without the key: %d: %s", p.status, visibleText(p.body))
	}
	// Not a key: refused, not echoed.
	p = b.post("/my-data/export", url.Values{"identity": {"AGE-SECRET-KEY-1NOTAKEY"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Errorf("bad key: %d: %s", p.status, visibleText(p.body))
	}
	mustNotContain(t, "bad key", p.body, "AGE-SECRET-KEY-1NOTAKEY")
	// Another key: the job fails and says why.
	other, _ := age.GenerateX25519Identity()
	p = b.post("/my-data/export", url.Values{"identity": {other.String()}})
	if !strings.Contains(p.url, "/my-data/exports/") {
		t.Fatalf("export with another key went to %s (%d)", p.url, p.status)
	}
	st := waitExport(t, jobs, alex.ID)
	if st.State != export.JobFailed || !strings.Contains(st.Error, "does not open") {
		t.Errorf("export with another key: %+v", st)
	}
	// The right key: done, with the readings.
	p = b.post("/my-data/export", url.Values{"identity": {key}})
	if !strings.Contains(p.url, "/my-data/exports/") {
		t.Fatalf("export with the key went to %s (%d)", p.url, p.status)
	}
	st = waitExport(t, jobs, alex.ID)
	if st.State != export.JobDone || st.ReadingsDone != 3 {
		t.Errorf("export with the key: %+v", st)
	}
}

// waitExport waits for the account's newest export to finish.
func waitExport(t *testing.T, jobs *export.Jobs, owner string) export.JobStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		list := jobs.List(owner)
		if len(list) > 0 && list[0].State != export.JobRunning {
			return list[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("export still running: %+v", list)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrowserLockedExportForm audits My data with the secret-key field.
func TestBrowserLockedExportForm(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h, _, _, _ := lockedHub(t)
	tb := startBrowser(t, h.srv.URL)
	tb.open("/login")
	tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), "alex"), chromedp.SendKeys(chromedp.ID("password"), goodPassword))
	tb.submit("log in", "main form button[type=submit]")
	tb.open("/my-data")
	if !eval[bool](tb, `!!document.getElementById('export-identity')`) {
		t.Fatal("My data does not ask for the secret key")
	}
	tb.checkA11y("my data, locked history")
	tb.checkFocusVisible("my data, locked history")
}
