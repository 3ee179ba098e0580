package web

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/assess"
	"github.com/candor-iot/candor/internal/problem"
)

// "Hub check-up" (/audit): the security audit's findings a person may
// see (their household's; the admin sees the hub's too), each with what
// was found, why it matters and how to fix it, and a form to put one off
// for a while with a reason. The audit service decides who may suppress
// and records it; the page only asks.

func init() { pageNames = append(pageNames, "audit") }

// Assessor is the security audit (*assess.Service is one).
type Assessor interface {
	Run(ctx context.Context) (assess.Report, error)
	Findings(ctx context.Context, p access.Principal, withClosed bool) (assess.Report, error)
	Suppress(ctx context.Context, p access.Principal, findingID, reason string, until time.Time) error
	Unsuppress(ctx context.Context, p access.Principal, findingID string) error
}

type auditView struct {
	Available bool
	RanAt     time.Time
	CanRun    bool
	Open      []findingView
	Waiting   []findingView // suppressed
	Fixed     []findingView
	Missing   []assess.CheckStatus
}

type findingView struct {
	assess.Finding
	Anchor       string
	CanSuppress  bool
	SeverityText string
	// The forms of the finding, and the page's CSRF token for them.
	SuppressURL, UnsuppressURL string
	CSRF                       string
}

var severityWords = map[assess.Severity]string{
	assess.Critical: "Critical", assess.High: "High", assess.Medium: "Medium", assess.Low: "Low", assess.Info: "For your information",
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, v viewer) {
	s.renderAudit(w, r, v, http.StatusOK, nil)
}

func (s *Server) renderAudit(w http.ResponseWriter, r *http.Request, v viewer, status int, errs []formError) {
	p := s.pageFor(r, v, "Hub check-up", "audit")
	p.Errors = errs
	av := auditView{Available: s.cfg.Assess != nil, CanRun: v.Admin() || v.Owner()}
	if av.Available {
		rep, err := s.cfg.Assess.Findings(r.Context(), v.Principal, true)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		av.RanAt = rep.RanAt
		for i, f := range rep.Findings {
			fv := findingView{Finding: f, Anchor: "finding-" + strconv.Itoa(i+1), SeverityText: severityWords[f.Severity],
				CanSuppress: v.CanSuppressFinding(f.Household), CSRF: p.CSRF,
				SuppressURL: findingAction(f.ID, "suppress"), UnsuppressURL: findingAction(f.ID, "unsuppress")}
			switch {
			case f.ClosedAt != nil:
				av.Fixed = append(av.Fixed, fv)
			case f.Suppressed != nil:
				av.Waiting = append(av.Waiting, fv)
			default:
				av.Open = append(av.Open, fv)
			}
		}
		for _, c := range rep.Checks {
			if !c.Available {
				av.Missing = append(av.Missing, c)
			}
		}
	}
	p.Data = av
	s.render(w, r, status, "audit", p)
}

func (s *Server) postAuditRun(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Assess == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	if !v.Admin() && !v.Owner() {
		s.renderError(w, r, http.StatusForbidden, nil)
		return
	}
	if _, err := s.cfg.Assess.Run(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	s.flash(v, "The hub checked itself again. The list below is up to date.")
	http.Redirect(w, r, "/audit?done="+flashDone, http.StatusSeeOther)
}

// suppressDays are the choices the form offers.
var suppressDays = map[string]int{"7": 7, "30": 30, "90": 90}

func (s *Server) postAuditSuppress(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Assess == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	id := r.PathValue("id")
	days, ok := suppressDays[r.PostFormValue("days")]
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if !ok {
		days = 30
	}
	err := s.cfg.Assess.Suppress(r.Context(), v.Principal, id, reason, s.now().Add(time.Duration(days)*24*time.Hour))
	if k, detail, isKind := problem.Of(err); isKind && k == assess.ErrInvalid {
		s.renderAudit(w, r, v, http.StatusUnprocessableEntity, []formError{{Field: "", Message: upperFirst(reasonMessage(detail))}})
		return
	}
	if errors.Is(err, assess.ErrForbidden) {
		s.renderError(w, r, http.StatusForbidden, nil)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.flash(v, "The finding is put off for "+strconv.Itoa(days)+" days. Then it comes back if it is not fixed.")
	http.Redirect(w, r, "/audit?done="+flashDone, http.StatusSeeOther)
}

func reasonMessage(detail string) string {
	if strings.HasPrefix(detail, "reason") {
		return "Say why this can wait, in a few words."
	}
	return sentence(detail)
}

func (s *Server) postAuditUnsuppress(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Assess == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	err := s.cfg.Assess.Unsuppress(r.Context(), v.Principal, r.PathValue("id"))
	if errors.Is(err, assess.ErrForbidden) {
		s.renderError(w, r, http.StatusForbidden, nil)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.flash(v, "The finding is back on the list.")
	http.Redirect(w, r, "/audit?done="+flashDone, http.StatusSeeOther)
}

// findingAction is the form target for one finding.
func findingAction(id, what string) string {
	return "/audit/findings/" + url.PathEscape(id) + "/" + what
}

// Reporter makes the signed reports the pages show (*assess.Service is
// one).
type Reporter interface {
	PIA(ctx context.Context, p access.Principal, household string) (*assess.Version, *assess.PIA, error)
	Conformance(ctx context.Context, p access.Principal) (*assess.Version, *assess.Conformance, error)
}

type reportView struct {
	Available bool
	Version   *assess.Version
	Intro     string
	Body      template.HTML
	Formats   []reportFormat
}

type reportFormat struct{ Name, URL string }

func init() { pageNames = append(pageNames, "report") }

// piaPage shows the household's privacy impact assessment (made from
// the live configuration; a new signed version when its facts changed).
func (s *Server) piaPage(w http.ResponseWriter, r *http.Request, v viewer) {
	p := s.pageFor(r, v, "Privacy assessment", "audit")
	rv := reportView{}
	if rep, ok := s.cfg.Assess.(Reporter); ok && s.cfg.Assess != nil {
		ver, pia, err := rep.PIA(r.Context(), v.Principal, v.Account.HouseholdID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		rv = reportView{Available: true, Version: ver, Intro: assess.PIAIntro(ver), Body: assess.PIAHTMLBody(ver, pia),
			Formats: []reportFormat{{"Markdown", "/api/v1/pia?format=markdown"}, {"JSON-LD", "/api/v1/pia?format=jsonld"},
				{"signed JSON", "/api/v1/pia"}, {"the hub's key", "/api/v1/assessments/key"}}}
	}
	p.Data = rv
	s.render(w, r, http.StatusOK, "report", p)
}

// conformancePage shows the conformance report to the admin.
func (s *Server) conformancePage(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.Admin() {
		s.renderError(w, r, http.StatusForbidden, errAdminOnly)
		return
	}
	p := s.pageFor(r, v, "Conformance report", "audit")
	rv := reportView{}
	if rep, ok := s.cfg.Assess.(Reporter); ok && s.cfg.Assess != nil {
		ver, c, err := rep.Conformance(r.Context(), v.Principal)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		rv = reportView{Available: true, Version: ver, Intro: assess.ConformanceIntro(ver), Body: assess.ConformanceHTMLBody(ver, c),
			Formats: []reportFormat{{"signed JSON", "/api/v1/conformance"}, {"the hub's key", "/api/v1/assessments/key"}}}
	}
	p.Data = rv
	s.render(w, r, http.StatusOK, "report", p)
}

var errAdminOnly = errors.New("only the hub's admin can see the conformance report")
