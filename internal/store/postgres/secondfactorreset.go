package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

// ResetSecondFactor removes an account's factor and keeps the notice, in
// one transaction.
func (db *DB) ResetSecondFactor(ctx context.Context, r store.SecondFactorReset) error {
	t, err := encTime(r.At)
	if err != nil {
		return fmt.Errorf("reset second factor: %w", err)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("reset second factor: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	tag, err := tx.Exec(ctx, `DELETE FROM second_factors WHERE account_id = $1`, r.AccountID)
	if err != nil {
		return fmt.Errorf("reset second factor: %w", err)
	}
	if err := notFoundIfNone(tag, "reset second factor of account", r.AccountID); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO second_factor_resets (account_id, reset_at, by_kind, by_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (account_id) DO UPDATE SET reset_at = excluded.reset_at, by_kind = excluded.by_kind, by_id = excluded.by_id`,
		r.AccountID, t, r.ByKind, r.ByID); err != nil {
		return wrapErr(err, "keep second factor reset of account %q", r.AccountID)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("reset second factor: commit: %w", err)
	}
	return nil
}

// TakeSecondFactorReset returns and deletes an account's notice.
func (db *DB) TakeSecondFactorReset(ctx context.Context, accountID string) (store.SecondFactorReset, error) {
	r := store.SecondFactorReset{AccountID: accountID}
	var t int64
	err := db.pool.QueryRow(ctx, `DELETE FROM second_factor_resets WHERE account_id = $1 RETURNING reset_at, by_kind, by_id`, accountID).
		Scan(&t, &r.ByKind, &r.ByID)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.SecondFactorReset{}, fmt.Errorf("second factor reset of account %q: %w", accountID, store.ErrNotFound)
	}
	if err != nil {
		return store.SecondFactorReset{}, fmt.Errorf("take second factor reset of account %q: %w", accountID, err)
	}
	r.At = decTime(t)
	return r, nil
}
