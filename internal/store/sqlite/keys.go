package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Vault keys: key owners and their wrapped data keys. See
// store.KeyStore for the contract.
//
// Deleted and rewritten key rows are overwritten in the file
// (secure_delete) and the WAL is truncated afterwards, so a destroyed or
// replaced wrapped key does not linger in free pages or old WAL frames of
// the live database. Copies made earlier (backups) are out of reach, as
// with any crypto-shredding.

// SetKeyOwner upserts an owner's settings and replaces the wrapping of the
// given keys, all in one transaction.
func (db *DB) SetKeyOwner(ctx context.Context, o store.KeyOwner, rewrapped ...store.KeyRecord) error {
	if o.OwnerID == "" {
		return errors.New("set key owner: empty owner id")
	}
	if err := checkKeyMode(o.Mode); err != nil {
		return fmt.Errorf("set key owner %q: %w", o.OwnerID, err)
	}
	if o.UpdatedAt.IsZero() {
		o.UpdatedAt = time.Now().UTC()
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = o.UpdatedAt
	}
	ts, err := encTimes(o.CreatedAt, o.UpdatedAt)
	if err != nil {
		return fmt.Errorf("set key owner %q: %w", o.OwnerID, err)
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		shredded, _, err := ownerState(ctx, tx, o.OwnerID)
		if err != nil {
			return err
		}
		if shredded {
			return store.ErrShredded
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO vault_owners (owner_id, mode, recipient, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (owner_id) DO UPDATE SET mode = excluded.mode, recipient = excluded.recipient, updated_at = excluded.updated_at`,
			o.OwnerID, string(o.Mode), o.Recipient, ts[0], ts[1]); err != nil {
			return err
		}
		if len(rewrapped) == 0 {
			return nil
		}
		restore, err := secureDelete(ctx, tx)
		if err != nil {
			return err
		}
		defer restore()
		for _, k := range rewrapped {
			if k.OwnerID != o.OwnerID {
				return fmt.Errorf("rewrapped key %q belongs to owner %q", k.KeyID, k.OwnerID)
			}
			if err := checkKeyMode(k.Mode); err != nil || k.Mode == "" {
				return fmt.Errorf("rewrapped key %q: bad mode %q", k.KeyID, k.Mode)
			}
			res, err := tx.ExecContext(ctx, `UPDATE vault_keys SET mode = ?, recipient = ?, wrapped = ? WHERE owner_id = ? AND key_id = ?`,
				string(k.Mode), k.Recipient, k.Wrapped, k.OwnerID, k.KeyID)
			if err != nil {
				return err
			}
			if err := notFoundIfNone(res, "vault key", k.KeyID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrapErr(err, "set key owner %q", o.OwnerID)
	}
	if len(rewrapped) > 0 {
		// The new wrapping is committed and the old one is gone from the
		// database; the settings change stands even when old WAL frames
		// could not be cleared yet (they are overwritten as the WAL is
		// reused), so a failure here is not the caller's to handle.
		_ = db.truncateWAL(ctx)
	}
	return nil
}

// KeyOwner returns one key owner.
func (db *DB) KeyOwner(ctx context.Context, ownerID string) (store.KeyOwner, error) {
	row := db.readers.QueryRowContext(ctx, `SELECT owner_id, mode, recipient, created_at, updated_at, shredded_at
		FROM vault_owners WHERE owner_id = ?`, ownerID)
	o, err := scanKeyOwner(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.KeyOwner{}, fmt.Errorf("key owner %q: %w", ownerID, store.ErrNotFound)
	}
	if err != nil {
		return store.KeyOwner{}, fmt.Errorf("key owner %q: %w", ownerID, err)
	}
	return o, nil
}

// KeyOwners lists every key owner, shredded ones included.
func (db *DB) KeyOwners(ctx context.Context) ([]store.KeyOwner, error) {
	rows, err := db.readers.QueryContext(ctx, `SELECT owner_id, mode, recipient, created_at, updated_at, shredded_at
		FROM vault_owners ORDER BY owner_id`)
	if err != nil {
		return nil, fmt.Errorf("list key owners: %w", err)
	}
	defer rows.Close()
	var out []store.KeyOwner
	for rows.Next() {
		o, err := scanKeyOwner(rows)
		if err != nil {
			return nil, fmt.Errorf("list key owners: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list key owners: %w", err)
	}
	return out, nil
}

// PutKey stores a new wrapped key and retires the owner's key in use.
func (db *DB) PutKey(ctx context.Context, rec store.KeyRecord) error {
	if rec.OwnerID == "" || rec.KeyID == "" {
		return errors.New("put key: empty owner or key id")
	}
	if rec.Mode != store.KeyModeHubAssisted && rec.Mode != store.KeyModeUserHeld {
		return fmt.Errorf("put key %q of %q: bad mode %q", rec.KeyID, rec.OwnerID, rec.Mode)
	}
	if len(rec.Wrapped) == 0 {
		return fmt.Errorf("put key %q of %q: empty wrapped key", rec.KeyID, rec.OwnerID)
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = time.Now().UTC()
	}
	ts, err := encTimes(rec.CreatedAt, rec.RetiredAt)
	if err != nil {
		return fmt.Errorf("put key %q of %q: %w", rec.KeyID, rec.OwnerID, err)
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		shredded, found, err := ownerState(ctx, tx, rec.OwnerID)
		if err != nil {
			return err
		}
		if !found {
			return store.ErrNotFound
		}
		if shredded {
			return store.ErrShredded
		}
		if rec.RetiredAt.IsZero() {
			if _, err := tx.ExecContext(ctx, `UPDATE vault_keys SET retired_at = ? WHERE owner_id = ? AND retired_at = 0`,
				ts[0], rec.OwnerID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO vault_keys (owner_id, key_id, mode, recipient, wrapped, created_at, retired_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			rec.OwnerID, rec.KeyID, string(rec.Mode), rec.Recipient, rec.Wrapped, ts[0], ts[1])
		return err
	})
	if err != nil {
		return wrapErr(err, "put key %q of %q", rec.KeyID, rec.OwnerID)
	}
	return nil
}

// Keys lists an owner's keys, oldest first.
func (db *DB) Keys(ctx context.Context, ownerID string) ([]store.KeyRecord, error) {
	rows, err := db.readers.QueryContext(ctx, `SELECT owner_id, key_id, mode, recipient, wrapped, created_at, retired_at
		FROM vault_keys WHERE owner_id = ? ORDER BY created_at, key_id`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("keys of %q: %w", ownerID, err)
	}
	defer rows.Close()
	var out []store.KeyRecord
	for rows.Next() {
		var (
			k                store.KeyRecord
			mode             string
			created, retired int64
		)
		if err := rows.Scan(&k.OwnerID, &k.KeyID, &mode, &k.Recipient, &k.Wrapped, &created, &retired); err != nil {
			return nil, fmt.Errorf("keys of %q: %w", ownerID, err)
		}
		k.Mode = store.KeyMode(mode)
		k.CreatedAt = decTime(created)
		k.RetiredAt = decTime(retired)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys of %q: %w", ownerID, err)
	}
	return out, nil
}

// ShredOwner deletes every key of the owner with one DELETE on the
// (owner_id, key_id) primary key: its cost grows with the owner's keys
// only, whatever the number of readings sealed under them. The owner row
// stays as a tombstone without its recipient.
func (db *DB) ShredOwner(ctx context.Context, ownerID string, at time.Time) error {
	if ownerID == "" {
		return errors.New("shred owner: empty owner id")
	}
	if at.IsZero() {
		at = time.Now().UTC()
	}
	ts, err := encTime(at)
	if err != nil {
		return fmt.Errorf("shred owner %q: %w", ownerID, err)
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		restore, err := secureDelete(ctx, tx)
		if err != nil {
			return err
		}
		defer restore()
		if _, err := tx.ExecContext(ctx, `DELETE FROM vault_keys WHERE owner_id = ?`, ownerID); err != nil {
			return err
		}
		// The recipient is cleared under secure_delete too: it is a
		// public key, but it identifies the person.
		if _, err := tx.ExecContext(ctx, `INSERT INTO vault_owners (owner_id, mode, recipient, created_at, updated_at, shredded_at)
			VALUES (?, '', '', ?, ?, ?)
			ON CONFLICT (owner_id) DO UPDATE SET recipient = '',
				updated_at = CASE WHEN shredded_at = 0 THEN excluded.updated_at ELSE updated_at END,
				shredded_at = CASE WHEN shredded_at = 0 THEN excluded.shredded_at ELSE shredded_at END`,
			ownerID, ts, ts, ts); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return wrapErr(err, "shred owner %q", ownerID)
	}
	if err := db.truncateWAL(ctx); err != nil {
		return fmt.Errorf("shred owner %q: keys deleted, but %w", ownerID, err)
	}
	return nil
}

// ownerState reads whether an owner exists and is shredded, inside tx.
func ownerState(ctx context.Context, tx *sql.Tx, ownerID string) (shredded, found bool, err error) {
	var at int64
	err = tx.QueryRowContext(ctx, `SELECT shredded_at FROM vault_owners WHERE owner_id = ?`, ownerID).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return at != 0, true, nil
}

// secureDelete makes SQLite overwrite deleted content with zeros for the
// rest of tx's statements, and returns a function that restores the
// previous setting; defer it inside the transaction function. The setting
// belongs to the connection, not the transaction, so it is restored on
// every path. Scoping it keeps the cost of other deletes (retention)
// independent of whether a key was shredded since the connection opened.
func secureDelete(ctx context.Context, tx *sql.Tx) (restore func(), err error) {
	var prev int
	if err := tx.QueryRowContext(ctx, `PRAGMA secure_delete`).Scan(&prev); err != nil {
		return nil, fmt.Errorf("secure_delete: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return nil, fmt.Errorf("secure_delete: %w", err)
	}
	return func() {
		// prev is 0, 1 or 2 (FAST), as SQLite reported it.
		_, _ = tx.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA secure_delete = %d", prev))
	}, nil
}

// walTruncateWait bounds how long one attempt at truncating the WAL waits
// for readers. It runs on the writer connection, so waiting longer would
// hold up the ingest path's commits; walTruncateAttempts gives readers
// that were just finishing a few more chances.
const (
	walTruncateWait     = 200 * time.Millisecond
	walTruncateAttempts = 3
)

// errWALBusy means a reader kept the WAL in use, so it was not truncated.
var errWALBusy = errors.New("a reader kept the write-ahead log in use")

// truncateWAL copies the WAL into the database file and truncates it, so
// pages holding a destroyed key do not stay in old WAL frames. The keys
// are already gone from the database when it runs; when a reader keeps
// the WAL busy through every attempt, it reports store.ErrKeyRemnants so
// the caller knows the old frames are still on disk.
func (db *DB) truncateWAL(ctx context.Context) error {
	var err error
	for range walTruncateAttempts {
		if err = db.checkpointTruncate(ctx); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%w: truncate the WAL: %w", store.ErrKeyRemnants, err)
	}
	return nil
}

// checkpointTruncate runs one TRUNCATE checkpoint. SQLite reports a
// checkpoint that readers blocked as busy=1 in its result row, not as an
// error.
func (db *DB) checkpointTruncate(ctx context.Context) error {
	db.ckptMu.Lock()
	defer db.ckptMu.Unlock()
	conn, err := db.writer.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", walTruncateWait.Milliseconds())); err != nil {
		return err
	}
	// The connection goes back to the pool: restore its busy timeout even
	// if ctx is done.
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeout.Milliseconds()))
	}()
	var busy, logFrames, checkpointed int
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
		return err
	}
	if busy != 0 {
		return errWALBusy
	}
	return nil
}

func checkKeyMode(m store.KeyMode) error {
	switch m {
	case store.KeyModeHubAssisted, store.KeyModeUserHeld:
		return nil
	}
	return fmt.Errorf("bad key mode %q", m)
}

func scanKeyOwner(r rowScanner) (store.KeyOwner, error) {
	var (
		o                          store.KeyOwner
		mode                       string
		created, updated, shredded int64
	)
	if err := r.Scan(&o.OwnerID, &mode, &o.Recipient, &created, &updated, &shredded); err != nil {
		return store.KeyOwner{}, err
	}
	o.Mode = store.KeyMode(mode)
	o.CreatedAt = decTime(created)
	o.UpdatedAt = decTime(updated)
	o.ShreddedAt = decTime(shredded)
	return o, nil
}
