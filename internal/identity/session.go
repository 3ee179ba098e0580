package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/store"
)

// Login checks a username and password and opens a session of the given
// kind. It returns the session and its bearer secret, shown once. The
// check is throttled (see limit.go) by o's address and the username, or,
// when o carries a valid known-browser token for this username, by that
// browser alone; a refusal is a *ThrottledError. For an account with a
// second factor in force, the right password returns a
// *SecondFactorRequiredError instead of a session: LoginSecondFactor
// finishes the login with the code.
func (s *Service) Login(ctx context.Context, o Origin, username, password string, kind store.SessionKind, name string) (store.Session, string, error) {
	if len(password) > 1024 || len(username) > 64 {
		return store.Session{}, "", ErrUnauthenticated
	}
	key := NormalizeUsername(username)
	buckets, err := s.loginBuckets(ctx, o, key)
	if err != nil {
		return store.Session{}, "", err
	}
	// Throttled before the account is looked up, so a refused flood costs
	// no storage read.
	att, err := s.reserve(ctx, checkLogin, buckets...)
	if err != nil {
		return store.Session{}, "", err
	}
	acc, err := s.st.AccountByUsername(ctx, key)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		att.passed()
		return store.Session{}, "", fmt.Errorf("look up account: %w", err)
	}
	hash := dummyHash()
	if found {
		hash = acc.PasswordHash
	}
	ok, err := s.hasher.Verify(ctx, password, hash)
	if err != nil {
		att.passed()
		return store.Session{}, "", fmt.Errorf("verify password: %w", err)
	}
	if !ok || !found {
		att.failed()
		if found {
			s.log.Info("login failed", "account", acc.ID)
		}
		return store.Session{}, "", ErrUnauthenticated
	}
	att.passed()
	// An account with a second factor gets a challenge, not a session:
	// the code comes in LoginSecondFactor.
	if err := s.secondFactorChallenge(ctx, acc, key, kind, name); err != nil {
		return store.Session{}, "", err
	}
	return s.finishLogin(ctx, acc, kind, name, nil)
}

// finishLogin opens the session of a login that passed every check and
// records it.
func (s *Service) finishLogin(ctx context.Context, acc store.Account, kind store.SessionKind, name string, detail map[string]string) (store.Session, string, error) {
	ss, tok, err := s.openSession(ctx, acc.ID, kind, name)
	if err != nil {
		return store.Session{}, "", err
	}
	action := auditlog.ActionAccountLogin
	if kind == store.SessionToken {
		action = auditlog.ActionTokenCreate
	}
	d := map[string]string{"session": ss.ID}
	for k, v := range detail {
		d[k] = v
	}
	if err := s.record(ctx, auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorPerson, ID: acc.ID}, Action: action,
		Household: acc.HouseholdID, Subject: auditlog.Subject{Account: acc.ID}, Detail: d}); err != nil {
		return store.Session{}, "", err
	}
	return ss, tok, nil
}

// loginBuckets returns the throttle buckets a login attempt reserves: its
// address's and its username's, or only its browser's when it presents a
// valid known-browser token for this username. Unknown names take the
// same buckets as known ones, so the refusals do not tell which exist.
func (s *Service) loginBuckets(ctx context.Context, o Origin, key string) ([]bucketRef, error) {
	if o.Browser != "" {
		acc, err := s.st.AccountByUsername(ctx, key)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("look up account: %w", err)
		}
		if b, ok := s.knownBrowser(acc, o.Browser); err == nil && ok {
			return []bucketRef{{s.limits.browsers, b, ReasonBrowser}}, nil
		}
	}
	return []bucketRef{
		{s.limits.addresses, addressKey(o.Addr), ReasonAddress},
		{s.limits.accounts, key, ReasonAccount},
	}, nil
}

// CreateToken opens a long-lived API token for an already authenticated
// account.
func (s *Service) CreateToken(ctx context.Context, accountID, name string) (store.Session, string, error) {
	if err := checkName("name", name, 64); err != nil {
		return store.Session{}, "", err
	}
	return s.openSession(ctx, accountID, store.SessionToken, name)
}

