package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations brings an empty file up to the current schema, one step per
// schema version: after step i has run, PRAGMA user_version is i+1.
//
// Append new steps; never edit or reorder a step that has shipped, since
// files in the field have already run it. Each step runs in its own
// transaction together with the version bump, so a crash mid-migration
// leaves the file at the previous version.
var migrations = []migration{
	{
		name: "initial schema",
		stmts: []string{
			// STRICT makes SQLite reject a value of the wrong type instead
			// of storing it, which catches encoding mistakes early.
			`CREATE TABLE households (
				id         TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
				name       TEXT NOT NULL,
				created_at INTEGER NOT NULL
			) STRICT`,

			`CREATE TABLE accounts (
				id            TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
				household_id  TEXT NOT NULL REFERENCES households (id),
				username      TEXT NOT NULL UNIQUE CHECK (username <> ''),
				password_hash TEXT NOT NULL,
				role          TEXT NOT NULL,
				admin         INTEGER NOT NULL DEFAULT 0,
				created_at    INTEGER NOT NULL
			) STRICT`,
			`CREATE INDEX accounts_household ON accounts (household_id)`,

			`CREATE TABLE devices (
				id                TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
				household_id      TEXT NOT NULL REFERENCES households (id),
				name              TEXT NOT NULL,
				type              TEXT NOT NULL,
				secret_hash       TEXT NOT NULL,
				credential_set_at INTEGER NOT NULL DEFAULT 0,
				revoked_at        INTEGER NOT NULL DEFAULT 0,
				created_at        INTEGER NOT NULL,
				acl_denied        INTEGER NOT NULL DEFAULT 0,
				refused           INTEGER NOT NULL DEFAULT 0,
				auth_failures     INTEGER NOT NULL DEFAULT 0
			) STRICT`,
			`CREATE INDEX devices_household ON devices (household_id)`,

			`CREATE TABLE sessions (
				id           TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
				account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
				kind         TEXT NOT NULL,
				name         TEXT NOT NULL,
				token_hash   BLOB NOT NULL UNIQUE CHECK (length(token_hash) > 0),
				created_at   INTEGER NOT NULL,
				last_seen_at INTEGER NOT NULL DEFAULT 0,
				expires_at   INTEGER NOT NULL DEFAULT 0
			) STRICT`,
			// Serves Sessions(accountID) and the ON DELETE CASCADE, which
			// would otherwise scan every session.
			`CREATE INDEX sessions_account ON sessions (account_id)`,

			// AUTOINCREMENT guarantees a seq is never handed out twice,
			// even after the newest rows are deleted (retention), so a
			// client's AfterSeq cursor can never skip a reading.
			//
			// No foreign key to devices: the broker only stores readings
			// of devices it authenticated, and a per-row parent lookup on
			// the hottest insert path buys nothing.
			`CREATE TABLE readings (
				seq       INTEGER PRIMARY KEY AUTOINCREMENT,
				device_id TEXT NOT NULL CHECK (device_id <> ''),
				stream    TEXT NOT NULL,
				ts        INTEGER NOT NULL,
				payload   BLOB NOT NULL
			) STRICT`,
			`CREATE INDEX readings_device_stream_ts ON readings (device_id, stream, ts)`,
			`CREATE INDEX readings_device_seq ON readings (device_id, seq)`,
		},
	},
	{
		name: "manifests and violations",
		stmts: []string{
			`CREATE TABLE manifests (
				device_type TEXT NOT NULL CHECK (device_type <> ''),
				version     INTEGER NOT NULL CHECK (version > 0),
				doc         BLOB NOT NULL,
				draft       INTEGER NOT NULL DEFAULT 0,
				created_at  INTEGER NOT NULL,
				PRIMARY KEY (device_type, version)
			) STRICT`,
			// 0 marks readings stored before manifests existed.
			`ALTER TABLE readings ADD COLUMN manifest_version INTEGER NOT NULL DEFAULT 0`,
			`CREATE TABLE violations (
				device_id TEXT NOT NULL,
				stream    TEXT NOT NULL,
				field     TEXT NOT NULL,
				reason    TEXT NOT NULL,
				count     INTEGER NOT NULL,
				last_at   INTEGER NOT NULL,
				PRIMARY KEY (device_id, stream, field, reason)
			) STRICT`,
		},
	},
}

type migration struct {
	name  string
	stmts []string
}

// schemaVersion is the user_version a fully migrated file carries.
func schemaVersion() int { return len(migrations) }

// migrate runs the steps the file has not yet seen. It reads the version
// inside each step's write transaction, so two processes opening the same
// new file cannot both run a step.
func migrate(ctx context.Context, db *sql.DB) error {
	for {
		done, err := migrateStep(ctx, db)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func migrateStep(ctx context.Context, db *sql.DB) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() {
		if err != nil || done {
			_ = tx.Rollback()
		}
	}()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return false, fmt.Errorf("migrate: read schema version: %w", err)
	}
	switch {
	case v == schemaVersion():
		return true, nil
	case v > schemaVersion() || v < 0:
		// A newer Candor wrote this file. Running on would misread
		// columns it added; refusing keeps the data intact for that
		// version to open again.
		return false, fmt.Errorf("migrate: schema version %d is not supported by this build (latest %d)", v, schemaVersion())
	}
	m := migrations[v]
	for _, s := range m.stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return false, fmt.Errorf("migrate to version %d (%s): %w", v+1, m.name, err)
		}
	}
	// PRAGMA takes no bound parameters; v is an int we computed.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): set schema version: %w", v+1, m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): commit: %w", v+1, m.name, err)
	}
	return false, nil
}
