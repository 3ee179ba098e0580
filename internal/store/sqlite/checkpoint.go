package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"
)

// checkpointEvery is how often the checkpointer considers copying
// committed WAL frames back into the database file: it does when
// checkpointReadings readings were appended since the last checkpoint,
// or checkpointMaxAge has passed (other writes, a quiet hub).
//
// A checkpoint copies each page written since the last one once, however
// often it was written. Paced ingest rewrites the same pages from one
// merge pass (every ~1,000 readings) to the next: each device's newest
// leaf, the header and pointer-map pages. Checkpointing every 100 ms
// (1,000 paced readings) copied 1,600 bytes per reading, as much as the
// WAL received; every 5,000 readings copies 480 (BenchmarkPacedCheckpoint,
// issue #19). The WAL holds up to ~12 MiB more then (5,000 paced readings
// at ~2.3 KB), well below the writer's backstop; at full speed 5,000
// readings arrive in about the old 100 ms, so the WAL stays as it was.
const (
	checkpointEvery    = 100 * time.Millisecond
	checkpointReadings = 5000
	checkpointMaxAge   = time.Second
)

// checkpointDue reports whether the checkpointer copies the WAL now,
// given the readings appended since its last checkpoint and the time
// since.
func checkpointDue(readings int64, since time.Duration) bool {
	return readings >= checkpointReadings || since >= checkpointMaxAge
}

// walBackstopPages is the WAL size, in pages, at which the writer runs a
// checkpoint itself after a commit. The checkpointer's PASSIVE checkpoints
// copy frames but cannot restart the WAL: SQLite only writes from the
// start of the WAL again when a write transaction begins with every frame
// already copied, and under sustained ingest the writer appends new frames
// while each checkpoint runs, so that never happened and the WAL grew
// without bound (4 GB while filling 10M readings, with every page lookup
// searching its whole index). The writer's own checkpoint runs between its
// transactions, so it completes and the next transaction restarts the WAL;
// with the checkpointer keeping up it only copies the last few frames.
// Steady ingest reaches it too (session 7: at 10,000 paced readings a
// second a commit always lands during a PASSIVE checkpoint, so the WAL
// starts over only here, every ~1.4 s, and the commit after that
// checkpoint waits for it: the ~11 ms PUBACK max of a quiet run). A
// checkpointer pass that held the writer to make the WAL start over
// earlier was measured and taken out again: no lower p99, +3% bytes
// written per paced reading, and maxes of 18-24 ms (docs/benchmarks.md,
// session 7, branch tail).
const walBackstopPages = 8192

// startCheckpointer opens a connection of its own and starts the goroutine
// that checkpoints the WAL in PASSIVE mode, which never waits for readers
// or writers and never blocks them: commits go on appending while it
// copies. The writer's automatic checkpoint is off (see Open), so the
// copying is no longer part of any commit's latency.
func (db *DB) startCheckpointer(ctx context.Context, uri string, pragmas url.Values) error {
	c, err := sql.Open("sqlite", uri+"?"+pragmas.Encode())
	if err != nil {
		return err
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	c.SetConnMaxLifetime(0)
	c.SetConnMaxIdleTime(0)
	if err := c.PingContext(ctx); err != nil {
		c.Close()
		return fmt.Errorf("checkpointer: %w", err)
	}
	db.ckpt, db.ckptStop, db.ckptDone = c, make(chan struct{}), make(chan struct{})
	go db.checkpointLoop()
	return nil
}

func (db *DB) checkpointLoop() {
	defer close(db.ckptDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-db.ckptStop:
			return
		case <-t.C:
		}
		if !checkpointDue(db.sinceCheckpoint.Load(), time.Since(last)) {
			continue
		}
		// Readings appended from here on count towards the next one.
		db.sinceCheckpoint.Store(0)
		last = time.Now()
		db.checkpoints.Add(1)
		// A failure (a full disk) is also the writer's, which reports it;
		// the next tick tries again and the WAL keeps everything meanwhile.
		db.ckptMu.Lock()
		_, _ = db.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		db.ckptMu.Unlock()
	}
}

// stopCheckpointer stops the goroutine and closes its connection. Close
// then checkpoints whatever is left when the last connection closes.
func (db *DB) stopCheckpointer() {
	db.ckptOnce.Do(func() {
		if db.ckpt == nil {
			return
		}
		close(db.ckptStop)
		<-db.ckptDone
		_ = db.ckpt.Close()
	})
}
