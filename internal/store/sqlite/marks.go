package sqlite

import (
	"context"
	"database/sql"
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

// markEvery is how many readings of a device go between two marks: a
// query by time reads at most about that many readings it does not
// return, when the device's clock only moves forward.
const markEvery = 256

// markState is what an append needs to know about a device's marks.
type markState struct {
	maxTS int64 // an upper bound of the ts of every reading of the device
	since int   // readings of the device after its newest mark
}

// markFor returns the device's mark state, from pending (this
// transaction's), the cache of committed states, or the database. Loading
// reads the device's newest mark and the readings after it: at most about
// markEvery of them, or, the first time a device's readings are appended
// after an upgrade, all of them once. The caller holds keyMu.
func (db *DB) markFor(ctx context.Context, tx *sql.Tx, dkey int64, pending map[int64]markState) (markState, error) {
	if st, ok := pending[dkey]; ok {
		return st, nil
	}
	if st, ok := db.marks[dkey]; ok {
		return st, nil
	}
	st := markState{maxTS: math.MinInt64}
	var seq int64
	err := tx.QueryRowContext(ctx, `SELECT maxts, seq FROM reading_marks WHERE dkey = ? ORDER BY maxts DESC, seq DESC LIMIT 1`, dkey).
		Scan(&st.maxTS, &seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("load time marks: %w", err)
	}
	var mx sql.NullInt64
	// Staged readings count too: a mark written now must bound their
	// times as well (stage.go).
	if err := tx.QueryRowContext(ctx, `SELECT max(ts), count(*) FROM (
			SELECT ts FROM readings WHERE dkey = ? AND seq >= ?
			UNION ALL SELECT ts FROM readings_stage WHERE dkey = ? AND seq >= ? AND `+stageLive+`)`, dkey, seq, dkey, seq).
		Scan(&mx, &st.since); err != nil {
		return st, fmt.Errorf("load time marks: %w", err)
	}
	if mx.Valid {
		st.maxTS = max(st.maxTS, mx.Int64)
	}
	return st, nil
}

// markSince returns a seq below which no reading of the device has
// ts ≥ since (0 when no mark says so), for a query by time to start at.
func (db *DB) markSince(ctx context.Context, deviceID string, since int64) (int64, error) {
	var seq int64
	err := db.readers.QueryRowContext(ctx, `SELECT seq FROM reading_marks
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

// dropMarks deletes the device's marks whose maxts lies in [since, until)
// (a zero bound is open) and forgets its running maximum, in tx. The
// caller holds keyMu, and forgets the cached state only after tx commits
// (forgetMarks): an append in between would otherwise cache it again.
func dropMarks(ctx context.Context, tx *sql.Tx, deviceID string, since, until int64) error {
	q := `DELETE FROM reading_marks WHERE dkey = (SELECT dkey FROM reading_devices WHERE device_id = ?)`
	args := []any{deviceID}
	if since != 0 {
		q += ` AND maxts >= ?`
		args = append(args, since)
	}
	if until != 0 {
		q += ` AND maxts < ?`
		args = append(args, until)
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("drop time marks: %w", err)
	}
	return nil
}

// forgetMarks drops the cached mark state of the device. The caller holds
// keyMu.
func (db *DB) forgetMarks(deviceID string) {
	if k, ok := db.dkeys.Load(deviceID); ok {
		delete(db.marks, k.(int64))
		return
	}
	// Not cached under its id: the state, if any, is keyed by a key this
	// process loaded from the database; drop every state rather than
	// look it up (deletions are rare).
	clear(db.marks)
}
