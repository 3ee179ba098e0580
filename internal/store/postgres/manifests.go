package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

// PutManifest stores the next version of a device type's manifest. The
// version is read and written under an advisory lock on the device type,
// so concurrent writers cannot both get the same number.
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
	doc := rec.Doc
	if doc == nil {
		doc = []byte{}
	}
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if err := advisoryLock(ctx, tx, lockManifest, rec.DeviceType); err != nil {
			return err
		}
		var last int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM manifests WHERE device_type = $1`, rec.DeviceType).Scan(&last); err != nil {
			return err
		}
		rec.Version = last + 1
		_, err := tx.Exec(ctx, `INSERT INTO manifests (device_type, version, doc, draft, created_at) VALUES ($1, $2, $3, $4, $5)`,
			rec.DeviceType, rec.Version, doc, rec.Draft, created)
		return err
	})
	if err != nil {
		return store.ManifestRecord{}, fmt.Errorf("put manifest %q: %w", rec.DeviceType, err)
	}
	return rec, nil
}

// ManifestVersions lists one device type's manifest versions, oldest first.
func (db *DB) ManifestVersions(ctx context.Context, deviceType string) ([]store.ManifestRecord, error) {
	out, err := db.queryManifests(ctx, `WHERE device_type = $1`, deviceType)
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
	rows, err := db.pool.Query(ctx,
		`SELECT device_type, version, doc, draft, created_at FROM manifests `+where+` ORDER BY device_type, version`, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(r rowScanner) (store.ManifestRecord, error) {
		var (
			m       store.ManifestRecord
			created int64
		)
		err := r.Scan(&m.DeviceType, &m.Version, &m.Doc, &m.Draft, &created)
		m.CreatedAt = decTime(created)
		return m, err
	})
}

// AddViolations adds violation counts in one transaction. A row that
// exists is updated; a new one is created while the device has fewer
// than store.MaxViolationRows, and counted in its overflow row after that.
// Each device's rows are counted and added under an advisory lock on the
// device, taken in device order so two writers cannot deadlock, so two
// hubs cannot both add the 32nd row.
func (db *DB) AddViolations(ctx context.Context, vs []store.ViolationCount) error {
	if len(vs) == 0 {
		return nil
	}
	devs := make([]string, 0, len(vs))
	for _, v := range vs {
		devs = append(devs, v.DeviceID)
	}
	slices.Sort(devs)
	devs = slices.Compact(devs)
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		for _, d := range devs {
			if err := advisoryLock(ctx, tx, lockViolations, d); err != nil {
				return err
			}
		}
		for _, v := range vs {
			at, err := encTime(v.LastAt)
			if err != nil {
				return err
			}
			v.Field = store.ClipViolationField(v.Field)
			tag, err := tx.Exec(ctx, `UPDATE violations SET count = count + $1, last_at = greatest(last_at, $2)
				WHERE device_id = $3 AND stream = $4 AND field = $5 AND reason = $6`,
				v.Count, at, v.DeviceID, v.Stream, v.Field, v.Reason)
			if err != nil {
				return err
			}
			if tag.RowsAffected() > 0 {
				continue
			}
			var have int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM violations WHERE device_id = $1 AND reason <> $2`,
				v.DeviceID, store.ViolationOverflow).Scan(&have); err != nil {
				return err
			}
			if have >= store.MaxViolationRows {
				v.Stream, v.Field, v.Reason = "", "", store.ViolationOverflow
			}
			if _, err := tx.Exec(ctx, `INSERT INTO violations (device_id, stream, field, reason, count, last_at)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (device_id, stream, field, reason)
				DO UPDATE SET count = violations.count + excluded.count, last_at = greatest(violations.last_at, excluded.last_at)`,
				v.DeviceID, v.Stream, v.Field, v.Reason, v.Count, at); err != nil {
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
	var lim *int // LIMIT NULL: no limit
	if limit > 0 {
		lim = &limit
	}
	rows, err := db.pool.Query(ctx, `SELECT device_id, stream, field, reason, count, last_at, count(*) OVER ()
		FROM violations WHERE device_id = $1 ORDER BY last_at DESC, stream, field, reason LIMIT $2`, deviceID, lim)
	if err != nil {
		return nil, 0, fmt.Errorf("violations of device %q: %w", deviceID, err)
	}
	defer rows.Close()
	var out []store.ViolationCount
	total := 0
	for rows.Next() {
		var (
			v  store.ViolationCount
			at int64
		)
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