func (s *Service) openSession(ctx context.Context, accountID string, kind store.SessionKind, name string) (store.Session, string, error) {
	prefix := SessionTokenPrefix
	if kind == store.SessionToken {
		prefix = APITokenPrefix
	}
	if kind == store.SessionToken {
		if err := checkName("name", name, 64); err != nil {
			return store.Session{}, "", err
		}
	} else if len(name) > 128 {
		name = strings.ToValidUTF8(name[:128], "")
	}
	tok, hash := credential.NewToken(prefix)
	now := s.now().UTC()
	ss := store.Session{
		ID:         credential.NewID("ses_"),
		AccountID:  accountID,
		Kind:       kind,
		Name:       name,
		TokenHash:  hash,
		CreatedAt:  now,
		LastSeenAt: now,
	}
	if kind == store.SessionBrowser {
		ss.ExpiresAt = now.Add(BrowserSessionTTL)
	}
	if err := s.st.CreateSession(ctx, ss); err != nil {
		return store.Session{}, "", fmt.Errorf("create session: %w", err)
	}
	s.log.Info("session opened", "account", accountID, "session", ss.ID, "kind", kind)
	return ss, tok, nil
}

// Authenticate resolves a bearer secret (cookie or Authorization header)
// to its account and session.
func (s *Service) Authenticate(ctx context.Context, token string) (store.Account, store.Session, error) {
	if len(token) < 10 || len(token) > 256 {
		return store.Account{}, store.Session{}, ErrUnauthenticated
	}
	ss, err := s.st.SessionByTokenHash(ctx, credential.HashToken(token))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Account{}, store.Session{}, ErrUnauthenticated
		}
		return store.Account{}, store.Session{}, fmt.Errorf("look up session: %w", err)
	}
	now := s.now().UTC()
	if !ss.ExpiresAt.IsZero() && now.After(ss.ExpiresAt) {
		return store.Account{}, store.Session{}, ErrUnauthenticated
	}
	acc, err := s.st.Account(ctx, ss.AccountID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Account{}, store.Session{}, ErrUnauthenticated
		}
		return store.Account{}, store.Session{}, fmt.Errorf("look up account: %w", err)
	}
	// Record use at most once a minute per session: a busy script must not
	// turn every request into a write.
	s.mu.Lock()
	last := s.lastTouch[ss.ID]
	due := now.Sub(last) >= touchEvery
	if due {
		s.lastTouch[ss.ID] = now
	}
	s.mu.Unlock()
	if due {
		if err := s.st.TouchSession(ctx, ss.ID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("touch session", "session", ss.ID, "err", err)
		}
		ss.LastSeenAt = now
	}
	return acc, ss, nil
}

// Sessions lists an account's logins and tokens.
func (s *Service) Sessions(ctx context.Context, accountID string) ([]store.Session, error) {
	return s.st.Sessions(ctx, accountID)
}

// RevokeSession ends one of the account's sessions. Sessions of other
// accounts are reported as not found.
func (s *Service) RevokeSession(ctx context.Context, accountID, sessionID string) error {
	list, err := s.st.Sessions(ctx, accountID)
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	for _, ss := range list {
		if ss.ID == sessionID {
			if err := s.st.DeleteSession(ctx, sessionID); err != nil {
				return fmt.Errorf("revoke session %s: %w", sessionID, err)
			}
			s.mu.Lock()
			delete(s.lastTouch, sessionID)
			s.mu.Unlock()
			s.log.Info("session revoked", "account", accountID, "session", sessionID)
			return s.record(ctx, auditlog.Event{Action: auditlog.ActionSessionRevoke, Subject: auditlog.Subject{Account: accountID},
				Detail: map[string]string{"session": sessionID}})
		}
	}
	return fmt.Errorf("revoke session %s: %w", sessionID, store.ErrNotFound)
}
