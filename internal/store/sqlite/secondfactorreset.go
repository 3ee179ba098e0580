package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/candor-iot/candor/internal/store"
)

// ResetSecondFactor removes an account's factor and keeps the notice, in
// one transaction.
func (db *DB) ResetSecondFactor(ctx context.Context, r store.SecondFactorReset) error {
	t, err := encTime(r.At)
	if err != nil {
		return fmt.Errorf("reset second factor: %w", err)
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reset second factor: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `DELETE FROM second_factors WHERE account_id = ?`, r.AccountID)
	if err != nil {
		return fmt.Errorf("reset second factor: %w", err)
	}
	if err := notFoundIfNone(res, "reset second factor of account", r.AccountID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO second_factor_resets (account_id, reset_at, by_kind, by_id) VALUES (?, ?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET reset_at = excluded.reset_at, by_kind = excluded.by_kind, by_id = excluded.by_id`,
		r.AccountID, t, r.ByKind, r.ByID); err != nil {
		return wrapErr(err, "keep second factor reset of account %q", r.AccountID)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("reset second factor: commit: %w", err)
	}
	return nil
}

// TakeSecondFactorReset returns and deletes an account's notice.
func (db *DB) TakeSecondFactorReset(ctx context.Context, accountID string) (store.SecondFactorReset, error) {
	r := store.SecondFactorReset{AccountID: accountID}
	var t int64
	err := db.writer.QueryRowContext(ctx, `DELETE FROM second_factor_resets WHERE account_id = ? RETURNING reset_at, by_kind, by_id`, accountID).
		Scan(&t, &r.ByKind, &r.ByID)
	if errors.Is(err, sql.ErrNoRows) {
		return store.SecondFactorReset{}, fmt.Errorf("second factor reset of account %q: %w", accountID, store.ErrNotFound)
	}
	if err != nil {
		return store.SecondFactorReset{}, fmt.Errorf("take second factor reset of account %q: %w", accountID, err)
	}
	r.At = decTime(t)
	return r, nil
}
