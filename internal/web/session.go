package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// Cookie names. The session cookie is the API's, so a login through the
// pages also works for the API and the other way round.
const (
	sessionCookie = "candor_session"
	// preCookie carries a random value that the login and setup forms
	// are bound to before anyone is logged in (login CSRF).
	preCookie = "candor_pre"
	csrfField = "csrf"
)

// viewer is the person a request acts for. What they may see and do is
// decided by its access.Principal, as for the API.
type viewer struct {
	access.Principal
	// token is the session secret from the cookie; the CSRF token of
	// the person's forms is derived from it.
	token string
}

// Errors shown as pages.
var (
	errCrossSite  = errors.New("this request came from another site, so the hub refused it")
	errFormExpire = errors.New("this form has expired; go back, reload the page and try again")
	errNoCookies  = errors.New("your browser must accept cookies from this hub to log in")
)

// authed wraps a handler that needs a logged-in person. Anyone else is
// sent to the first-run page (no account yet) or the login page. Every
// POST must carry the form's CSRF token.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, viewer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok, err := s.viewerOf(r)
		if err != nil {
			s.renderError(w, r, http.StatusInternalServerError, err)
			return
		}
		if !ok {
			if need, err := s.id.SetupNeeded(r.Context()); err == nil && need {
				http.Redirect(w, r, "/setup", http.StatusSeeOther)
				return
			}
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			target := "/login"
			if r.URL.Path != "/" {
				target += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && !s.checkCSRF(r, v.token) {
			s.renderError(w, r, http.StatusForbidden, errFormExpire)
			return
		}
		if must, err := s.id.MustEnrolFirst(r.Context(), v.Principal); err != nil {
			s.renderError(w, r, http.StatusInternalServerError, err)
			return
		} else if must && !enrolPath(r) {
			// The hub asks the admin for login codes before anything
			// else: every other page leads to the Security page.
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				s.renderError(w, r, http.StatusForbidden, errEnrolFirst)
				return
			}
			http.Redirect(w, r, "/security", http.StatusSeeOther)
			return
		}
		// What the person does here is theirs in the transparency log.
		ctx := auditlog.WithActor(r.Context(), v.Actor())
		h(w, r.WithContext(ctx), v)
	}
}

// viewerOf resolves the session cookie. ok is false for anyone not
// logged in; err is set only when the hub could not check.
func (s *Server) viewerOf(r *http.Request) (viewer, bool, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return viewer{}, false, nil
	}
	acc, ses, err := s.id.Authenticate(r.Context(), c.Value)
	if err != nil {
		if errors.Is(err, identity.ErrUnauthenticated) {
			return viewer{}, false, nil
		}
		return viewer{}, false, err
	}
	return viewer{Principal: access.Person(acc, ses), token: c.Value}, true, nil
}

// csrfToken derives a form token from a secret the browser holds in an
// HttpOnly cookie: another site can neither read the cookie nor compute
// the token. It is an HMAC, so the token reveals nothing of the cookie.
func csrfToken(secret string) string {
	if secret == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("candor web form v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) checkCSRF(r *http.Request, secret string) bool {
	want := csrfToken(secret)
	got := r.PostFormValue(csrfField)
	return want != "" && hmac.Equal([]byte(got), []byte(want))
}

// preSecret returns the value of the pre-login cookie, setting a new one
// when the browser has none yet.
func (s *Server) preSecret(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: preCookie, Value: v, Path: "/", MaxAge: 24 * 3600,
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode,
	})
	return v
}

// checkPreCSRF checks the token of a login or setup form.
func (s *Server) checkPreCSRF(r *http.Request) error {
	c, err := r.Cookie(preCookie)
	if err != nil || c.Value == "" {
		return errNoCookies
	}
	if !s.checkCSRF(r, c.Value) {
		return errFormExpire
	}
	return nil
}

func (s *Server) secure(r *http.Request) bool { return s.cfg.SecureCookies || r.TLS != nil }

// startSession logs the browser in: the session cookie is HttpOnly,
// SameSite=Lax and, over TLS, Secure; the pre-login cookie is dropped.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, ses store.Session, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: token, Path: "/", Expires: ses.ExpiresAt,
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode,
	})
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode})
}

func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode})
}

// localPath returns next if it is a path on this site, else "/": a login
// link must not send people to another site.
func localPath(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > 120 {
		ua = ua[:120]
	}
	return strings.ToValidUTF8(ua, "")
}

// errEnrolFirst is the answer to an admin who must add login codes
// first and tries something else.
var errEnrolFirst = errors.New("this hub asks the admin to add login codes first. Add them on the Security page, then try again")

// enrolPath reports whether r is one of the few pages an admin who must
// first add login codes may use: the Security page, the forms that add
// the codes, and logging out.
func enrolPath(r *http.Request) bool {
	switch r.URL.Path {
	case "/security", "/security/second-factor", "/security/second-factor/confirm", "/logout":
		return true
	}
	return false
}
