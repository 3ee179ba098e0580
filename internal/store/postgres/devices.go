package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

const deviceCols = `id, household_id, name, type, secret_hash, credential_set_at, revoked_at, created_at, acl_denied, refused, auth_failures, key_owner`

func scanDevice(r rowScanner) (store.Device, error) {
	var (
		d                         store.Device
		credSet, revoked, created int64
	)
	err := r.Scan(&d.ID, &d.HouseholdID, &d.Name, &d.Type, &d.SecretHash,
		&credSet, &revoked, &created,
		&d.Counters.ACLDenied, &d.Counters.Refused, &d.Counters.AuthFailures, &d.KeyOwner)
	if err != nil {
		return store.Device{}, err
	}
	d.CredentialSetAt = decTime(credSet)
	d.RevokedAt = decTime(revoked)
	d.CreatedAt = decTime(created)
	return d, nil
}

// CreateDevice stores a new device. A taken id is store.ErrConflict; a
// missing household is store.ErrNotFound.
func (db *DB) CreateDevice(ctx context.Context, d store.Device) error {
	if d.ID == "" {
		return errors.New("create device: empty id")
	}
	ts, err := encTimes(d.CredentialSetAt, d.RevokedAt, d.CreatedAt)
	if err != nil {
		return fmt.Errorf("create device %q: %w", d.ID, err)
	}
	_, err = db.pool.Exec(ctx,
		`INSERT INTO devices (`+deviceCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		d.ID, d.HouseholdID, d.Name, d.Type, d.SecretHash,
		ts[0], ts[1], ts[2],
		d.Counters.ACLDenied, d.Counters.Refused, d.Counters.AuthFailures, d.KeyOwner)
	if missingParent(err) {
		return fmt.Errorf("create device %q: household %q: %w", d.ID, d.HouseholdID, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr(err, "create device %q", d.ID)
	}
	return nil
}

// Device returns the device with the given id.
func (db *DB) Device(ctx context.Context, id string) (store.Device, error) {
	d, err := scanDevice(db.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Device{}, fmt.Errorf("device %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("device %q: %w", id, err)
	}
	return d, nil
}

// Devices lists the devices of one household, oldest first.
func (db *DB) Devices(ctx context.Context, householdID string) ([]store.Device, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE household_id = $1 ORDER BY created_at, pos`, householdID)
	if err != nil {
		return nil, fmt.Errorf("list devices of household %q: %w", householdID, err)
	}
	ds, err := collect(rows, scanDevice)
	if err != nil {
		return nil, fmt.Errorf("list devices of household %q: %w", householdID, err)
	}
	return ds, nil
}

// AllDevices lists the devices of every household, oldest first.
func (db *DB) AllDevices(ctx context.Context) ([]store.Device, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices ORDER BY created_at, pos`)
	if err != nil {
		return nil, fmt.Errorf("list all devices: %w", err)
	}
	ds, err := collect(rows, scanDevice)
	if err != nil {
		return nil, fmt.Errorf("list all devices: %w", err)
	}
	return ds, nil
}

// SetDeviceSecret replaces the device's secret hash and records when.
// It touches nothing else: in particular a revoked device stays revoked,
// so rotating a secret can never quietly let a revoked device back in.
func (db *DB) SetDeviceSecret(ctx context.Context, id, hash string, at time.Time) error {
	set, err := encTime(at)
	if err != nil {
		return fmt.Errorf("set secret of device %q: %w", id, err)
	}
	tag, err := db.pool.Exec(ctx, `UPDATE devices SET secret_hash = $1, credential_set_at = $2 WHERE id = $3`, hash, set, id)
	if err != nil {
		return fmt.Errorf("set secret of device %q: %w", id, err)
	}
	return notFoundIfNone(tag, "set secret of device", id)
}

// RevokeDevice marks the device's credential revoked at the given time.
// Revoking again keeps the first time, which is when access really ended.
func (db *DB) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		// Zero is how "not revoked" is stored; accepting it would make
		// this call a silent no-op.
		return fmt.Errorf("revoke device %q: zero time", id)
	}
	rev, err := encTime(at)
	if err != nil {
		return fmt.Errorf("revoke device %q: %w", id, err)
	}
	tag, err := db.pool.Exec(ctx,
		`UPDATE devices SET revoked_at = CASE revoked_at WHEN 0 THEN $1 ELSE revoked_at END WHERE id = $2`, rev, id)
	if err != nil {
		return fmt.Errorf("revoke device %q: %w", id, err)
	}
	return notFoundIfNone(tag, "revoke device", id)
}

// AddDeviceCounters adds each delta to its device's counters in one
// transaction. Unknown device ids are ignored: the broker counts failed
// logins under whatever username was tried, and one id that matches no
// device is no reason to lose the others' counts. Rows are updated in id
// order, so two hubs flushing at once cannot deadlock on each other.
func (db *DB) AddDeviceCounters(ctx context.Context, deltas map[string]store.DeviceCounters) error {
	ids := make([]string, 0, len(deltas))
	for id, c := range deltas {
		if c != (store.DeviceCounters{}) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	return db.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, id := range ids {
			c := deltas[id]
			b.Queue(`UPDATE devices SET acl_denied = acl_denied + $1, refused = refused + $2, auth_failures = auth_failures + $3
				WHERE id = $4`, c.ACLDenied, c.Refused, c.AuthFailures, id)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("add device counters: %w", err)
		}
		return nil
	})
}
