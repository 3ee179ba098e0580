package postgres

import (
	"context"
	"fmt"

	"github.com/candor-iot/candor/internal/store"
)

// PutRecipientEndpoint creates or replaces a household's endpoint for a
// recipient. A missing household is store.ErrNotFound.
func (db *DB) PutRecipientEndpoint(ctx context.Context, e store.RecipientEndpoint) error {
	at, err := encTime(e.CreatedAt)
	if err != nil {
		return fmt.Errorf("put recipient endpoint: %w", err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO recipient_endpoints (household_id, recipient, url, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (household_id, recipient) DO UPDATE SET url = excluded.url, created_at = excluded.created_at`,
		e.HouseholdID, e.Recipient, e.URL, at)
	if missingParent(err) {
		return fmt.Errorf("put recipient endpoint: household %q: %w", e.HouseholdID, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr(err, "put recipient endpoint of household %q", e.HouseholdID)
	}
	return nil
}

// DeleteRecipientEndpoint removes a household's endpoint for a recipient.
func (db *DB) DeleteRecipientEndpoint(ctx context.Context, householdID, recipient string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM recipient_endpoints WHERE household_id = $1 AND recipient = $2`, householdID, recipient)
	if err != nil {
		return fmt.Errorf("delete recipient endpoint: %w", err)
	}
	return notFoundIfNone(tag, "delete recipient endpoint of household", householdID)
}

// RecipientEndpoints lists endpoints of one household, or of all.
func (db *DB) RecipientEndpoints(ctx context.Context, householdID string) ([]store.RecipientEndpoint, error) {
	w := &whereClause{}
	if householdID != "" {
		w.add(`household_id = ?`, householdID)
	}
	rows, err := db.pool.Query(ctx, `SELECT household_id, recipient, url, created_at FROM recipient_endpoints WHERE `+
		w.String()+` ORDER BY household_id, recipient`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list recipient endpoints: %w", err)
	}
	out, err := collect(rows, func(r rowScanner) (store.RecipientEndpoint, error) {
		var (
			e  store.RecipientEndpoint
			at int64
		)
		err := r.Scan(&e.HouseholdID, &e.Recipient, &e.URL, &at)
		e.CreatedAt = decTime(at)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list recipient endpoints: %w", err)
	}
	return out, nil
}
