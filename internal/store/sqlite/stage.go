package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// The staging table (issue #19, paced ingest). A commit's cost is the
// pages it dirties: ten readings from ten devices inserted into the
// clustered (dkey, seq) table dirty ten leaf pages, about 4 KiB of WAL per
// 100-byte reading, each copied again by the checkpoint, plus the CPU of
// writing and checksumming them. Small commits therefore append to
// readings_stage, keyed by the global seq alone, where they dirty the
// last page or two. A merger moves staged rows into the clustered table
// beside ingest, many at a time, so each device's leaf page is written
// once per merge rather than once per commit.
//
// Staged readings are committed like any other (they survive a crash and
// are merged after it). Every read of readings takes both tables in one
// statement; deletions (retention, a person's request, purges) move the
// stage into the clustered table first, in their own transaction.
const (
	// stageBelow: a batch of fewer rows is staged. Larger batches (full
	// speed) already write several rows per device leaf page, and writing
	// them twice would cost more than it saves.
	stageBelow = 256
	// mergeAtRows staged rows start a merge, and mergeMaxAge bounds how
	// long a few staged rows wait (a quiet hub does not pay one more
	// commit per reading). A larger merge writes fewer pages per reading
	// (each device's leaf is rewritten once per merge: 3.7 KB written
	// per reading at 500, 1.4 KB at 2,000, 0.6 KB at 10,000, with 100
	// devices) but holds the one writer connection longer, and every
	// commit waits for it: about 8 ms for 500 rows and 16 ms for 2,000
	// on the project's loaded 2-core machine.
	mergeAtRows = 1024
	mergeMaxAge = 10 * time.Second
	// mergeChunk bounds one merge transaction, for the same reason.
	mergeChunk = 2048
	// mergeCheckEvery is how often the merger looks at the stage.
	mergeCheckEvery = 25 * time.Millisecond
)

// stmts are the hot statements, prepared once on the writer connection:
// parsing them for every commit was 6% of the hub's CPU when paced.
type stmts struct {
	readSeq, writeSeq       *sql.Stmt
	insertMain, insertStage insertStmts // readings.go
	mergeUpTo, mergeAll     *sql.Stmt
	mergeInsert, mergeClear *sql.Stmt
	insertMark              *sql.Stmt // marks.go
}

func (db *DB) prepare(ctx context.Context) error {
	const cols = `(dkey, seq, stream, ts, manifest_version, payload)`
	for _, p := range append([]stmtText{
		// The newest seq handed out is the larger of the high-water mark
		// and the newest staged reading: a staged commit does not write
		// the mark (one page less per commit), and whatever removes
		// staged readings (a merge) raises the mark first.
		{&db.stmts.readSeq, `SELECT max((SELECT hi FROM reading_seq WHERE id = 1), coalesce((SELECT max(seq) FROM readings_stage), 0))`},
		{&db.stmts.writeSeq, `UPDATE reading_seq SET hi = max(hi, ?) WHERE id = 1`},
		{&db.stmts.mergeUpTo, `SELECT max(seq) FROM (SELECT seq FROM readings_stage ORDER BY seq LIMIT ?)`},
		{&db.stmts.mergeAll, `SELECT max(seq) FROM readings_stage`},
		// In key order, so consecutive inserts land on the same leaf.
		// OR FAIL: a failure leaves the statement's earlier rows in place
		// instead of undoing them, which spares SQLite a statement journal
		// (a temporary file written for every page the merge touches,
		// 40% of its writes); mergeTx's caller then rolls the whole
		// transaction back anyway.
		{&db.stmts.mergeInsert, `INSERT OR FAIL INTO readings ` + cols + ` SELECT dkey, seq, stream, ts, manifest_version, payload
			FROM readings_stage WHERE seq <= ? ORDER BY dkey, seq`},
		{&db.stmts.mergeClear, `DELETE FROM readings_stage WHERE seq <= ?`},
		{&db.stmts.insertMark, `INSERT INTO reading_marks (dkey, maxts, seq) VALUES (?, ?, ?)`},
	}, db.stmts.insertTexts(cols)...) {
		st, err := db.writer.PrepareContext(ctx, p.q)
		if err != nil {
			db.closeStmts()
			return fmt.Errorf("prepare: %w", err)
		}
		*p.s = st
	}
	return nil
}

