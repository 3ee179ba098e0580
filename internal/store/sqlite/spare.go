package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
)

// errSeqTaken: a staged row's seq already holds a reading (which the
// upsert must not replace); the append fails and looks the seqs up again.
var errSeqTaken = errors.New("seq already holds a reading")

// Spare stage rows (issue #19: WAL bytes per paced reading). A staged
// commit of 25 readings wrote 5 WAL frames: the two stage leaves its rows
// went to, and three pages only because the commit added a leaf to the
// stage's B-tree: the stage's interior page (the new leaf's pointer),
// the pointer-map page (auto_vacuum records every page's parent) and the
// header page (the page count or the free-list count), plus the
// free-list trunk when the page came from the free list, as it does once
// merges free stage pages. Only the leaves carry readings.
//
// So the merger, beside ingest, appends spare rows to the stage ahead of
// the seqs commits will take: placeholders with dkey 0 (no device has
// that key) and a zero payload about as large as recent readings. A
// staged commit then overwrites the spares at its seqs (an upsert that
// only ever replaces a row with dkey 0) and, as long as each reading fits
// where its spare was, adds no page: it dirties only the leaves its rows
// land on (2.1 frames per commit of 25 in BenchmarkPacedWAL, 5 before).
// The spares' own pages are written once, in the merger's transaction,
// where one header, pointer-map and trunk write covers a few hundred of
// them.
//
// Spares are invisible to every read: reads of the stage select a device
// by its key; the merge and the seq look-ups leave out dkey 0. They
// carry no data, so their transaction commits without its own fsync (as
// a merge step does): lost to a power cut, they are simply missing and
// an upsert inserts instead. A commit with no spare left appends as
// before.
const (
	// spareRows is how many seqs ahead of the next one the merger keeps
	// spares for: at 10,000 readings a second, 50 ms of paced ingest,
	// two of the merger's checks.
	spareRows = 512
	// spareLow: with fewer spares left, the merger adds more (at least
	// spareRows-spareLow at once, so the pages that every adding
	// transaction writes besides the spares' own are shared by many).
	spareLow = 256
	// spareMaxBytes: readings larger than this get no spares (a few to
	// a page, or overflow pages); they are appended as before.
	spareMaxBytes = 1000
	// spareSlack is added to the spare's payload: a reading's key, time
	// and manifest version take up to 12 more bytes than the spare's
	// zeros, and its stream name is counted in rowBytes.
	spareSlack = 12
)

// seqState is what the writer knows of the seqs, so a staged commit need
// not look them up (guarded by keyMu).
type seqState struct {
	// next is the next seq to hand out; 0: unknown, look it up.
	next int64
	// at is the writer connection and its data_version when next was
	// known; next is looked up again when either has changed.
	at seqAt
	// top is the highest seq holding a spare (or anything) in the stage:
	// the spares are the rows with seqs in [next, top].
	top int64
	// rowBytes estimates a staged reading's stream and payload bytes
	// (the larger of the last batch's largest and a slowly decaying
	// earlier estimate), for the spares' size; 0 before any.
	rowBytes int64
	// staged: the last append went to the stage (spares only help
	// paced ingest; at full speed batches go to the clustered table).
	staged bool
}

// seqAt says when what the writer knows of the seqs was true.
//
// PRAGMA data_version changes when another connection (another process:
// this one writes only through the writer) commits, but it is a count
// kept per connection: a new connection starts its own, which may well
// equal the number the old one had reached. And database/sql replaces the
// writer connection on its own, not only when the store drops it (after
// an interrupted statement, e.g. a cancelled deletion, modernc's
// ResetSession reports the connection bad). Had another process appended
// meanwhile, the seqs it took would be handed out again, to readings of
// other devices, which no key stops (the readings table's key includes
// the device). So the writer's connections are counted (writerConns)
// and a new one means looking the seqs up again, at no cost per commit.
type seqAt struct {
	// conn is writerConns.opened when the writer connection in use was
	// opened (it stays the latest while in use: the writer has one).
	conn int64
	// version is that connection's PRAGMA data_version.
	version int64
}

// nextSeq returns the newest seq handed out so far, within the append's
// transaction tx, and when that was true, to record with it. The caller
// holds keyMu.
func (db *DB) nextSeq(ctx context.Context, tx *sql.Tx) (hi int64, at seqAt, err error) {
	at, err = db.seqAtNow(ctx, tx)
	if err != nil {
		return 0, seqAt{}, err
	}
	if db.seq.next > 0 && at == db.seq.at {
		return db.seq.next - 1, at, nil
	}
	var top int64
	if err := tx.StmtContext(ctx, db.stmts.readSeq).QueryRowContext(ctx).Scan(&hi, &top); err != nil {
		return 0, seqAt{}, fmt.Errorf("read seq: %w", err)
	}
	db.seq.top = top
	return hi, at, nil
}

