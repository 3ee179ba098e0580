package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The schema is a list of migrations embedded in the binary, one SQL file
// per version, named NNNN_what.sql. Add files; never edit or renumber one
// that has shipped, since databases in the field have already run it.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations reads the embedded files in version order. A gap or a
// duplicate number is a build mistake, reported before anything runs.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]migration, 0, len(names))
	for i, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".sql")
		num, what, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("migration file %s: want number %04d", n, i+1)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: what, sql: string(b)})
	}
	return out, nil
}

// migrate runs the migrations the database has not seen yet, each in its
// own transaction together with its row in schema_migrations, so a crash
// mid-migration leaves the database at the previous version. An advisory
// lock held for each transaction makes hubs starting at once against one
// database take turns; the version is read under it, so a step runs once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil && pgCode(err) != codeUniqueViolation {
		// Two hubs creating the table at once: the loser sees a unique
		// violation on the catalogue, and the table exists all the same.
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for {
		done, err := migrateStep(ctx, pool, ms)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func migrateStep(ctx context.Context, pool *pgxpool.Pool, ms []migration) (done bool, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() {
		if err != nil || done {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockMigrate); err != nil {
		return false, fmt.Errorf("migrate: lock: %w", err)
	}
	var v int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return false, fmt.Errorf("migrate: read schema version: %w", err)
	}
	switch {
	case v == len(ms):
		return true, nil
	case v > len(ms):
		// A newer Candor wrote this database. Running on would misread
		// what it added; refusing keeps the data intact for that version.
		return false, fmt.Errorf("migrate: schema version %d is not supported by this build (latest %d)", v, len(ms))
	}
	m := ms[v]
	// A file holds several statements: the simple protocol runs them as
	// one script, inside this transaction.
	if _, err := tx.Exec(ctx, m.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): %w", m.version, m.name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): %w", m.version, m.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): commit: %w", m.version, m.name, err)
	}
	return false, nil
}