// stmtText is a statement to prepare and where to keep it.
type stmtText struct {
	s *(*sql.Stmt)
	q string
}

func (db *DB) closeStmts() {
	for _, s := range append([]*sql.Stmt{db.stmts.readSeq, db.stmts.writeSeq,
		db.stmts.mergeUpTo, db.stmts.mergeAll, db.stmts.mergeInsert, db.stmts.mergeClear, db.stmts.insertMark},
		append(db.stmts.insertMain[:], db.stmts.insertStage[:]...)...) {
		if s != nil {
			_ = s.Close()
		}
	}
}

// mergeTx moves the oldest max staged readings (all when max ≤ 0) into the
// clustered table within tx and reports how many it moved.
func (db *DB) mergeTx(ctx context.Context, tx *sql.Tx, max int) (int64, error) {
	var upto sql.NullInt64
	var err error
	if max > 0 {
		err = tx.StmtContext(ctx, db.stmts.mergeUpTo).QueryRowContext(ctx, max).Scan(&upto)
	} else {
		err = tx.StmtContext(ctx, db.stmts.mergeAll).QueryRowContext(ctx).Scan(&upto)
	}
	if err != nil {
		return 0, fmt.Errorf("merge staged readings: %w", err)
	}
	if !upto.Valid {
		return 0, nil // nothing staged
	}
	if _, err := tx.StmtContext(ctx, db.stmts.mergeInsert).ExecContext(ctx, upto.Int64); err != nil {
		return 0, fmt.Errorf("merge staged readings: %w", err)
	}
	// The staged seqs leave the stage: the high-water mark keeps them
	// from being handed out again (see readSeq).
	if _, err := tx.StmtContext(ctx, db.stmts.writeSeq).ExecContext(ctx, upto.Int64); err != nil {
		return 0, fmt.Errorf("merge staged readings: %w", err)
	}
	res, err := tx.StmtContext(ctx, db.stmts.mergeClear).ExecContext(ctx, upto.Int64)
	if err != nil {
		return 0, fmt.Errorf("merge staged readings: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("merge staged readings: %w", err)
	}
	return n, nil
}

// mergeStaged moves up to max staged readings (all when max ≤ 0) into the
// clustered table in one transaction.
func (db *DB) mergeStaged(ctx context.Context, max int) (int64, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = db.mergeTx(ctx, tx, max)
		return err
	})
	if err != nil {
		return 0, err
	}
	db.staged.Add(-n)
	return n, nil
}

// startMerger counts what a previous run left staged and starts the
// goroutine that merges.
func (db *DB) startMerger(ctx context.Context) error {
	var n int64
	if err := db.writer.QueryRowContext(ctx, `SELECT count(*) FROM readings_stage`).Scan(&n); err != nil {
		return fmt.Errorf("count staged readings: %w", err)
	}
	db.staged.Store(n)
	db.mergeStop, db.mergeDone = make(chan struct{}), make(chan struct{})
	go db.mergeLoop()
	return nil
}

func (db *DB) mergeLoop() {
	defer close(db.mergeDone)
	t := time.NewTicker(mergeCheckEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-db.mergeStop:
			return
		case <-t.C:
		}
		// staged is raised after an append commits and lowered after a
		// merge commits; the two can land in either order, so it can dip
		// below zero for a moment.
		n := db.staged.Load()
		if n <= 0 {
			last = time.Now()
			continue
		}
		if n < mergeAtRows && time.Since(last) < mergeMaxAge {
			continue
		}
		// A failure (a full disk) is also the writer's, which reports it;
		// the rows stay staged, where every read sees them, and the next
		// tick tries again.
		_, _ = db.mergeStaged(context.Background(), mergeChunk)
		last = time.Now()
	}
}

func (db *DB) stopMerger() {
	db.mergeOnce.Do(func() {
		if db.mergeStop == nil {
			return
		}
		close(db.mergeStop)
		<-db.mergeDone
	})
}
