package api

import (
	"net/http"

	"github.com/candor-iot/candor/internal/identity"
)

// rememberBrowser marks the browser as one the account has logged in from,
// so a later login from it is not locked out by someone else's guessing.
// A failure here is logged, not worth failing the login for.
func (s *Server) rememberBrowser(w http.ResponseWriter, r *http.Request, accountID string) {
	tok, err := s.id.KnownBrowser(r.Context(), accountID)
	if err != nil {
		s.log.Warn("known-browser token not issued", "account", accountID, "err", err)
		return
	}
	http.SetCookie(w, identity.KnownBrowserHTTPCookie(tok, s.secureCookies(r)))
}

// secureCookies says whether the cookies the API sets carry the Secure
// flag: when the hub is served over TLS (SecureCookies), or when this
// request came over TLS anyway (a proxy in front, a test).
func (s *Server) secureCookies(r *http.Request) bool { return s.cfg.SecureCookies || r.TLS != nil }

// endSessionCookie tells the browser to drop its session cookie, with the
// flags it was set with.
func (s *Server) endSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode})
}
