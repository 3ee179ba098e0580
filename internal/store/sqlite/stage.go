package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
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
// about once per merge pass rather than once per commit; a pass runs in
// small steps that give way to ingest commits (see mergePass).
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
	// mergeChunk bounds one merge pass. A pass runs in steps of
	// mergeStepRows readings, each its own short transaction, so
	// commits wait for one step, not for the pass (see mergePass).
	mergeChunk = 2048
	// mergeCheckEvery is how often the merger looks at the stage.
	mergeCheckEvery = 25 * time.Millisecond
)

// stmts are the hot statements, prepared once on the writer connection:
// parsing them for every commit was 6% of the hub's CPU when paced.
type stmts struct {
	readSeq, writeSeq       *sql.Stmt
	dataVersion             *sql.Stmt   // spare.go
	insertSpares            *sql.Stmt   // spare.go
	insertMain, insertStage insertStmts // readings.go
	mergeUpTo, mergeAll     *sql.Stmt
	mergeInsert, mergeClear *sql.Stmt
	readProgress, progress  *sql.Stmt // a pass's progress (reading_merge)
	stepInsert              *sql.Stmt // a step's copy
	insertMark              *sql.Stmt // marks.go
	// A device's first reading since the store opened: its key, made
	// if it has none (readings.go).
	readKey, nextKey, insertKey *sql.Stmt
}

