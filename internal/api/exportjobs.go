package api

import (
	"errors"
	"net/http"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/vault"
)

// Export jobs: the same archive as GET /api/v1/export, prepared in the
// background (package export, Jobs) so that a large history shows its
// progress and a dropped connection does not throw the work away. The
// archive waits, encrypted with a key held only in memory, until the
// person downloads it or it expires.

// exportJobJSON is an export job as the API shows it.
type exportJobJSON struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// ReadingsTotal is -1 while the hub is still counting.
	ReadingsDone  int64      `json:"readings_done"`
	ReadingsTotal int64      `json:"readings_total"`
	Bytes         int64      `json:"bytes"`
	StartedAt     time.Time  `json:"started_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	ExpiresAt     *time.Time `json:"expires_at"`
	Error         string     `json:"error,omitempty"`
	DownloadURL   string     `json:"download_url"`
	StatusURL     string     `json:"status_url"`
}

func exportJobView(st export.JobStatus) exportJobJSON {
	out := exportJobJSON{
		ID: st.ID, State: string(st.State),
		ReadingsDone: st.ReadingsDone, ReadingsTotal: st.ReadingsTotal, Bytes: st.Bytes,
		StartedAt: st.StartedAt, Error: st.Error,
		StatusURL:   "/api/v1/exports/" + st.ID,
		DownloadURL: "/api/v1/exports/" + st.ID + "/download",
	}
	if !st.FinishedAt.IsZero() {
		t := st.FinishedAt
		out.FinishedAt = &t
	}
	if !st.ExpiresAt.IsZero() {
		t := st.ExpiresAt
		out.ExpiresAt = &t
	}
	return out
}

// failExport answers the errors of export jobs that fail does not know.
func (s *Server) failExport(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, export.ErrJobsOff):
		writeProblem(w, r, http.StatusServiceUnavailable, "exports-unavailable", "exports not configured")
	case errors.Is(err, export.ErrTooManyJobs):
		w.Header().Set("Retry-After", "60")
		writeProblem(w, r, http.StatusServiceUnavailable, "exports-busy",
			"the hub is preparing as many exports as it allows; try again in a few minutes")
	case errors.Is(err, export.ErrJobsClosed):
		writeProblem(w, r, http.StatusServiceUnavailable, "exports-unavailable", "the hub is shutting down")
	case errors.Is(err, export.ErrJobNotReady):
		writeProblem(w, r, http.StatusConflict, "export-not-ready",
			"the export is still being prepared; follow its status_url until its state is done")
	case errors.Is(err, export.ErrJobFailed):
		writeProblem(w, r, http.StatusConflict, "export-failed",
			"the export failed, so there is nothing to download; its status says why; start a new one")
	default:
		s.fail(w, r, err)
	}
}

// exportJobs reports whether the hub prepares exports in the background,
// and answers 503 when it does not.
func (s *Server) exportJobs(w http.ResponseWriter, r *http.Request) bool {
	if !s.exports.Background() {
		s.failExport(w, r, export.ErrJobsOff)
		return false
	}
	return true
}

// startExportJob starts preparing the caller's export: 202 with the new
// job, or 200 with the caller's export that is already running.
func (s *Server) startExportJob(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !s.exportJobs(w, r) {
		return
	}
	if p.Operator {
		s.fail(w, r, badRequest("an export is a person's: log in as a member of the household"))
		return
	}
	// An optional body carries the person's age identity, for history
	// under a key only they hold (user-held mode). It lives in memory for
	// the job's run only.
	var id age.Identity
	if r.ContentLength != 0 {
		var in struct {
			Identity string `json:"identity,omitempty"`
		}
		if err := decodeJSON(w, r, &in); err != nil {
			s.fail(w, r, err)
			return
		}
		if in.Identity != "" {
			var err error
			if id, err = vault.ParseIdentity(in.Identity); err != nil {
				s.fail(w, r, identity.ErrInvalid.Errorf("identity: %w", err))
				return
			}
		}
	}
	st, started, err := s.exports.Start(r.Context(), p.Account, id)
	if err != nil {
		s.failExport(w, r, err)
		return
	}
	view := exportJobView(st)
	w.Header().Set("Location", view.StatusURL)
	code := http.StatusAccepted
	if !started {
		code = http.StatusOK
	}
	writeJSON(w, code, view)
}

// exportJobListJSON is the list of a person's exports as the API shows
// it. On a hub of several nodes each export lives on the node that
// started it; a node that did not answer in time, or runs an older
// version that cannot list exports, is named, so that a client does not
// take a shorter list for the whole one.
type exportJobListJSON struct {
	Exports []exportJobJSON `json:"exports"`
	// Complete: no hub node's exports are missing.
	Complete        bool     `json:"complete"`
	UnansweredNodes []string `json:"unanswered_nodes"`
	NotAskedNodes   []string `json:"not_asked_nodes"`
}

// listExportJobs lists the caller's exports the hub still keeps, newest
// first, from every hub node that answered.
func (s *Server) listExportJobs(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !s.exportJobs(w, r) {
		return
	}
	if p.Operator {
		s.fail(w, r, badRequest("an export is a person's: log in as a member of the household"))
		return
	}
	list, err := s.exports.List(r.Context(), p.Account.ID)
	if err != nil {
		// The list says which nodes are missing; the rest is worth having.
		s.log.Warn("list export jobs", "account", p.Account.ID, "err", err)
	}
	out := exportJobListJSON{Exports: []exportJobJSON{}, Complete: list.Complete(),
		UnansweredNodes: append([]string{}, list.Unanswered...), NotAskedNodes: append([]string{}, list.NotAsked...)}
	for _, st := range list.Jobs {
		out.Exports = append(out.Exports, exportJobView(st))
	}
	writeJSON(w, http.StatusOK, out)
}

// exportJobStatus shows how far one of the caller's exports got. Another
// account's job, like an expired one, is not found.
func (s *Server) exportJobStatus(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !s.exportJobs(w, r) {
		return
	}
	st, err := s.exports.Status(p.Account.ID, r.PathValue("id"))
	if err != nil {
		s.failExport(w, r, err)
		return
	}
	if st.State == export.JobRunning {
		// A hint for clients that poll.
		w.Header().Set("Retry-After", "2")
	}
	writeJSON(w, http.StatusOK, exportJobView(st))
}

// downloadExportJob sends the archive of a finished export, decrypting
// it as it goes (constant memory). It can be downloaded again until the
// job expires.
func (s *Server) downloadExportJob(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !s.exportJobs(w, r) {
		return
	}
	rc, st, err := s.exports.Open(r.Context(), p.Account.ID, r.PathValue("id"))
	if err != nil {
		s.failExport(w, r, err)
		return
	}
	defer rc.Close()
	if err := export.ServeArchive(w, rc, st); err != nil {
		// Too late for a problem document: the client sees a short
		// download (Content-Length) and can try again.
		s.log.Warn("export download failed", "job", st.ID, "account", p.Account.ID, "err", err)
	}
}

// cancelExportJob stops one of the caller's exports if it runs, and
// deletes it and its archive either way.
func (s *Server) cancelExportJob(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !s.exportJobs(w, r) {
		return
	}
	if err := s.exports.Cancel(p.Account.ID, r.PathValue("id")); err != nil {
		s.failExport(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
