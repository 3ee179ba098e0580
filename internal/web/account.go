package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// setupForm is what the first-run page shows and takes back. Passwords
// are never echoed into a page.
type setupForm struct {
	Token     string
	Household string
	Username  string
	MinChars  int
}

func (s *Server) getSetup(w http.ResponseWriter, r *http.Request) {
	need, err := s.id.SetupNeeded(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !need {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	p := page{Title: "Set up your hub", CSRF: csrfToken(s.preSecret(w, r)), Data: setupForm{MinChars: credential.MinPasswordChars}}
	s.render(w, r, http.StatusOK, "setup", p)
}

func (s *Server) postSetup(w http.ResponseWriter, r *http.Request) {
	form := setupForm{
		Token:     strings.TrimSpace(r.PostFormValue("token")),
		Household: strings.TrimSpace(r.PostFormValue("household")),
		Username:  strings.TrimSpace(r.PostFormValue("username")),
		MinChars:  credential.MinPasswordChars,
	}
	password := r.PostFormValue("password")
	p := page{Title: "Set up your hub", Data: form}
	if err := s.checkPreCSRF(r); err != nil {
		p.CSRF = csrfToken(s.preSecret(w, r))
		p.Errors = []formError{{Message: upperFirst(err.Error()) + "."}}
		s.render(w, r, http.StatusForbidden, "setup", p)
		return
	}
	p.CSRF = csrfToken(s.preSecret(w, r))
	if form.Token == "" {
		p.Errors = []formError{{Field: "token", Message: "Enter the setup token. The hub printed it when it started."}}
		s.render(w, r, http.StatusUnprocessableEntity, "setup", p)
		return
	}
	_, err := s.id.Setup(r.Context(), form.Token, form.Household, identity.NewAccount{Username: form.Username, Password: password})
	switch {
	case errors.Is(err, identity.ErrSetupDone):
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	case errors.Is(err, identity.ErrUnauthenticated):
		p.Errors = []formError{{Field: "token", Message: "This setup token is wrong or used up. Copy it again from the hub's console. If the hub restarted, it printed a new one."}}
		s.render(w, r, http.StatusUnprocessableEntity, "setup", p)
		return
	case errors.Is(err, identity.ErrInvalid):
		p.Errors = inputErrors(err, map[string]field{
			"username": {"username", "The username"}, "password": {"password", "The password"},
			"household_name": {"household", "The name of the household"}})
		s.render(w, r, http.StatusUnprocessableEntity, "setup", p)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	ses, tok, err := s.id.Login(r.Context(), identity.OriginOf(r), form.Username, password, store.SessionBrowser, userAgent(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.startSession(w, r, ses, tok)
	s.rememberBrowser(w, r, ses.AccountID)
	http.Redirect(w, r, "/?done=setup", http.StatusSeeOther)
}

type loginForm struct {
	Username string
	Next     string
	// Challenge is set on the second step, for an account with a code
	// from an app.
	Challenge string
}

func (s *Server) getLogin(w http.ResponseWriter, r *http.Request) {
	if need, err := s.id.SetupNeeded(r.Context()); err == nil && need {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	if _, ok, _ := s.viewerOf(r); ok {
		http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	p := page{
		Title:  "Log in",
		CSRF:   csrfToken(s.preSecret(w, r)),
		Status: statusMessages[r.URL.Query().Get("done")],
		Data:   loginForm{Next: localPath(r.URL.Query().Get("next"))},
	}
	s.render(w, r, http.StatusOK, "login", p)
}

func (s *Server) postLogin(w http.ResponseWriter, r *http.Request) {
	form := loginForm{Username: strings.TrimSpace(r.PostFormValue("username")), Next: localPath(r.PostFormValue("next"))}
	p := page{Title: "Log in", Data: form}
	if err := s.checkPreCSRF(r); err != nil {
		p.CSRF = csrfToken(s.preSecret(w, r))
		p.Errors = []formError{{Message: upperFirst(err.Error()) + "."}}
		s.render(w, r, http.StatusForbidden, "login", p)
		return
	}
	ses, tok, err := s.id.Login(r.Context(), identity.OriginOf(r), form.Username, r.PostFormValue("password"), store.SessionBrowser, userAgent(r))
	var te *identity.ThrottledError
	var sf *identity.SecondFactorRequiredError
	switch {
	case errors.As(err, &sf):
		form.Challenge = sf.Challenge
		s.loginCode(w, r, http.StatusOK, form, nil)
		return
	case errors.Is(err, identity.ErrUnauthenticated):
		p.CSRF = csrfToken(s.preSecret(w, r))
		p.Errors = []formError{{Field: "password", Message: "The username or the password is wrong."}}
		s.render(w, r, http.StatusUnauthorized, "login", p)
		return
	case errors.As(err, &te):
		p.CSRF = csrfToken(s.preSecret(w, r))
		p.Errors = []formError{{Field: "password", Message: upperFirst(te.Error()) + "."}}
		w.Header().Set("Retry-After", strconv.Itoa(te.RetryAfterSeconds()))
		s.render(w, r, http.StatusTooManyRequests, "login", p)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	s.startSession(w, r, ses, tok)
	s.rememberBrowser(w, r, ses.AccountID)
	s.afterLogin(w, r, ses, form.Next)
}

func (s *Server) postLogout(w http.ResponseWriter, r *http.Request, v viewer) {
	if err := s.id.RevokeSession(r.Context(), v.Account.ID, v.Session.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, err)
		return
	}
	s.endSession(w, r)
	http.Redirect(w, r, "/login?done=logged-out", http.StatusSeeOther)
}

// sessionView is one row of the security page's session list.
type sessionView struct {
	store.Session
	Current bool
	Token   bool
}

type securityView struct {
	Sessions     []sessionView
	MinChars     int
	SecondFactor secondFactorView
	// EnrolFirst: the hub asks this admin to add login codes before
	// anything else.
	EnrolFirst bool
}

func (s *Server) security(w http.ResponseWriter, r *http.Request, v viewer) {
	s.renderSecurity(w, r, v, http.StatusOK, nil)
}

func (s *Server) renderSecurity(w http.ResponseWriter, r *http.Request, v viewer, status int, errs []formError) {
	s.renderSecurityWith(w, r, v, status, errs, nil)
}

// renderSecurityWith is the security page, with the app's secret and
// recovery codes when en was just made.
func (s *Server) renderSecurityWith(w http.ResponseWriter, r *http.Request, v viewer, status int, errs []formError, en *identity.Enrolment) {
	list, err := s.id.Sessions(r.Context(), v.Account.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sf, err := s.id.SecondFactor(r.Context(), v.Account.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sv := securityView{MinChars: credential.MinPasswordChars, SecondFactor: secondFactorView{Status: sf, Enrolment: en}}
	if sv.EnrolFirst, err = s.id.MustEnrolFirst(r.Context(), v.Principal); err != nil {
		s.fail(w, r, err)
		return
	}
	for _, ss := range list {
		sv.Sessions = append(sv.Sessions, sessionView{Session: ss, Current: ss.ID == v.Session.ID, Token: ss.Kind == store.SessionToken})
	}
	p := s.pageFor(r, v, "Security", "security")
	p.Errors = errs
	p.Data = sv
	s.render(w, r, status, "security", p)
}

func (s *Server) postPassword(w http.ResponseWriter, r *http.Request, v viewer) {
	err := s.id.ChangePassword(r.Context(), v.Account.ID, r.PostFormValue("current_password"), r.PostFormValue("new_password"), v.Session.ID)
	var te *identity.ThrottledError
	if errors.As(err, &te) {
		s.renderSecurity(w, r, v, http.StatusTooManyRequests, []formError{{Field: "current-password", Message: upperFirst(te.Error()) + "."}})
		return
	}
	if errors.Is(err, identity.ErrInvalid) {
		errs := inputErrors(err, map[string]field{
			"current_password": {"current-password", "Your password"}, "new_password": {"new-password", "The new password"}})
		if len(errs) == 1 && errs[0].Field == "current-password" {
			errs[0].Message = "This is not your password now."
		}
		s.renderSecurity(w, r, v, http.StatusUnprocessableEntity, errs)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/security?done=password", http.StatusSeeOther)
}

func (s *Server) postRevokeSession(w http.ResponseWriter, r *http.Request, v viewer) {
	id := r.PathValue("id")
	if err := s.id.RevokeSession(r.Context(), v.Account.ID, id); err != nil {
		s.fail(w, r, err)
		return
	}
	if id == v.Session.ID {
		s.endSession(w, r)
		http.Redirect(w, r, "/login?done=logged-out", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/security?done=session", http.StatusSeeOther)
}

func (s *Server) learn(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Learn the words", Nav: "learn", Data: glossary}
	if v, ok, err := s.viewerOf(r); err == nil && ok {
		p = s.pageFor(r, v, "Learn the words", "learn")
		p.Data = glossary
	}
	s.render(w, r, http.StatusOK, "learn", p)
}
