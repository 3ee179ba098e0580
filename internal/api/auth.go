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
		if must, err := s.id.MustEnrolFirst(r.Context(), p); err != nil {
			s.fail(w, r, err)
			return
		} else if must && !enrolPath(r) {
			writeProblem(w, r, http.StatusForbidden, "second-factor-enrolment-required",
				"this hub requires login codes for the admin: add an app first (POST /api/v1/me/second-factor, then /confirm); until then only those, /api/v1/me and logout answer")
			return
		}
		ctx := withPrincipal(r.Context(), p)
		ctx = auditlog.WithActor(ctx, p.Actor())
		h(w, r.WithContext(ctx), p)
	}
}

// enrolPath reports whether r is one of the few requests an admin who
// must first enrol a second factor may make: enrol it, see who they are,
// log out.
func enrolPath(r *http.Request) bool {
	switch r.URL.Path {
	case "/api/v1/me", "/api/v1/me/second-factor", "/api/v1/me/second-factor/confirm", "/api/v1/logout":
		return true
	}
	return false
}
