package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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

func scanDevices(rows *sql.Rows) ([]store.Device, error) {
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// CreateDevice stores a new device. A taken id is store.ErrConflict; a
// missing household is store.ErrNotFound. Concurrent calls are committed
// together (see deviceCreates); it returns once the device is committed.
func (db *DB) CreateDevice(ctx context.Context, d store.Device) error {
	if d.ID == "" {
		return errors.New("create device: empty id")
	}
	ts, err := encTimes(d.CredentialSetAt, d.RevokedAt, d.CreatedAt)
	if err != nil {
		return fmt.Errorf("create device %q: %w", d.ID, err)
	}
	return db.creates.add(ctx, db, &createReq{d: d, ts: ts})
}

// Device returns the device with the given id.
func (db *DB) Device(ctx context.Context, id string) (store.Device, error) {
	row := db.readers.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id)
	d, err := scanDevice(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Device{}, fmt.Errorf("device %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("device %q: %w", id, err)
	}
	return d, nil
}

// Devices lists the devices of one household, oldest first.
func (db *DB) Devices(ctx context.Context, householdID string) ([]store.Device, error) {
	rows, err := db.readers.QueryContext(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE household_id = ? ORDER BY created_at, rowid`, householdID)
	if err != nil {
		return nil, fmt.Errorf("list devices of household %q: %w", householdID, err)
	}
	ds, err := scanDevices(rows)
	if err != nil {
		return nil, fmt.Errorf("list devices of household %q: %w", householdID, err)
	}
	return ds, nil
}

// AllDevices lists the devices of every household, oldest first.
func (db *DB) AllDevices(ctx context.Context) ([]store.Device, error) {
	rows, err := db.readers.QueryContext(ctx,
		`SELECT `+deviceCols+` FROM devices ORDER BY created_at, rowid`)
	if err != nil {
		return nil, fmt.Errorf("list all devices: %w", err)
	}
	ds, err := scanDevices(rows)
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
	res, err := db.writer.ExecContext(ctx,
		`UPDATE devices SET secret_hash = ?, credential_set_at = ? WHERE id = ?`, hash, set, id)
	if err != nil {
		return fmt.Errorf("set secret of device %q: %w", id, err)
	}
	return notFoundIfNone(res, "set secret of device", id)
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
	res, err := db.writer.ExecContext(ctx,
		`UPDATE devices SET revoked_at = CASE revoked_at WHEN 0 THEN ? ELSE revoked_at END WHERE id = ?`, rev, id)
	if err != nil {
		return fmt.Errorf("revoke device %q: %w", id, err)
	}
	return notFoundIfNone(res, "revoke device", id)
}

// AddDeviceCounters adds each delta to its device's counters in one
// transaction. Unknown device ids are ignored: the broker counts failed
// logins under whatever username was tried, and one id that matches no
// device is no reason to lose the others' counts.
func (db *DB) AddDeviceCounters(ctx context.Context, deltas map[string]store.DeviceCounters) error {
	if len(deltas) == 0 {
		return nil
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE devices SET
			acl_denied = acl_denied + ?, refused = refused + ?, auth_failures = auth_failures + ?
			WHERE id = ?`)
		if err != nil {
			return fmt.Errorf("add device counters: prepare: %w", err)
		}
		defer stmt.Close()
		for id, c := range deltas {
			if c == (store.DeviceCounters{}) {
				continue
			}
			if _, err := stmt.ExecContext(ctx, c.ACLDenied, c.Refused, c.AuthFailures, id); err != nil {
				return fmt.Errorf("add counters of device %q: %w", id, err)
			}
		}
		return nil
	})
}
