package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"
)

// checkpointEvery is how often the checkpointer copies committed WAL
// frames back into the database file. At full ingest speed the WAL grows
// by a few MiB in that time; an idle check costs a read of the WAL index.
const checkpointEvery = 100 * time.Millisecond

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
// Paced ingest, which leaves the checkpointer gaps, never reaches it.
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
	for {
		select {
		case <-db.ckptStop:
			return
		case <-t.C:
		}
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
