package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

const sessionCols = `id, account_id, kind, name, token_hash, created_at, last_seen_at, expires_at`

func scanSession(r rowScanner) (store.Session, error) {
	var (
		s                        store.Session
		kind                     string
		created, seen, expiresAt int64
	)
	if err := r.Scan(&s.ID, &s.AccountID, &kind, &s.Name, &s.TokenHash, &created, &seen, &expiresAt); err != nil {
		return store.Session{}, err
	}
	s.Kind = store.SessionKind(kind)
	s.CreatedAt = decTime(created)
	s.LastSeenAt = decTime(seen)
	s.ExpiresAt = decTime(expiresAt)
	return s, nil
}

// CreateSession stores a new session. A taken id or token hash is
// store.ErrConflict; a missing account is store.ErrNotFound.
func (db *DB) CreateSession(ctx context.Context, s store.Session) error {
	if s.ID == "" {
		return errors.New("create session: empty id")
	}
	if len(s.TokenHash) == 0 {
		// An empty hash would match any lookup made with an empty
		// token; refuse it outright.
		return fmt.Errorf("create session %q: empty token hash", s.ID)
	}
	ts, err := encTimes(s.CreatedAt, s.LastSeenAt, s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("create session %q: %w", s.ID, err)
	}
	_, err = db.pool.Exec(ctx,
		`INSERT INTO sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		s.ID, s.AccountID, string(s.Kind), s.Name, s.TokenHash, ts[0], ts[1], ts[2])
	if missingParent(err) {
		return fmt.Errorf("create session %q: account %q: %w", s.ID, s.AccountID, store.ErrNotFound)
	}
	if err != nil {
		// The driver's text is PostgreSQL's message without its detail,
		// so a duplicate token hash is not quoted into the error.
		return wrapErr(err, "create session %q", s.ID)
	}
	return nil
}

// SessionByTokenHash returns the session whose token hash is hash. It
// does not check expiry; that is the caller's policy.
func (db *DB) SessionByTokenHash(ctx context.Context, hash []byte) (store.Session, error) {
	if len(hash) == 0 {
		return store.Session{}, fmt.Errorf("session by token hash: %w", store.ErrNotFound)
	}
	s, err := scanSession(db.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE token_hash = $1`, hash))
	// The hash identifies a live credential; it stays out of error
	// messages and so out of logs.
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Session{}, fmt.Errorf("session by token hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("session by token hash: %w", err)
	}
	return s, nil
}

// Sessions lists an account's sessions, oldest first.
func (db *DB) Sessions(ctx context.Context, accountID string) ([]store.Session, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT `+sessionCols+` FROM sessions WHERE account_id = $1 ORDER BY created_at, pos`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list sessions of account %q: %w", accountID, err)
	}
	out, err := collect(rows, scanSession)
	if err != nil {
		return nil, fmt.Errorf("list sessions of account %q: %w", accountID, err)
	}
	return out, nil
}

// TouchSession records that the session was used at the given time.
func (db *DB) TouchSession(ctx context.Context, id string, at time.Time) error {
	seen, err := encTime(at)
	if err != nil {
		return fmt.Errorf("touch session %q: %w", id, err)
	}
	tag, err := db.pool.Exec(ctx, `UPDATE sessions SET last_seen_at = $1 WHERE id = $2`, seen, id)
	if err != nil {
		return fmt.Errorf("touch session %q: %w", id, err)
	}
	return notFoundIfNone(tag, "touch session", id)
}

// DeleteSession removes a session (logout, token revocation).
func (db *DB) DeleteSession(ctx context.Context, id string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete session %q: %w", id, err)
	}
	return notFoundIfNone(tag, "delete session", id)
}
