package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// OldestReadings returns, for every device with stored readings (staged
// ones included), a time no later than its oldest reading's: the zero
// time when it is not known. A device with no readings is absent.
//
// It is what lets a retention sweep skip a device with nothing to delete
// (issue #19): an idle hub with 18,000 devices spent 43% of its CPU in
// the sweep, one writer transaction per device and stream even when
// none of them deleted anything. This is one read, on a reader
// connection, from the time marks (marks.go) instead of from the
// readings: every mark keeps the lowest time of its chunk (mints), and
// only the readings after a device's newest mark (fewer than about
// markEvery) are read. A mark without mints (written before it was
// kept) makes the device's time unknown. Deletions keep every mints a
// lower bound (fewer readings, and dropped marks fold theirs into the
// next one), so the result can only be too early, never too late: a
// device it names as newer than a cutoff has no reading before it.
//
// The stage is read whole, once (it is small): staged readings a merge
// pass has already copied are counted twice, which can only lower a
// device's time.
func (db *DB) OldestReadings(ctx context.Context) (map[string]time.Time, error) {
	// One statement, one snapshot: a reading moving from the stage to
	// the clustered table in between is seen on one side or the other.
	rows, err := db.readers.QueryContext(ctx, `SELECT d.device_id,
		(SELECT count(*) - count(mints) FROM reading_marks WHERE dkey = d.dkey),
		(SELECT min(mints) FROM reading_marks WHERE dkey = d.dkey),
		(SELECT min(ts) FROM readings WHERE id BETWEEN
			(d.dkey << `+sqlSeqBits+`) + coalesce((SELECT max(seq) FROM reading_marks WHERE dkey = d.dkey), 0)
			AND (d.dkey << `+sqlSeqBits+`) + `+sqlMaxSeq+`),
		s.ts
		FROM reading_devices d
		LEFT JOIN (SELECT dkey, min(ts) AS ts FROM readings_stage GROUP BY dkey) s ON s.dkey = d.dkey`)
	if err != nil {
		return nil, fmt.Errorf("oldest readings: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var unknown int64
		var marked, tail, staged *int64
		if err := rows.Scan(&id, &unknown, &marked, &tail, &staged); err != nil {
			return nil, fmt.Errorf("oldest readings: %w", err)
		}
		if unknown > 0 {
			out[id] = time.Time{}
			continue
		}
		var lo *int64
		for _, v := range []*int64{marked, tail, staged} {
			if v != nil && (lo == nil || *v < *lo) {
				lo = v
			}
		}
		if lo == nil {
			continue // a key, but no readings: nothing to delete
		}
		out[id] = store.DecodeTime(*lo)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("oldest readings: %w", err)
	}
	return out, nil
}
