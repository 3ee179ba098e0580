package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
)

// A person who lost both their phone and their recovery codes cannot log
// in. The way back is someone else removing their second factor: the
// operator (the local control socket) for anyone, the admin for the
// people of the admin's household (access.Principal.ResetSecondFactor).
// The removal is logged with who did it, and the person is told at their
// next login, so a removal they did not ask for does not go unnoticed.

// SecondFactorReset is what a person is told at their first login after
// someone else removed their second factor.
type SecondFactorReset struct {
	At time.Time `json:"at"`
	// By is "operator" (whoever runs the hub) or "admin".
	By string `json:"by"`
}

// AdminSecondFactorRequired reports whether this hub makes the admin
// enrol a second factor before anything else.
func (s *Service) AdminSecondFactorRequired() bool { return s.adminSF }

// MustEnrolFirst reports whether p, just authenticated, may do nothing
// but enrol a second factor (and log out), because the hub requires one
// for the admin and p has none yet. The decision is access's; this looks
// up the facts it needs only when they can matter.
func (s *Service) MustEnrolFirst(ctx context.Context, p access.Principal) (bool, error) {
	if !p.MustEnrolFirst(s.adminSF, false) {
		return false, nil
	}
	has, err := s.HasSecondFactor(ctx, p.Account.ID)
	if err != nil {
		return false, err
	}
	return p.MustEnrolFirst(s.adminSF, has), nil
}

// AccountMustEnrolFirst is MustEnrolFirst for an account just logged in.
func (s *Service) AccountMustEnrolFirst(ctx context.Context, accountID string) (bool, error) {
	if !s.adminSF {
		return false, nil
	}
	acc, err := s.st.Account(ctx, accountID)
	if err != nil {
		return false, fmt.Errorf("look up account: %w", err)
	}
	return s.MustEnrolFirst(ctx, access.Person(acc, store.Session{}))
}

// AccountSecondFactor reports the second factor of the account named
// username, to a principal allowed to see it.
func (s *Service) AccountSecondFactor(ctx context.Context, p access.Principal, username string) (store.Account, SecondFactorStatus, error) {
	acc, err := s.st.AccountByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, SecondFactorStatus{}, &access.NotFoundError{Kind: "account", ID: username}
	}
	if err != nil {
		return store.Account{}, SecondFactorStatus{}, fmt.Errorf("look up account: %w", err)
	}
	if err := p.SeeSecondFactor(acc); err != nil {
		return store.Account{}, SecondFactorStatus{}, err
	}
	st, err := s.SecondFactor(ctx, acc.ID)
	return acc, st, err
}

// ResetSecondFactor removes the second factor (app and recovery codes)
// of the account named username, for a person who lost both. p must be
// allowed (access.Principal.ResetSecondFactor). The person is told at
// their next login (TakeSecondFactorReset); the transparency log records
// who removed it.
func (s *Service) ResetSecondFactor(ctx context.Context, p access.Principal, username string) (store.Account, error) {
	acc, err := s.st.AccountByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, &access.NotFoundError{Kind: "account", ID: username}
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("look up account: %w", err)
	}
	if err := p.ResetSecondFactor(acc); err != nil {
		return store.Account{}, err
	}
	actor := p.Actor()
	r := store.SecondFactorReset{AccountID: acc.ID, At: s.now().UTC(), ByKind: string(actor.Kind), ByID: actor.ID}
	if err := s.st.ResetSecondFactor(ctx, r); errors.Is(err, store.ErrNotFound) {
		return store.Account{}, invalid("username: there are no login codes of %s to turn off", acc.Username)
	} else if err != nil {
		return store.Account{}, fmt.Errorf("reset second factor: %w", err)
	}
	s.log.Info("second factor reset", "account", acc.ID, "by", string(actor.Kind))
	by := "operator"
	if !p.Operator {
		by = "admin"
	}
	return acc, s.record(ctx, auditlog.Event{Actor: actor, Action: ActionSecondFactorReset, Household: acc.HouseholdID,
		Subject: auditlog.Subject{Account: acc.ID}, Detail: map[string]string{"kind": "totp", "by": by}})
}

// TakeSecondFactorReset returns, once, the notice that someone else
// removed this account's second factor; ok is false when there is none.
// The login front ends call it after a login succeeds, to tell the
// person.
func (s *Service) TakeSecondFactorReset(ctx context.Context, accountID string) (SecondFactorReset, bool, error) {
	r, err := s.st.TakeSecondFactorReset(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return SecondFactorReset{}, false, nil
	}
	if err != nil {
		return SecondFactorReset{}, false, fmt.Errorf("second factor reset notice: %w", err)
	}
	by := "admin"
	if r.ByKind == string(auditlog.ActorOperator) {
		by = "operator"
	}
	return SecondFactorReset{At: r.At, By: by}, true, nil
}