// seqAtNow reads the writer connection's count and data_version within
// tx, a transaction on it.
func (db *DB) seqAtNow(ctx context.Context, tx *sql.Tx) (seqAt, error) {
	// The count first, though either order would do: tx holds the
	// writer's one connection, so no other can be opened meanwhile.
	at := seqAt{conn: db.writerConns.opened.Load()}
	if err := tx.StmtContext(ctx, db.stmts.dataVersion).QueryRowContext(ctx).Scan(&at.version); err != nil {
		return seqAt{}, fmt.Errorf("read data version: %w", err)
	}
	return at, nil
}

// noteRowBytes updates the spare size estimate from a staged batch's
// largest reading. The caller holds keyMu.
func (db *DB) noteRowBytes(largest int64) {
	db.seq.rowBytes = max(largest, db.seq.rowBytes-db.seq.rowBytes/16)
}

// addSpares appends spares to the stage when fewer than spareLow are
// left, after a paced (staged) append. It gives way to a waiting ingest
// commit, like a merge step, and reports whether it added any.
func (db *DB) addSpares(ctx context.Context) (added bool, err error) {
	if db.ingestWaiting.Load() > 0 {
		return false, nil
	}
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	st := db.seq
	if st.next == 0 || !st.staged || st.rowBytes == 0 || st.rowBytes > spareMaxBytes ||
		st.top-st.next+1 >= spareLow {
		return false, nil
	}
	from, to := max(st.next, st.top+1), st.next+spareRows-1
	conn, err := db.writer.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("add spare stage rows: %w", err)
	}
	bad := false
	defer func() {
		if bad {
			// The connection may be left at synchronous=NORMAL: drop it
			// (as mergeStep does; its successor is a new connection to
			// nextSeq).
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = conn.Close()
	}()
	// Spares carry no data: their commit need not wait for the disk
	// (the next ingest commit's fsync covers their frames).
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		bad = true
		return false, fmt.Errorf("add spare stage rows: %w", err)
	}
	defer func() {
		if _, ferr := conn.ExecContext(context.Background(), `PRAGMA synchronous = FULL`); ferr != nil {
			bad = true
			if err == nil {
				err = fmt.Errorf("add spare stage rows: restore synchronous: %w", ferr)
			}
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("add spare stage rows: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	at, err := db.seqAtNow(ctx, tx)
	if err != nil {
		return false, fmt.Errorf("add spare stage rows: %w", err)
	}
	if at != st.at {
		// Another process wrote, or this is a new connection: the next
		// append looks the seqs up.
		db.seq.next = 0
		return false, tx.Rollback()
	}
	// OR FAIL: a row already at one of these seqs (which next and top
	// say cannot be) fails the statement rather than being replaced.
	if _, err := tx.StmtContext(ctx, db.stmts.insertSpares).ExecContext(ctx, from, to, st.rowBytes+spareSlack); err != nil {
		return false, fmt.Errorf("add spare stage rows: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("add spare stage rows: commit: %w", err)
	}
	db.seq.top = to
	return true, nil
}

// dropSpares removes the spares from the stage, for Close. A build from
// before the spares merges every staged row, dkey 0 included, and would
// keep blank readings of no device for good if the file were opened by
// it again (a rollback). The next Open's merger adds spares anew, so
// they cost a restart nothing but one transaction of the merger.
//
// Spares lie after the newest reading (staged commits take them from
// the lowest up; a clustered batch or a merge deletes those it passes),
// so the deletion starts after the newest seq handed out: a look-up as
// in readSeq, then only the spares' own rows and pages, a few hundred.
// With none it writes nothing (a transaction that changes nothing
// leaves no frame in the WAL). A hub that crashes leaves its spares
// until its next Close.
func (db *DB) dropSpares(ctx context.Context) error {
	// After the merger, the only other writer of spares, has stopped;
	// keyMu keeps what nextSeq knows in step (a straggling append).
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM readings_stage WHERE dkey = 0 AND seq > max(
			(SELECT hi FROM reading_seq WHERE id = 1),
			coalesce((SELECT seq FROM readings_stage WHERE dkey <> 0 ORDER BY seq DESC LIMIT 1), 0))`)
		return err
	})
	if err != nil {
		return fmt.Errorf("drop spare stage rows: %w", err)
	}
	// What the spares' top was is gone with them.
	db.seq.next = 0
	return nil
}
