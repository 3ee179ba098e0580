package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Time marks let a query by time skip a device's older history without a
// time index (issue #19). Readings are clustered by (device key, seq), so
// "since T" used to scan the device's range from its first reading: 52 ms
// for a device's last 6 hours with 10M readings stored, 0.3 ms with 100k.
// A second index on (device key, ts) would cost every append another
// b-tree page per device in the batch; a mark costs one small row per
// markEvery readings of a device.
//
// A mark (dkey, maxts, seq) says: every reading of dkey with a lower seq
// has ts ≤ maxts. Appends keep it true (new readings get higher seqs), so
// do deletions (fewer readings), whatever order the readings' times come
// in: a device's clock may jump back. maxts is the running maximum of the
// device's times when the mark is written, so a device's marks grow in
// both seq and maxts, and the mark to use for "since T" is the one with
// the highest maxts below T: one seek in the primary key.
//
// A mark holds the time of some reading (the running maximum), so a
// deletion also deletes the marks whose maxts lies in what it deleted,
// and forgets the device's running maximum, which is then recomputed from
// what is left. A mark is only a hint: deleting one never makes a query
// wrong, only slower.
//
// A mark also bounds its chunk from below, for "until T": mints is the
// lowest ts of the device's readings with seq in [the previous mark's
// seq, this mark's seq) (NULL for marks written before it was kept:
// unknown). A window [since, until) in the middle of a long history used
// to scan from since's mark to the device's newest reading, because with
// fewer matches than the limit nothing stopped it (times need not grow
// with seq): 41× the CPU at 10M stored readings than at 100k. Now it
// stops at the end of the last chunk whose mints is below until, and
// reads the readings after the newest mark (no mints yet) besides.
// Deleting marks merges their chunks into the next mark's, so dropMarks
// folds their mints into it.

// markEvery is how many readings of a device go between two marks: a
// query by time reads at most about that many readings it does not
// return, when the device's clock only moves forward.
const markEvery = 256

// markState is what an append needs to know about a device's marks.
type markState struct {
	maxTS int64 // an upper bound of the ts of every reading of the device
	minTS int64 // the lowest ts of the readings after its newest mark
	since int   // readings of the device after its newest mark
}

// add counts a reading at ts, about to be stored with seq, into st and
// reports whether a mark (dkey, st.maxTS, seq, st.minTS) must be written
// before it: the state to write is returned in mark, and st then starts
// a new chunk with this reading.
func (st *markState) add(ts int64) (mark markState, due bool) {
	if st.since >= markEvery {
		mark, due = *st, true
		st.since, st.minTS = 0, math.MaxInt64
	}
	st.maxTS = max(st.maxTS, ts)
	st.minTS = min(st.minTS, ts)
	st.since++
	return mark, due
}

// The statements loadMarks reads mark states with, each for a set of
// devices (a JSON array of keys): each device's newest
// mark and the readings after it in the clustered table; the staged
// readings.
var (
	markLoadQuery = `WITH m AS MATERIALIZED (SELECT j.value AS dkey,
			(SELECT maxts FROM reading_marks WHERE dkey = j.value ORDER BY maxts DESC, seq DESC LIMIT 1) AS maxts,
			coalesce((SELECT seq FROM reading_marks WHERE dkey = j.value ORDER BY maxts DESC, seq DESC LIMIT 1), 0) AS seq
			FROM json_each(?) AS j)
		SELECT dkey, maxts, seq, (SELECT json_array(max(ts), min(ts), count(*)) FROM readings
			WHERE id BETWEEN (dkey << ` + sqlSeqBits + `) + seq AND (dkey << ` + sqlSeqBits + `) + ` + sqlMaxSeq + `)
		FROM m`
	markStageQuery = `SELECT dkey, seq, ts FROM readings_stage WHERE dkey IN (SELECT value FROM json_each(?)) AND ` + stageLive
)

// noMarks is the mark state of a device with no readings.
func noMarks() markState {
	return markState{maxTS: math.MinInt64, minTS: math.MaxInt64}
}

