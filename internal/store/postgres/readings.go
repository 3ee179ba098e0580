package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
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
// whose span can hold the answer (firstBySpan).
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
		mode := seqOrderMode(q)
		r := seqRange{after: q.AfterSeq, upto: math.MaxInt64, first: first, last: last}
		out, err = firstBySpan(ctx, db, r, limit, readingSeq, func(table string, _, hi int64) ([]store.Reading, error) {
			pw := w.clone()
			pw.add(`seq <= ?`, hi) // seq > AfterSeq is in w
			return db.queryReadings(ctx, mode, table, pw, limit)
		})
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

// seqRange is which readings of a seq-order read or delete can be the
// answer: seqs above after and at most upto, with times in the months
// first..last (by monthStart); the lowest of them, or the highest where
// newest is set.
type seqRange struct {
	after, upto, first, last int64
	newest                   bool
}

// everySeq is the seqRange of every storable reading, lowest first.
func everySeq() seqRange {
	return seqRange{upto: math.MaxInt64, first: monthStart(minTime.UnixNano()), last: monthStart(maxTime.UnixNano())}
}

// firstBySpan is the one place that chooses partitions by their seq spans,
// for every bounded read or delete in seq order (issue #19: with seq not
// the partition key, a query on readings merges the (device_id, seq) index
// of every month stored, so its cost grew with the history). It returns
// the lowest limit seqs (by seqOf; the highest, in decreasing order, if
// r.newest) that part finds in the partitions of r.first..r.last whose
// span overlaps r, visiting them by their lowest seq (highest) and
// stopping at the first that cannot hold a seq below (above) those already
// found. When the months' spans follow their time, as they do unless
// readings arrive far out of time order, that is the one partition
// holding the answer: a partition holding none of the device's readings
// costs one index descent, and is passed. part is given each partition's
// table (quoted) and the lowest and highest seq it may return; it returns
// its lowest (highest) matching rows in that order, at most limit. In
// ascending order lo is always r.after+1, so a caller whose conditions
// already hold seq > r.after need not repeat it.
//
// The spans come from one statement and the partitions from others, each
// with its own snapshot. A batch committed in between would show in the
// partitions but not in the spans; its seqs are all above the highest seq
// of any span read (batches draw seqs and commit in order under
// lockReadings, old hubs' as ours), so every partition is asked only up to
// that seq and the answer is the one of the spans' snapshot, less readings
// deleted since: a read or delete never sees a reading outside the spans
// it read, and never misses one committed before it began.
func firstBySpan[T any](ctx context.Context, db *DB, r seqRange, limit int, seqOf func(T) int64,
	part func(table string, lo, hi int64) ([]T, error)) ([]T, error) {
	order := `lo`
	if r.newest {
		order = `hi DESC`
	}
	rows, err := db.pool.Query(ctx, `SELECT month, lo, hi, top
		FROM (SELECT month, lo, hi, max(hi) OVER () AS top FROM reading_spans) s
		WHERE hi > $1 AND lo <= $2 AND month BETWEEN $3 AND $4 ORDER BY `+order, r.after, r.upto, r.first, r.last)
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
	top = min(top, r.upto)
	out := []T{}
	for _, sp := range spans {
		lo, hi := r.after+1, top
		if len(out) == limit {
			// Spans are in order of lo (hi descending): no later one
			// holds a seq below (above) worst, which is another
			// partition's; seqs are unique.
			worst := seqOf(out[limit-1])
			if !r.newest && sp.lo >= worst || r.newest && sp.hi <= worst {
				break
			}
			if r.newest {
				lo = worst + 1
			} else {
				hi = worst - 1
			}
		}
		// The partition is named rather than selected by its month's
		// time range, which would be one more condition for the planner
		// to misjudge.
		name := partitionName(sp.month)
		got, err := part(pgx.Identifier{name}.Sanitize(), lo, hi)
		if pgCode(err) == codeUndefinedTable {
			// ReclaimSpace dropped it since the spans were read, which it
			// does only to an empty partition.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("partition %s: %w", name, err)
		}
		out = mergeBySeq(out, got, limit, r.newest, seqOf)
	}
	return out, nil
}

