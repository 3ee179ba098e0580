// Package sqlite is Candor's embedded default store: everything the hub
// keeps lives in one SQLite file in its data directory, so running a hub
// needs no database server and no third party ever holds the data.
//
// It serves clause 2B of the IoT Good Practice paper (people's data kept
// under their control): the data stays on the user's own machine, in a file
// they can back up, move or delete.
//
// Durability: the file is in WAL mode with synchronous=FULL, so a write
// that returned nil survives a crash or power loss. All writes go through
// one dedicated connection; reads use a separate pool and, thanks to WAL,
// never wait for a write in progress.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/candor-iot/candor/internal/idmap"
	"github.com/candor-iot/candor/internal/store"
)

// writerCacheKiB is the writer connection's page cache (see Open).
const writerCacheKiB = 32 << 10

// busyTimeout bounds how long a statement waits for a lock held by another
// process (a backup tool, a second hub started by mistake) before failing.
const busyTimeout = 5 * time.Second

// DB is a store.Store backed by one SQLite file. It is safe for concurrent
// use.
type DB struct {
	// writer has exactly one connection. SQLite admits one writer at a
	// time anyway; queueing in Go's pool instead of in SQLite's busy
	// handler keeps writers fair and never surfaces SQLITE_BUSY.
	writer *sql.DB
	// readers serve every read so that a long write batch never makes a
	// dashboard query wait for the writer's single connection.
	readers *sql.DB
	// dkeys caches device id → readings' integer device key (string →
	// int64) for keys that are committed; see deviceKey. An idmap, not a
	// sync.Map: one entry per device that ever sent, kept for the
	// process's life (docs/benchmarks.md, session 9).
	dkeys idmap.Map[int64]
	// keyMu orders the writes that make, use or drop device keys and
	// change what the mark states are made of (AppendReadings,
	// PurgeReadings, FinishPurge, DeleteReadings, the spares), and
	// guards what they cache (see AppendReadings, warm.go).
	keyMu sync.Mutex
	// marks caches each device's time mark state by device key, for
	// committed appends (marks.go). Guarded by keyMu.
	marks map[int64]markState
	// forgets counts what can make a cached key or mark state stale
	// without replacing it (deletions, purges, failed appends), guarded
	// by keyMu; warmCaches (warm.go) drops what it read across one.
	// warmCancel stops it and warmDone says it ended; warmErr is why it
	// stopped early.
	forgets    int64
	warmCancel context.CancelFunc
	warmDone   chan struct{}
	warmErr    error
	warmHook   func(dkeys []int64) // tests: runs after a chunk is read, before it is cached
	// writerConns opens the writer's connections and counts them.
	writerConns *countingConnector
	// seq is what the writer knows of the seqs and the stage's spares
	// (spare.go), guarded by keyMu; dropOnce: Close drops the spares.
	seq      seqState
	dropOnce sync.Once
	// ckpt is the connection the checkpointer uses; ckptStop and ckptDone
	// stop it (see checkpoint.go).
	ckpt     *sql.DB
	ckptStop chan struct{}
	ckptDone chan struct{}
	ckptOnce sync.Once
	// ckptMu keeps the checkpointer's PASSIVE checkpoints apart from a
	// shred's TRUNCATE checkpoint: SQLite runs one checkpoint at a time
	// and reports the other as busy, which a shred would take for a
	// reader keeping old key pages in the WAL.
	ckptMu sync.Mutex
	// sinceCheckpoint counts the readings appended since the
	// checkpointer's last checkpoint; checkpoints counts its checkpoints
	// (checkpoint.go).
	sinceCheckpoint atomic.Int64
	checkpoints     atomic.Int64
	// walCopiedWhole counts the checkpoints that left the WAL wholly
	// copied; walRestartAt is walRestartFrames (a field so tests can make
	// small WALs start over); ckptHook, when set, runs before each of a
	// checkpoint's later passes, told whether the writer is held (tests;
	// checkpoint.go).
	walCopiedWhole atomic.Int64
	walRestartAt   int
	ckptHook       func(held bool)

	// stmts are the hot writer statements, prepared once (stage.go).
	stmts stmts
	// stageBelow: batches of fewer rows go to the staging table
	// (stageBelow, a field so tests can send every batch either way).
	stageBelow int
	// staged approximates the rows in readings_stage; the merger reads it.
	staged    atomic.Int64
	mergeStop chan struct{}
	mergeDone chan struct{}
	mergeOnce sync.Once
	// ingestWaiting counts AppendReadings calls under way: the merger
	// starts no step while one waits for the writer, and ingestIdle
	// wakes it when the count is back to zero (stage.go).
	ingestWaiting atomic.Int64
	ingestIdle    chan struct{}
	// ingestEnded is when the latest AppendReadings call ended (unix
	// ns); gapFlowing and gapWait are awaitGap's bounds (fields so tests
	// can lengthen them).
	ingestEnded         atomic.Int64
	gapFlowing, gapWait atomic.Int64 // time.Duration
	// mergeStepRows is the readings one merge step copies (a field so
	// tests can make passes of many steps); stepHook, when set, runs
	// inside each step's transaction (tests); mergeSteps times the steps.
	mergeStepRows atomic.Int64
	stepHook      func()
	mergeSteps    stepStats
	mergeYields   atomic.Int64 // steps not started for a waiting commit
	metrics       mergeMetrics // metrics.go
	// creates group-commits concurrent CreateDevice calls (createdevice.go).
	creates deviceCreates
}

