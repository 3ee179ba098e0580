package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// PutSecondFactor creates or replaces an account's factor and its
// recovery codes in one transaction.
func (db *DB) PutSecondFactor(ctx context.Context, f store.SecondFactor) error {
	ts, err := encTimes(f.CreatedAt, f.ConfirmedAt)
	if err != nil {
		return fmt.Errorf("put second factor: %w", err)
	}
	confirmed := ts[1]
	if f.ConfirmedAt.IsZero() {
		confirmed = 0
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put second factor: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// Deleting first drops the old recovery codes with it (cascade).
	if _, err := tx.ExecContext(ctx, `DELETE FROM second_factors WHERE account_id = ?`, f.AccountID); err != nil {
		return fmt.Errorf("put second factor: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO second_factors (account_id, secret, created_at, confirmed_at, last_step)
		VALUES (?, ?, ?, ?, ?)`, f.AccountID, f.Sealed, ts[0], confirmed, f.LastStep)
	if missingParent(err) {
		return fmt.Errorf("put second factor: account %q: %w", f.AccountID, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr(err, "put second factor of account %q", f.AccountID)
	}
	for _, h := range f.RecoveryHashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (account_id, code_hash) VALUES (?, ?)`, f.AccountID, h); err != nil {
			return wrapErr(err, "put recovery code of account %q", f.AccountID)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put second factor: commit: %w", err)
	}
	return nil
}

// SecondFactor returns an account's factor and how many recovery codes
// it has left.
func (db *DB) SecondFactor(ctx context.Context, accountID string) (store.SecondFactor, error) {
	var (
		f                  = store.SecondFactor{AccountID: accountID}
		created, confirmed int64
	)
	err := db.readers.QueryRowContext(ctx, `SELECT secret, created_at, confirmed_at, last_step,
		(SELECT count(*) FROM recovery_codes r WHERE r.account_id = f.account_id)
		FROM second_factors f WHERE account_id = ?`, accountID).Scan(&f.Sealed, &created, &confirmed, &f.LastStep, &f.RecoveryLeft)
	if errors.Is(err, sql.ErrNoRows) {
		return store.SecondFactor{}, fmt.Errorf("second factor of account %q: %w", accountID, store.ErrNotFound)
	}
	if err != nil {
		return store.SecondFactor{}, fmt.Errorf("second factor of account %q: %w", accountID, err)
	}
	f.CreatedAt = decTime(created)
	if confirmed != 0 {
		f.ConfirmedAt = decTime(confirmed)
	}
	return f, nil
}

// ConfirmSecondFactor puts a factor in force.
func (db *DB) ConfirmSecondFactor(ctx context.Context, accountID string, step int64, at time.Time) error {
	t, err := encTime(at)
	if err != nil {
		return fmt.Errorf("confirm second factor: %w", err)
	}
	res, err := db.writer.ExecContext(ctx, `UPDATE second_factors SET confirmed_at = ?, last_step = max(last_step, ?) WHERE account_id = ?`, t, step, accountID)
	if err != nil {
		return fmt.Errorf("confirm second factor: %w", err)
	}
	return notFoundIfNone(res, "confirm second factor of account", accountID)
}

// UseSecondFactorStep advances the last accepted step, atomically.
func (db *DB) UseSecondFactorStep(ctx context.Context, accountID string, step int64) (bool, error) {
	res, err := db.writer.ExecContext(ctx, `UPDATE second_factors SET last_step = ? WHERE account_id = ? AND last_step < ?`, step, accountID, step)
	if err != nil {
		return false, fmt.Errorf("use second factor step: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("use second factor step: %w", err)
	}
	return n == 1, nil
}

// UseRecoveryCode deletes one recovery code, atomically.
func (db *DB) UseRecoveryCode(ctx context.Context, accountID string, hash []byte) (bool, error) {
	res, err := db.writer.ExecContext(ctx, `DELETE FROM recovery_codes WHERE account_id = ? AND code_hash = ?`, accountID, hash)
	if err != nil {
		return false, fmt.Errorf("use recovery code: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("use recovery code: %w", err)
	}
	return n == 1, nil
}

// DeleteSecondFactor removes a factor and its recovery codes.
func (db *DB) DeleteSecondFactor(ctx context.Context, accountID string) error {
	res, err := db.writer.ExecContext(ctx, `DELETE FROM second_factors WHERE account_id = ?`, accountID)
	if err != nil {
		return fmt.Errorf("delete second factor: %w", err)
	}
	return notFoundIfNone(res, "delete second factor of account", accountID)
}
