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

// Reading query limits, the same as the SQLite engine's. The default is
// the one store.ReadingQuery documents; the cap keeps one request from
// pulling a device's whole history into memory.
const (
	DefaultReadingLimit = 1000
	MaxReadingLimit     = 10000
)

var readingCopyCols = []string{"seq", "device_id", "stream", "ts", "payload", "manifest_version"}

// AppendReadings stores rs in one transaction and sets each element's
// Seq. When it returns nil the readings are on disk (synchronous_commit);
// on error none of them is stored and no Seq is changed.
//
// The batch is one COPY: a single round trip whatever its size, and one
// WAL flush at commit. Its seqs are drawn from the sequence under an
// advisory lock held until commit, so batches become visible in seq
// order: a reader paging with AfterSeq can never see seq n+1 committed
// while n is still in flight and so skip n for good. That serialises
// writers of readings, which costs little: the ingest batcher writes one
// batch at a time anyway, and the next batch fills meanwhile.
func (db *DB) AppendReadings(ctx context.Context, rs []store.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	rows := make([][]any, len(rs))
	months := make([]int64, 0, 1)
	for i := range rs {
		r := &rs[i]
		// Errors name the reading by position and device only: payloads
		// are people's data and do not belong in logs.
		if r.DeviceID == "" {
			return fmt.Errorf("append readings: reading %d: empty device id", i)
		}
		ts, err := encTime(r.Time)
		if err != nil {
			return fmt.Errorf("append readings: reading %d of device %q: %w", i, r.DeviceID, err)
		}
		payload := r.Payload
		if payload == nil {
			payload = []byte{} // the column is NOT NULL; nil would be sent as NULL
		}
		rows[i] = []any{int64(0), r.DeviceID, r.Stream, ts, payload, int32(r.ManifestVersion)}
		if m := monthStart(ts); !slices.Contains(months, m) {
			months = append(months, m)
		}
	}
	if err := db.ensurePartitions(ctx, months); err != nil {
		return fmt.Errorf("append readings: %w", err)
	}
	seqs, err := db.copyReadings(ctx, rows)
	if pgCode(err) == codeCheckViolation {
		// No partition for a row: another hub dropped an emptied month
		// after this one remembered it. Forget and create again, once.
		db.forgetPartitions()
		if err = db.ensurePartitions(ctx, months); err == nil {
			seqs, err = db.copyReadings(ctx, rows)
		}
	}
	if err != nil {
		return fmt.Errorf("append readings: %d readings: %w", len(rs), err)
	}
	for i := range rs {
		rs[i].Seq = seqs[i]
	}
	return nil
}

// copyReadings draws seqs for rows, sets them as each row's first value
// and copies the rows in, all in one transaction.
func (db *DB) copyReadings(ctx context.Context, rows [][]any) ([]int64, error) {
	seqs := make([]int64, 0, len(rows))
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		// The lock and the draw go in one round trip, run in order.
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, lockReadings)
		b.Queue(`SELECT nextval('readings_seq') FROM generate_series(1, $1)`, len(rows))
		br := tx.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("lock: %w", err)
		}
		q, err := br.Query()
		if err == nil {
			seqs, err = pgx.AppendRows(seqs, q, pgx.RowTo[int64])
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("draw seqs: %w", err)
		}
		if len(seqs) != len(rows) {
			return fmt.Errorf("draw seqs: got %d for %d readings", len(seqs), len(rows))
		}
		// Each call of nextval returns more than the one before, but the
		// rows of a set-returning query carry no order guarantee.
		slices.Sort(seqs)
		for i := range rows {
			rows[i][0] = seqs[i]
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"readings"}, readingCopyCols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		return nil
	})
	return seqs, err
}

// readingFilter is the WHERE clause of q's device, stream, time range and
// manifest version.
func readingFilter(q store.ReadingQuery) (*whereClause, error) {
	w := &whereClause{}
	w.add(`device_id = ?`, q.DeviceID)
	if q.Stream != "" {
		w.add(`stream = ?`, q.Stream)
	}
	if !q.Since.IsZero() {
		since, err := encTime(q.Since)
		if err != nil {
			return nil, fmt.Errorf("since: %w", err)
		}
		w.add(`ts >= ?`, since)
	}
	if !q.Until.IsZero() {
		until, err := encTime(q.Until)
		if err != nil {
			return nil, fmt.Errorf("until: %w", err)
		}
		w.add(`ts < ?`, until)
	}
	if q.ManifestVersion != 0 {
		w.add(`manifest_version = ?`, q.ManifestVersion)
	}
	return w, nil
}

