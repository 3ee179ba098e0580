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
	http.SetCookie(w, identity.KnownBrowserHTTPCookie(tok, s.cfg.SecureCookies || r.TLS != nil))
}
