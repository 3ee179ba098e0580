package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/candor-iot/candor/internal/store"
)

// Reading query limits. The default is the one store.ReadingQuery
// documents; the cap keeps one request from pulling a device's whole
// history into memory.
const (
	DefaultReadingLimit = 1000
	MaxReadingLimit     = 10000
)

// AppendReadings stores rs in one transaction and sets each element's
// Seq. When it returns nil the readings are on disk (synchronous=FULL);
// on error none of them is stored and no Seq is changed.
//
// Ingest runs at tens of thousands of readings a second in batches of up
// to a few thousand, so the cost that matters is the commit's fsync: one
// per batch, with a single prepared INSERT reused for every row.
func (db *DB) AppendReadings(ctx context.Context, rs []store.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	// Seq is only written back once the commit succeeded, so a failed
	// call leaves the caller's slice as it was.
	seqs := make([]int64, len(rs))
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			`INSERT INTO readings (device_id, stream, ts, payload, manifest_version) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("append readings: prepare: %w", err)
		}
		defer stmt.Close()
		for i := range rs {
			r := &rs[i]
			// Errors name the reading by position and device only:
			// payloads are people's data and do not belong in logs.
			if r.DeviceID == "" {
				return fmt.Errorf("append readings: reading %d: empty device id", i)
			}
			ts, err := encTime(r.Time)
			if err != nil {
				return fmt.Errorf("append readings: reading %d of device %q: %w", i, r.DeviceID, err)
			}
			payload := r.Payload
			if payload == nil {
				payload = []byte{} // the column is NOT NULL; nil would bind as NULL
			}
			res, err := stmt.ExecContext(ctx, r.DeviceID, r.Stream, ts, payload, r.ManifestVersion)
			if err != nil {
				return fmt.Errorf("append readings: reading %d of device %q: %w", i, r.DeviceID, err)
			}
			if seqs[i], err = res.LastInsertId(); err != nil {
				return fmt.Errorf("append readings: reading %d of device %q: seq: %w", i, r.DeviceID, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range rs {
		rs[i].Seq = seqs[i]
	}
	return nil
}

// Readings returns readings of q.DeviceID matching q, in increasing Seq
// order. Limit 0 means DefaultReadingLimit; larger limits are capped at
// MaxReadingLimit, so callers page with AfterSeq.
func (db *DB) Readings(ctx context.Context, q store.ReadingQuery) ([]store.Reading, error) {
	if q.DeviceID == "" {
		return nil, errors.New("query readings: empty device id")
	}
	var (
		where strings.Builder
		args  = []any{q.DeviceID}
	)
	where.WriteString(`device_id = ?`)
	if q.Stream != "" {
		where.WriteString(` AND stream = ?`)
		args = append(args, q.Stream)
	}
	if !q.Since.IsZero() {
		since, err := encTime(q.Since)
		if err != nil {
			return nil, fmt.Errorf("query readings of device %q: since: %w", q.DeviceID, err)
		}
		where.WriteString(` AND ts >= ?`)
		args = append(args, since)
	}
	if !q.Until.IsZero() {
		until, err := encTime(q.Until)
		if err != nil {
			return nil, fmt.Errorf("query readings of device %q: until: %w", q.DeviceID, err)
		}
		where.WriteString(` AND ts < ?`)
		args = append(args, until)
	}
	if q.AfterSeq > 0 {
		where.WriteString(` AND seq > ?`)
		args = append(args, q.AfterSeq)
	}
	if q.ManifestVersion != 0 {
		where.WriteString(` AND manifest_version = ?`)
		args = append(args, q.ManifestVersion)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultReadingLimit
	}
	limit = min(limit, MaxReadingLimit)
	args = append(args, limit)

	rows, err := db.readers.QueryContext(ctx,
		`SELECT seq, device_id, stream, ts, payload, manifest_version FROM readings WHERE `+where.String()+` ORDER BY seq LIMIT ?`,
		args...)
	if err != nil {
		return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
	}
	defer rows.Close()
	out := make([]store.Reading, 0, min(limit, 64))
	for rows.Next() {
		var (
			r  store.Reading
			ts int64
		)
		if err := rows.Scan(&r.Seq, &r.DeviceID, &r.Stream, &ts, &r.Payload, &r.ManifestVersion); err != nil {
			return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
		}
		r.Time = decTime(ts)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
	}
	return out, nil
}

// CountReadings returns how many readings of the device are stored.
func (db *DB) CountReadings(ctx context.Context, deviceID string) (int64, error) {
	var n int64
	err := db.readers.QueryRowContext(ctx, `SELECT count(*) FROM readings WHERE device_id = ?`, deviceID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count readings of device %q: %w", deviceID, err)
	}
	return n, nil
}

// DeleteReadings removes matching readings of one device, at most limit
// rows (limit ≤ 0: all) in one transaction. The (device_id, stream, ts)
// index serves the selection.
func (db *DB) DeleteReadings(ctx context.Context, q store.ReadingQuery, limit int) (int64, error) {
	if q.DeviceID == "" {
		return 0, errors.New("delete readings: empty device id")
	}
	where := `device_id = ?`
	args := []any{q.DeviceID}
	if q.Stream != "" {
		where += ` AND stream = ?`
		args = append(args, q.Stream)
	}
	if !q.Since.IsZero() {
		n, err := encTime(q.Since)
		if err != nil {
			return 0, fmt.Errorf("delete readings: since: %w", err)
		}
		where += ` AND ts >= ?`
		args = append(args, n)
	}
	if !q.Until.IsZero() {
		n, err := encTime(q.Until)
		if err != nil {
			return 0, fmt.Errorf("delete readings: until: %w", err)
		}
		where += ` AND ts < ?`
		args = append(args, n)
	}
	if q.ManifestVersion != 0 {
		where += ` AND manifest_version = ?`
		args = append(args, q.ManifestVersion)
	}
	stmt := `DELETE FROM readings WHERE ` + where
	if limit > 0 {
		stmt = `DELETE FROM readings WHERE seq IN (SELECT seq FROM readings WHERE ` + where + ` ORDER BY seq LIMIT ?)`
		args = append(args, limit)
	}
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, stmt, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete readings of device %q: %w", q.DeviceID, err)
	}
	return n, nil
}
