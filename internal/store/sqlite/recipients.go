package sqlite

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
	_, err = db.writer.ExecContext(ctx, `INSERT INTO recipient_endpoints (household_id, recipient, url, created_at) VALUES (?, ?, ?, ?)
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
	res, err := db.writer.ExecContext(ctx, `DELETE FROM recipient_endpoints WHERE household_id = ? AND recipient = ?`, householdID, recipient)
	if err != nil {
		return fmt.Errorf("delete recipient endpoint: %w", err)
	}
	return notFoundIfNone(res, "delete recipient endpoint of household", householdID)
}

// RecipientEndpoints lists endpoints of one household, or of all.
func (db *DB) RecipientEndpoints(ctx context.Context, householdID string) ([]store.RecipientEndpoint, error) {
	q := `SELECT household_id, recipient, url, created_at FROM recipient_endpoints`
	var args []any
	if householdID != "" {
		q += ` WHERE household_id = ?`
		args = append(args, householdID)
	}
	rows, err := db.readers.QueryContext(ctx, q+` ORDER BY household_id, recipient`, args...)
	if err != nil {
		return nil, fmt.Errorf("list recipient endpoints: %w", err)
	}
	defer rows.Close()
	var out []store.RecipientEndpoint
	for rows.Next() {
		var (
			e  store.RecipientEndpoint
			at int64
		)
		if err := rows.Scan(&e.HouseholdID, &e.Recipient, &e.URL, &at); err != nil {
			return nil, fmt.Errorf("list recipient endpoints: %w", err)
		}
		e.CreatedAt = decTime(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list recipient endpoints: %w", err)
	}
	return out, nil
}