var _ store.Store = (*DB)(nil)

// Open opens the SQLite database at path, creating the file if needed,
// and brings its schema up to date. path is a file system path, not a
// SQLite URI and not ":memory:": the writer and the reader pool must share
// one file. Its directory must exist. Close the returned DB when done.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: empty path")
	}
	uri, err := fileURI(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	// Pragmas go in the DSN rather than being run once after Open because
	// they are per connection: database/sql opens and recycles
	// connections on its own and each must come up configured.
	pragmas := url.Values{}
	pragmas.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	pragmas.Add("_pragma", "journal_mode(WAL)")
	pragmas.Add("_pragma", "synchronous(FULL)")
	pragmas.Add("_pragma", "foreign_keys(1)")

	// BEGIN IMMEDIATE takes the write lock up front, so a transaction that
	// reads before it writes (CreateFirstAccount) cannot fail half way
	// when another process holds the lock: it waits under busy_timeout.
	wq := cloneValues(pragmas)
	wq.Set("_txlock", "immediate")
	// The writer checkpoints only as a backstop: SQLite's automatic
	// checkpoint runs in the commit that crosses the threshold and copies
	// the WAL back before that commit returns, so at the default of 1,000
	// pages every ~80th paced batch waited for it and so did its PUBACKs
	// (issue #19). The checkpointer does it beside (checkpoint.go).
	wq.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walBackstopPages))
	// A batch of a few thousand readings from 100 devices touches
	// hundreds of pages, more with a deeper b-tree; in SQLite's default
	// 2 MiB cache they spilled to the WAL before the commit and were
	// written again by it: 2,500 bytes written per reading at 10M stored
	// against 1,500 at 100k (issue #19). Readers keep the default.
	wq.Add("_pragma", fmt.Sprintf("cache_size(%d)", -writerCacheKiB))
	// A multi-row INSERT into the rowid readings table keeps a statement
	// journal (even OR FAIL), which SQLite spills to a temporary file past
	// 64 KiB: a batch of 1,000 readings wrote 1.1-1.8 KB per reading to
	// it besides the WAL (issue #19). In memory it costs the pages one
	// statement touches, a few hundred KiB. incrementalVacuum switches
	// back to files for its VACUUM, whose temporary copy is the database.
	wq.Add("_pragma", "temp_store(MEMORY)")
	wc, err := sqlite.NewConnector(uri + "?" + wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	writerConns := &countingConnector{Connector: wc}
	writer := sql.OpenDB(writerConns)
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	// The writer's first connection switches the file to WAL and creates
	// the schema before any reader connects.
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	if err := incrementalVacuum(ctx, writer); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	var before int
	if err := writer.QueryRowContext(ctx, "PRAGMA user_version").Scan(&before); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %q: read schema version: %w", path, err)
	}
	if err := migrate(ctx, writer); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	if before != 0 && before != schemaVersion() {
		// A migration that rewrote a table (24 copies every reading)
		// passed all its pages through the WAL in one transaction, and
		// SQLite keeps a WAL file at its largest size: as big as the
		// readings, on disk beside the file until Close. Copy it back
		// and cut it to nothing now, while no reader holds a snapshot.
		if _, err := writer.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			writer.Close()
			return nil, fmt.Errorf("open sqlite store %q: checkpoint after migrating from version %d: %w", path, before, err)
		}
	}

	// query_only turns a write slipped onto the reader pool by mistake
	// into an error instead of a second writer contending for the lock.
	rq := cloneValues(pragmas)
	rq.Add("_pragma", "query_only(1)")
	readers, err := sql.Open("sqlite", uri+"?"+rq.Encode())
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	readers.SetMaxOpenConns(n)
	// Keep them all idle rather than the default two: opening a SQLite
	// connection parses the schema, which is wasted work under load.
	readers.SetMaxIdleConns(n)
	if err := readers.PingContext(ctx); err != nil {
		readers.Close()
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	db := &DB{writer: writer, writerConns: writerConns, readers: readers, stageBelow: stageBelow, marks: map[int64]markState{},
		ingestIdle: make(chan struct{}, 1), metrics: newMergeMetrics(), walRestartAt: walRestartFrames}
	db.mergeStepRows.Store(mergeStepRows)
	db.gapFlowing.Store(int64(gapFlowing))
	db.gapWait.Store(int64(gapWaitMax))
	if err := db.prepare(ctx); err != nil {
		readers.Close()
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	if err := db.startCheckpointer(ctx, uri, pragmas); err != nil {
		db.closeStmts()
		readers.Close()
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	if err := db.startMerger(ctx); err != nil {
		db.stopCheckpointer()
		db.closeStmts()
		readers.Close()
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	var warmCtx context.Context
	warmCtx, db.warmCancel = context.WithCancel(context.Background())
	db.warmDone = make(chan struct{})
	go db.warmCaches(warmCtx)
	return db, nil
}

// countingConnector opens connections as the driver's Connector does and
// counts them: database/sql replaces a connection it finds bad on its
// own, and the writer must know when its connection is a new one (see
// seqAt).
type countingConnector struct {
	driver.Connector
	// opened counts the connections opened so far.
	opened atomic.Int64
}

// Connect opens a connection and counts it.
func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	c.opened.Add(1)
	return conn, nil
}

// incrementalVacuum puts the file in incremental auto_vacuum mode, so
// ReclaimSpace can return pages freed by retention and erasure to the file
// system. The mode is fixed in the file's header, so a file made by an
// earlier build is rebuilt once with VACUUM (a one-time cost at start).
func incrementalVacuum(ctx context.Context, db *sql.DB) error {
	var mode int
	if err := db.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil {
		return fmt.Errorf("read auto_vacuum: %w", err)
	}
	const incremental = 2
	if mode == incremental {
		return nil
	}
	if _, err := db.ExecContext(ctx, `PRAGMA auto_vacuum = INCREMENTAL`); err != nil {
		return fmt.Errorf("set auto_vacuum: %w", err)
	}
	if err := db.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil {
		return fmt.Errorf("read auto_vacuum: %w", err)
	}
	if mode != incremental {
		// The file's header was already written (by the switch to WAL, or
		// by an earlier build's tables): only a rebuild changes the mode.
		// VACUUM copies the whole database into a temporary one, which
		// must be a file, not memory (the writer's temp_store), so it runs
		// on one connection set to files for the while.
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("switch to incremental auto_vacuum: %w", err)
		}
		defer conn.Close()
		for _, q := range []string{`PRAGMA temp_store = FILE`, `VACUUM`, `PRAGMA temp_store = MEMORY`} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("switch to incremental auto_vacuum: %w", err)
			}
		}
	}
	return nil
}

