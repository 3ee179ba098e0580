// Package postgres is Candor's store for operators who outgrow one machine:
// everything the hub keeps lives in a PostgreSQL database, so several hub
// processes can one day share it and the operator's own backup, replication
// and monitoring apply.
//
// It implements store.Store and passes the same conformance suite as the
// embedded SQLite engine (package store/storetest), so the rest of the hub
// cannot tell them apart.
//
// Durability: every connection runs with synchronous_commit=on unless the
// connection URL chooses otherwise, so a transaction that committed has its
// WAL flushed to disk, and a write that returned nil survives a crash or
// power loss of the database server, whatever the server's default. Readings arrive in batches from the ingest batcher; each batch is
// one COPY inside one transaction (group commit).
//
// Readings are partitioned by month of their time (declarative range
// partitions on ts, created on demand), so queries over a time range touch
// only their months and a month whose readings have all expired or been
// purged is dropped as a whole file by ReclaimSpace. Queries in seq order
// across months read only the months whose seq span (reading_spans) can
// hold the answer.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/candor-iot/candor/internal/store"
)

// DB is a store.Store backed by a PostgreSQL database. It is safe for
// concurrent use.
type DB struct {
	pool *pgxpool.Pool

	// parts remembers the reading partitions known to exist, by the
	// first nanosecond of their month, so AppendReadings asks the
	// catalogue only when a batch reaches a month for the first time.
	partMu sync.Mutex
	parts  map[int64]bool
}

var _ store.Store = (*DB)(nil)

// Advisory lock keys (the first of pg_advisory_xact_lock's two int4
// arguments) serialising what READ COMMITTED alone would let race, on one
// hub or across several sharing the database. Transaction-scoped: a
// crashed session never leaves one held.
const (
	lockMigrate int32 = iota + 0x43414e00 // "CAN\0"…, unlikely to collide with an operator's own
	lockFirstAccount
	lockReadings
	lockPartitions
	lockManifest
	lockViolations
)

// Open connects to the database at url (postgres://… or postgresql://…)
// and brings its schema up to date. The database must exist; the role
// needs to create tables in it. Close the returned DB when done.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, errors.New("open postgres store: the connection URL cannot be parsed")
	}
	where := cfg.ConnConfig.Host + "/" + cfg.ConnConfig.Database
	rp := cfg.ConnConfig.RuntimeParams
	if _, set := rp["synchronous_commit"]; !set {
		// A server configured with synchronous_commit=off would
		// acknowledge commits that a crash can still undo.
		rp["synchronous_commit"] = "on"
	}
	if _, set := rp["application_name"]; !set {
		rp["application_name"] = "candor"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	return &DB{pool: pool, parts: map[int64]bool{}}, nil
}

// Ping reports whether the database answers a query.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close closes every connection of the pool.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// inTx runs fn in a transaction, committing if fn returns nil and rolling
// back otherwise.
func (db *DB) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		// The rollback error adds nothing: the transaction is void either
		// way and fn's error says why.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// advisoryLock takes a transaction-scoped advisory lock on (key, name).
func advisoryLock(ctx context.Context, tx pgx.Tx, key int32, name string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, key, name); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	return nil
}

// SQLSTATE codes the store maps to its sentinels.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeCheckViolation      = "23514"
	codeLockNotAvailable    = "55P03"
	codeUndefinedTable      = "42P01"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// sentinel maps a driver error to the store sentinel it stands for, or nil.
func sentinel(err error) error {
	switch pgCode(err) {
	case codeUniqueViolation:
		return store.ErrConflict
	case codeForeignKeyViolation:
		// The only foreign keys point at parents (household, account)
		// the caller named, so a violation means that parent is missing.
		return store.ErrNotFound
	}
	return nil
}

// wrapErr adds context to err. Constraint violations become the matching
// store sentinel; the driver's message is kept as text only, so callers
// cannot come to depend on pgx's error type.
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
func notFoundIfNone(tag pgconn.CommandTag, what, id string) error {
	if tag.RowsAffected() == 0 {
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
	minTime  = store.MinStorableTime
	maxTime  = store.MaxStorableTime
)

// execer is what the pool and a transaction have in common, so an insert
// can run alone or as part of a larger transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// rowScanner is what pgx.Row and pgx.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

// whereClause builds a WHERE clause with numbered placeholders.
type whereClause struct {
	conds []string
	args  []any
}

func (w *whereClause) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(w.args))))
}

// clone is a copy of w that can take more conditions without changing w.
func (w *whereClause) clone() *whereClause {
	return &whereClause{conds: slices.Clone(w.conds), args: slices.Clone(w.args)}
}

// next returns the placeholder for one more argument after the conditions.
func (w *whereClause) next(arg any) string {
	w.args = append(w.args, arg)
	return fmt.Sprintf("$%d", len(w.args))
}

func (w *whereClause) String() string {
	if len(w.conds) == 0 {
		return "TRUE"
	}
	return strings.Join(w.conds, " AND ")
}
