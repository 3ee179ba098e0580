package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// warmCaches fills the caches of device keys and time-mark states that
// AppendReadings otherwise fills on each device's first reading after
// the store opens (readings.go, marks.go): looking them up there holds
// the ingest writer's transaction, about 0.1 ms a device, so after a
// restart every device's first reading made a commit, and every reading
// behind it, that much later (issue #19; docs/benchmarks.md, session 11).
// It runs in the background from Open, on a reader connection, a chunk
// at a time: every key, and the mark states of the devices that exist
// and have a mark (warm).
//
// It never holds keyMu while it reads, so appends are not held up. What
// it read is put in the caches under keyMu, and only where nothing is
// cached yet: an append that committed since then cached its own state,
// which is newer. A deletion or purge (forgetMarks, FinishPurge) or an
// append whose COMMIT failed (it may have landed) may have made what it
// read stale without leaving anything cached; each counts in db.forgets,
// and a chunk read while it changed is dropped (its devices are then
// looked up by their first readings, as before). A warm-up that fails
// (warmErr) loses nothing either: the caches fill as devices send.
func (db *DB) warmCaches(ctx context.Context) {
	defer close(db.warmDone)
	if err := db.warm(ctx); err != nil && ctx.Err() == nil {
		// Nothing is lost: the caches fill as devices send.
		db.warmErr = err
	}
}

// warmChunk is how many devices' mark states warm reads in one snapshot.
const warmChunk = 64

func (db *DB) warm(ctx context.Context) error {
	gen := db.forgetGen()
	// Every key: an erased device's too, until its purge drops it, so
	// that the purge forgets only that device's mark state (forgetMarks
	// drops all of them for a device whose key it does not know). Mark
	// states only of devices that exist and have a mark: the others have
	// fewer than markEvery readings, cheap to look up when they send, or
	// a history stored before marks were kept, which their first append
	// reads whole once (and marks), but which a warm-up at every start
	// would read whole again each time, for devices that may never send.
	rows, err := db.readers.QueryContext(ctx, `SELECT r.device_id, r.dkey,
			EXISTS (SELECT 1 FROM devices d WHERE d.id = r.device_id)
			AND EXISTS (SELECT 1 FROM reading_marks m WHERE m.dkey = r.dkey)
		FROM reading_devices r ORDER BY r.dkey`)
	if err != nil {
		return fmt.Errorf("warm caches: %w", err)
	}
	var ids []keyOf
	var keys []int64 // to read the mark states of
	for rows.Next() {
		var id string
		var k int64
		var marked bool
		if err := rows.Scan(&id, &k, &marked); err != nil {
			rows.Close()
			return fmt.Errorf("warm caches: %w", err)
		}
		ids = append(ids, keyOf{id, k})
		if marked {
			keys = append(keys, k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("warm caches: %w", err)
	}
	// A thousand at a time, so that appends are not held up long.
	for len(ids) > 0 && db.warmKeys(ids[:min(len(ids), 1024)], gen) {
		ids = ids[min(len(ids), 1024):]
	}
	for len(keys) > 0 {
		chunk := keys[:min(warmChunk, len(keys))]
		keys = keys[len(chunk):]
		if err := db.warmMarks(ctx, chunk); err != nil {
			return err
		}
		// Leave the reader connections and the CPU to others between
		// chunks: a restart is when every device reconnects.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// keyOf is a device's reading key.
type keyOf struct {
	id  string
	key int64
}

// warmKeys caches ids' keys where none is cached, unless a deletion came
// since gen, and reports whether it did.
func (db *DB) warmKeys(ids []keyOf, gen int64) bool {
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	if db.forgets != gen {
		return false
	}
	for _, k := range ids {
		if _, ok := db.dkeys.Load(k.id); !ok {
			db.dkeys.Store(k.id, k.key)
		}
	}
	return true
}

// warmMarks reads the mark states of dkeys in one snapshot and caches
// those still missing, unless a deletion came in between (warmCaches).
func (db *DB) warmMarks(ctx context.Context, dkeys []int64) error {
	gen := db.forgetGen()
	tx, err := db.readers.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("warm caches: %w", err)
	}
	defer tx.Rollback()
	got := make(map[int64]markState, len(dkeys))
	if err := loadMarks(ctx, tx, dkeys, got); err != nil {
		return fmt.Errorf("warm caches: %w", err)
	}
	if db.warmHook != nil {
		db.warmHook(dkeys)
	}
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	if db.forgets != gen {
		return nil
	}
	for k, st := range got {
		if _, ok := db.marks[k]; !ok {
			db.marks[k] = st
		}
	}
	return nil
}

// forgetGen returns db.forgets, read under keyMu.
func (db *DB) forgetGen() int64 {
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	return db.forgets
}

// stopWarm stops warmCaches and waits for it to end.
func (db *DB) stopWarm() {
	if db.warmCancel == nil {
		return
	}
	db.warmCancel()
	<-db.warmDone
}