// Readings returns readings of q.DeviceID matching q, in increasing Seq
// order. Limit 0 means DefaultReadingLimit; larger limits are capped at
// MaxReadingLimit, so callers page with AfterSeq. A time range touches
// only the partitions of its months.
func (db *DB) Readings(ctx context.Context, q store.ReadingQuery) ([]store.Reading, error) {
	if q.DeviceID == "" {
		return nil, errors.New("query readings: empty device id")
	}
	w, err := readingFilter(q)
	if err != nil {
		return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
	}
	if q.AfterSeq > 0 {
		w.add(`seq > ?`, q.AfterSeq)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultReadingLimit
	}
	limit = min(limit, MaxReadingLimit)
	rows, err := db.pool.Query(ctx, `SELECT seq, device_id, stream, ts, payload, manifest_version FROM readings WHERE `+
		w.String()+` ORDER BY seq LIMIT `+w.next(limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
	}
	defer rows.Close()
	out := make([]store.Reading, 0, min(limit, 64))
	for rows.Next() {
		var (
			r  store.Reading
			ts int64
			mv int32
		)
		if err := rows.Scan(&r.Seq, &r.DeviceID, &r.Stream, &ts, &r.Payload, &mv); err != nil {
			return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
		}
		r.Time = decTime(ts)
		r.ManifestVersion = int(mv)
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
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM readings WHERE device_id = $1`, deviceID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count readings of device %q: %w", deviceID, err)
	}
	return n, nil
}

// StreamCounts counts the device's readings before until per stream, in
// the database, reading no payload.
func (db *DB) StreamCounts(ctx context.Context, deviceID string, until time.Time) (map[string]int64, error) {
	query, args := `SELECT stream, count(*) FROM readings WHERE device_id = $1`, []any{deviceID}
	if !until.IsZero() {
		u, err := encTime(until)
		if err != nil {
			return nil, fmt.Errorf("count streams of device %q: until: %w", deviceID, err)
		}
		query += ` AND ts < $2`
		args = append(args, u)
	}
	rows, err := db.pool.Query(ctx, query+` GROUP BY stream`, args...)
	if err != nil {
		return nil, fmt.Errorf("count streams of device %q: %w", deviceID, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count streams of device %q: %w", deviceID, err)
		}
		out[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count streams of device %q: %w", deviceID, err)
	}
	return out, nil
}

// DeleteReadings removes matching readings of one device, at most limit
// rows (limit ≤ 0: all) in one transaction, lowest seq first.
func (db *DB) DeleteReadings(ctx context.Context, q store.ReadingQuery, limit int) (int64, error) {
	if q.DeviceID == "" {
		return 0, errors.New("delete readings: empty device id")
	}
	w, err := readingFilter(q)
	if err != nil {
		return 0, fmt.Errorf("delete readings of device %q: %w", q.DeviceID, err)
	}
	n, err := db.deleteReadings(ctx, w, limit)
	if err != nil {
		return 0, fmt.Errorf("delete readings of device %q: %w", q.DeviceID, err)
	}
	return n, nil
}

// deleteReadings deletes the rows w selects, at most limit (≤ 0: all). w's
// first condition is the device, so the bounded form still goes through
// the (device_id, seq) index of each partition.
func (db *DB) deleteReadings(ctx context.Context, w *whereClause, limit int) (int64, error) {
	stmt := `DELETE FROM readings WHERE ` + w.String()
	if limit > 0 {
		dev := w.args[0]
		stmt = `DELETE FROM readings WHERE device_id = ` + w.next(dev) + ` AND seq = ANY (ARRAY(
			SELECT seq FROM readings WHERE ` + w.String() + ` ORDER BY seq LIMIT ` + w.next(limit) + `))`
	}
	tag, err := db.pool.Exec(ctx, stmt, w.args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
