package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// The login code step and the security page's "code from an app" part.
// The page shows the app's secret and the recovery codes once, right
// after they are made; they are never shown again.

// secondFactorView is the security page's part about the app.
type secondFactorView struct {
	Status identity.SecondFactorStatus
	// Enrolment is set only on the answer that made it.
	Enrolment *identity.Enrolment
}

// loginCode renders the second step of a login: the code field.
func (s *Server) loginCode(w http.ResponseWriter, r *http.Request, status int, form loginForm, errs []formError) {
	p := page{Title: "Enter your code", CSRF: csrfToken(s.preSecret(w, r)), Data: form, Errors: errs}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "login", p)
}

// postLoginCode finishes a login with the code from the app or a
// recovery code.
func (s *Server) postLoginCode(w http.ResponseWriter, r *http.Request) {
	form := loginForm{Next: localPath(r.PostFormValue("next")), Challenge: r.PostFormValue("challenge")}
	if err := s.checkPreCSRF(r); err != nil {
		s.loginCode(w, r, http.StatusForbidden, form, []formError{{Message: upperFirst(err.Error()) + "."}})
		return
	}
	ses, tok, err := s.id.LoginSecondFactor(r.Context(), identity.OriginOf(r), form.Challenge, r.PostFormValue("code"))
	var te *identity.ThrottledError
	switch {
	case errors.Is(err, identity.ErrUnauthenticated):
		s.loginCode(w, r, http.StatusUnauthorized, form, []formError{{Field: "code",
			Message: "This code is wrong or too old. Type the code your app shows now. After five tries, or five minutes, log in again."}})
		return
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(te.RetryAfterSeconds()))
		s.loginCode(w, r, http.StatusTooManyRequests, form, []formError{{Field: "code", Message: upperFirst(te.Error()) + "."}})
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	s.startSession(w, r, ses, tok)
	s.rememberBrowser(w, r, ses.AccountID)
	s.afterLogin(w, r, ses, form.Next)
}

func (s *Server) postSecondFactor(w http.ResponseWriter, r *http.Request, v viewer) {
	en, err := s.id.BeginSecondFactor(r.Context(), v.Account.ID, r.PostFormValue("password"))
	if errs, ok := secondFactorErrors(err, "second-factor-password"); ok {
		s.renderSecurityWith(w, r, v, http.StatusUnprocessableEntity, errs, nil)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.renderSecurityWith(w, r, v, http.StatusOK, nil, &en)
}

func (s *Server) postSecondFactorConfirm(w http.ResponseWriter, r *http.Request, v viewer) {
	err := s.id.ConfirmSecondFactor(r.Context(), v.Account.ID, strings.TrimSpace(r.PostFormValue("code")))
	if errs, ok := secondFactorErrors(err, "second-factor-code"); ok {
		s.renderSecurityWith(w, r, v, http.StatusUnprocessableEntity, errs, nil)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/security?done=second-factor-on", http.StatusSeeOther)
}

func (s *Server) postSecondFactorDisable(w http.ResponseWriter, r *http.Request, v viewer) {
	err := s.id.DisableSecondFactor(r.Context(), v.Account.ID, r.PostFormValue("password"))
	if errs, ok := secondFactorErrors(err, "second-factor-off-password"); ok {
		s.renderSecurityWith(w, r, v, http.StatusUnprocessableEntity, errs, nil)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/security?done=second-factor-off", http.StatusSeeOther)
}

// secondFactorErrors turns the service's refusals into form errors on
// the field id; ok is false for errors the page cannot explain.
func secondFactorErrors(err error, field string) ([]formError, bool) {
	var te *identity.ThrottledError
	switch {
	case err == nil:
		return nil, false
	case errors.As(err, &te):
		return []formError{{Field: field, Message: upperFirst(te.Error()) + "."}}, true
	case errors.Is(err, identity.ErrNoSecretBox):
		return []formError{{Field: field, Message: "This hub cannot keep codes from an app."}}, true
	case errors.Is(err, identity.ErrInvalid):
		msg := detail(err)
		switch {
		case strings.HasPrefix(msg, "password: does not match"):
			msg = "This is not your password now."
		case strings.HasPrefix(msg, "code: does not match"):
			msg = "This code does not match. Check that the time on your phone is right, then type the code it shows now."
		default:
			if _, rest, ok := strings.Cut(msg, ": "); ok {
				msg = upperFirst(sentence(rest))
			}
		}
		return []formError{{Field: field, Message: msg}}, true
	}
	return nil, false
}

// afterLogin sends a person who just logged in on to next, unless they
// must first be told something: that someone else removed their login
// codes since their last login (shown once, on the Security page), or
// that the hub asks the admin to add login codes before anything else.
func (s *Server) afterLogin(w http.ResponseWriter, r *http.Request, ses store.Session, next string) {
	reset, ok, err := s.id.TakeSecondFactorReset(r.Context(), ses.AccountID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ok {
		who := "the person who runs this hub"
		if reset.By == "admin" {
			who = "the hub's admin"
		}
		s.secrets.put(s.now(), ses.ID, flashKey, fmt.Sprintf("Your login codes were turned off by %s on %s. "+
			"Your password alone logs you in now. You can add an app again below. "+
			"If you did not ask for this, change your password and tell %s.", who, reset.At.Format("2 January 2006"), who))
		http.Redirect(w, r, "/security?done="+flashDone, http.StatusSeeOther)
		return
	}
	if must, err := s.id.AccountMustEnrolFirst(r.Context(), ses.AccountID); err != nil {
		s.fail(w, r, err)
		return
	} else if must {
		next = "/security"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// postResetSecondFactor removes the login codes of a person of the
// admin's household who lost both their phone and their recovery codes.
func (s *Server) postResetSecondFactor(w http.ResponseWriter, r *http.Request, v viewer) {
	acc, err := s.id.ResetSecondFactor(r.Context(), v.Principal, r.PathValue("username"))
	if errors.Is(err, identity.ErrInvalid) || errors.Is(err, access.ErrOwnSecondFactor) {
		s.renderHousehold(w, r, v, http.StatusUnprocessableEntity, memberForm{Role: store.RoleMember},
			[]formError{{Message: upperFirst(sentence(strings.TrimPrefix(detail(err), "username: ")))}})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.flash(v, fmt.Sprintf("The login codes of %s are removed. Their password alone logs them in now, and they are told so when they next log in.", acc.Username))
	http.Redirect(w, r, "/household?done="+flashDone, http.StatusSeeOther)
}