// loadMarks reads the mark states of dkeys from the database into into,
// by q (the writer's transaction, or warmCaches' read-only one on a
// reader: both statements read one snapshot). A device's state comes
// from its newest mark and the readings after it: at most about
// markEvery of them, or, the first time a device's readings are appended
// after an upgrade, all of them once. The stage has no index by device,
// so it is read once for all of dkeys: a look-up per device read the
// whole stage each time, 0.3 ms a device when a hundred devices sent
// their first readings after a restart with a few thousand readings
// staged (BenchmarkFirstReadings/uncached, docs/benchmarks.md, session
// 11). The statements are not prepared: they run once per batch, not
// per device. The caller holds keyMu, or (warmCaches) caches nothing of
// what it read without it.
func loadMarks(ctx context.Context, q rowsQueryer, dkeys []int64, into map[int64]markState) error {
	list, err := json.Marshal(dkeys)
	if err != nil {
		return fmt.Errorf("load time marks: %w", err)
	}
	from := make(map[int64]int64, len(dkeys)) // the newest mark's seq
	rows, err := q.QueryContext(ctx, markLoadQuery, string(list))
	if err != nil {
		return fmt.Errorf("load time marks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		st := noMarks()
		var dkey, seq int64
		var maxTS sql.NullInt64
		var tail string // [max(ts), min(ts), count], read once
		if err := rows.Scan(&dkey, &maxTS, &seq, &tail); err != nil {
			return fmt.Errorf("load time marks: %w", err)
		}
		var agg [3]*int64
		if err := json.Unmarshal([]byte(tail), &agg); err != nil || agg[2] == nil {
			return fmt.Errorf("load time marks: device key %d: the readings after its newest mark could not be counted (%v)", dkey, err)
		}
		if maxTS.Valid {
			st.maxTS = maxTS.Int64
		}
		if agg[0] != nil {
			st.maxTS = max(st.maxTS, *agg[0])
		}
		if agg[1] != nil {
			st.minTS = *agg[1]
		}
		st.since = int(*agg[2])
		into[dkey], from[dkey] = st, seq
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load time marks: %w", err)
	}
	if len(from) != len(dkeys) {
		return fmt.Errorf("load time marks: %d states read for %d devices", len(from), len(dkeys))
	}
	// Staged readings count too: a mark written now must bound their
	// times as well (stage.go).
	rows, err = q.QueryContext(ctx, markStageQuery, string(list))
	if err != nil {
		return fmt.Errorf("load time marks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dkey, seq, ts int64
		if err := rows.Scan(&dkey, &seq, &ts); err != nil {
			return fmt.Errorf("load time marks: %w", err)
		}
		if seq < from[dkey] {
			continue
		}
		st := into[dkey]
		st.maxTS, st.minTS = max(st.maxTS, ts), min(st.minTS, ts)
		st.since++
		into[dkey] = st
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load time marks: %w", err)
	}
	return nil
}

// markSince returns a seq below which no reading of the device has
// ts ≥ since (0 when no mark says so), for a query by time to start at.
func markSince(ctx context.Context, q queryRower, deviceID string, since int64) (int64, error) {
	var seq int64
	err := q.QueryRowContext(ctx, `SELECT seq FROM reading_marks
		WHERE dkey = (SELECT dkey FROM reading_devices WHERE device_id = ?) AND maxts < ?
		ORDER BY maxts DESC, seq DESC LIMIT 1`, deviceID, since).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("time marks: %w", err)
	}
	return seq, nil
}

// seqSpan is a range of seqs [from, to); to 0 is open.
type seqSpan struct{ from, to int64 }

// rowsQueryer is a transaction, the writer's or a reader's (loadMarks).
type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryRower is a reader connection pool or the writer's transaction.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// markSpans returns the seq spans a query (or deletion) of the device's
// readings with ts in [since, until) and seq > after must look in (a zero
// bound is open): from the last mark before since, and up to the end of
// the last chunk holding a time before until plus the readings after the
// newest mark.
func markSpans(ctx context.Context, q queryRower, deviceID string, after, since, until int64) ([]seqSpan, error) {
	if since != 0 {
		m, err := markSince(ctx, q, deviceID, since)
		if err != nil {
			return nil, err
		}
		after = max(after, m-1)
	}
	if until == 0 {
		return []seqSpan{{after + 1, 0}}, nil
	}
	return markUntil(ctx, q, deviceID, after, until)
}

// markUntil returns where a query for the device's readings with
// ts < until and seq > after must look: the readings there lie in
// [after+1, hi) or at seqs ≥ tail (after the newest mark, not bounded
// yet). It returns one span when the two meet or no mark bounds anything.
// Both lookups walk the device's marks from the newest, which grow in
// both maxts and seq: the second stops at the last chunk holding a time
// below until, so a window in the middle of a long history reads about
// half the device's marks (one per markEvery readings) instead of half
// its readings.
func markUntil(ctx context.Context, q queryRower, deviceID string, after, until int64) ([]seqSpan, error) {
	var tail, hi sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT
		(SELECT seq FROM reading_marks WHERE dkey = d.dkey ORDER BY maxts DESC, seq DESC LIMIT 1),
		(SELECT seq FROM reading_marks WHERE dkey = d.dkey AND (mints IS NULL OR mints < ?) ORDER BY maxts DESC, seq DESC LIMIT 1)
		FROM reading_devices d WHERE d.device_id = ?`, until, deviceID).Scan(&tail, &hi)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !tail.Valid {
		return []seqSpan{{after + 1, 0}}, nil // no marks: no bound
	}
	if err != nil {
		return nil, fmt.Errorf("time marks: %w", err)
	}
	// Every chunk after hi's starts at or above until, up to the newest
	// mark; the readings from tail on have no mark yet.
	from := max(after+1, tail.Int64)
	if !hi.Valid || hi.Int64 <= after+1 {
		return []seqSpan{{from, 0}}, nil
	}
	if hi.Int64 >= tail.Int64 {
		return []seqSpan{{after + 1, 0}}, nil
	}
	return []seqSpan{{after + 1, hi.Int64}, {from, 0}}, nil
}

// dropMarks deletes the device's marks whose maxts lies in [since, until)
// (a zero bound is open) and forgets its running maximum, in tx. The
// caller holds keyMu, and forgets the cached state only after tx commits
// (forgetMarks): an append in between would otherwise cache it again.
//
// The dropped marks are consecutive (marks grow in maxts and seq), and
// their chunks become part of the next mark's, so that mark's mints takes
// theirs in (NULL, unknown, if any of them is): its bound would otherwise
// leave out the readings they bounded.
func dropMarks(ctx context.Context, tx *sql.Tx, deviceID string, since, until int64) error {
	var dkey int64
	err := tx.QueryRowContext(ctx, `SELECT dkey FROM reading_devices WHERE device_id = ?`, deviceID).Scan(&dkey)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // no readings were ever stored, so no marks
	}
	if err != nil {
		return fmt.Errorf("drop time marks: %w", err)
	}
	where := ` WHERE dkey = ?`
	args := []any{dkey}
	if since != 0 {
		where += ` AND maxts >= ?`
		args = append(args, since)
	}
	if until != 0 {
		where += ` AND maxts < ?`
		args = append(args, until)
		var n, known int64
		var lo sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT count(*), count(mints), min(mints) FROM reading_marks`+where, args...).
			Scan(&n, &known, &lo); err != nil {
			return fmt.Errorf("drop time marks: %w", err)
		}
		if n > 0 {
			// The next mark: the first at or above until. With none,
			// the dropped chunks join the readings after the newest
			// mark, which every query reads.
			if _, err := tx.ExecContext(ctx, `UPDATE reading_marks SET mints = CASE WHEN ? THEN NULL ELSE min(mints, ?) END
				WHERE (dkey, maxts, seq) = (SELECT dkey, maxts, seq FROM reading_marks WHERE dkey = ? AND maxts >= ? ORDER BY maxts, seq LIMIT 1)`,
				known < n, lo, dkey, until); err != nil {
				return fmt.Errorf("drop time marks: %w", err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM reading_marks`+where, args...); err != nil {
		return fmt.Errorf("drop time marks: %w", err)
	}
	return nil
}

// forgetMarks drops the cached mark state of the device. The caller holds
// keyMu.
func (db *DB) forgetMarks(deviceID string) {
	db.forgets++
	if k, ok := db.dkeys.Load(deviceID); ok {
		delete(db.marks, k)
		return
	}
	// Not cached under its id: the state, if any, is keyed by a key this
	// process loaded from the database; drop every state rather than
	// look it up (deletions are rare).
	clear(db.marks)
}
