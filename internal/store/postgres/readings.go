package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
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

// drawSeqs draws $1 seqs. The spans of the months the rows land in
// (reading_spans) are widened by the trigger of migration 0015 as the
// COPY inserts them, as for rows any other writer inserts.
const drawSeqs = `SELECT nextval('readings_seq') FROM generate_series(1, $1)`

// copyReadings draws seqs for rows, sets them as each row's first value
// and copies the rows in, in one transaction.
func (db *DB) copyReadings(ctx context.Context, rows [][]any) ([]int64, error) {
	seqs := make([]int64, 0, len(rows))
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		// The lock and the draw go in one round trip, run in order.
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, lockReadings)
		b.Queue(drawSeqs, len(rows))
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
// MaxReadingLimit, so callers page with AfterSeq.
//
// A query whose time range lies within one month is one statement that
// PostgreSQL prunes to that month's partition. Any other (no range, or
// one across months: a device's oldest readings, the page after a cursor,
// the readings since a time) orders by seq, which the partitions are not
// split by, so PostgreSQL would merge the (device_id, seq) index of every
// month stored (issue #19: blocks per query grew with the months kept).
// Those read the months' seq spans first and query only the partitions
// whose span can hold the answer (readingsBySpan).
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
	first, last, ok, err := queryMonths(q)
	var out []store.Reading
	switch {
	case err != nil:
	case !ok:
		out = []store.Reading{} // an empty time range
	case first == last:
		out, err = db.queryReadings(ctx, pgx.QueryExecModeCacheStatement, "readings", w, limit)
	default:
		// A time bound makes the plan depend on its value: (device_id,
		// ts, stream) for a short range, (device_id, seq) for a long
		// one. Without one, the seq index is the only sensible plan and
		// a cached statement saves planning it every time.
		mode := pgx.QueryExecModeCacheStatement
		if !q.Since.IsZero() || !q.Until.IsZero() {
			mode = pgx.QueryExecModeExec
		}
		out, err = db.readingsBySpan(ctx, mode, q.AfterSeq, first, last, w, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
	}
	return out, nil
}

// queryMonths is the first and last month (by monthStart) q's time range
// reaches, the lowest and highest storable ones where it is open; ok is
// false if the range is empty.
func queryMonths(q store.ReadingQuery) (first, last int64, ok bool, err error) {
	first, last = monthStart(minTime.UnixNano()), monthStart(maxTime.UnixNano())
	var since, until int64
	if !q.Since.IsZero() {
		if since, err = encTime(q.Since); err != nil {
			return 0, 0, false, fmt.Errorf("since: %w", err)
		}
		first = monthStart(since)
	}
	if !q.Until.IsZero() {
		if until, err = encTime(q.Until); err != nil {
			return 0, 0, false, fmt.Errorf("until: %w", err)
		}
		if until == math.MinInt64 || (!q.Since.IsZero() && until <= since) {
			return 0, 0, false, nil
		}
		last = monthStart(until - 1) // until is exclusive
	}
	return first, last, true, nil
}

// span is one partition's entry in reading_spans: every reading in the
// partition of month has a seq in lo..hi.
type span struct{ month, lo, hi int64 }

// readingsBySpan answers a query (w, the filter with its AfterSeq, and
// limit) in seq order from the partitions of months first..last whose
// span has a seq above after, visiting them by their lowest seq and
// stopping at the first that cannot hold a seq below those already found.
// When the months' spans follow their time, as they do unless readings
// arrive far out of time order, that is the one partition holding the
// next seq after the cursor, or the device's first: a partition holding
// none of the device's readings costs one index descent, and is passed.
//
// The spans come from one statement and the partitions from others, each
// with its own snapshot. A batch committed in between would show in the
// partitions but not in the spans; its seqs are all above the highest
// seq of any span read (batches draw seqs and commit in order under
// lockReadings), so every partition is queried up to that seq and the
// answer is the one of the spans' snapshot, less readings deleted since.
// A later batch is seen by the next query, which pages on from there.
func (db *DB) readingsBySpan(ctx context.Context, mode pgx.QueryExecMode, after, first, last int64, w *whereClause, limit int) ([]store.Reading, error) {
	rows, err := db.pool.Query(ctx, `SELECT month, lo, hi, top
		FROM (SELECT month, lo, hi, max(hi) OVER () AS top FROM reading_spans) s
		WHERE hi > $1 AND month BETWEEN $2 AND $3 ORDER BY lo`, after, first, last)
	if err != nil {
		return nil, fmt.Errorf("read spans: %w", err)
	}
	var (
		spans []span
		top   int64
	)
	for rows.Next() {
		var sp span
		if err := rows.Scan(&sp.month, &sp.lo, &sp.hi, &top); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read spans: %w", err)
		}
		spans = append(spans, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read spans: %w", err)
	}
	out := []store.Reading{}
	for _, sp := range spans {
		bound := top
		if len(out) == limit {
			worst := out[limit-1].Seq
			if sp.lo >= worst {
				// Spans are in lo order: no later one holds a lower seq
				// (worst is another partition's; seqs are unique).
				break
			}
			bound = worst - 1
		}
		pw := w.clone()
		pw.add(`seq <= ?`, bound)
		// The partition is named rather than selected by its month's
		// time range, which would be one more condition for the planner
		// to misjudge. With a time bound, mode plans each query for its
		// own values (unnamed statement), not by a cached generic plan:
		// not knowing the limit and the seq bound, one took the
		// (device_id, seq) index for a query of 54 readings since a
		// time and read all 1,000 of the device's (984 heap blocks
		// instead of 54).
		name := partitionName(sp.month)
		rs, err := db.queryReadings(ctx, mode, pgx.Identifier{name}.Sanitize(), pw, limit)
		if pgCode(err) == codeUndefinedTable {
			// ReclaimSpace dropped it since the spans were read, which it
			// does only to an empty partition.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("partition %s: %w", name, err)
		}
		out = mergeBySeq(out, rs, limit)
	}
	return out, nil
}

// mergeBySeq merges b into a, both in seq order, keeping the first limit.
func mergeBySeq(a, b []store.Reading, limit int) []store.Reading {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b[:min(len(b), limit)] // the first month queried: no copy
	}
	if a[len(a)-1].Seq < b[0].Seq {
		a = append(a, b...)
	} else {
		a = append(a, b...)
		slices.SortFunc(a, func(x, y store.Reading) int { return cmp.Compare(x.Seq, y.Seq) })
	}
	return a[:min(len(a), limit)]
}

// queryReadings runs the query of w on table (readings or one of its
// partitions, an identifier the caller quoted) in mode, in seq order, at
// most limit rows.
func (db *DB) queryReadings(ctx context.Context, mode pgx.QueryExecMode, table string, w *whereClause, limit int) ([]store.Reading, error) {
	query := `SELECT seq, device_id, stream, ts, payload, manifest_version FROM ` + table + ` WHERE ` +
		w.String() + ` ORDER BY seq LIMIT ` + w.next(limit)
	rows, err := db.pool.Query(ctx, query, append([]any{mode}, w.args...)...)
	if err != nil {
		return nil, err
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
			return nil, err
		}
		r.Time = decTime(ts)
		r.ManifestVersion = int(mv)
		out = append(out, r)
	}
	return out, rows.Err()
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
