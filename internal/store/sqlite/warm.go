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
// It runs in the background from Open, on a reader connection, for the
// devices that exist (an erased device's key waits for its purge), a
// chunk at a time.
//
// It never holds keyMu while it reads, so appends are not held up. What
// it read is put in the caches under keyMu, and only where nothing is
// cached yet: an append that committed since then cached its own state,
// which is newer. A deletion or purge (forgetMarks, FinishPurge) or a
// failed append may have made what it read stale without leaving
// anything cached; each counts in db.forgets, and a chunk read while it
// changed is dropped (its devices are then looked up by their first
// readings, as before).
func (db *DB) warmCaches() {
	defer close(db.warmDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-db.warmStop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := db.warm(ctx); err != nil && ctx.Err() == nil {
		// Nothing is lost: the caches fill as devices send.
		db.warmErr = err
	}
}

// warmChunk is how many devices' mark states warm reads in one snapshot.
const warmChunk = 64

func (db *DB) warm(ctx context.Context) error {
	gen := db.forgetGen()
	rows, err := db.readers.QueryContext(ctx, `SELECT r.device_id, r.dkey FROM reading_devices r JOIN devices d ON d.id = r.device_id ORDER BY r.dkey`)
	if err != nil {
		return fmt.Errorf("warm caches: %w", err)
	}
	ids := map[int64]string{}
	var keys []int64
	for rows.Next() {
		var id string
		var k int64
		if err := rows.Scan(&id, &k); err != nil {
			rows.Close()
			return fmt.Errorf("warm caches: %w", err)
		}
		ids[k] = id
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("warm caches: %w", err)
	}
	db.keyMu.Lock()
	if db.forgets == gen {
		for k, id := range ids {
			if _, ok := db.dkeys.Load(id); !ok {
				db.dkeys.Store(id, k)
			}
		}
	}
	db.keyMu.Unlock()
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
	err = readMarks(dkeys, got, func(_ *sql.Stmt, q string, list string) (*sql.Rows, error) {
		return tx.QueryContext(ctx, q, list)
	}, &db.stmts)
	if err != nil {
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
	if db.warmStop == nil {
		return
	}
	db.warmStopOnce.Do(func() { close(db.warmStop) })
	<-db.warmDone
}
