package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// sessionCookie carries the browser session secret.
const sessionCookie = "candor_session"

// principal is who a request acts for.
type principal struct {
	acc      store.Account
	ses      store.Session
	operator bool // the local control socket: the hub operator
}

func (p principal) admin() bool { return p.operator || p.acc.Admin }

// actor is who the transparency log records as acting.
func (p principal) actor() auditlog.Actor {
	if p.operator {
		return auditlog.Actor{Kind: auditlog.ActorOperator}
	}
	return auditlog.Actor{Kind: auditlog.ActorPerson, ID: p.acc.ID}
}

// canSee reports whether p may read a household's devices and data.
func (p principal) canSee(householdID string) bool {
	return p.operator || p.acc.HouseholdID == householdID
}

// canManage reports whether p may change a household's devices and members.
func (p principal) canManage(householdID string) bool {
	return p.operator || (p.acc.HouseholdID == householdID && p.acc.Role == store.RoleOwner)
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principalFrom(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(principalKey{}).(principal)
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
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, principal)) http.HandlerFunc {
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
		p := principal{acc: acc, ses: ses}
		ctx := withPrincipal(r.Context(), p)
		ctx = auditlog.WithActor(ctx, p.actor())
		h(w, r.WithContext(ctx), p)
	}
}
