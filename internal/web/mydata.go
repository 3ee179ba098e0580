package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/vault"
)

// exportURL is the API's data export; the API and the pages share the
// session cookie, so a plain link downloads the archive.
const exportURL = "/api/v1/export"

// The export progress page is registered here, next to its handlers.
func init() { pageNames = append(pageNames, "export") }

// exportRefreshSeconds is how often a progress page that the person asked
// to update itself reloads.
const exportRefreshSeconds = 2

type myDataView struct {
	ExportURL string
	Consent   bool // the archive holds consent records
	Log       bool // the archive holds log entries with proofs
	// Jobs: the hub prepares exports in the background, with progress.
	Jobs bool
	// Recent are the person's exports the hub still keeps, newest first.
	Recent []exportView
	// Missing says which hub nodes' exports are missing from Recent, so
	// that a shorter list is not taken for the whole one.
	Missing []missingNote
	// Locked: some of the household's history is under a key only its
	// owner holds (user-held mode); the export form then asks for it.
	Locked bool
}

// myData explains the data export and offers it: prepared in the
// background with a progress page when the hub runs export jobs, and as a
// direct download in any case. It links to the pages that delete
// readings, unlink history, delete the account and set the keys (erase.go).
func (s *Server) myData(w http.ResponseWriter, r *http.Request, v viewer) {
	s.renderMyData(w, r, v, http.StatusOK, nil)
}

func (s *Server) renderMyData(w http.ResponseWriter, r *http.Request, v viewer, status int, errs []formError) {
	p := s.pageFor(r, v, "My data", "my-data")
	p.Errors = errs
	d := myDataView{ExportURL: exportURL, Consent: s.cfg.Consent != nil, Log: s.cfg.Log != nil, Jobs: s.exportsOn()}
	d.Locked = s.householdLocked(r.Context(), v.Account.HouseholdID)
	if d.Jobs {
		list, err := s.cfg.Exports.List(r.Context(), v.Account.ID)
		if err != nil {
			s.log.Warn("list export jobs", "account", v.Account.ID, "err", err)
		}
		for _, st := range list.Jobs {
			d.Recent = append(d.Recent, newExportView(st, false))
		}
		d.Missing = missingNotes(list)
	}
	p.Data = d
	s.render(w, r, status, "mydata", p)
}

// missingNote is one warning about exports missing from the list.
type missingNote struct {
	ID   string // of the paragraph, for tests and links
	Text string
}

// missingNotes says whose exports the list lacks: hub nodes that did not
// answer in time, and hub nodes of an older version that cannot list
// them (during an upgrade). Node names are in the text so the person can
// pass them on to whoever runs the hub.
func missingNotes(l export.JobList) []missingNote {
	var out []missingNote
	if n := len(l.Unanswered); n > 0 {
		out = append(out, missingNote{ID: "exports-unanswered", Text: fmt.Sprintf(
			"%s did not answer in time. Exports started there are not listed here. Reload this page to try again. If this goes on, tell the person who runs your hub: %s %s.",
			plural(int64(n), "hub node", "hub nodes"), nodeWord(n), joinAnd(l.Unanswered))})
	}
	if n := len(l.NotAsked); n > 0 {
		verb, pron := "runs", "it is"
		if n > 1 {
			verb, pron = "run", "they are"
		}
		out = append(out, missingNote{ID: "exports-not-asked", Text: fmt.Sprintf(
			"%s %s an older version that cannot list exports. Exports started there are not listed here until %s updated (%s %s).",
			plural(int64(n), "hub node", "hub nodes"), verb, pron, nodeWord(n), joinAnd(l.NotAsked))})
	}
	return out
}

func nodeWord(n int) string {
	if n == 1 {
		return "hub node"
	}
	return "hub nodes"
}

// householdLocked reports whether some of the household's history is
// sealed under a key the hub cannot open (user-held mode).
func (s *Server) householdLocked(ctx context.Context, householdID string) bool {
	if s.cfg.Keys == nil {
		return false
	}
	devs, err := s.st.Devices(ctx, householdID)
	if err != nil {
		return false
	}
	return vault.AnyUserHeld(s.cfg.Keys, devs)
}

// exportsOn reports whether the hub prepares exports in the background.
func (s *Server) exportsOn() bool {
	return s.cfg.Exports != nil && s.cfg.Exports.Background()
}

// msgExportsBusy is shown when the hub keeps as many exports as it allows.
const msgExportsBusy = "The hub is busy preparing other exports. Try again in a few minutes, or download your data now without progress."

