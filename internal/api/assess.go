package api

import (
	"context"
	"net/http"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/assess"
	"github.com/candor-iot/candor/internal/store"
)

// Assessor is the security audit (package assess) the API serves.
type Assessor interface {
	Run(ctx context.Context) (assess.Report, error)
	Findings(ctx context.Context, p access.Principal, withClosed bool) (assess.Report, error)
	Suppress(ctx context.Context, p access.Principal, findingID, reason string, until time.Time) error
	Unsuppress(ctx context.Context, p access.Principal, findingID string) error
	CheckpointFetched(ctx context.Context)
}

func (s *Server) assessor() (Assessor, error) {
	if s.cfg.Assess == nil {
		return nil, errNotConfigured
	}
	return s.cfg.Assess, nil
}

var errNotConfigured = &notConfigured{}

type notConfigured struct{}

func (*notConfigured) Error() string { return "assessments are not configured on this hub" }
func (*notConfigured) Unwrap() error { return store.ErrNotFound }

// getAudit lists the audit's findings the caller may see (?closed=true
// adds the closed ones).
func (s *Server) getAudit(w http.ResponseWriter, r *http.Request, p access.Principal) {
	a, err := s.assessor()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := a.Findings(r.Context(), p, r.URL.Query().Get("closed") == "true")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// runAudit runs the audit now: the admin, the operator and owners may.
func (s *Server) runAudit(w http.ResponseWriter, r *http.Request, p access.Principal) {
	a, err := s.assessor()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !p.Admin() && !p.Owner() {
		s.fail(w, r, assess.ErrForbidden.Errorf("only owners and the admin may run the audit"))
		return
	}
	if _, err := a.Run(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := a.Findings(r.Context(), p, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// suppressFinding hides a finding until a time, for a reason.
func (s *Server) suppressFinding(w http.ResponseWriter, r *http.Request, p access.Principal) {
	a, err := s.assessor()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		Reason string    `json:"reason"`
		Until  time.Time `json:"until"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := a.Suppress(r.Context(), p, r.PathValue("id"), in.Reason, in.Until); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "reason": in.Reason, "until": in.Until.UTC()})
}

func (s *Server) unsuppressFinding(w http.ResponseWriter, r *http.Request, p access.Principal) {
	a, err := s.assessor()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := a.Unsuppress(r.Context(), p, r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkpointLeft tells the audit that the log's signed checkpoint left
// the hub, so a copy exists elsewhere (the audit flags a log whose
// checkpoint never did).
func (s *Server) checkpointLeft(ctx context.Context) {
	if s.cfg.Assess != nil {
		s.cfg.Assess.CheckpointFetched(context.WithoutCancel(ctx))
	}
}
