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
	{
		name: "vault keys",
		stmts: []string{
			// Key owners of package vault (accounts, or households without
			// an account). No foreign key to accounts or households: the
			// shredded mark must outlive a deleted account. mode is ''
			// only for an owner shredded before it was ever enrolled.
			`CREATE TABLE vault_owners (
				owner_id    TEXT PRIMARY KEY NOT NULL CHECK (owner_id <> ''),
				mode        TEXT NOT NULL CHECK (mode IN ('hub-assisted', 'user-held', '')),
				recipient   TEXT NOT NULL DEFAULT '',
				created_at  INTEGER NOT NULL,
				updated_at  INTEGER NOT NULL,
				shredded_at INTEGER NOT NULL DEFAULT 0
			) STRICT`,
			// Wrapped data keys: age files, never a key in plain form. The
			// primary key serves Keys(owner) and the single DELETE that
			// shreds an owner, whose cost is the owner's few keys and not
			// the number of readings sealed under them.
			`CREATE TABLE vault_keys (
				owner_id   TEXT NOT NULL REFERENCES vault_owners (owner_id),
				key_id     TEXT NOT NULL CHECK (key_id <> ''),
				mode       TEXT NOT NULL CHECK (mode IN ('hub-assisted', 'user-held')),
				recipient  TEXT NOT NULL DEFAULT '',
				wrapped    BLOB NOT NULL CHECK (length(wrapped) > 0),
				created_at INTEGER NOT NULL,
				retired_at INTEGER NOT NULL DEFAULT 0,
				PRIMARY KEY (owner_id, key_id)
			) STRICT`,
		},
	},
	{
		name: "consent",
		stmts: []string{
			// The consent log. seq orders records as they were appended;
			// doc is the record document receipts are signed over. No
			// foreign keys: a record outlives its account and device.
			`CREATE TABLE consent_records (
				seq        INTEGER PRIMARY KEY AUTOINCREMENT,
				id         TEXT NOT NULL UNIQUE CHECK (id <> ''),
				account_id TEXT NOT NULL,
				device_id  TEXT NOT NULL CHECK (device_id <> ''),
				stream     TEXT NOT NULL CHECK (stream <> ''),
				purpose    TEXT NOT NULL,
				recipient  TEXT NOT NULL CHECK (recipient <> ''),
				created_at INTEGER NOT NULL,
				doc        BLOB NOT NULL
			) STRICT`,
			`CREATE INDEX consent_records_account ON consent_records (account_id, seq)`,
			`CREATE INDEX consent_records_device ON consent_records (device_id, seq)`,
			// Records are evidence: refuse to rewrite one, whoever asks.
			`CREATE TRIGGER consent_records_append_only BEFORE UPDATE ON consent_records
			BEGIN
				SELECT RAISE(ABORT, 'consent records are append-only');
			END`,
			`CREATE TABLE consent_decisions (
				device_id  TEXT NOT NULL CHECK (device_id <> ''),
				stream     TEXT NOT NULL CHECK (stream <> ''),
				purpose    TEXT NOT NULL CHECK (purpose <> ''),
				recipient  TEXT NOT NULL CHECK (recipient <> ''),
				is_on      INTEGER NOT NULL CHECK (is_on IN (0, 1)),
				account_id TEXT NOT NULL,
				record_id  TEXT NOT NULL REFERENCES consent_records (id),
				decided_at INTEGER NOT NULL,
				PRIMARY KEY (device_id, stream, purpose, recipient)
			) STRICT`,
			`CREATE TABLE consent_routing (
				device_id   TEXT NOT NULL CHECK (device_id <> ''),
				stream      TEXT NOT NULL CHECK (stream <> ''),
				keep_on_hub INTEGER NOT NULL CHECK (keep_on_hub IN (0, 1)),
				retention   TEXT NOT NULL,
				account_id  TEXT NOT NULL,
				record_id   TEXT NOT NULL REFERENCES consent_records (id),
				decided_at  INTEGER NOT NULL,
				PRIMARY KEY (device_id, stream)
			) STRICT`,
		},
	},
	{
		name: "erasure and unlinking",
		stmts: []string{
			// '' means the household's keys (devices added before anyone
			// had an account).
			`ALTER TABLE devices ADD COLUMN key_owner TEXT NOT NULL DEFAULT ''`,
			// Background removal queue. No foreign key: the device row is
			// usually gone already.
			`CREATE TABLE purges (
				device_id    TEXT PRIMARY KEY NOT NULL CHECK (device_id <> ''),
				until_seq    INTEGER NOT NULL CHECK (until_seq >= 0),
				reason       TEXT NOT NULL,
				requested_at INTEGER NOT NULL
			) STRICT`,
			// Anonymised hourly cells: deliberately no device, household
			// or account column.
			`CREATE TABLE aggregates (
				device_type TEXT NOT NULL CHECK (device_type <> ''),
				stream      TEXT NOT NULL CHECK (stream <> ''),
				field       TEXT NOT NULL CHECK (field <> ''),
				hour        INTEGER NOT NULL,
				n           INTEGER NOT NULL CHECK (n > 0),
				sum         REAL NOT NULL,
				PRIMARY KEY (device_type, stream, field, hour)
			) STRICT`,
		},
	},
	{
		name: "recipient endpoints",
		stmts: []string{
			`CREATE TABLE recipient_endpoints (
				household_id TEXT NOT NULL REFERENCES households (id) ON DELETE CASCADE,
				recipient    TEXT NOT NULL CHECK (recipient <> ''),
				url          TEXT NOT NULL CHECK (url <> ''),
				created_at   INTEGER NOT NULL,
				PRIMARY KEY (household_id, recipient)
			) STRICT`,
		},
	},
	{
		name: "firmware, advisories and operator",
		stmts: []string{
			// Only changes are kept, so a device that reports on every
			// connect does not grow the table.
			`CREATE TABLE firmware_reports (
				device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
				seq         INTEGER NOT NULL,
				firmware    TEXT NOT NULL CHECK (firmware <> ''),
				hardware    TEXT NOT NULL,
				reported_at INTEGER NOT NULL,
				PRIMARY KEY (device_id, seq)
			) STRICT`,
			`CREATE TABLE advisories (
				id          TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
				format      TEXT NOT NULL CHECK (format IN ('osv', 'csaf')),
				modified    INTEGER NOT NULL,
				document    BLOB NOT NULL,
				imported_at INTEGER NOT NULL
			) STRICT`,
			// One row: the hub has one operator.
			`CREATE TABLE operator (
				one               INTEGER PRIMARY KEY CHECK (one = 1),
				name              TEXT NOT NULL,
				contact           TEXT NOT NULL,
				privacy_contact   TEXT NOT NULL,
				disclosure_policy TEXT NOT NULL,
				updated_at        INTEGER NOT NULL
			) STRICT`,
		},
	},
	{
		name: "abuse monitoring",
		stmts: []string{
			`CREATE TABLE quarantines (
				device_id    TEXT PRIMARY KEY NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
				kind         TEXT NOT NULL CHECK (kind <> ''),
				stream       TEXT NOT NULL,
				severity     TEXT NOT NULL,
				observed     REAL NOT NULL,
				lim          REAL NOT NULL,
				rate_limited INTEGER NOT NULL,
				since        INTEGER NOT NULL
			) STRICT`,
			`CREATE TABLE alert_prefs (
				account_id   TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
				min_severity TEXT NOT NULL,
				email        TEXT NOT NULL
			) STRICT`,
		},
	},
	{
		name: "consent requests",
		stmts: []string{
			// No foreign keys, like the consent log: a request names ids.
			`CREATE TABLE consent_requests (
				id           TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
				household_id TEXT NOT NULL CHECK (household_id <> ''),
				device_id    TEXT NOT NULL CHECK (device_id <> ''),
				account_id   TEXT NOT NULL CHECK (account_id <> ''),
				stream       TEXT NOT NULL CHECK (stream <> ''),
				purpose      TEXT NOT NULL,
				recipient    TEXT NOT NULL,
				is_on        INTEGER NOT NULL CHECK (is_on IN (0, 1)),
				created_at   INTEGER NOT NULL
			) STRICT`,
			`CREATE INDEX consent_requests_household ON consent_requests (household_id, created_at)`,
		},
	},
	{
		name: "apps",
		stmts: []string{
			`CREATE TABLE apps (
				id                TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
				household_id      TEXT NOT NULL REFERENCES households (id) ON DELETE CASCADE,
				name              TEXT NOT NULL,
				description       TEXT NOT NULL,
				purposes          TEXT NOT NULL,
				kind              TEXT NOT NULL DEFAULT '',
				secret_hash       TEXT NOT NULL,
				credential_set_at INTEGER NOT NULL,
				revoked_at        INTEGER NOT NULL DEFAULT 0,
				created_at        INTEGER NOT NULL
			) STRICT`,
			`CREATE INDEX apps_household ON apps (household_id)`,
			`CREATE TABLE app_grants (
				app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
				device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
				stream     TEXT NOT NULL CHECK (stream <> ''),
				decided_by TEXT NOT NULL,
				decided_at INTEGER NOT NULL,
				PRIMARY KEY (app_id, device_id, stream)
			) STRICT`,
			`CREATE INDEX app_grants_device ON app_grants (device_id)`,
		},
	},
	{
		name: "assessments",
		stmts: []string{
			// No foreign keys: a finding or a signed report outlives the
			// device or household it names.
			`CREATE TABLE audit_findings (
				id           TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
				check_name   TEXT NOT NULL,
				severity     TEXT NOT NULL,
				household_id TEXT NOT NULL,
				subject      TEXT NOT NULL,
				doc          BLOB NOT NULL,
				first_seen   INTEGER NOT NULL,
				last_seen    INTEGER NOT NULL,
				closed_at    INTEGER NOT NULL DEFAULT 0
			) STRICT`,
			`CREATE TABLE audit_suppressions (
				finding_id   TEXT PRIMARY KEY NOT NULL CHECK (finding_id <> ''),
				household_id TEXT NOT NULL,
				reason       TEXT NOT NULL,
				by_account   TEXT NOT NULL,
				created_at   INTEGER NOT NULL,
				until        INTEGER NOT NULL
			) STRICT`,
			`CREATE TABLE audit_marks (
				name TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
				at   INTEGER NOT NULL
			) STRICT`,
			// Kept apart from devices so the credential columns stay as
			// they are; a row exists once a secret was set after this
			// migration (older devices count as generated).
			`CREATE TABLE device_secret_origin (
				device_id TEXT PRIMARY KEY NOT NULL CHECK (device_id <> ''),
				chosen    INTEGER NOT NULL CHECK (chosen IN (0, 1)),
				set_at    INTEGER NOT NULL
			) STRICT`,
			`CREATE TABLE assessments (
				kind         TEXT NOT NULL CHECK (kind <> ''),
				household_id TEXT NOT NULL,
				version      INTEGER NOT NULL CHECK (version > 0),
				digest       TEXT NOT NULL,
				doc          BLOB NOT NULL,
				signature    BLOB NOT NULL,
				created_at   INTEGER NOT NULL,
				PRIMARY KEY (kind, household_id, version)
			) STRICT`,
		},
	},
	{
		name: "second login factors",
		stmts: []string{
			// secret is sealed by identity; recovery codes are kept
			// only as SHA-256 hashes.
			`CREATE TABLE second_factors (
				account_id   TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
				secret       BLOB NOT NULL,
				created_at   INTEGER NOT NULL,
				confirmed_at INTEGER NOT NULL DEFAULT 0,
				last_step    INTEGER NOT NULL DEFAULT 0
			) STRICT`,
			`CREATE TABLE recovery_codes (
				account_id TEXT NOT NULL REFERENCES second_factors (account_id) ON DELETE CASCADE,
				code_hash  BLOB NOT NULL,
				PRIMARY KEY (account_id, code_hash)
			) STRICT, WITHOUT ROWID`,
		},
	},
	{
		// The abuse monitor's counts per device and window (issue 15):
		// metadata only, purged after a set time; and the admin's
		// actions per severity.
		name: "monitor windows and actions",
		stmts: []string{
			`CREATE TABLE monitor_windows (
				device_id     TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
				start         INTEGER NOT NULL,
				length        INTEGER NOT NULL CHECK (length > 0),
				readings      INTEGER NOT NULL,
				bytes         INTEGER NOT NULL,
				max_bytes     INTEGER NOT NULL,
				refused       INTEGER NOT NULL,
				wrong_secrets INTEGER NOT NULL,
				probes        INTEGER NOT NULL,
				connects      INTEGER NOT NULL,
				PRIMARY KEY (device_id, start)
			) STRICT`,
			// The purge deletes by start across all devices.
			`CREATE INDEX monitor_windows_start ON monitor_windows (start)`,
			// What the admin chose to do about alarms of each severity,
			// when set on the page rather than by --monitor-actions.
			`CREATE TABLE monitor_actions (
				severity TEXT PRIMARY KEY NOT NULL CHECK (severity <> ''),
				action   TEXT NOT NULL CHECK (action <> '')
			) STRICT`,
		},
	},
	{
		name: "advisory feeds and update stages",
		stmts: []string{
			// No foreign key to manifests: a feed a manifest named
			// keeps its refresh history if the manifest changes.
			`CREATE TABLE advisory_feeds (
				url          TEXT PRIMARY KEY NOT NULL CHECK (url <> ''),
				kind         TEXT NOT NULL CHECK (kind IN ('csaf', 'osv')),
				origin       TEXT NOT NULL,
				added_at     INTEGER NOT NULL,
				last_attempt INTEGER NOT NULL,
				last_success INTEGER NOT NULL,
				last_error   TEXT NOT NULL,
				documents    INTEGER NOT NULL
			) STRICT`,
			`CREATE TABLE update_stages (
				device_id  TEXT PRIMARY KEY NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
				version    TEXT NOT NULL,
				sha256     TEXT NOT NULL,
				stage      TEXT NOT NULL CHECK (stage <> ''),
				reason     TEXT NOT NULL,
				plain      TEXT NOT NULL,
				fail_code  TEXT NOT NULL,
				updated_at INTEGER NOT NULL
			) STRICT`,
		},
	},
	{
		// Someone else removed a person's second factor; the person
		// is told at their next login.
		name: "second factor reset notices",
		stmts: []string{
			`CREATE TABLE second_factor_resets (
				account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
				reset_at   INTEGER NOT NULL,
				by_kind    TEXT NOT NULL CHECK (by_kind <> ''),
				by_id      TEXT NOT NULL
			) STRICT`,
		},
	},
	{
		// Issue #19: the readings table had two TEXT-keyed indexes besides
		// its rowid b-tree, so each reading updated three b-trees, and a
		// commit of ten readings from ten devices rewrote tens of pages
		// (16 KiB written per 100-byte reading when paced). Now one
		// b-tree holds the rows, clustered by (device key, seq): a
		// device's readings are contiguous, so reading, exporting and
		// deleting a device's history are range scans that stay as fast
		// at 10M rows as at 100k, and an append touches one page per
		// device in the batch. Device ids become small integer keys.
		//
		// seq is no longer AUTOINCREMENT (which costs a sqlite_sequence
		// update per row) but comes from reading_seq, advanced once per
		// commit in the same transaction: still never handed out twice,
		// even after the newest rows are deleted.
		name: "readings clustered by device",
		stmts: []string{
			// AUTOINCREMENT here (a few rows, written once per device):
			// a key is never reused, so readings left under an old key
			// could never show up under another device.
			`CREATE TABLE reading_devices (
				dkey      INTEGER PRIMARY KEY AUTOINCREMENT,
				device_id TEXT NOT NULL UNIQUE CHECK (device_id <> '')
			) STRICT`,
			`CREATE TABLE reading_seq (
				id INTEGER PRIMARY KEY CHECK (id = 1),
				hi INTEGER NOT NULL
			) STRICT`,
			`INSERT INTO reading_seq (id, hi) VALUES (1, max(
				(SELECT coalesce(max(seq), 0) FROM readings),
				coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'readings'), 0)))`,
			`INSERT INTO reading_devices (device_id) SELECT DISTINCT device_id FROM readings ORDER BY device_id`,
			`CREATE TABLE readings_clustered (
				dkey             INTEGER NOT NULL,
				seq              INTEGER NOT NULL,
				stream           TEXT NOT NULL,
				ts               INTEGER NOT NULL,
				manifest_version INTEGER NOT NULL DEFAULT 0,
				payload          BLOB NOT NULL,
				PRIMARY KEY (dkey, seq)
			) STRICT, WITHOUT ROWID`,
			`INSERT INTO readings_clustered (dkey, seq, stream, ts, manifest_version, payload)
				SELECT d.dkey, r.seq, r.stream, r.ts, r.manifest_version, r.payload
				FROM readings r JOIN reading_devices d ON d.device_id = r.device_id
				ORDER BY d.dkey, r.seq`,
			`DROP TABLE readings`,
			`ALTER TABLE readings_clustered RENAME TO readings`,
		},
	},
	{
		name: "advisory feed signatures",
		stmts: []string{
			// A pinned OpenPGP fingerprint, the operator's choice to let
			// unsigned CSAF documents in, and how the last refresh
			// checked signatures.
			`ALTER TABLE advisory_feeds ADD COLUMN fingerprint TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE advisory_feeds ADD COLUMN unsigned_allowed INTEGER NOT NULL DEFAULT 0 CHECK (unsigned_allowed IN (0, 1))`,
			`ALTER TABLE advisory_feeds ADD COLUMN signatures TEXT NOT NULL DEFAULT ''`,
		},
	},
	{
		name: "quarantine advisory",
		stmts: []string{
			// The advisory a hold until fixed waits for, kept when an
			// alarm's quarantine joins the hold.
			`ALTER TABLE quarantines ADD COLUMN advisory TEXT NOT NULL DEFAULT ''`,
		},
	},
	{
		// Issue #19: a query by time scanned the device's readings from
		// its first one. A mark says every reading of dkey below seq has
		// ts ≤ maxts (see marks.go). Existing readings get their first
		// mark when the device's next reading is appended.
		name: "reading time marks",
		stmts: []string{
			`CREATE TABLE reading_marks (
				dkey  INTEGER NOT NULL,
				maxts INTEGER NOT NULL,
				seq   INTEGER NOT NULL,
				PRIMARY KEY (dkey, maxts, seq)
			) STRICT, WITHOUT ROWID`,
		},
	},
	{
		// Issue #19, paced ingest: a commit of ten readings from ten
		// devices still dirtied ten leaf pages of the clustered readings
		// table (about 4 KiB of WAL per reading, copied again by the
		// checkpoint). Small commits now append to this table instead,
		// keyed by the global seq alone, so each touches its last page or
		// two; the store moves staged rows into the clustered table in
		// large batches beside ingest (stage.go). Every read and deletion
		// of readings sees both tables.
		name: "readings staging table",
		stmts: []string{
			`CREATE TABLE readings_stage (
				seq              INTEGER PRIMARY KEY,
				dkey             INTEGER NOT NULL,
				stream           TEXT NOT NULL,
				ts               INTEGER NOT NULL,
				manifest_version INTEGER NOT NULL DEFAULT 0,
				payload          BLOB NOT NULL
			) STRICT`,
		},
	},
	{
		// Issue #19: a merge of 2,048 staged readings held the one writer
		// connection for 11-30 ms, and every ingest commit waited behind
		// it. A merge now runs as a pass of small steps, each its own
		// transaction, and this row records how far the pass has got, so
		// reads leave out the staged readings already copied and a
		// restart resumes the pass (stage.go). upto 0: no pass.
		name: "readings merge progress",
		stmts: []string{
			`CREATE TABLE reading_merge (
				id   INTEGER PRIMARY KEY CHECK (id = 1),
				upto INTEGER NOT NULL,
				dkey INTEGER NOT NULL,
				seq  INTEGER NOT NULL
			) STRICT`,
			`INSERT INTO reading_merge (id, upto, dkey, seq) VALUES (1, 0, 0, 0)`,
		},
	},
	{
		// Issue #19: a window in the middle of a long history scanned
		// from its start to the device's newest reading. A mark now also
		// keeps the lowest time of its chunk (see marks.go), so such a
		// query stops at the last chunk holding a time before until.
		// Marks written before this step keep NULL: unknown, never
		// skipped; new marks are written from the device's next append.
		name: "reading time marks: chunk minimum",
		stmts: []string{
			`ALTER TABLE reading_marks ADD COLUMN mints INTEGER`,
		},
	},
	{
		// Issue #15: a rate limit's publishes per second, so that another
		// hub node (or this one after a restart) limits the device as the
		// node that decided did. 0 for holds kept before: one a second.
		name: "quarantine rate",
		stmts: []string{
			`ALTER TABLE quarantines ADD COLUMN rate REAL NOT NULL DEFAULT 0`,
		},
	},
	{
		// Issue #19: the clustered readings table was WITHOUT ROWID, an
		// index b-tree whose interior cells carry whole rows (about 175
		// bytes): 21 to a page, so 4 levels at 100k readings and 6 at 10M,
		// and every append sought its device's leaf through all of them.
		// Now an ordinary rowid table whose key packs (dkey, seq) into one
		// integer (readingkey.go): interior cells are 8-byte keys, and a
		// device's readings are still one contiguous key range. The
		// check refuses a file whose keys would not fit, before anything
		// is copied.
		name:  "readings keyed by packed (device key, seq)",
		check: checkReadingKeys,
		stmts: []string{
			`CREATE TABLE readings_packed (
				id               INTEGER PRIMARY KEY,
				stream           TEXT NOT NULL,
				ts               INTEGER NOT NULL,
				manifest_version INTEGER NOT NULL DEFAULT 0,
				payload          BLOB NOT NULL
			) STRICT`,
			// In key order, so the copy appends to the new b-tree.
			// Rows of device key 0 are no readings (no device has that
			// key) but spare stage rows (spare.go) that a build from
			// before the spares merged after a rollback: left out.
			`INSERT INTO readings_packed (id, stream, ts, manifest_version, payload)
				SELECT dkey << ` + sqlSeqBits + ` | seq, stream, ts, manifest_version, payload
				FROM readings WHERE dkey <> 0 ORDER BY dkey, seq`,
			`DROP TABLE readings`,
			`ALTER TABLE readings_packed RENAME TO readings`,
		},
	},
}

