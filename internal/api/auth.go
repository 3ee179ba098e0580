package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/identity"
)

// sessionCookie carries the browser session secret.
const sessionCookie = "candor_session"

type principalKey struct{}

func withPrincipal(ctx context.Context, p access.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principalFrom(ctx context.Context) (access.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(access.Principal)
	return p, ok
}

// bearer extracts the session secret from the Authorization header or the
// session cookie.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		return c.Value
	}
	return ""
}

// authed wraps a handler that needs a logged-in person or the operator.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, access.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p, ok := principalFrom(r.Context()); ok {
			h(w, r, p)
			return
		}
		tok := bearer(r)
		if tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="candor"`)
			writeProblem(w, r, http.StatusUnauthorized, "unauthenticated", "log in or send an API token as 'Authorization: Bearer …'")
			return
		}
		acc, ses, err := s.id.Authenticate(r.Context(), tok)
		if err != nil {
			if errors.Is(err, identity.ErrUnauthenticated) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="candor", error="invalid_token"`)
			}
			s.fail(w, r, err)
			return
		}
		p := access.Person(acc, ses)
		ctx := withPrincipal(r.Context(), p)
		ctx = auditlog.WithActor(ctx, p.Actor())
		h(w, r.WithContext(ctx), p)
	}
}
