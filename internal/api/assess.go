package api

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/assess"
	"github.com/candor-iot/candor/internal/signkey"
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

// Reporter makes the signed reports (package assess).
type Reporter interface {
	PIA(ctx context.Context, p access.Principal, household string) (*assess.Version, *assess.PIA, error)
	Conformance(ctx context.Context, p access.Principal) (*assess.Version, *assess.Conformance, error)
	Versions(ctx context.Context, kind, household string) ([]*assess.Version, error)
	PublicKey() ed25519.PublicKey
}

// signedJSON is a report version as the API serves it: the facts, and the
// exact signed bytes with their signature for checking offline.
type signedJSON struct {
	assess.Signed
	Document  string `json:"document"`  // base64 of the signed bytes
	Signature string `json:"signature"` // base64 Ed25519 signature over them
	KeyURL    string `json:"key_url"`
}

const reportKeyPath = "/api/v1/assessments/key"

func newSignedJSON(v *assess.Version) signedJSON {
	return signedJSON{Signed: v.Signed, Document: base64.StdEncoding.EncodeToString(v.Document),
		Signature: base64.StdEncoding.EncodeToString(v.Signature), KeyURL: reportKeyPath}
}

func (s *Server) reporter() (Reporter, error) {
	r, ok := s.cfg.Assess.(Reporter)
	if !ok || s.cfg.Assess == nil {
		return nil, errNotConfigured
	}
	return r, nil
}

// getPIA serves the household's privacy impact assessment, regenerated
// when its facts changed: ?format=json (default), markdown, html or
// jsonld; ?household= for the operator and the admin.
func (s *Server) getPIA(w http.ResponseWriter, r *http.Request, p access.Principal) {
	rep, err := s.reporter()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	household := r.URL.Query().Get("household")
	if household == "" && p.Operator {
		s.fail(w, r, badRequest("name the household with ?household="))
		return
	}
	v, pia, err := rep.PIA(r.Context(), p, household)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	switch r.URL.Query().Get("format") {
	case "", "json":
		writeJSON(w, http.StatusOK, newSignedJSON(v))
	case "markdown":
		writeBody(w, "text/markdown; charset=utf-8", assess.PIAMarkdown(v, pia))
	case "html":
		writeBody(w, "text/html; charset=utf-8", assess.HTMLDocument("Privacy impact assessment: "+pia.HouseholdName, assess.PIAIntro(v), assess.PIAHTMLBody(v, pia)))
	case "jsonld":
		b, err := assess.PIAJSONLD(v, pia)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeBody(w, "application/ld+json", b)
	default:
		s.fail(w, r, badRequest("format: json, markdown, html or jsonld"))
	}
}

// getPIAVersions lists the kept versions with what changed in each.
func (s *Server) getPIAVersions(w http.ResponseWriter, r *http.Request, p access.Principal) {
	rep, err := s.reporter()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	household := r.URL.Query().Get("household")
	if household == "" {
		household = p.Account.HouseholdID
	}
	if err := p.See("household", household, household); err != nil || household == "" {
		s.fail(w, r, &access.NotFoundError{Kind: "household", ID: household})
		return
	}
	vs, err := rep.Versions(r.Context(), assess.KindPIA, household)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]signedJSON, 0, len(vs))
	for _, v := range vs {
		out = append(out, newSignedJSON(v))
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
}

// reportKey serves the public key that checks report signatures (PEM).
func (s *Server) reportKey(w http.ResponseWriter, r *http.Request) {
	rep, err := s.reporter()
	if err != nil || rep.PublicKey() == nil {
		s.fail(w, r, errNotConfigured)
		return
	}
	writeBody(w, "application/x-pem-file", signkey.MarshalPublicKey(rep.PublicKey()))
}

func writeBody(w http.ResponseWriter, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// getConformance serves the conformance report, computed now (live
// tests included): ?format=json (default) or html. The admin's and the
// operator's: it describes the whole hub.
func (s *Server) getConformance(w http.ResponseWriter, r *http.Request, p access.Principal) {
	rep, err := s.reporter()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, c, err := rep.Conformance(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	switch r.URL.Query().Get("format") {
	case "", "json":
		writeJSON(w, http.StatusOK, newSignedJSON(v))
	case "html":
		writeBody(w, "text/html; charset=utf-8", assess.HTMLDocument("Conformance report", assess.ConformanceIntro(v), assess.ConformanceHTMLBody(v, c)))
	default:
		s.fail(w, r, badRequest("format: json or html"))
	}
}