// fileURI turns a file system path into a SQLite URI filename. A URI is
// needed so query parameters can follow; escaping keeps '?', '#' and '%'
// in directory names from being taken as URI syntax.
func fileURI(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("resolve path: %w", err)
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows drive letter: file:/C:/…
	}
	return "file:" + (&url.URL{Path: p}).EscapedPath(), nil
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Ping reports whether both the reader pool and the writer connection
// answer. The writer check waits for a write in progress, which is the
// truth about whether a write could be served now.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.readers.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite readers: %w", err)
	}
	if err := db.writer.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite writer: %w", err)
	}
	return nil
}

// Close closes the reader pool and the writer connection. Closing the
// last connection checkpoints the WAL back into the main file.
func (db *DB) Close() error {
	var errs []error
	db.stopWarm()
	// Staged readings stay staged (they are committed); the next Open
	// merges them. Spares do not stay (dropSpares).
	db.stopMerger()
	db.dropOnce.Do(func() { // Close may be called again, as before
		if err := db.dropSpares(context.Background()); err != nil {
			errs = append(errs, fmt.Errorf("close sqlite store: %w", err))
		}
	})
	db.stopCheckpointer()
	db.closeStmts()
	if err := db.readers.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close sqlite readers: %w", err))
	}
	if err := db.writer.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close sqlite writer: %w", err))
	}
	return errors.Join(errs...)
}

// inTx runs fn in a write transaction on the writer connection, committing
// if fn returns nil and rolling back otherwise.
func (db *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		// The rollback error adds nothing: the transaction is void either
		// way and fn's error says why.
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// sentinel maps a driver error to the store sentinel it stands for, or nil.
func sentinel(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return store.ErrConflict
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		// The only foreign keys point at parents (household, account)
		// the caller named, so a violation means that parent is missing.
		return store.ErrNotFound
	}
	return nil
}

// wrapErr adds context to err. Constraint violations become the matching
// store sentinel; the driver's message is kept as text only so callers
// cannot come to depend on SQLite's error type.
func wrapErr(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if s := sentinel(err); s != nil {
		return fmt.Errorf("%s: %w (%v)", msg, s, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// missingParent reports whether err is a foreign key violation, which on
// insert means the referenced household or account does not exist.
func missingParent(err error) bool {
	return errors.Is(sentinel(err), store.ErrNotFound)
}

// notFoundIfNone turns a zero affected-row count into store.ErrNotFound.
func notFoundIfNone(res sql.Result, what, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %q: rows affected: %w", what, id, err)
	}
	if n == 0 {
		return fmt.Errorf("%s %q: %w", what, id, store.ErrNotFound)
	}
	return nil
}

// Times are stored as the store package encodes them, the same in every
// engine (store.EncodeTime).
var (
	encTime  = store.EncodeTime
	decTime  = store.DecodeTime
	encTimes = store.EncodeTimes
)

// execer is what *sql.DB and *sql.Tx have in common, so an insert can
// run alone or as part of a larger transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}
