package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

var _ store.AppStore = (*DB)(nil)

const appCols = `id, household_id, name, description, purposes, kind, secret_hash, credential_set_at, revoked_at, created_at`

func scanApp(r pgx.Row) (store.App, error) {
	var (
		a                         store.App
		purposes                  string
		credSet, revoked, created int64
	)
	if err := r.Scan(&a.ID, &a.HouseholdID, &a.Name, &a.Description, &purposes, &a.Kind, &a.SecretHash,
		&credSet, &revoked, &created); err != nil {
		return store.App{}, err
	}
	if purposes != "" {
		// Purposes are DPV terms, never with spaces, so a space-separated
		// list is unambiguous (as in the SQLite engine).
		a.Purposes = strings.Fields(purposes)
	}
	a.CredentialSetAt, a.RevokedAt, a.CreatedAt = decTime(credSet), decTime(revoked), decTime(created)
	return a, nil
}

// CreateApp stores a new app. A taken id is store.ErrConflict; a missing
// household is store.ErrNotFound.
func (db *DB) CreateApp(ctx context.Context, a store.App) error {
	if a.ID == "" {
		return errors.New("create app: empty id")
	}
	ts, err := encTimes(a.CredentialSetAt, a.RevokedAt, a.CreatedAt)
	if err != nil {
		return fmt.Errorf("create app %q: %w", a.ID, err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO apps (`+appCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		a.ID, a.HouseholdID, a.Name, a.Description, strings.Join(a.Purposes, " "), a.Kind, a.SecretHash, ts[0], ts[1], ts[2])
	if missingParent(err) {
		return fmt.Errorf("create app %q: household %q: %w", a.ID, a.HouseholdID, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr(err, "create app %q", a.ID)
	}
	return nil
}

// App returns the app with the given id.
func (db *DB) App(ctx context.Context, id string) (store.App, error) {
	a, err := scanApp(db.pool.QueryRow(ctx, `SELECT `+appCols+` FROM apps WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.App{}, fmt.Errorf("app %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.App{}, fmt.Errorf("app %q: %w", id, err)
	}
	return a, nil
}

// Apps lists the apps of one household (of all when householdID is
// empty), oldest first.
func (db *DB) Apps(ctx context.Context, householdID string) ([]store.App, error) {
	q := `SELECT ` + appCols + ` FROM apps`
	var args []any
	if householdID != "" {
		q += ` WHERE household_id = $1`
		args = append(args, householdID)
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	defer rows.Close()
	var out []store.App
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			return nil, fmt.Errorf("list apps: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// SetAppSecret replaces an app's secret hash.
func (db *DB) SetAppSecret(ctx context.Context, id, hash string, at time.Time) error {
	ts, err := encTime(at)
	if err != nil {
		return fmt.Errorf("set app secret %q: %w", id, err)
	}
	tag, err := db.pool.Exec(ctx, `UPDATE apps SET secret_hash = $1, credential_set_at = $2 WHERE id = $3 AND revoked_at = 0`, hash, ts, id)
	if err != nil {
		return fmt.Errorf("set app secret %q: %w", id, err)
	}
	return notFoundIfNone(tag, "set secret of app", id)
}

// RevokeApp revokes an app's credential for good and drops its grants.
func (db *DB) RevokeApp(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("revoke app %q: zero time", id)
	}
	rev, err := encTime(at)
	if err != nil {
		return fmt.Errorf("revoke app %q: %w", id, err)
	}
	return db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE apps SET revoked_at = CASE revoked_at WHEN 0 THEN $1 ELSE revoked_at END WHERE id = $2`, rev, id)
		if err != nil {
			return fmt.Errorf("revoke app %q: %w", id, err)
		}
		if err := notFoundIfNone(tag, "revoke app", id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM app_grants WHERE app_id = $1`, id); err != nil {
			return fmt.Errorf("revoke app %q: drop grants: %w", id, err)
		}
		return nil
	})
}

// PutAppGrant records that an app may receive a stream of a device.
func (db *DB) PutAppGrant(ctx context.Context, g store.AppGrant) error {
	at, err := encTime(g.DecidedAt)
	if err != nil {
		return fmt.Errorf("put app grant: %w", err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO app_grants (app_id, device_id, stream, decided_by, decided_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (app_id, device_id, stream) DO UPDATE SET decided_by = excluded.decided_by, decided_at = excluded.decided_at`,
		g.AppID, g.DeviceID, g.Stream, g.DecidedBy, at)
	if missingParent(err) {
		return fmt.Errorf("put app grant of app %q on device %q: %w", g.AppID, g.DeviceID, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr(err, "put app grant of app %q", g.AppID)
	}
	return nil
}

// DeleteAppGrant removes a grant; removing one that does not exist is
// not an error (the app receives nothing either way).
func (db *DB) DeleteAppGrant(ctx context.Context, appID, deviceID, stream string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM app_grants WHERE app_id = $1 AND device_id = $2 AND stream = $3`,
		appID, deviceID, stream); err != nil {
		return fmt.Errorf("delete app grant of app %q: %w", appID, err)
	}
	return nil
}

// AppGrants lists the grants of one app, or of every app.
func (db *DB) AppGrants(ctx context.Context, appID string) ([]store.AppGrant, error) {
	q := `SELECT app_id, device_id, stream, decided_by, decided_at FROM app_grants`
	var args []any
	if appID != "" {
		q += ` WHERE app_id = $1`
		args = append(args, appID)
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY app_id, device_id, stream`, args...)
	if err != nil {
		return nil, fmt.Errorf("list app grants: %w", err)
	}
	defer rows.Close()
	var out []store.AppGrant
	for rows.Next() {
		var (
			g  store.AppGrant
			at int64
		)
		if err := rows.Scan(&g.AppID, &g.DeviceID, &g.Stream, &g.DecidedBy, &at); err != nil {
			return nil, fmt.Errorf("list app grants: %w", err)
		}
		g.DecidedAt = decTime(at)
		out = append(out, g)
	}
	return out, rows.Err()
}