type migration struct {
	name string
	// check, if set, runs in the step's transaction before stmts and
	// refuses the step (the file stays at the previous version) by
	// returning an error.
	check func(ctx context.Context, tx *sql.Tx) error
	stmts []string
}

// checkReadingKeys refuses to pack readings whose device key or seq does
// not fit the packed key, rather than store wrapped keys.
func checkReadingKeys(ctx context.Context, tx *sql.Tx) error {
	// The largest device key is one seek (the primary key's first
	// column); every seq is at most the high-water mark, or a staged
	// reading's (a staged commit does not raise the mark).
	var dkey, seq int64
	if err := tx.QueryRowContext(ctx, `SELECT
		max(coalesce((SELECT max(dkey) FROM readings), 1), coalesce((SELECT max(dkey) FROM readings_stage), 1)),
		max(coalesce((SELECT hi FROM reading_seq WHERE id = 1), 1), coalesce((SELECT max(seq) FROM readings_stage), 1))`).
		Scan(&dkey, &seq); err != nil {
		return fmt.Errorf("read key range: %w", err)
	}
	if _, err := packKey(dkey, max(seq, 1)); err != nil {
		return err
	}
	return nil
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
	if m.check != nil {
		if err := m.check(ctx, tx); err != nil {
			return false, fmt.Errorf("migrate to version %d (%s): %w", v+1, m.name, err)
		}
	}
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
