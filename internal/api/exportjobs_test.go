package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/export/exporttest"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

const exportTestPassword = "violet-canyon-drifting-41"

// exportHub is the API on a real SQLite store, catalog, identity and
// transparency log, with export jobs, served on a loopback port.
type exportHub struct {
	t     *testing.T
	st    *sqlite.DB
	id    *identity.Service
	alog  *auditlog.Log
	jobs  *export.Jobs
	srv   *httptest.Server
	local *httptest.Server // the control socket's handler: the operator
	alex  store.Account
	sam   store.Account // another household
	tok   map[string]string
}

func startExportHub(t *testing.T, withJobs bool, opts export.JobsOptions) *exportHub {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	sqlitetest.Write(t, filepath.Join(dir, "candor.db")) // migrated once per test binary
	st, err := sqlite.Open(ctx, filepath.Join(dir, "candor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := catalog.Open(ctx, st, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lkey, err := auditlog.GenerateKey("test.candor.local")
	if err != nil {
		t.Fatal(err)
	}
	alog, err := auditlog.Open(ctx, filepath.Join(dir, "audit"), lkey, auditlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	id := identity.New(st, identity.Options{Log: alog})
	h := &exportHub{t: t, st: st, id: id, alog: alog, tok: map[string]string{}}
	cfg := Config{Identity: id, Catalog: cat, Log: alog, Store: st}
	if withJobs {
		if h.jobs, err = export.NewJobs(filepath.Join(dir, "exports"), opts); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.jobs.Close() }) // after the servers close
		cfg.Export = export.NewService(export.ServiceConfig{Store: st, Catalog: cat, Log: alog, Recorder: alog, Jobs: h.jobs})
	}
	s := New(cfg)
	h.srv = httptest.NewServer(s.Handler())
	t.Cleanup(h.srv.Close)
	h.local = httptest.NewServer(s.LocalHandler())
	t.Cleanup(h.local.Close)

	setup, err := id.SetupToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.alex, err = id.Setup(ctx, setup, "Home", identity.NewAccount{Username: "alex", Password: exportTestPassword}); err != nil {
		t.Fatal(err)
	}
	if _, h.sam, err = id.CreateHousehold(ctx, "Next door", identity.NewAccount{Username: "sam", Password: exportTestPassword}); err != nil {
		t.Fatal(err)
	}
	for _, acc := range []store.Account{h.alex, h.sam} {
		_, tok, err := id.CreateToken(ctx, acc.ID, "test")
		if err != nil {
			t.Fatal(err)
		}
		h.tok[acc.ID] = tok
	}
	return h
}

// meter adds a smart meter to Alex's household with n readings.
func (h *exportHub) meter(n int) store.Device {
	h.t.Helper()
	d, _, err := h.id.AddDevice(context.Background(), identity.NewDevice{HouseholdID: h.alex.HouseholdID, Name: "Hall meter", Type: "smart-meter"})
	if err != nil {
		h.t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour)
	var rs []store.Reading
	for i := range n {
		rs = append(rs, store.Reading{DeviceID: d.ID, Stream: "power", Time: t0.Add(time.Duration(i) * time.Second),
			ManifestVersion: 1, Payload: fmt.Appendf(nil, `{"watts": %d}`, 100+i)})
	}
	if err := h.st.AppendReadings(context.Background(), rs); err != nil {
		h.t.Fatal(err)
	}
	return d
}

// do sends a request as acc ("" for the local operator) and returns the
// status, headers and body.
func (h *exportHub) do(method, path string, acc store.Account) (int, http.Header, []byte) {
	h.t.Helper()
	base := h.srv.URL
	if acc.ID == "" {
		base = h.local.URL
	}
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if acc.ID != "" {
		req.Header.Set("Authorization", "Bearer "+h.tok[acc.ID])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		h.t.Errorf("%s %s: %d answered as %q", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, resp.Header, b
}

func (h *exportHub) job(method, path string, acc store.Account, wantCode int) exportJobJSON {
	h.t.Helper()
	code, _, b := h.do(method, path, acc)
	if code != wantCode {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, wantCode)
	}
	var j exportJobJSON
	if err := json.Unmarshal(b, &j); err != nil {
		h.t.Fatalf("%s %s: %v: %s", method, path, err, b)
	}
	return j
}

func problemType(t *testing.T, b []byte) string {
	t.Helper()
	var p problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("not a problem document: %s", b)
	}
	return strings.TrimPrefix(p.Type, problemPrefix)
}

// exportsRecorded counts the data exports in the transparency log and
// checks each names Alex as actor and subject.
func (h *exportHub) exportsRecorded() int {
	h.t.Helper()
	n := 0
	_, err := h.alog.Export(context.Background(), io.Discard, auditlog.ExportOptions{Match: func(ev *auditlog.Event) bool {
		if ev.Action == auditlog.ActionReadingsExport {
			n++
			if ev.Actor.Kind != auditlog.ActorPerson || ev.Actor.ID != h.alex.ID || ev.Subject.Account != h.alex.ID {
				h.t.Errorf("export recorded with actor %+v, subject %+v", ev.Actor, ev.Subject)
			}
		}
		return false
	}})
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestExportJobLifecycle(t *testing.T) {
	h := startExportHub(t, true, export.JobsOptions{})
	d := h.meter(40)

	code, hdr, b := h.do("POST", "/api/v1/exports", h.alex)
	if code != http.StatusAccepted {
		t.Fatalf("start: %d %s", code, b)
	}
	var j exportJobJSON
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(j.ID, "exp_") || j.StatusURL != "/api/v1/exports/"+j.ID || j.DownloadURL != j.StatusURL+"/download" ||
		hdr.Get("Location") != j.StatusURL || j.StartedAt.IsZero() {
		t.Fatalf("new job: %s (Location %q)", b, hdr.Get("Location"))
	}
	for _, key := range []string{`"finished_at":`, `"expires_at":`, `"readings_total":`, `"readings_done":`, `"bytes":`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("job JSON lacks %s: %s", key, b)
		}
	}

	deadline := time.Now().Add(60 * time.Second)
	for j.State == "running" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		j = h.job("GET", j.StatusURL, h.alex, http.StatusOK)
	}
	if j.State != "done" || j.ReadingsDone != 40 || j.ReadingsTotal != 40 || j.Bytes <= 0 || j.FinishedAt == nil || j.ExpiresAt == nil || j.Error != "" {
		t.Fatalf("finished job: %+v", j)
	}
	if h.exportsRecorded() != 1 {
		t.Errorf("%d exports in the transparency log, want 1", h.exportsRecorded())
	}

	// Download: the archive, whose files match index.json.
	code, hdr, zb := h.do("GET", j.DownloadURL, h.alex)
	if code != 200 || hdr.Get("Content-Type") != "application/zip" || hdr.Get("Content-Length") != fmt.Sprint(j.Bytes) ||
		!strings.Contains(hdr.Get("Content-Disposition"), `filename="candor-export-`) {
		t.Fatalf("download: %d %v", code, hdr)
	}
	files := unzipAll(t, zb)
	var index struct {
		Files []struct{ Name, SHA256 string } `json:"files"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	for _, f := range index.Files {
		sum := sha256.Sum256(files[f.Name])
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s does not match index.json", f.Name)
		}
	}
	if csv := files["readings/"+d.ID+"/power.csv"]; bytes.Count(csv, []byte("\n")) != 41 {
		t.Errorf("power.csv has %d lines, want a header and 40 rows", bytes.Count(csv, []byte("\n")))
	}

	// The list: Alex's job, on a hub of one node whole; Sam's is empty;
	// the operator has none to list.
	list := func(who store.Account) exportJobListJSON {
		t.Helper()
		code, _, b := h.do("GET", "/api/v1/exports", who)
		var l exportJobListJSON
		if code != http.StatusOK || json.Unmarshal(b, &l) != nil {
			t.Fatalf("list as %q: %d %s", who.Username, code, b)
		}
		for _, key := range []string{`"exports":[`, `"complete":true`, `"unanswered_nodes":[]`, `"not_asked_nodes":[]`} {
			if !bytes.Contains(b, []byte(key)) {
				t.Errorf("list as %q lacks %s: %s", who.Username, key, b)
			}
		}
		return l
	}
	if l := list(h.alex); len(l.Exports) != 1 || l.Exports[0].ID != j.ID || l.Exports[0].State != "done" || !l.Complete {
		t.Errorf("Alex's list: %+v", l)
	}
	if l := list(h.sam); len(l.Exports) != 0 {
		t.Errorf("Sam's list: %+v", l)
	}
	if code, _, b := h.do("GET", "/api/v1/exports", store.Account{}); code != http.StatusBadRequest {
		t.Errorf("the operator listed exports: %d %s", code, b)
	}

	// Someone else's job is not found, whatever they try; so is it for
	// the operator, who has no export of their own.
	for _, who := range []store.Account{h.sam, {}} {
		for _, req := range []struct{ method, path string }{{"GET", j.StatusURL}, {"GET", j.DownloadURL}, {"DELETE", j.StatusURL}} {
			code, _, b := h.do(req.method, req.path, who)
			if code != http.StatusNotFound || problemType(t, b) != "not-found" {
				t.Errorf("%q: %s %s: %d %s", who.Username, req.method, req.path, code, b)
			}
		}
	}
	if code, _, b := h.do("POST", "/api/v1/exports", store.Account{}); code != http.StatusBadRequest {
		t.Errorf("the operator started an export: %d %s", code, b)
	}

	// Alex deletes it: gone.
	if code, _, b := h.do("DELETE", j.StatusURL, h.alex); code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", code, b)
	}
	for _, path := range []string{j.StatusURL, j.DownloadURL} {
		if code, _, _ := h.do("GET", path, h.alex); code != http.StatusNotFound {
			t.Errorf("GET %s after delete: %d", path, code)
		}
	}
	// The streamed export still works, and is recorded the same way.
	if code, hdr, zb := h.do("GET", "/api/v1/export", h.alex); code != 200 || hdr.Get("Content-Type") != "application/zip" {
		t.Errorf("streamed export: %d %v", code, hdr)
	} else {
		unzipAll(t, zb)
	}
	if n := h.exportsRecorded(); n != 2 {
		t.Errorf("%d exports in the transparency log, want 2", n)
	}
}

func unzipAll(t *testing.T, zb []byte) map[string][]byte {
	t.Helper()
	return exporttest.Open(t, zb).Files
}

// heldSource is an export.Source that blocks until released (or fails
// with err when set), to hold a job in a state.
type heldSource struct {
	release chan struct{}
	err     error
}

func (s *heldSource) Devices(ctx context.Context) ([]export.Device, error) {
	if s.err != nil {
		return nil, s.err
	}
	select {
	case <-s.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (s *heldSource) Manifest(context.Context, string, int) ([]byte, error) {
	return nil, store.ErrNotFound
}
func (s *heldSource) Readings(context.Context, string, string, int64, int) ([]store.Reading, error) {
	return nil, nil
}
func (s *heldSource) ConsentRecords(context.Context) ([][]byte, error) { return nil, nil }
func (s *heldSource) AuditLog(context.Context) (io.ReadCloser, error)  { return nil, nil }

func (h *exportHub) startHeld(acc store.Account, src *heldSource) export.JobStatus {
	h.t.Helper()
	st, started, err := h.jobs.Start(context.Background(), acc.ID, export.Person{ID: acc.ID},
		func(context.Context) (export.Source, error) { return src, nil })
	if err != nil || !started {
		h.t.Fatalf("start a held job: %v %v", started, err)
	}
	return st
}

func TestExportJobNotReadyAndFailed(t *testing.T) {
	h := startExportHub(t, true, export.JobsOptions{})
	held := &heldSource{release: make(chan struct{})}
	st := h.startHeld(h.alex, held)

	// Running: status says so, download is a 409, and starting again
	// returns the running job (200) without recording a second export.
	j := h.job("GET", "/api/v1/exports/"+st.ID, h.alex, http.StatusOK)
	if j.State != "running" || j.FinishedAt != nil || j.ExpiresAt != nil {
		t.Errorf("running job: %+v", j)
	}
	code, _, b := h.do("GET", j.DownloadURL, h.alex)
	if code != http.StatusConflict || problemType(t, b) != "export-not-ready" {
		t.Errorf("download while running: %d %s", code, b)
	}
	if again := h.job("POST", "/api/v1/exports", h.alex, http.StatusOK); again.ID != st.ID {
		t.Errorf("start while running gave job %s, want %s", again.ID, st.ID)
	}
	if n := h.exportsRecorded(); n != 0 {
		t.Errorf("%d exports recorded for a start that started nothing", n)
	}
	close(held.release)
	if _, err := h.jobs.Wait(context.Background(), h.alex.ID, st.ID); err != nil {
		t.Fatal(err)
	}

	// Failed: the status says why in words, the download is a 409.
	failed := h.startHeld(h.sam, &heldSource{err: errors.New("disk I/O error on page 7")})
	if _, err := h.jobs.Wait(context.Background(), h.sam.ID, failed.ID); err != nil {
		t.Fatal(err)
	}
	j = h.job("GET", "/api/v1/exports/"+failed.ID, h.sam, http.StatusOK)
	if j.State != "failed" || j.Error == "" || strings.Contains(j.Error, "page 7") || j.FinishedAt == nil {
		t.Errorf("failed job: %+v", j)
	}
	code, _, b = h.do("GET", j.DownloadURL, h.sam)
	if code != http.StatusConflict || problemType(t, b) != "export-failed" {
		t.Errorf("download a failed job: %d %s", code, b)
	}
}

func TestExportJobsBusyAndNotConfigured(t *testing.T) {
	h := startExportHub(t, true, export.JobsOptions{MaxJobs: 1})
	held := &heldSource{release: make(chan struct{})}
	defer close(held.release)
	h.startHeld(h.sam, held)
	code, hdr, b := h.do("POST", "/api/v1/exports", h.alex)
	if code != http.StatusServiceUnavailable || problemType(t, b) != "exports-busy" || hdr.Get("Retry-After") == "" {
		t.Errorf("start when full: %d %v %s", code, hdr, b)
	}

	off := startExportHub(t, false, export.JobsOptions{})
	for _, req := range []struct{ method, path string }{
		{"POST", "/api/v1/exports"}, {"GET", "/api/v1/exports"}, {"GET", "/api/v1/exports/exp_x"}, {"GET", "/api/v1/exports/exp_x/download"}, {"DELETE", "/api/v1/exports/exp_x"},
	} {
		code, _, b := off.do(req.method, req.path, off.alex)
		if code != http.StatusServiceUnavailable || problemType(t, b) != "exports-unavailable" || !strings.Contains(string(b), "exports not configured") {
			t.Errorf("%s %s without export jobs: %d %s", req.method, req.path, code, b)
		}
	}
	// The streamed export does not need them.
	if code, _, _ := off.do("GET", "/api/v1/export", off.alex); code != http.StatusOK {
		t.Errorf("streamed export without export jobs: %d", code)
	}
}