func (db *DB) prepare(ctx context.Context) error {
	const cols = `(dkey, seq, stream, ts, manifest_version, payload)`
	for _, p := range append([]stmtText{
		// The newest seq handed out is the larger of the high-water mark
		// and the newest staged reading: a staged commit does not write
		// the mark (one page less per commit), and whatever removes
		// staged readings (a merge) raises the mark first. Spares
		// (dkey 0, spare.go) are not readings; they lie after the newest
		// one, so the backward scan passes at most spareRows of them.
		// Second column: the stage's highest seq, spares included.
		{&db.stmts.readSeq, `SELECT max((SELECT hi FROM reading_seq WHERE id = 1), coalesce((SELECT seq FROM readings_stage WHERE dkey <> 0 ORDER BY seq DESC LIMIT 1), 0)),
			coalesce((SELECT max(seq) FROM readings_stage), 0)`},
		{&db.stmts.dataVersion, `PRAGMA data_version`},
		// Spares for seqs ? to ?, each with a zero payload of ? bytes.
		{&db.stmts.insertSpares, `WITH RECURSIVE s(seq) AS (SELECT ? UNION ALL SELECT seq + 1 FROM s WHERE seq < ?)
			INSERT OR FAIL INTO readings_stage (seq, dkey, stream, ts, manifest_version, payload) SELECT seq, 0, '', 0, 0, zeroblob(?) FROM s`},
		{&db.stmts.writeSeq, `UPDATE reading_seq SET hi = max(hi, ?) WHERE id = 1`},
		{&db.stmts.mergeUpTo, `SELECT max(seq) FROM (SELECT seq FROM readings_stage WHERE dkey <> 0 ORDER BY seq LIMIT ?)`},
		{&db.stmts.mergeAll, `SELECT max(seq) FROM (SELECT seq FROM readings_stage WHERE dkey <> 0 ORDER BY seq DESC LIMIT 1)`},
		// In key order, so consecutive inserts land on the same leaf,
		// leaving out what a pass in progress has copied already
		// (arguments: up to seq, then the pass's upto, dkey and seq).
		// OR FAIL: a failure leaves the statement's earlier rows in place
		// instead of undoing them, which spares SQLite a statement journal
		// (a temporary file written for every page the merge touches,
		// 40% of its writes); mergeTx's caller then rolls the whole
		// transaction back anyway. (Into the rowid readings table a
		// multi-row insert may keep one all the same; the writer holds
		// temporary data in memory, sqlite.go.)
		{&db.stmts.mergeInsert, `INSERT OR FAIL INTO readings ` + packedCols + ` SELECT ` + stageKey + `, stream, ts, manifest_version, payload
			FROM readings_stage WHERE dkey <> 0 AND seq <= ? AND (seq > ? OR (dkey, seq) > (?, ?)) ORDER BY dkey, seq`},
		{&db.stmts.mergeClear, `DELETE FROM readings_stage WHERE seq <= ?`},
		{&db.stmts.readProgress, `SELECT upto, dkey, seq FROM reading_merge WHERE id = 1`},
		// Sets the progress only if it is still what the caller last
		// saw: a deletion may have finished the pass meanwhile.
		{&db.stmts.progress, `UPDATE reading_merge SET upto = ?, dkey = ?, seq = ? WHERE id = 1 AND upto = ? AND dkey = ? AND seq = ?`},
		// The step's readings by seq (a JSON array, in key order): a
		// lookup of each in the stage, no scan of it.
		{&db.stmts.stepInsert, `INSERT OR FAIL INTO readings ` + packedCols + ` SELECT s.dkey << ` + sqlSeqBits + ` | s.seq, s.stream, s.ts, s.manifest_version, s.payload
			FROM json_each(?) AS j CROSS JOIN readings_stage AS s ON s.seq = j.value`},
		{&db.stmts.insertMark, `INSERT INTO reading_marks (dkey, maxts, seq, mints) VALUES (?, ?, ?, ?)`},
		{&db.stmts.readKey, `SELECT dkey FROM reading_devices WHERE device_id = ?`},
		// The key AUTOINCREMENT gives next (see deviceKey).
		{&db.stmts.nextKey, `SELECT max(
			coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'reading_devices'), 0),
			coalesce((SELECT max(dkey) FROM reading_devices), 0)) + 1`},
		{&db.stmts.insertKey, `INSERT INTO reading_devices (device_id) VALUES (?)`},
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
	for _, s := range append([]*sql.Stmt{db.stmts.readSeq, db.stmts.writeSeq, db.stmts.dataVersion, db.stmts.insertSpares,
		db.stmts.mergeUpTo, db.stmts.mergeAll, db.stmts.mergeInsert, db.stmts.mergeClear,
		db.stmts.readProgress, db.stmts.progress, db.stmts.stepInsert, db.stmts.insertMark,
		db.stmts.readKey, db.stmts.nextKey, db.stmts.insertKey},
		append(db.stmts.insertMain[:], db.stmts.insertStage[:]...)...) {
		if s != nil {
			_ = s.Close()
		}
	}
}

// stageLive is the condition, on readings_stage, that leaves out the
// staged readings a merge pass has already copied into the clustered
// table (those with seq ≤ upto and (dkey, seq) ≤ the pass's position; see
// mergeStep). Every read that takes both tables adds it to its stage
// side, in the same statement (one snapshot), so each reading is seen
// once. With no pass in progress (upto 0) it holds for every row.
const stageLive = `(seq > (SELECT upto FROM reading_merge WHERE id = 1) OR (dkey, seq) > (SELECT dkey, seq FROM reading_merge WHERE id = 1))`

// mergeTx moves the oldest max staged readings (all when max ≤ 0) into the
// clustered table within tx and reports how many left the stage. A pass in
// progress is finished first: what it has copied is not copied again.
func (db *DB) mergeTx(ctx context.Context, tx *sql.Tx, max int) (int64, error) {
	var pos [3]int64 // upto, dkey, seq
	if err := tx.StmtContext(ctx, db.stmts.readProgress).QueryRowContext(ctx).Scan(&pos[0], &pos[1], &pos[2]); err != nil {
		return 0, fmt.Errorf("merge staged readings: read progress: %w", err)
	}
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
		return 0, nil // nothing staged (and so no pass either: its last step empties it)
	}
	hi := upto.Int64
	if pos[0] > hi {
		hi = pos[0]
	}
	if _, err := tx.StmtContext(ctx, db.stmts.mergeInsert).ExecContext(ctx, hi, pos[0], pos[1], pos[2]); err != nil {
		return 0, fmt.Errorf("merge staged readings: %w", err)
	}
	// The staged seqs leave the stage: the high-water mark keeps them
	// from being handed out again (see readSeq).
	if _, err := tx.StmtContext(ctx, db.stmts.writeSeq).ExecContext(ctx, hi); err != nil {
		return 0, fmt.Errorf("merge staged readings: %w", err)
	}
	res, err := tx.StmtContext(ctx, db.stmts.mergeClear).ExecContext(ctx, hi)
	if err != nil {
		return 0, fmt.Errorf("merge staged readings: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("merge staged readings: %w", err)
	}
	if pos[0] > 0 {
		// The pass is over; the merger finds its plan stale at its
		// next step (progress checks it) and plans afresh.
		if _, err := tx.StmtContext(ctx, db.stmts.progress).ExecContext(ctx, 0, 0, 0, pos[0], pos[1], pos[2]); err != nil {
			return 0, fmt.Errorf("merge staged readings: end pass: %w", err)
		}
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
	db.unstaged(n)
	return n, nil
}

// A merge pass (issue #19: commits must not wait long for the merger).
// One merge transaction of 2,048 readings held the writer connection
// for 11-30 ms, and every ingest commit queued behind it. A pass moves
// the same readings (the oldest ≤ mergeChunk staged) in steps of
// mergeStepRows, each its own transaction, in (dkey, seq) order: a step
// rewrites only the leaves of the few devices it reaches, so the pass as
// a whole still writes each device's leaf about once. Between steps the
// writer is free, and a step is not started while an ingest commit is
// waiting (ingestWaiting), so a commit waits for at most the one step
// already running.
//
// Each step records, in the same transaction, the (dkey, seq) of the
// last reading it copied (reading_merge); reads leave out the staged
// readings at or before it (stageLive), so a reading in both tables for
// a while is still seen once, and a restart resumes the pass. The last
// step also empties the pass's readings from the stage, raises the seq
// high-water mark and clears the progress.
//
// The pass is planned once, from a reader connection (not the writer):
// the seqs of its readings in key order, so a step copies its readings
// by seq (a lookup each) instead of scanning the stage. Steps commit
// without their own fsync (synchronous=NORMAL for that transaction
// only): a step only moves readings that are already durable; lost to a
// power cut, its copy and its progress go together (the WAL keeps a
// transaction whole) and the readings stay staged; the next ingest
// commit's fsync covers its frames.
type mergePass struct {
	upto int64
	// at is the (dkey, seq) of the last reading copied ((0, 0) before
	// the first step); fresh: the progress row still says no pass.
	at    [2]int64
	fresh bool
	// dkeys and seqs are the readings still to copy, in key order.
	dkeys, seqs []int64
	done        bool
}

var (
	// errYielded: the step gave the writer to a waiting ingest commit.
	errYielded = errors.New("merge step yielded to a waiting commit")
	// errStalePass: the pass's plan no longer matches the stage (a
	// deletion finished the pass); plan again.
	errStalePass = errors.New("merge pass changed under the merger")
)

const (
	// mergeStepRows bounds one step. 128 readings held the writer for
	// about 1.1 ms (p90 2 ms) paced, longer than the batcher's gathering
	// window (awaitGap); 64 hold it about 0.6 ms (p90 1 ms). Smaller steps
	// write more pages per reading (each step rewrites the progress row
	// and the b-tree's inner pages, and a device split between two steps
	// has its leaf written twice): docs/benchmarks.md, "Session 10: merge
	// steps in the writer's gaps".
	mergeStepRows = 64
	// mergeForceAt: with this many rows staged the merger stops yielding
	// (ingest commits back to back would otherwise starve it; each then
	// waits for one step).
	mergeForceAt = 2 * mergeChunk
)

// planPass plans the pass in progress (after a restart or a stale plan)
// or a new one over the oldest max staged readings; nil when nothing is
// staged.
func (db *DB) planPass(ctx context.Context, max int) (*mergePass, error) {
	p := &mergePass{}
	if err := db.readers.QueryRowContext(ctx, `SELECT upto, dkey, seq FROM reading_merge WHERE id = 1`).
		Scan(&p.upto, &p.at[0], &p.at[1]); err != nil {
		return nil, fmt.Errorf("plan merge: read progress: %w", err)
	}
	if p.upto == 0 {
		var upto sql.NullInt64
		if err := db.readers.QueryRowContext(ctx, `SELECT max(seq) FROM (SELECT seq FROM readings_stage WHERE dkey <> 0 ORDER BY seq LIMIT ?)`, max).
			Scan(&upto); err != nil {
			return nil, fmt.Errorf("plan merge: %w", err)
		}
		if !upto.Valid {
			return nil, nil
		}
		p.upto, p.fresh = upto.Int64, true
	}
	// One row: the keys and seqs as two JSON arrays, in seq order
	// (reading thousands of rows one by one through database/sql costs
	// more than the step it plans; sorting them in SQL, with an ORDER BY
	// in each aggregate, cost several times the scan).
	var dkeys, seqs string
	if err := db.readers.QueryRowContext(ctx, `SELECT json_group_array(dkey), json_group_array(seq)
		FROM readings_stage WHERE dkey <> 0 AND seq <= ?`, p.upto).Scan(&dkeys, &seqs); err != nil {
		return nil, fmt.Errorf("plan merge: %w", err)
	}
	var ks, ss []int64
	if err := json.Unmarshal([]byte(dkeys), &ks); err != nil {
		return nil, fmt.Errorf("plan merge: keys: %w", err)
	}
	if err := json.Unmarshal([]byte(seqs), &ss); err != nil {
		return nil, fmt.Errorf("plan merge: seqs: %w", err)
	}
	if len(ks) != len(ss) {
		return nil, fmt.Errorf("plan merge: %d keys for %d seqs", len(ks), len(ss))
	}
	// Into key order, leaving out what the pass has copied already.
	type row struct{ dkey, seq int64 }
	rows := make([]row, 0, len(ks))
	for i, k := range ks {
		if k > p.at[0] || (k == p.at[0] && ss[i] > p.at[1]) {
			rows = append(rows, row{k, ss[i]})
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.dkey, b.dkey), cmp.Compare(a.seq, b.seq))
	})
	p.dkeys, p.seqs = make([]int64, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		p.dkeys[i], p.seqs[i] = r.dkey, r.seq
	}
	return p, nil
}

// mergeStep runs the next step of p: it copies up to rows of its
// readings, and the last step also clears the pass from the stage. With
// yield set, if an ingest commit is waiting when the step gets the
// writer, it hands the writer back untouched and returns errYielded.
func (db *DB) mergeStep(ctx context.Context, p *mergePass, rows int, yield bool) (err error) {
	conn, err := db.writer.Conn(ctx)
	if err != nil {
		return fmt.Errorf("merge step: %w", err)
	}
	if yield && db.ingestWaiting.Load() > 0 {
		_ = conn.Close()
		db.mergeYields.Add(1)
		return errYielded
	}
	bad := false
	defer func() {
		if bad {
			// The connection may be left at synchronous=NORMAL: drop
			// it, so no ingest commit could ever run unsynced on it
			// (nextSeq looks the seqs up again on its successor).
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = conn.Close()
	}()
	k := min(rows, len(p.seqs))
	last := k == len(p.seqs)
	at := p.at
	if k > 0 {
		at = [2]int64{p.dkeys[k-1], p.seqs[k-1]}
	}
	start := time.Now()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		bad = true
		return fmt.Errorf("merge step: %w", err)
	}
	defer func() {
		if _, ferr := conn.ExecContext(context.Background(), `PRAGMA synchronous = FULL`); ferr != nil {
			bad = true
			if err == nil {
				err = fmt.Errorf("merge step: restore synchronous: %w", ferr)
			}
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("merge step: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	prevUpto := p.upto
	if p.fresh {
		prevUpto = 0
	}
	next := [3]int64{p.upto, at[0], at[1]}
	if last {
		next = [3]int64{}
	}
	res, err := tx.StmtContext(ctx, db.stmts.progress).ExecContext(ctx, next[0], next[1], next[2], prevUpto, p.at[0], p.at[1])
	if err != nil {
		return fmt.Errorf("merge step: progress: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errStalePass
	}
	if k > 0 {
		b, err := json.Marshal(p.seqs[:k])
		if err != nil {
			return fmt.Errorf("merge step: %w", err)
		}
		res, err := tx.StmtContext(ctx, db.stmts.stepInsert).ExecContext(ctx, string(b))
		if err != nil {
			return fmt.Errorf("merge step: %w", err)
		}
		// A reading missing from the stage was moved by someone else.
		if n, err := res.RowsAffected(); err != nil || n != int64(k) {
			return errStalePass
		}
	}
	var cleared int64
	if last {
		// The staged seqs leave the stage: the high-water mark keeps
		// them from being handed out again (see readSeq).
		if _, err := tx.StmtContext(ctx, db.stmts.writeSeq).ExecContext(ctx, p.upto); err != nil {
			return fmt.Errorf("merge step: %w", err)
		}
		res, err := tx.StmtContext(ctx, db.stmts.mergeClear).ExecContext(ctx, p.upto)
		if err != nil {
			return fmt.Errorf("merge step: %w", err)
		}
		if cleared, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("merge step: %w", err)
		}
	}
	if db.stepHook != nil {
		db.stepHook()
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("merge step: commit: %w", err)
	}
	d := time.Since(start)
	db.mergeSteps.record(d)
	db.metrics.stepSecs.Observe(d.Seconds())
	p.dkeys, p.seqs = p.dkeys[k:], p.seqs[k:]
	p.at, p.fresh = at, false
	if last {
		p.done = true
		db.unstaged(cleared)
	}
	return nil
}

// ingestDone marks the end of an AppendReadings call (see ingestWaiting)
// and wakes a merger that yielded to it or waits for the gap after it.
func (db *DB) ingestDone() {
	db.ingestEnded.Store(time.Now().UnixNano())
	if db.ingestWaiting.Add(-1) == 0 {
		select {
		case db.ingestIdle <- struct{}{}:
		default:
		}
	}
}

// stepStats keeps the durations of the latest merge steps (transaction
// begin to commit), for benchmarks to report.
type stepStats struct {
	mu   sync.Mutex
	d    []time.Duration
	next int
}

const stepStatsKeep = 1 << 14

func (s *stepStats) record(d time.Duration) {
	s.mu.Lock()
	if len(s.d) < stepStatsKeep {
		s.d = append(s.d, d)
	} else {
		s.d[s.next] = d
		s.next = (s.next + 1) % stepStatsKeep
	}
	s.mu.Unlock()
}

// take returns the recorded durations and forgets them.
func (s *stepStats) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.d
	s.d, s.next = nil, 0
	return out
}

// startMerger counts what a previous run left staged and starts the
// goroutine that merges.
func (db *DB) startMerger(ctx context.Context) error {
	var n int64
	if err := db.writer.QueryRowContext(ctx, `SELECT count(*) FROM readings_stage WHERE dkey <> 0`).Scan(&n); err != nil {
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
	ctx := context.Background()
	var p *mergePass
	resume := true // a pass left by the previous run goes on at once
	for {
		select {
		case <-db.mergeStop:
			return
		case <-t.C:
		}
		// A failure is also the writer's, which reports it; commits
		// append without spares meanwhile.
		if !db.awaitGap(db.mergeStop) {
			return
		}
		_, _ = db.addSpares(ctx)
		if p == nil {
			// staged is raised after an append commits and lowered after
			// a merge commits; the two can land in either order, so it
			// can dip below zero for a moment.
			n := db.staged.Load()
			if !resume && n <= 0 {
				last = time.Now()
				continue
			}
			if !resume && n < mergeAtRows && time.Since(last) < mergeMaxAge {
				continue
			}
			resume = false
			// A failure (a full disk) is also the writer's, which
			// reports it; the rows stay staged, where every read sees
			// them, and the next tick tries again.
			p, _ = db.planPass(ctx, mergeChunk)
			last = time.Now()
			if p == nil {
				continue
			}
		}
		p = db.runPass(ctx, p, db.mergeStop)
	}
}

// runPass runs p's steps until it is done (nil), fails or is found stale
// (nil: the next tick plans again), or stop is closed (p).
func (db *DB) runPass(ctx context.Context, p *mergePass, stop <-chan struct{}) *mergePass {
	gap := false // the writer just came free: a yield's wait ended
	for {
		select {
		case <-stop:
			return p
		default:
		}
		// Spares between steps too (a pass can take a while), each
		// transaction in a gap of its own.
		if !gap && !db.awaitGap(stop) {
			return p
		}
		gap = false
		if added, _ := db.addSpares(ctx); added && !db.awaitGap(stop) {
			return p
		}
		staged := db.staged.Load()
		err := db.mergeStep(ctx, p, stepRows(int(db.mergeStepRows.Load()), staged), staged < mergeForceAt)
		switch {
		case errors.Is(err, errYielded):
			// Until the waiting commits are done (ingestDone).
			select {
			case <-db.ingestIdle:
				gap = true
			case <-stop:
				return p
			}
		case err != nil:
			return nil
		case p.done:
			return nil
		}
	}
}

// Merge steps and spare rows in the writer's gaps (issue #19, the paced
// PUBACK tail). Paced, the batcher commits about every 2 ms and gathers
// the next batch for about 1 ms in between, the writer idle. A step or a
// spares transaction started at a random moment often still held the
// writer when the next commit came: in a per-commit log of paced runs,
// 78% of the commits whose oldest reading waited over 5 ms had a step
// beside them, against 15% of all commits. So while ingest flows (a
// commit ended within gapFlowing) the merger starts each transaction
// right after a commit ends, and a step is sized (mergeStepRows) to end
// within the gathering window; a hub without steady ingest merges at
// once, as before. gapWaitMax bounds the wait, so a slow commit (or
// ingest that just stopped) does not stall the merge, and mergeStep's
// yield still keeps it from taking the writer from a waiting commit.
//
// One step per commit moves mergeStepRows readings per commit, fewer
// than larger paced batches stage (tens of rows a commit on a loaded
// machine, up to stageBelow): the stage would grow without bound, and
// with it every read (reads take both tables) and the whole-stage merge
// a deletion runs first while holding the writer. So once mergeBehind
// readings are staged (a pass's worth: the merger is falling behind) it
// no longer waits for gaps and steps back to back, with larger steps
// (stepRows), yielding to waiting commits as before, and from
// mergeForceAt on not even that.
const (
	gapFlowing  = 20 * time.Millisecond
	gapWaitMax  = 10 * time.Millisecond
	mergeBehind = mergeChunk
)

// stepRows is how many readings the next step copies with staged rows
// in the stage: rows (mergeStepRows) while the merger keeps up, twice
// that once it falls behind and four times from mergeForceAt on. A
// step's rows must outnumber a commit's when the two take turns on the
// writer (steps back to back, each commit waiting for one), or the stage
// grows by the difference with every turn.
func stepRows(rows int, staged int64) int {
	switch {
	case staged >= mergeForceAt:
		return 4 * rows
	case staged >= mergeBehind:
		return 2 * rows
	}
	return rows
}

// awaitGap waits, while ingest flows and the merger keeps up, for the end
// of the next AppendReadings call, so that what the merger runs next
// starts in the gap after a commit. It reports false if stop was closed.
func (db *DB) awaitGap(stop <-chan struct{}) bool {
	if time.Since(time.Unix(0, db.ingestEnded.Load())) > time.Duration(db.gapFlowing.Load()) ||
		db.staged.Load() >= mergeBehind {
		return true
	}
	// A signal left from an earlier commit is stale: the gap after it
	// may be over.
	select {
	case <-db.ingestIdle:
	default:
	}
	t := time.NewTimer(time.Duration(db.gapWait.Load()))
	defer t.Stop()
	select {
	case <-db.ingestIdle:
	case <-t.C:
	case <-stop:
		return false
	}
	return true
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