// postExport starts preparing the person's export (or finds the one
// already running) and shows its progress page.
func (s *Server) postExport(w http.ResponseWriter, r *http.Request, v viewer) {
	if !s.exportsOn() {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	var id age.Identity
	if pasted := strings.TrimSpace(r.PostFormValue("identity")); pasted != "" {
		var err error
		if id, err = vault.ParseIdentity(pasted); err != nil {
			// Never echoed: it is a secret.
			s.renderMyData(w, r, v, http.StatusUnprocessableEntity, []formError{{Field: "export-identity",
				Message: "This is not an age secret key. It starts with AGE-SECRET-KEY-1."}})
			return
		}
	}
	st, _, err := s.cfg.Exports.Start(r.Context(), v.Account, id)
	switch {
	case errors.Is(err, export.ErrTooManyJobs):
		s.renderMyData(w, r, v, http.StatusServiceUnavailable, []formError{{Message: msgExportsBusy}})
		return
	case errors.As(err, new(*export.LockedError)):
		s.renderMyData(w, r, v, http.StatusConflict, []formError{{Message: msgExportLocked}})
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	target := exportPagePath(st.ID)
	if r.PostFormValue("auto") == "1" {
		target += "?auto=1"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// msgExportLocked explains why an export cannot be made in user-held mode.
const msgExportLocked = "Some of your household's data is locked with a key that only its owner holds. So the hub cannot put it in a copy. Go to Your keys, let the hub hold the key again, then try again."

func exportPagePath(id string) string { return "/my-data/exports/" + url.PathEscape(id) }

// exportView is one export job as the pages show it.
type exportView struct {
	ID           string
	PagePath     string
	DownloadPath string
	Running      bool
	Done         bool
	Failed       bool
	// Counted: the total is known, so the page can say how far it got.
	Counted       bool
	ReadingsDone  string
	ReadingsTotal string
	// Done and Total feed the <progress> element; Percent says the same
	// in words.
	DoneN, TotalN int64
	Percent       int64
	Size          string
	StartedAt     time.Time
	FinishedAt    time.Time
	ExpiresAt     time.Time
	Error         string
	// Auto: the person asked the page to update itself while it runs.
	Auto           bool
	RefreshSeconds int
}

func newExportView(st export.JobStatus, auto bool) exportView {
	ev := exportView{
		ID: st.ID, PagePath: exportPagePath(st.ID), DownloadPath: exportPagePath(st.ID) + "/download",
		Running: st.State == export.JobRunning, Done: st.State == export.JobDone, Failed: st.State == export.JobFailed,
		Counted: st.ReadingsTotal >= 0, ReadingsDone: thousands(st.ReadingsDone), ReadingsTotal: thousands(st.ReadingsTotal),
		DoneN: st.ReadingsDone, TotalN: st.ReadingsTotal,
		Size: sizeWords(st.Bytes), StartedAt: st.StartedAt, FinishedAt: st.FinishedAt, ExpiresAt: st.ExpiresAt,
		Error: st.Error, RefreshSeconds: exportRefreshSeconds,
	}
	ev.Auto = auto && ev.Running
	switch {
	case st.ReadingsTotal > 0:
		ev.Percent = min(100, st.ReadingsDone*100/st.ReadingsTotal)
	case st.ReadingsTotal == 0:
		ev.Percent = 100 // nothing to export: only the manifests and the log
	}
	if ev.Done {
		ev.Percent = 100
	}
	return ev
}

// exportPage shows how far one of the person's exports got. It works
// without JavaScript: while the export runs, the person reloads it with a
// link, or asks it to reload itself every few seconds (?auto=1). The
// reload is opt-in, like the live readings of the device page, because a
// page that reloads by itself unasked takes screen-reader users back to
// its top each time (WCAG 2.2.1, failure F41; axe-core reports any meta
// refresh as a violation); whoever asked for it can stop it with a link.
//
// The reload is the Refresh response header, which browsers treat as
// <meta http-equiv="refresh">: a meta element belongs in the head, which
// the shared layout does not open to pages. Neither is script, so the
// Content-Security-Policy does not apply.
func (s *Server) exportPage(w http.ResponseWriter, r *http.Request, v viewer) {
	if !s.exportsOn() {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	st, err := s.cfg.Exports.Status(v.Account.ID, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ev := newExportView(st, r.URL.Query().Get("auto") == "1")
	title := "Your export"
	switch {
	case ev.Running && ev.Counted:
		title = fmt.Sprintf("Preparing your export (%d%%)", ev.Percent)
	case ev.Running:
		title = "Preparing your export"
	case ev.Done:
		title = "Your export is ready"
	case ev.Failed:
		title = "Your export failed"
	}
	p := s.pageFor(r, v, title, "my-data")
	p.Data = ev
	if ev.Auto {
		w.Header().Set("Refresh", strconv.Itoa(exportRefreshSeconds))
	}
	s.render(w, r, http.StatusOK, "export", p)
}

// exportDownload sends the archive of a finished export, decrypted as it
// is read. Before it is ready (or when it failed) the progress page says
// why there is nothing yet.
func (s *Server) exportDownload(w http.ResponseWriter, r *http.Request, v viewer) {
	if !s.exportsOn() {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	id := r.PathValue("id")
	rc, st, err := s.cfg.Exports.Open(r.Context(), v.Account.ID, id)
	switch {
	case errors.Is(err, export.ErrJobNotReady), errors.Is(err, export.ErrJobFailed):
		http.Redirect(w, r, exportPagePath(id), http.StatusSeeOther)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	if err := export.ServeArchive(w, rc, st); err != nil {
		// The browser sees a download cut short and can try again.
		s.log.Warn("export download failed", "job", st.ID, "account", v.Account.ID, "err", err)
	}
}

// postExportDelete stops one of the person's exports, or deletes a
// finished one from the hub before it expires.
func (s *Server) postExportDelete(w http.ResponseWriter, r *http.Request, v viewer) {
	if !s.exportsOn() {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	st, err := s.cfg.Exports.Status(v.Account.ID, r.PathValue("id"))
	if err == nil {
		err = s.cfg.Exports.Cancel(v.Account.ID, st.ID)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if st.State == export.JobRunning {
		s.flash(v, "The export is stopped. The hub deleted what it had prepared.")
	} else {
		s.flash(v, "The export is deleted from the hub.")
	}
	http.Redirect(w, r, "/my-data?done="+flashDone, http.StatusSeeOther)
}

// thousands writes n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// sizeWords says how large a file is, the way people read it.
func sizeWords(n int64) string {
	switch {
	case n < 1000:
		if n == 1 {
			return "1 byte"
		}
		return strconv.FormatInt(n, 10) + " bytes"
	case n < 1_000_000:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 0, 64) + " kB"
	case n < 1_000_000_000:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
	}
	return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + " GB"
}
