package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		for _, id := range e.DeleteDevices {
			if id == "" {
				return errors.New("empty device id")
			}
			for _, q := range []string{
				`DELETE FROM consent_decisions WHERE device_id = $1`,
				`DELETE FROM consent_routing WHERE device_id = $1`,
				`DELETE FROM violations WHERE device_id = $1`,
				`DELETE FROM devices WHERE id = $1`,
			} {
				if _, err := tx.Exec(ctx, q, id); err != nil {
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
		for _, a := range e.Aggregates {
			if a.Count <= 0 {
				return fmt.Errorf("aggregate %s/%s/%s: count %d", a.DeviceType, a.Stream, a.Field, a.Count)
			}
			h, err := encTime(a.Hour.UTC().Truncate(time.Hour))
			if err != nil {
				return fmt.Errorf("aggregate %s/%s/%s: %w", a.DeviceType, a.Stream, a.Field, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO aggregates (device_type, stream, field, hour, n, sum)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (device_type, stream, field, hour) DO UPDATE SET
					n = aggregates.n + excluded.n, sum = aggregates.sum + excluded.sum`,
				a.DeviceType, a.Stream, a.Field, h, a.Count, a.Sum); err != nil {
				return fmt.Errorf("aggregate %s/%s/%s: %w", a.DeviceType, a.Stream, a.Field, err)
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
func upsertPurge(ctx context.Context, tx pgx.Tx, p store.Purge, at int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO purges (device_id, until_seq, reason, requested_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (device_id) DO UPDATE SET
			until_seq = CASE WHEN purges.until_seq = 0 OR excluded.until_seq = 0 THEN 0
				ELSE greatest(purges.until_seq, excluded.until_seq) END,
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
	rows, err := db.pool.Query(ctx, `SELECT device_id, until_seq, reason, requested_at FROM purges ORDER BY requested_at, device_id`)
	if err != nil {
		return nil, fmt.Errorf("list purges: %w", err)
	}
	out, err := collect(rows, func(r rowScanner) (store.Purge, error) {
		var (
			p  store.Purge
			at int64
		)
		err := r.Scan(&p.DeviceID, &p.UntilSeq, &p.Reason, &at)
		p.RequestedAt = decTime(at)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list purges: %w", err)
	}
	return out, nil
}

// PurgeReadings removes up to limit readings of the purge (limit ≤ 0:
// all), lowest seq first. A bounded one visits only the partitions whose
// seq span can hold them (deleteFirst).
func (db *DB) PurgeReadings(ctx context.Context, p store.Purge, limit int) (int64, error) {
	if p.DeviceID == "" {
		return 0, errors.New("purge readings: empty device id")
	}
	w := &whereClause{}
	w.add(`device_id = ?`, p.DeviceID)
	r := everySeq()
	if p.UntilSeq > 0 {
		w.add(`seq <= ?`, p.UntilSeq)
		r.upto = p.UntilSeq
	}
	var n int64
	var err error
	if limit <= 0 {
		n, err = db.deleteAll(ctx, w)
	} else {
		n, err = db.deleteFirst(ctx, pgx.QueryExecModeCacheStatement, w, r, limit)
	}
	if err != nil {
		return 0, fmt.Errorf("purge readings of device %q: %w", p.DeviceID, err)
	}
	return n, nil
}

// FinishPurge drops the purge if it is still the one queued.
func (db *DB) FinishPurge(ctx context.Context, p store.Purge) error {
	at, err := encTime(p.RequestedAt)
	if err != nil {
		return fmt.Errorf("finish purge of device %q: %w", p.DeviceID, err)
	}
	if _, err := db.pool.Exec(ctx, `DELETE FROM purges WHERE device_id = $1 AND until_seq = $2 AND requested_at = $3`,
		p.DeviceID, p.UntilSeq, at); err != nil {
		return fmt.Errorf("finish purge of device %q: %w", p.DeviceID, err)
	}
	return nil
}

// DefaultAggregateLimit caps one Aggregates call.
const DefaultAggregateLimit = 10000

// Aggregates lists kept anonymised cells.
func (db *DB) Aggregates(ctx context.Context, q store.AggregateQuery) ([]store.Aggregate, error) {
	w := &whereClause{}
	if q.DeviceType != "" {
		w.add(`device_type = ?`, q.DeviceType)
	}
	if q.Stream != "" {
		w.add(`stream = ?`, q.Stream)
	}
	for _, b := range []struct {
		t    time.Time
		cond string
	}{{q.Since, "hour >= ?"}, {q.Until, "hour < ?"}} {
		if b.t.IsZero() {
			continue
		}
		n, err := encTime(b.t)
		if err != nil {
			return nil, fmt.Errorf("list aggregates: %w", err)
		}
		w.add(b.cond, n)
	}
	limit := q.Limit
	if limit <= 0 || limit > DefaultAggregateLimit {
		limit = DefaultAggregateLimit
	}
	rows, err := db.pool.Query(ctx, `SELECT device_type, stream, field, hour, n, sum FROM aggregates WHERE `+w.String()+
		` ORDER BY device_type, stream, field, hour LIMIT `+w.next(limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list aggregates: %w", err)
	}
	out, err := collect(rows, func(r rowScanner) (store.Aggregate, error) {
		var (
			a store.Aggregate
			h int64
		)
		err := r.Scan(&a.DeviceType, &a.Stream, &a.Field, &h, &a.Count, &a.Sum)
		a.Hour = decTime(h)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list aggregates: %w", err)
	}
	return out, nil
}

// SetAccountRole changes an account's role.
func (db *DB) SetAccountRole(ctx context.Context, id string, role store.Role) error {
	tag, err := db.pool.Exec(ctx, `UPDATE accounts SET role = $1 WHERE id = $2`, string(role), id)
	if err != nil {
		return fmt.Errorf("set role of account %q: %w", id, err)
	}
	return notFoundIfNone(tag, "set role of account", id)
}

// DeleteHousehold removes an empty household. A device or account added
// meanwhile by another transaction makes the delete fail on its foreign
// key, which is reported as the same conflict.
func (db *DB) DeleteHousehold(ctx context.Context, id string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		var accounts, devices int
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM accounts WHERE household_id = $1), (SELECT count(*) FROM devices WHERE household_id = $1)`,
			id).Scan(&accounts, &devices); err != nil {
			return fmt.Errorf("delete household %q: %w", id, err)
		}
		if accounts > 0 || devices > 0 {
			return fmt.Errorf("delete household %q: it still has %d accounts and %d devices: %w", id, accounts, devices, store.ErrConflict)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM households WHERE id = $1`, id)
		if pgCode(err) == codeForeignKeyViolation {
			return fmt.Errorf("delete household %q: it gained members or devices meanwhile: %w", id, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("delete household %q: %w", id, err)
		}
		return notFoundIfNone(tag, "delete household", id)
	})
}
