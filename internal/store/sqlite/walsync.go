package sqlite

import "os"

// syncWAL flushes the WAL file to disk from the merger's goroutine, after
// a merge step or a batch of spare rows committed without an fsync of
// their own (synchronous=NORMAL) and the writer connection was handed
// back (issue #19, the paced PUBACK tail). Without it the next ingest
// commit's fsync flushed their frames too: a merge step writes ~38 pages
// against the ~2 of a paced commit, and commits right after a step took
// about twice as long (docs/benchmarks.md, session 7, branch tail).
//
// Durability does not rest on it: every ingest commit still syncs the
// WAL itself (synchronous=FULL), so a failed or skipped sync here only
// leaves the work to that commit, as before. The file is opened for the
// call alone, so no handle of the hub's keeps SQLite from deleting the
// WAL at close (Windows refuses to delete an open file).
func (db *DB) syncWAL() {
	if db.walPath == "" {
		return
	}
	f, err := os.OpenFile(db.walPath, os.O_WRONLY, 0)
	if err != nil {
		return // no WAL (yet): nothing to flush
	}
	if walSyncFile(f) == nil {
		db.walSyncs.Add(1)
	}
	_ = f.Close()
}

// walSyncFile is syncData; tests replace it to see which file is synced
// and when.
var walSyncFile = syncData
