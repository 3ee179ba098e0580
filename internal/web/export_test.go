package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/export/exporttest"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// exportRig gives a test hub export jobs, started as internal/hub wires
// them: through the export service, which records the export and reads
// the household's data. With source set, jobs read that instead, to hold
// a job in a state the test wants to show.
type exportRig struct {
	jobs   *export.Jobs
	svc    atomic.Pointer[export.Service] // built after the hub, which builds the pages
	source func() export.Source
}

func (x *exportRig) Background() bool { return true }

func (x *exportRig) Start(ctx context.Context, acc store.Account, id age.Identity) (export.JobStatus, bool, error) {
	if x.source != nil {
		src := x.source()
		return x.jobs.Start(ctx, acc.ID, export.Person{ID: acc.ID, Username: acc.Username},
			func(context.Context) (export.Source, error) { return src, nil })
	}
	return x.svc.Load().Start(ctx, acc, id)
}

func (x *exportRig) List(ctx context.Context, accountID string) (export.JobList, error) {
	return x.svc.Load().List(ctx, accountID)
}

func (x *exportRig) Status(accountID, jobID string) (export.JobStatus, error) {
	return x.svc.Load().Status(accountID, jobID)
}

func (x *exportRig) Open(ctx context.Context, accountID, jobID string) (io.ReadCloser, export.JobStatus, error) {
	return x.svc.Load().Open(ctx, accountID, jobID)
}

func (x *exportRig) Cancel(accountID, jobID string) error {
	return x.svc.Load().Cancel(accountID, jobID)
}

func startHubWithExports(t *testing.T, opts export.JobsOptions, source func() export.Source) (*testHub, *exportRig) {
	t.Helper()
	x := &exportRig{source: source}
	var err error
	if x.jobs, err = export.NewJobs(filepath.Join(t.TempDir(), "exports"), opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.jobs.Close() }) // runs after the hub's cleanups
	h := startHub(t, func(c *Config) { c.Exports = x })
	x.svc.Store(export.NewService(export.ServiceConfig{Store: h.st, Catalog: h.cat, Consent: h.consent,
		Log: h.alog, Recorder: h.alog, Jobs: x.jobs}))
	return h, x
}

// heldSource is an export.Source with one smart meter of 1500 readings
// (as counted) whose readings are not returned until release is closed;
// with fail set, listing the devices fails instead.
type heldSource struct {
	release chan struct{}
	fail    bool
}

