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
// checkpoint itself after a commit. A PASSIVE checkpoint copies frames but
// cannot restart the WAL: SQLite only writes from the
// start of the WAL again when a write transaction begins with every frame
// already copied, and under sustained ingest the writer appends new frames
// while each checkpoint runs, so that never happened and the WAL grew
// without bound (4 GB while filling 10M readings, with every page lookup
// searching its whole index). The writer's own checkpoint runs between its
// transactions, so it completes and the next transaction restarts the WAL;
// with the checkpointer keeping up it only copies the last few frames.
// That is what happened every ~1.4 s of paced ingest at 8,192 pages
// (session 7); now the checkpointer leaves the WAL wholly copied once it
// holds walRestartFrames (checkpointWAL), the next transaction restarts
// it, and the backstop (64 MiB) stays for whatever outruns the
// checkpointer.
const walBackstopPages = 16384

// startCheckpointer opens a connection of its own and starts the goroutine
// that checkpoints the WAL in PASSIVE mode, which never waits for readers
// or writers and never blocks them: commits go on appending while it
// copies, except during the short last pass of checkpointWAL. The
// writer's automatic checkpoint only runs at the backstop (see Open), so
// the copying is not part of any commit's latency.
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
		db.checkpointWAL(context.Background())
		db.ckptMu.Unlock()
	}
}

// checkpointWAL copies the WAL into the database file and leaves it
// wholly copied, so the next write transaction starts the WAL over from
// its beginning. A PASSIVE checkpoint copies the frames committed before
// it began; commits land while it copies, and under steady ingest one
// always did, so the WAL was never wholly copied, never started over, and
// grew to the writer's backstop (walBackstopPages): every ~14,000 paced
// readings (~1.4 s at 10,000/s) a commit or merge step ran a checkpoint of
// up to 0.5 s of frames, and its database sync, inside its own
// transaction, and every commit behind it waited (issue #19, the paced
// PUBACK tail; docs/benchmarks.md, session 7, branch tail).
//
// So the bulk is copied without holding anything; a second pass, also
// without, copies what was committed during the first (a much shorter
// copy); and a last pass, with the writer connection held so that no
// ingest commit, merge step or spare rows commit meanwhile, copies what
// was committed during the second, usually a few frames. A commit waits
// at most for that last copy and its syncs. Every sync SQLite does in a
// checkpoint is kept, and so is what is durable when.
func (db *DB) checkpointWAL(ctx context.Context) {
	var busy, logFrames, copied int
	// A failure (a full disk) is also the writer's, which reports it;
	// the next tick tries again and the WAL keeps everything meanwhile.
	if err := db.ckpt.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied); err != nil {
		return
	}
	if logFrames < db.walRestartAt {
		return // small yet: a later checkpoint lets it start over
	}
	// Even when it reports every frame copied, the count is of the
	// frames committed before it began: those committed during it are
	// left, and keep the WAL from starting over. A pass that finds
	// nothing new (the same count) ends the unheld ones early. The held
	// pass is needed all the same: a transaction that began while frames
	// were still uncopied does not start the WAL over, and may commit
	// after the unheld pass looked.
	for range ckptUnheldPasses {
		if db.ckptHook != nil {
			db.ckptHook(false)
		}
		prev := logFrames
		if err := db.ckpt.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied); err != nil {
			return
		}
		if logFrames < prev {
			return // the WAL started over meanwhile (the backstop)
		}
		if logFrames == prev {
			break
		}
	}
	conn, err := db.writer.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	if db.ckptHook != nil {
		db.ckptHook(true)
	}
	if err := db.ckpt.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied); err != nil {
		return
	}
	if copied >= logFrames {
		db.walCopiedWhole.Add(1)
	}
}

// ckptUnheldPasses bounds the passes after the first that copy without
// holding the writer (see checkpointWAL). walRestartFrames: the WAL is
// made to start over once it holds this many frames. Each such
// checkpoint copies some pages twice (those rewritten while its first
// pass ran): at every checkpoint that was +4% bytes written per paced
// reading (five interleaved rounds) and +10% at full speed (two pairs).
// At a quarter of the backstop, a paced (10,000 msg/s: 2,500-3,900
// frames a checkpoint) or full-speed WAL starts over at about every
// other checkpoint, and reaches about half the backstop at most.
const (
	ckptUnheldPasses = 1
	walRestartFrames = walBackstopPages / 4
)

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
