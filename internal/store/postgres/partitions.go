package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Readings live in one partition per calendar month (UTC) of their time.
// Months are what retention works in: manifests and people choose
// retention in days to years, so a month's partition empties as a whole
// some time after the month ends, and ReclaimSpace then drops its files
// at once instead of leaving VACUUM to find the dead rows. Time-range
// queries (history, export, retention sweeps) touch only their months.
//
// Partitions are created on demand, the first time a batch reaches a
// month, rather than ahead by a job: a hub that was off for a year, or a
// reading with an odd time, needs no job to have run. There is no DEFAULT
// partition: rows in it would have to be moved out, under a lock, before
// the month's own partition could be created.

// partitionName is the table of the month starting at start (ns).
func partitionName(start int64) string {
	return "readings_p" + time.Unix(0, start).UTC().Format("200601")
}

// monthStart is the first nanosecond of ts's month, UTC, or the lowest
// storable time for the first, partial month.
func monthStart(ts int64) int64 {
	t := time.Unix(0, ts).UTC()
	m := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	if m.Before(minTime) {
		return minTime.UnixNano()
	}
	return m.UnixNano()
}

// monthBounds are the FROM and TO values of the month starting at start.
// The last storable month ends at MAXVALUE, since its end is past what
// int64 nanoseconds hold.
func monthBounds(start int64) (from, to string) {
	t := time.Unix(0, start).UTC()
	next := time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	from = strconv.FormatInt(start, 10)
	if start == minTime.UnixNano() {
		from = "MINVALUE"
	}
	if next.After(maxTime) {
		return from, "MAXVALUE"
	}
	return from, strconv.FormatInt(next.UnixNano(), 10)
}

// ensurePartitions makes sure the partitions of the given months exist,
// creating those that do not, for a batch about to be written.
func (db *DB) ensurePartitions(ctx context.Context, months []int64) error {
	for _, m := range months {
		if err := db.createPartition(ctx, m, true); err != nil {
			return err
		}
	}
	return nil
}

// lockWait bounds how long maintenance (creating a month ahead, dropping
// an emptied one) waits for the table locks it needs. Both lock the
// readings table against every reader and writer while they wait, so
// waiting behind a long read (an export) would hold ingest up behind
// them; they give up instead and try again at the next pass.
const lockWait = 50 * time.Millisecond

// createPartition creates the partition of the month starting at m
// unless it exists. Creation takes turns on an advisory lock, so hubs
// sharing the database do not race on the catalogue. Unless wait is set
// it gives up after lockWait with an error of code lock_not_available.
func (db *DB) createPartition(ctx context.Context, m int64, wait bool) error {
	db.partMu.Lock()
	defer db.partMu.Unlock()
	if db.parts[m] {
		return nil
	}
	name := partitionName(m)
	// Looking the table up takes no lock, where CREATE TABLE … IF NOT
	// EXISTS would lock the readings table first.
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up partition %s: %w", name, err)
	}
	if !exists {
		from, to := monthBounds(m)
		err := db.inTx(ctx, func(tx pgx.Tx) error {
			if !wait {
				if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, lockWait.Milliseconds())); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockPartitions); err != nil {
				return err
			}
			// Names and bounds are computed here from integers, never
			// taken from input, so building the statement is safe.
			_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF readings FOR VALUES FROM (%s) TO (%s)`,
				name, from, to))
			return err
		})
		if err != nil {
			return fmt.Errorf("create partition %s: %w", name, err)
		}
	}
	db.parts[m] = true
	return nil
}

// nextMonth is the start of the month after the one starting at m, or
// false after the last storable month.
func nextMonth(m int64) (int64, bool) {
	t := time.Unix(0, m).UTC()
	n := time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	if n.After(maxTime) {
		return 0, false
	}
	return n.UnixNano(), true
}

// forgetPartitions makes the next batch check the catalogue again.
func (db *DB) forgetPartitions() {
	db.partMu.Lock()
	defer db.partMu.Unlock()
	clear(db.parts)
}

// pageSize is PostgreSQL's default block size, for reporting freed space
// in the pages ReclaimSpace's callers count in.
const pageSize = 8192

// ReclaimSpace drops reading partitions of months before the current
// one that no longer hold any reading (all expired, deleted or purged),
// and reports how many pages of files it gave back to the file system.
// Rows deleted from partitions that still hold others become free space
// that autovacuum makes reusable for later rows; PostgreSQL does not
// shrink a table without rewriting it (VACUUM FULL), which would lock
// out ingest, so that is left to the operator. The SQLite engine's bound
// on pages per call is not needed: dropping a partition costs the same
// whatever its size.
//
// It also creates next month's partition ahead, so the first batch of a
// month finds it and does not have to lock the readings table itself.
// Both steps give up on a table lock they cannot get within lockWait and
// are tried again at the next call.
func (db *DB) ReclaimSpace(ctx context.Context, _ int) (int64, error) {
	cur := monthStart(time.Now().UnixNano())
	if next, ok := nextMonth(cur); ok {
		if err := db.createPartition(ctx, next, false); err != nil && pgCode(err) != codeLockNotAvailable {
			return 0, fmt.Errorf("reclaim space: %w", err)
		}
	}
	rows, err := db.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'readings'::regclass ORDER BY c.relname`)
	if err != nil {
		return 0, fmt.Errorf("reclaim space: list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("reclaim space: list partitions: %w", err)
	}
	var freed int64
	for _, name := range names {
		month, ours := strings.CutPrefix(name, "readings_p")
		t, err := time.Parse("200601", month)
		if !ours || err != nil || !t.Before(time.Unix(0, cur)) {
			continue // the current month, a future one, or not ours
		}
		var pages int64
		dropped := false
		err = db.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, lockWait.Milliseconds())); err != nil {
				return err
			}
			// The lock makes an insert into this month wait until the
			// drop committed, then fail and create the month again.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockPartitions); err != nil {
				return err
			}
			ident := pgx.Identifier{name}.Sanitize()
			var found bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+ident+`)`).Scan(&found); err != nil {
				return err
			}
			if found {
				return nil
			}
			// An append in flight (its rows not committed, so not seen
			// above) holds both tables until it ends. DROP would wait
			// for it and then drop its readings with the table; wait
			// here instead (within lockWait, parent first as appends
			// take them) and look again.
			if _, err := tx.Exec(ctx, `LOCK TABLE ONLY readings, ONLY `+ident+` IN ACCESS EXCLUSIVE MODE`); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+ident+`)`).Scan(&found); err != nil {
				return err
			}
			if found {
				return nil
			}
			if err := tx.QueryRow(ctx, `SELECT pg_total_relation_size($1::regclass) / $2`, ident, pageSize).Scan(&pages); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DROP TABLE `+ident); err != nil {
				return err
			}
			// Its span goes with it, so a partition made again for the
			// month starts a new one rather than widening the old.
			key := minTime.UnixNano() // the first, partial month
			if !t.Before(minTime) {
				key = t.UnixNano()
			}
			if _, err := tx.Exec(ctx, `DELETE FROM reading_spans WHERE month = $1`, key); err != nil {
				return err
			}
			dropped = true
			return nil
		})
		if pgCode(err) == codeLockNotAvailable {
			continue // in use by a long read: next time
		}
		if err != nil {
			return freed, fmt.Errorf("reclaim space: partition %s: %w", name, err)
		}
		if dropped {
			freed += pages
			db.forgetPartitions()
		}
	}
	return freed, nil
}