func (s *heldSource) Devices(context.Context) ([]export.Device, error) {
	if s.fail {
		return nil, errors.New("database disk image is malformed")
	}
	return []export.Device{{ID: "dev_held", Name: "Held", Type: "smart-meter", Streams: []string{"power"}, Readings: 1500}}, nil
}
func (s *heldSource) Manifest(context.Context, string, int) ([]byte, error) {
	return nil, store.ErrNotFound
}
func (s *heldSource) Readings(ctx context.Context, _, _ string, _ int64, _ int) ([]store.Reading, error) {
	select {
	case <-s.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (s *heldSource) ConsentRecords(context.Context) ([][]byte, error) { return nil, nil }
func (s *heldSource) AuditLog(context.Context) (io.ReadCloser, error)  { return nil, nil }

var exportPathRe = regexp.MustCompile(`^/my-data/exports/(exp_[a-z0-9]+)`)

// startExport submits the "Prepare my export" form and returns the job id.
func (b *browser) startExport(auto bool) string {
	b.t.Helper()
	b.get("/my-data")
	form := url.Values{}
	if auto {
		form.Set("auto", "1")
	}
	p := b.post("/my-data/export", form)
	m := exportPathRe.FindStringSubmatch(p.url)
	if p.status != 200 || m == nil {
		b.t.Fatalf("prepare export: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	if auto != strings.HasSuffix(p.url, "?auto=1") {
		b.t.Errorf("prepare export (auto %v) went to %s", auto, p.url)
	}
	return m[1]
}

func TestExportPagesFlow(t *testing.T) {
	t.Parallel()
	h, _ := startHubWithExports(t, export.JobsOptions{}, nil)
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Kitchen", "thermostat")
	for _, c := range []string{"20.5", "21", "21.5"} {
		if err := h.submit(d.ID, "temperature", `{"celsius": `+c+`}`); err != nil {
			t.Fatal(err)
		}
	}
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/my-data")
	mustContain(t, "my data", p.body, `action="/my-data/export"`, `id="prepare-export"`, `href="/api/v1/export"`, `name="csrf"`)
	mustContain(t, "my data", visibleText(p.body), "Prepare my export", "download my data now, without progress")
	mustNotContain(t, "my data", p.body, `name="auto" value="1" checked`) // nothing updates by itself unasked

	// A form without its CSRF token is refused.
	if p := b.post("/my-data/export", url.Values{csrfField: {"forged"}}); p.status != http.StatusForbidden {
		t.Errorf("export form without CSRF token: %d", p.status)
	}

	id := b.startExport(false)
	page := "/my-data/exports/" + id
	deadline := time.Now().Add(60 * time.Second)
	for p = b.get(page); !strings.Contains(p.body, "download-export-file") && time.Now().Before(deadline); p = b.get(page) {
		if p.header.Get("Refresh") != "" {
			t.Fatal("the page reloads itself though no one asked")
		}
		time.Sleep(20 * time.Millisecond)
	}
	text := visibleText(p.body)
	mustContain(t, "export ready", text, "Your export is ready", "The file holds 3 readings.", "Download my data (ZIP,",
		"You can download it again until", "Delete it from the hub now")
	mustContain(t, "export ready", p.body, `<a href="/my-data" aria-current="page">`)

	z := b.get(page + "/download")
	if z.status != 200 || z.header.Get("Content-Type") != "application/zip" ||
		!strings.Contains(z.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v", z.status, z.header)
	}
	checkExportZip(t, []byte(z.body), "readings/"+d.ID+"/temperature.csv")

	// My data lists it.
	mustContain(t, "my data", b.get("/my-data").body, `href="`+page+`"`, "ready to download until")

	// Someone in another household: not found, for the page and the file.
	if _, _, err := h.id.CreateHousehold(context.Background(), "Next door", identity.NewAccount{Username: "sam", Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	sam := h.browser()
	sam.login("sam", goodPassword)
	for _, path := range []string{page, page + "/download"} {
		if p := sam.get(path); p.status != http.StatusNotFound || strings.Contains(p.body, "Kitchen") {
			t.Errorf("Sam opens %s: %d", path, p.status)
		}
	}
	sam.get("/my-data")
	if p := sam.post(page+"/delete", nil); p.status != http.StatusNotFound {
		t.Errorf("Sam deletes Alex's export: %d", p.status)
	}

	// Alex deletes it.
	b.get(page)
	p = b.post(page+"/delete", nil)
	if p.url != "/my-data?done=changed" {
		t.Fatalf("delete went to %s", p.url)
	}
	mustContain(t, "my data after delete", visibleText(p.body), "The export is deleted from the hub.")
	if p := b.get(page); p.status != http.StatusNotFound {
		t.Errorf("deleted export's page: %d", p.status)
	}
	// The export is in the transparency log, with Alex as the actor.
	mustContain(t, "log", visibleText(b.get("/log").body), "You downloaded a data export")
}

// checkExportZip checks a downloaded archive against its index.json.
func checkExportZip(t *testing.T, zb []byte, wantFile string) {
	t.Helper()
	if _, ok := exporttest.Open(t, zb).Files[wantFile]; !ok {
		t.Errorf("the archive lacks %s", wantFile)
	}
}

func TestExportPageWhileRunningAndFailed(t *testing.T) {
	t.Parallel()
	var held atomic.Pointer[heldSource]
	h, x := startHubWithExports(t, export.JobsOptions{}, func() export.Source { return held.Load() })
	alex := h.setup("alex")
	b := h.browser()
	b.login("alex", goodPassword)

	hs := &heldSource{release: make(chan struct{})}
	held.Store(hs)
	id := b.startExport(false)
	page := "/my-data/exports/" + id
	p := b.last
	// Until the exporter has counted, the page says it is counting.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.body, `max="1500"`) && time.Now().Before(deadline) {
		mustContain(t, "counting", visibleText(p.body), "The hub is counting your readings.")
		time.Sleep(10 * time.Millisecond)
		p = b.get(page)
	}
	text := visibleText(p.body)
	mustContain(t, "running", text, "Preparing your export", "0 of 1,500 readings are in the file so far. That is 0%.",
		"Check again", "Update this page by itself", "Stop this export", "You can leave this page")
	mustContain(t, "running", p.body, `<progress id="export-progress" max="1500" value="0">`, `<label for="export-progress">`)
	if p.header.Get("Refresh") != "" {
		t.Error("the page reloads itself though no one asked")
	}
	// Asked to, it does, and says how to stop it.
	p = b.get(page + "?auto=1")
	if p.header.Get("Refresh") != "2" {
		t.Errorf("Refresh header %q, want 2", p.header.Get("Refresh"))
	}
	mustContain(t, "updating itself", visibleText(p.body), "This page updates itself every 2 seconds", "Stop the updates")
	mustNotContain(t, "updating itself", p.body, `id="export-auto-on"`)
	// Starting again returns the same job; with auto from the form.
	if again := b.startExport(true); again != id {
		t.Errorf("a second start made job %s, want %s", again, id)
	}
	// The file is not ready: its link leads back to the progress page.
	if p := b.get(page + "/download"); p.status != 200 || p.url != page {
		t.Errorf("download while running: %d at %s", p.status, p.url)
	}
	pages := map[string]string{"running": visibleText(b.get(page).body)}

	close(hs.release)
	if _, err := x.jobs.Wait(context.Background(), alex.ID, id); err != nil {
		t.Fatal(err)
	}
	p = b.get(page + "?auto=1")
	if p.header.Get("Refresh") != "" {
		t.Error("a finished export's page still reloads itself")
	}
	pages["done"] = visibleText(p.body)

	// A failed export says so, and offers to try again.
	b.post(page+"/delete", nil)
	held.Store(&heldSource{fail: true})
	id = b.startExport(false)
	page = "/my-data/exports/" + id
	if _, err := x.jobs.Wait(context.Background(), alex.ID, id); err != nil {
		t.Fatal(err)
	}
	p = b.get(page)
	text = visibleText(p.body)
	mustContain(t, "failed", text, "Your export failed", "Error: The hub could not finish the export; its log says why.", "Try again")
	mustNotContain(t, "failed", text, "malformed")
	pages["failed"] = text
	if p := b.get(page + "/download"); p.url != page {
		t.Errorf("download a failed export went to %s", p.url)
	}
	held.Store(&heldSource{release: make(chan struct{})})
	again := b.startExport(false)
	if again == id {
		t.Error("trying again returned the failed job")
	}
	// Stopping a running export.
	p = b.post("/my-data/exports/"+again+"/delete", nil)
	mustContain(t, "stopped", visibleText(p.body), "The export is stopped.")
	if _, err := x.jobs.Status(alex.ID, again); err == nil {
		t.Error("the stopped export is still there")
	}

	for name, text := range pages {
		if s := readability.Score(text); s.Ease < readability.PlainEnglish {
			t.Errorf("export page (%s) scores %.1f, want at least %.0f:\n%s", name, s.Ease, readability.PlainEnglish, text)
		}
	}
}

func TestExportPagesBusyAndOff(t *testing.T) {
	t.Parallel()
	held := &heldSource{release: make(chan struct{})}
	defer close(held.release)
	h, x := startHubWithExports(t, export.JobsOptions{MaxJobs: 1}, func() export.Source { return held })
	h.setup("alex")
	if _, _, err := x.jobs.Start(context.Background(), "acc_someone_else", export.Person{},
		func(context.Context) (export.Source, error) { return held, nil }); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("alex", goodPassword)
	b.get("/my-data")
	p := b.post("/my-data/export", nil)
	if p.status != http.StatusServiceUnavailable {
		t.Errorf("start when full: %d", p.status)
	}
	mustContain(t, "busy", visibleText(p.body), "There is a problem", "The hub is busy preparing other exports.")

	// Without export jobs the pages are as before, and the new paths
	// are not found.
	off := startHub(t)
	off.setup("alex")
	ob := off.browser()
	ob.login("alex", goodPassword)
	p = ob.get("/my-data")
	mustNotContain(t, "my data without jobs", p.body, "prepare-export")
	mustContain(t, "my data without jobs", visibleText(p.body), "Download my data (ZIP)")
	if p := ob.post("/my-data/export", nil); p.status != http.StatusNotFound {
		t.Errorf("export form without jobs: %d", p.status)
	}
	if p := ob.get("/my-data/exports/exp_x"); p.status != http.StatusNotFound {
		t.Errorf("export page without jobs: %d", p.status)
	}
}

func TestSizeAndThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1: "-1", -12345: "-12,345"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int64]string{1: "1 byte", 512: "512 bytes", 1500: "2 kB", 999_499: "999 kB", 2_345_678: "2.3 MB", 3_200_000_000: "3.2 GB"} {
		if got := sizeWords(n); got != want {
			t.Errorf("sizeWords(%d) = %q, want %q", n, got, want)
		}
	}
}

// startHubWithExportJobs is a test hub whose pages prepare exports in
// the background through the API, as the hub wires them.
func startHubWithExportJobs(t *testing.T) *testHub {
	t.Helper()
	h, _ := startHubWithExports(t, export.JobsOptions{}, nil)
	return h
}

// waitFor evaluates js until it is true, through the page reloading
// itself meanwhile (a reload cuts an evaluation off: that is no error).
func (tb *tab) waitFor(what, js string, timeout time.Duration) {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

// The progress page, asked to, updates itself without script until the
// export is ready; each state passes the accessibility checks.
func TestBrowserExportProgress(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	var held atomic.Pointer[heldSource]
	held.Store(&heldSource{release: make(chan struct{})})
	h, _ := startHubWithExports(t, export.JobsOptions{}, func() export.Source { return held.Load() })
	h.setup("alex")
	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	tb.open("/login")
	tb.step("fill login form",
		chromedp.SendKeys(chromedp.ID("username"), "alex"),
		chromedp.SendKeys(chromedp.ID("password"), goodPassword),
	)
	tb.submit("log in", "main form button[type=submit]")

	tb.open("/my-data")
	tb.step("ask for updates", chromedp.Click(chromedp.ID("export-auto")))
	tb.submit("prepare the export", "#prepare-export")
	auto := tb.path()
	if !exportPathRe.MatchString(auto) || !strings.HasSuffix(auto, "?auto=1") {
		t.Fatalf("preparing the export went to %s", auto)
	}
	page := strings.TrimSuffix(auto, "?auto=1")
	// It reloads itself: a mark set on the page is gone after a while.
	tb.waitFor("the progress bar", `document.querySelector('#export-progress[max="1500"]') !== null`, 20*time.Second)
	tb.step("mark the page", chromedp.Evaluate[chromedp.Void](`window.candorMark = 1; true`))
	tb.waitFor("the page to reload itself", `window.candorMark === undefined && document.readyState === 'complete'`, 20*time.Second)

	// The same page, not updating itself, for the checks that need a
	// page that stays put.
	tb.open(page)
	if eval[string](tb, `document.getElementById('export-progress-words').textContent`) != "0 of 1,500 readings are in the file so far. That is 0%." {
		t.Errorf("progress in words: %q", eval[string](tb, `document.getElementById('export-progress-words').textContent`))
	}
	tb.checkA11y("export progress, running")
	tb.checkFocusVisible("export progress, running")

	// Ready: the page that updates itself shows the download by itself.
	tb.open(auto)
	close(held.Load().release)
	tb.waitFor("the download link", `!!document.getElementById('download-export-file')`, 20*time.Second)
	tb.checkA11y("export ready")

	// Failed: it says so, and offers to try again.
	tb.submit("delete the export", "#export-delete")
	held.Store(&heldSource{fail: true})
	tb.submit("prepare the export", "#prepare-export")
	failed := tb.path()
	for i := 0; i < 200 && !eval[bool](tb, `!!document.getElementById('export-error')`); i++ {
		time.Sleep(100 * time.Millisecond)
		tb.open(failed)
	}
	tb.checkA11y("export failed")
	tb.checkFocusVisible("export failed")
	tb.checkProblems("end")
}
