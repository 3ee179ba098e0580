package web

import (
	"net/http"

	"github.com/candor-iot/candor/internal/identity"
)

// origin is where a login comes from: the client's address and the
// known-browser token its browser holds, if any.
func origin(r *http.Request) identity.Origin {
	o := identity.Origin{Addr: r.RemoteAddr}
	if c, err := r.Cookie(identity.KnownBrowserCookie); err == nil {
		o.Browser = c.Value
	}
	return o
}

// rememberBrowser marks the browser as one the account has logged in from,
// so a later login from it is not locked out by someone else's guessing.
// The cookie is the API's too. A failure here is logged, not worth
// failing the login for.
func (s *Server) rememberBrowser(w http.ResponseWriter, r *http.Request, accountID string) {
	tok, err := s.id.KnownBrowser(r.Context(), accountID)
	if err != nil {
		s.log.Warn("known-browser token not issued", "account", accountID, "err", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     identity.KnownBrowserCookie,
		Value:    tok,
		Path:     "/",
		MaxAge:   int(identity.KnownBrowserTTL.Seconds()),
		HttpOnly: true,
		Secure:   s.secure(r),
		SameSite: http.SameSiteStrictMode,
	})
}