// mergeBySeq merges b into a, both in seq order (decreasing if desc),
// keeping the first limit.
func mergeBySeq[T any](a, b []T, limit int, desc bool, seqOf func(T) int64) []T {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b[:min(len(b), limit)] // the first month queried: no copy
	}
	order := func(x, y T) int {
		if desc {
			return cmp.Compare(seqOf(y), seqOf(x))
		}
		return cmp.Compare(seqOf(x), seqOf(y))
	}
	a = append(a, b...)
	if order(a[len(a)-len(b)-1], b[0]) > 0 {
		slices.SortFunc(a, order)
	}
	return a[:min(len(a), limit)]
}

// seqOrderMode is how a partition query in seq order is run. A time bound
// makes the plan depend on its value: (device_id, ts, stream) for a short
// range, (device_id, seq) for a long one, so such a query is planned for
// its own values (unnamed statement): not knowing the limit and the seq
// bound, a cached generic plan took the (device_id, seq) index for a query
// of 54 readings since a time and read all 1,000 of the device's (984 heap
// blocks instead of 54). Without one, the seq index is the only sensible
// plan and a cached statement saves planning it every time.
func seqOrderMode(q store.ReadingQuery) pgx.QueryExecMode {
	if !q.Since.IsZero() || !q.Until.IsZero() {
		return pgx.QueryExecModeExec
	}
	return pgx.QueryExecModeCacheStatement
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
// rows (limit ≤ 0: all), lowest seq first: one transaction, or a few when
// another deleter takes rows from under it (deleteFirst).
func (db *DB) DeleteReadings(ctx context.Context, q store.ReadingQuery, limit int) (int64, error) {
	if q.DeviceID == "" {
		return 0, errors.New("delete readings: empty device id")
	}
	w, err := readingFilter(q)
	if err != nil {
		return 0, fmt.Errorf("delete readings of device %q: %w", q.DeviceID, err)
	}
	var n int64
	if limit <= 0 {
		// Every match goes, in whichever months the time range reaches:
		// no order, nothing to choose partitions by.
		n, err = db.deleteAll(ctx, w)
	} else {
		first, last, ok, qerr := queryMonths(q)
		switch {
		case qerr != nil:
			err = qerr
		case ok:
			r := seqRange{upto: math.MaxInt64, first: first, last: last}
			n, err = db.deleteFirst(ctx, seqOrderMode(q), w, r, limit)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("delete readings of device %q: %w", q.DeviceID, err)
	}
	return n, nil
}

// partSeq is a reading chosen for deletion: its partition (quoted) and seq.
type partSeq struct {
	table string
	seq   int64
}

// deleteFirst deletes the lowest limit (> 0) seqs of the readings w
// selects within r, in one statement, and reports how many it deleted: the
// same rows, and the same count, as one DELETE … seq = ANY (ARRAY(SELECT
// … ORDER BY seq LIMIT limit)) on readings. That statement merged the
// (device_id, seq) index of every month stored to choose the rows, and
// then probed every month's index for each chosen seq to delete them
// (about 2 index blocks per row per month: 120,000 blocks for a chunk of
// 5,000 with 12 months stored). Here firstBySpan chooses them (mode as
// seqOrderMode) in the partitions that can hold them, and each partition's
// share is deleted as the seq range from its first chosen seq to its last
// with w's conditions: one range of its index. The rows chosen in a
// partition are its lowest matches up to a seq, so that range holds just
// them; no reading can enter it meanwhile, since every seq in it is at most
// the spans' highest, committed before the spans were read (firstBySpan).
//
// Rows another transaction deleted between the choice and the delete
// (retention and a purge take the same lowest seqs first), or deleted
// while the delete waited for their locks, are not counted; when that
// leaves the count short of the rows chosen, the rest is chosen again, so
// a count below limit still means nothing more matched (review: the
// purger finishes a purge on a short chunk, and a short count with rows
// left behind would end an erasure early; one statement had the same
// defect when the other delete was still uncommitted as it began). Each
// round is one transaction. A partition ReclaimSpace dropped in between
// (it drops only empty ones, so all its chosen rows had gone) fails the
// delete; the rows are chosen again.
func (db *DB) deleteFirst(ctx context.Context, mode pgx.QueryExecMode, w *whereClause, r seqRange, limit int) (int64, error) {
	var total int64
	// Bounded all the same: rounds come out short only while another
	// deleter takes the same rows, which it cannot do for long.
	for round := 0; total < int64(limit) && round < 10; round++ {
		n, chosen, err := db.deleteFirstOnce(ctx, mode, w, r, limit-int(total))
		total += n
		if err != nil {
			return total, err
		}
		if n == int64(chosen) {
			break // all it chose: limit reached, or nothing more matched
		}
	}
	return total, nil
}

// deleteFirstOnce is one round of deleteFirst: it reports how many rows it
// deleted of how many it chose.
func (db *DB) deleteFirstOnce(ctx context.Context, mode pgx.QueryExecMode, w *whereClause, r seqRange, limit int) (int64, int, error) {
	partSeqOf := func(p partSeq) int64 { return p.seq }
	for attempt := 1; ; attempt++ {
		found, err := firstBySpan(ctx, db, r, limit, partSeqOf, func(table string, _, hi int64) ([]partSeq, error) {
			pw := w.clone()
			pw.add(`seq <= ?`, hi) // r.after is 0
			rows, err := db.pool.Query(ctx, `SELECT seq FROM `+table+` WHERE `+pw.String()+` ORDER BY seq LIMIT `+pw.next(limit),
				append([]any{mode}, pw.args...)...)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(row pgx.CollectableRow) (partSeq, error) {
				p := partSeq{table: table}
				return p, row.Scan(&p.seq)
			})
		})
		if err != nil || len(found) == 0 {
			return 0, 0, err
		}
		n, err := db.deleteChosen(ctx, mode, w, found)
		if pgCode(err) == codeUndefinedTable && attempt < 3 {
			continue
		}
		return n, len(found), err
	}
}

// deleteChosen deletes, in one statement (one transaction), the readings
// w selects in each partition of found from its lowest seq there to its
// highest, and reports how many it deleted.
func (db *DB) deleteChosen(ctx context.Context, mode pgx.QueryExecMode, w *whereClause, found []partSeq) (int64, error) {
	type seqs struct{ lo, hi int64 }
	var tables []string
	ranges := map[string]seqs{}
	for _, p := range found {
		sr, ok := ranges[p.table]
		if !ok {
			tables = append(tables, p.table)
			sr = seqs{p.seq, p.seq}
		}
		ranges[p.table] = seqs{min(sr.lo, p.seq), max(sr.hi, p.seq)}
	}
	// Partitions in month order (their names sort so), the order a
	// statement on readings locks them in: deleters taking two months in
	// opposite orders (a late reading makes one stream's lowest seq sit in
	// a later month than another's) could deadlock (review).
	slices.Sort(tables)
	dw := w.clone()
	var stmts []string
	for _, t := range tables {
		sr := ranges[t]
		stmts = append(stmts, `DELETE FROM `+t+` WHERE `+w.String()+` AND seq BETWEEN `+dw.next(sr.lo)+` AND `+dw.next(sr.hi))
	}
	args := append([]any{mode}, dw.args...)
	if len(stmts) == 1 {
		tag, err := db.pool.Exec(ctx, stmts[0], args...)
		if err != nil {
			return 0, err
		}
		return tag.RowsAffected(), nil
	}
	// Several partitions: one data-modifying WITH each, so they all
	// commit or none does.
	var with, sum []string
	for i, st := range stmts {
		with = append(with, fmt.Sprintf(`d%d AS (%s RETURNING 1)`, i, st))
		sum = append(sum, fmt.Sprintf(`(SELECT count(*) FROM d%d)`, i))
	}
	var n int64
	err := db.pool.QueryRow(ctx, `WITH `+strings.Join(with, ", ")+` SELECT `+strings.Join(sum, " + "), args...).Scan(&n)
	return n, err
}

// deleteAll deletes every reading w selects, in one statement.
func (db *DB) deleteAll(ctx context.Context, w *whereClause) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM readings WHERE `+w.String(), w.args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// readingSeq is r's seq, for firstBySpan.
func readingSeq(r store.Reading) int64 { return r.Seq }
