package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Erase applies an erasure in one transaction. Deleting the device rows
// first is what makes the devices vanish at once (no list, no login, no
// consent state); their readings are left to the purge queue.
func (db *DB) Erase(ctx context.Context, e store.Erasure) error {
	at, err := encTime(e.At)
	if err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		for _, id := range e.DeleteDevices {
			if id == "" {
				return errors.New("empty device id")
			}
			for _, q := range []string{
				`DELETE FROM consent_decisions WHERE device_id = ?`,
				`DELETE FROM consent_routing WHERE device_id = ?`,
				`DELETE FROM consent_requests WHERE device_id = ?`,
				`DELETE FROM violations WHERE device_id = ?`,
				`DELETE FROM devices WHERE id = ?`,
			} {
				if _, err := tx.ExecContext(ctx, q, id); err != nil {
					return fmt.Errorf("device %q: %w", id, err)
				}
			}
			if err := upsertPurge(ctx, tx, store.Purge{DeviceID: id, Reason: e.Reason}, at); err != nil {
				return err
			}
		}
		for _, p := range e.Purges {
			if p.DeviceID == "" || p.UntilSeq < 0 {
				return fmt.Errorf("purge of device %q until %d: invalid", p.DeviceID, p.UntilSeq)
			}
			if p.Reason == "" {
				p.Reason = e.Reason
			}
			if err := upsertPurge(ctx, tx, p, at); err != nil {
				return err
			}
		}
		if len(e.Aggregates) > 0 {
			stmt, err := tx.PrepareContext(ctx, `INSERT INTO aggregates (device_type, stream, field, hour, n, sum)
				VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (device_type, stream, field, hour) DO UPDATE SET n = n + excluded.n, sum = sum + excluded.sum`)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for _, a := range e.Aggregates {
				if a.Count <= 0 {
					return fmt.Errorf("aggregate %s/%s/%s: count %d", a.DeviceType, a.Stream, a.Field, a.Count)
				}
				h, err := encTime(a.Hour.UTC().Truncate(time.Hour))
				if err != nil {
					return fmt.Errorf("aggregate %s/%s/%s: %w", a.DeviceType, a.Stream, a.Field, err)
				}
				if _, err := stmt.ExecContext(ctx, a.DeviceType, a.Stream, a.Field, h, a.Count, a.Sum); err != nil {
					return fmt.Errorf("aggregate %s/%s/%s: %w", a.DeviceType, a.Stream, a.Field, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	return nil
}

// upsertPurge queues a purge; an existing one for the same device keeps
// the wider bound (0, everything, is the widest).
func upsertPurge(ctx context.Context, tx *sql.Tx, p store.Purge, at int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO purges (device_id, until_seq, reason, requested_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET
			until_seq = CASE WHEN purges.until_seq = 0 OR excluded.until_seq = 0 THEN 0
				ELSE max(purges.until_seq, excluded.until_seq) END,
			reason = excluded.reason,
			requested_at = excluded.requested_at`,
		p.DeviceID, p.UntilSeq, p.Reason, at)
	if err != nil {
		return fmt.Errorf("queue purge of device %q: %w", p.DeviceID, err)
	}
	return nil
}

// Purges lists pending purges, oldest first.
func (db *DB) Purges(ctx context.Context) ([]store.Purge, error) {
	rows, err := db.readers.QueryContext(ctx, `SELECT device_id, until_seq, reason, requested_at FROM purges ORDER BY requested_at, device_id`)
	if err != nil {
		return nil, fmt.Errorf("list purges: %w", err)
	}
	defer rows.Close()
	var out []store.Purge
	for rows.Next() {
		var (
			p  store.Purge
			at int64
		)
		if err := rows.Scan(&p.DeviceID, &p.UntilSeq, &p.Reason, &at); err != nil {
			return nil, fmt.Errorf("list purges: %w", err)
		}
		p.RequestedAt = decTime(at)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list purges: %w", err)
	}
	return out, nil
}

// PurgeReadings removes up to limit readings of the purge, lowest seq
// first, a range of the packed (device key, seq) key.
func (db *DB) PurgeReadings(ctx context.Context, p store.Purge, limit int) (int64, error) {
	if p.DeviceID == "" {
		return 0, errors.New("purge readings: empty device id")
	}
	hi := int64(MaxReadingSeq)
	if p.UntilSeq > 0 {
		hi = min(hi, p.UntilSeq)
	}
	q := `DELETE FROM readings WHERE id BETWEEN ? AND ?`
	if limit > 0 {
		q = `DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE id BETWEEN ? AND ? ORDER BY id LIMIT ?)`
	}
	var n, merged int64
	// Every time mark of the device goes: the marks after the purged
	// readings may carry their times too (marks.go).
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		// Staged readings are moved first, so the purge sees one table.
		var err error
		if merged, err = db.mergeTx(ctx, tx, 0); err != nil {
			return err
		}
		dkey, ok, err := readingKeyOf(ctx, tx, p.DeviceID)
		if err != nil || !ok {
			return err // no key: no readings
		}
		args := []any{dkey << seqBits, dkey<<seqBits | hi}
		if limit > 0 {
			args = append(args, limit)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return dropMarks(ctx, tx, p.DeviceID, 0, 0)
	})
	if err != nil {
		return 0, fmt.Errorf("purge readings of device %q: %w", p.DeviceID, err)
	}
	if n > 0 {
		db.forgetMarks(p.DeviceID)
	}
	db.unstaged(merged)
	return n, nil
}

// FinishPurge drops the purge if it is still the one queued.
func (db *DB) FinishPurge(ctx context.Context, p store.Purge) error {
	at, err := encTime(p.RequestedAt)
	if err != nil {
		return fmt.Errorf("finish purge of device %q: %w", p.DeviceID, err)
	}
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM purges WHERE device_id = ? AND until_seq = ? AND requested_at = ?`,
			p.DeviceID, p.UntilSeq, at); err != nil {
			return err
		}
		// A device with no readings left keeps no key either, so its id
		// does not linger in the file. Under keyMu, so no append can be
		// using or about to remember the cached key meanwhile; keys are
		// never reused, so a reading written under a dropped key could
		// never surface under another device.
		if err := dropMarks(ctx, tx, p.DeviceID, 0, 0); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM reading_devices WHERE device_id = ?
			AND NOT EXISTS (SELECT 1 FROM readings WHERE readings.id BETWEEN reading_devices.dkey << `+sqlSeqBits+`
				AND (reading_devices.dkey << `+sqlSeqBits+`) + `+sqlMaxSeq+`)
			AND NOT EXISTS (SELECT 1 FROM readings_stage WHERE readings_stage.dkey = reading_devices.dkey)`, p.DeviceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			db.forgetMarks(p.DeviceID)
			db.dkeys.Delete(p.DeviceID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish purge of device %q: %w", p.DeviceID, err)
	}
	return nil
}

// DefaultAggregateLimit caps one Aggregates call.
const DefaultAggregateLimit = 10000

// Aggregates lists kept anonymised cells.
func (db *DB) Aggregates(ctx context.Context, q store.AggregateQuery) ([]store.Aggregate, error) {
	where := `1 = 1`
	var args []any
	if q.DeviceType != "" {
		where += ` AND device_type = ?`
		args = append(args, q.DeviceType)
	}
	if q.Stream != "" {
		where += ` AND stream = ?`
		args = append(args, q.Stream)
	}
	for _, b := range []struct {
		t  time.Time
		op string
	}{{q.Since, ">="}, {q.Until, "<"}} {
		if b.t.IsZero() {
			continue
		}
		n, err := encTime(b.t)
		if err != nil {
			return nil, fmt.Errorf("list aggregates: %w", err)
		}
		where += ` AND hour ` + b.op + ` ?`
		args = append(args, n)
	}
	limit := q.Limit
	if limit <= 0 || limit > DefaultAggregateLimit {
		limit = DefaultAggregateLimit
	}
	args = append(args, limit)
	rows, err := db.readers.QueryContext(ctx, `SELECT device_type, stream, field, hour, n, sum FROM aggregates WHERE `+where+
		` ORDER BY device_type, stream, field, hour LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list aggregates: %w", err)
	}
	defer rows.Close()
	var out []store.Aggregate
	for rows.Next() {
		var (
			a store.Aggregate
			h int64
		)
		if err := rows.Scan(&a.DeviceType, &a.Stream, &a.Field, &h, &a.Count, &a.Sum); err != nil {
			return nil, fmt.Errorf("list aggregates: %w", err)
		}
		a.Hour = decTime(h)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list aggregates: %w", err)
	}
	return out, nil
}

// SetAccountRole changes an account's role.
func (db *DB) SetAccountRole(ctx context.Context, id string, role store.Role) error {
	res, err := db.writer.ExecContext(ctx, `UPDATE accounts SET role = ? WHERE id = ?`, string(role), id)
	if err != nil {
		return fmt.Errorf("set role of account %q: %w", id, err)
	}
	return notFoundIfNone(res, "set role of account", id)
}

// DeleteHousehold removes an empty household.
func (db *DB) DeleteHousehold(ctx context.Context, id string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		var accounts, devices int
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM accounts WHERE household_id = ?), (SELECT count(*) FROM devices WHERE household_id = ?)`,
			id, id).Scan(&accounts, &devices); err != nil {
			return fmt.Errorf("delete household %q: %w", id, err)
		}
		if accounts > 0 || devices > 0 {
			return fmt.Errorf("delete household %q: it still has %d accounts and %d devices: %w", id, accounts, devices, store.ErrConflict)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM households WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete household %q: %w", id, err)
		}
		return notFoundIfNone(res, "delete household", id)
	})
}

// ReclaimSpace gives up to maxPages free pages back to the file system
// (incremental auto_vacuum) and reports how many it freed. Deleted
// readings leave free pages that later readings reuse anyway; this makes
// the file shrink after a large deletion, a bounded step at a time so
// ingest commits are not held up.
func (db *DB) ReclaimSpace(ctx context.Context, maxPages int) (int64, error) {
	if maxPages <= 0 {
		maxPages = 1000
	}
	conn, err := db.writer.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("reclaim space: %w", err)
	}
	defer conn.Close()
	var before, after int64
	if err := conn.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&before); err != nil {
		return 0, fmt.Errorf("reclaim space: %w", err)
	}
	if before == 0 {
		return 0, nil
	}
	// incremental_vacuum returns no rows but must be stepped to the end.
	rows, err := conn.QueryContext(ctx, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, maxPages))
	if err != nil {
		return 0, fmt.Errorf("reclaim space: %w", err)
	}
	for rows.Next() {
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("reclaim space: %w", err)
	}
	if err := conn.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&after); err != nil {
		return 0, fmt.Errorf("reclaim space: %w", err)
	}
	return before - after, nil
}
