package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// PutManifest stores the next version of a device type's manifest. The
// version is read and written in one write transaction, so concurrent
// writers cannot both get the same number.
func (db *DB) PutManifest(ctx context.Context, rec store.ManifestRecord) (store.ManifestRecord, error) {
	if rec.DeviceType == "" {
		return store.ManifestRecord{}, errors.New("put manifest: empty device type")
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = time.Now().UTC()
	}
	created, err := encTime(rec.CreatedAt)
	if err != nil {
		return store.ManifestRecord{}, fmt.Errorf("put manifest %q: %w", rec.DeviceType, err)
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(version) FROM manifests WHERE device_type = ?`, rec.DeviceType).Scan(&last); err != nil {
			return err
		}
		rec.Version = int(last.Int64) + 1
		_, err := tx.ExecContext(ctx, `INSERT INTO manifests (device_type, version, doc, draft, created_at) VALUES (?, ?, ?, ?, ?)`,
			rec.DeviceType, rec.Version, rec.Doc, boolInt(rec.Draft), created)
		return err
	})
	if err != nil {
		return store.ManifestRecord{}, fmt.Errorf("put manifest %q: %w", rec.DeviceType, err)
	}
	return rec, nil
}

// ManifestVersions lists one device type's manifest versions, oldest first.
func (db *DB) ManifestVersions(ctx context.Context, deviceType string) ([]store.ManifestRecord, error) {
	out, err := db.queryManifests(ctx, `WHERE device_type = ?`, deviceType)
	if err != nil {
		return nil, fmt.Errorf("manifest versions of %q: %w", deviceType, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("manifest of %q: %w", deviceType, store.ErrNotFound)
	}
	return out, nil
}

// Manifests lists every stored manifest version.
func (db *DB) Manifests(ctx context.Context) ([]store.ManifestRecord, error) {
	out, err := db.queryManifests(ctx, ``)
	if err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	return out, nil
}

func (db *DB) queryManifests(ctx context.Context, where string, args ...any) ([]store.ManifestRecord, error) {
	rows, err := db.readers.QueryContext(ctx,
		`SELECT device_type, version, doc, draft, created_at FROM manifests `+where+` ORDER BY device_type, version`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.ManifestRecord
	for rows.Next() {
		var (
			r       store.ManifestRecord
			draft   int
			created int64
		)
		if err := rows.Scan(&r.DeviceType, &r.Version, &r.Doc, &draft, &created); err != nil {
			return nil, err
		}
		r.Draft = draft != 0
		r.CreatedAt = decTime(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

// AddViolations adds violation counts in one transaction. A row that
// exists is updated; a new one is created while the device has fewer
// than store.MaxViolationRows, and counted in its overflow row after that.
func (db *DB) AddViolations(ctx context.Context, vs []store.ViolationCount) error {
	if len(vs) == 0 {
		return nil
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		update, err := tx.PrepareContext(ctx, `UPDATE violations SET count = count + ?, last_at = max(last_at, ?)
			WHERE device_id = ? AND stream = ? AND field = ? AND reason = ?`)
		if err != nil {
			return err
		}
		defer update.Close()
		rows, err := tx.PrepareContext(ctx, `SELECT count(*) FROM violations WHERE device_id = ? AND reason != ?`)
		if err != nil {
			return err
		}
		defer rows.Close()
		insert, err := tx.PrepareContext(ctx, `INSERT INTO violations (device_id, stream, field, reason, count, last_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id, stream, field, reason)
			DO UPDATE SET count = count + excluded.count, last_at = max(last_at, excluded.last_at)`)
		if err != nil {
			return err
		}
		defer insert.Close()
		for _, v := range vs {
			at, err := encTime(v.LastAt)
			if err != nil {
				return err
			}
			v.Field = store.ClipViolationField(v.Field)
			res, err := update.ExecContext(ctx, v.Count, at, v.DeviceID, v.Stream, v.Field, v.Reason)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n > 0 {
				continue
			}
			var have int
			if err := rows.QueryRowContext(ctx, v.DeviceID, store.ViolationOverflow).Scan(&have); err != nil {
				return err
			}
			if have >= store.MaxViolationRows {
				v.Stream, v.Field, v.Reason = "", "", store.ViolationOverflow
			}
			if _, err := insert.ExecContext(ctx, v.DeviceID, v.Stream, v.Field, v.Reason, v.Count, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add violations: %w", err)
	}
	return nil
}

// Violations lists up to limit of a device's violation counts, most
// recent first, with the number of rows the device has in all.
func (db *DB) Violations(ctx context.Context, deviceID string, limit int) ([]store.ViolationCount, int, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := db.readers.QueryContext(ctx, `SELECT device_id, stream, field, reason, count, last_at, count(*) OVER ()
		FROM violations WHERE device_id = ? ORDER BY last_at DESC, stream, field, reason LIMIT ?`, deviceID, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("violations of device %q: %w", deviceID, err)
	}
	defer rows.Close()
	var out []store.ViolationCount
	total := 0
	for rows.Next() {
		var v store.ViolationCount
		var at int64
		if err := rows.Scan(&v.DeviceID, &v.Stream, &v.Field, &v.Reason, &v.Count, &at, &total); err != nil {
			return nil, 0, fmt.Errorf("violations of device %q: %w", deviceID, err)
		}
		v.LastAt = decTime(at)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("violations of device %q: %w", deviceID, err)
	}
	// With no row listed there is none at all: limit is never 0.
	return out, total, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
