package store

import (
	"context"
	"time"
)

// --- second login factor (TOTP, RFC 6238) ---
//
// Package identity lets a person add a one-time-code app to their
// account. The store keeps the app's shared secret only in sealed form
// (identity seals it before it gets here) and the recovery codes only as
// SHA-256 hashes: they are long random strings, like bearer tokens.

// SecondFactor is the one-time-code app of an account.
type SecondFactor struct {
	AccountID string
	// Sealed is the TOTP shared secret, sealed by identity; the store
	// never sees it in the clear.
	Sealed    []byte
	CreatedAt time.Time
	// ConfirmedAt is zero until the person proved their app works by
	// typing a code; until then the factor is not asked at login.
	ConfirmedAt time.Time
	// LastStep is the last TOTP time step accepted (RFC 6238 T), so a
	// code is never accepted twice.
	LastStep int64
	// RecoveryHashes are SHA-256 hashes of the recovery codes, each
	// usable once. PutSecondFactor writes them; SecondFactor returns how
	// many are left in RecoveryLeft instead.
	RecoveryHashes [][]byte
	RecoveryLeft   int
}

// Confirmed reports whether the factor is in force.
func (f SecondFactor) Confirmed() bool { return !f.ConfirmedAt.IsZero() }

// SecondFactorStore keeps people's second login factors.
type SecondFactorStore interface {
	// PutSecondFactor creates or replaces the factor of f.AccountID and
	// its recovery codes (ErrNotFound when the account does not exist).
	PutSecondFactor(ctx context.Context, f SecondFactor) error
	// SecondFactor returns an account's factor (ErrNotFound when none).
	SecondFactor(ctx context.Context, accountID string) (SecondFactor, error)
	// ConfirmSecondFactor puts it in force, with the step of the code
	// that confirmed it (ErrNotFound when none).
	ConfirmSecondFactor(ctx context.Context, accountID string, step int64, at time.Time) error
	// UseSecondFactorStep records step as used if it is later than the
	// last one; false when it is not (a replayed or older code). The
	// check and the write are one statement, so two logins racing with
	// the same code cannot both pass.
	UseSecondFactorStep(ctx context.Context, accountID string, step int64) (bool, error)
	// UseRecoveryCode deletes the recovery code with this hash; false
	// when the account has no such code (wrong or already used).
	UseRecoveryCode(ctx context.Context, accountID string, hash []byte) (bool, error)
	// DeleteSecondFactor removes the factor and its recovery codes
	// (ErrNotFound when none).
	DeleteSecondFactor(ctx context.Context, accountID string) error
}

// SecondFactorReset is a notice that someone else removed an account's
// second factor (the person lost their phone and their recovery codes).
// It waits until the person next logs in, to be told.
type SecondFactorReset struct {
	AccountID string
	At        time.Time
	// ByKind and ByID are who removed it, as the transparency log names
	// actors ("operator", or "person" and an account id).
	ByKind string
	ByID   string
}

// SecondFactorResetStore keeps the removals a person has not yet been
// told about.
type SecondFactorResetStore interface {
	// ResetSecondFactor removes an account's factor and its recovery
	// codes and keeps r as a notice, in one transaction (ErrNotFound
	// when the account has no factor).
	ResetSecondFactor(ctx context.Context, r SecondFactorReset) error
	// TakeSecondFactorReset returns and deletes the notice of an
	// account (ErrNotFound when none).
	TakeSecondFactorReset(ctx context.Context, accountID string) (SecondFactorReset, error)
}
