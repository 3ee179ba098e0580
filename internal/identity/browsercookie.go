package identity

import "net/http"

// OriginOf is where an HTTP credential check comes from: the client's
// address and the known-browser token its browser holds, if any. The API
// and the pages both ask it, so a browser is known to both alike.
func OriginOf(r *http.Request) Origin {
	o := Origin{Addr: r.RemoteAddr}
	if c, err := r.Cookie(KnownBrowserCookie); err == nil {
		o.Browser = c.Value
	}
	return o
}

// KnownBrowserHTTPCookie is the cookie that carries a known-browser token
// (from KnownBrowser): HttpOnly and SameSite=Strict, so no script and no
// other site can use it, and Secure over TLS.
func KnownBrowserHTTPCookie(token string, secure bool) *http.Cookie {
	return &http.Cookie{
		Name:     KnownBrowserCookie,
		Value:    token,
		Path:     "/",
		MaxAge:   int(KnownBrowserTTL.Seconds()),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteStrictMode,
	}
}
