package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

// Vault keys: key owners and their wrapped data keys. See store.KeyStore
// for the contract.
//
// What PostgreSQL keeps of a deleted key (see also docs/ARCHITECTURE.md):
// DELETE only marks the row dead. ShredOwner then runs VACUUM on the small
// vault_keys table, which frees the dead rows' space for reuse, but
// PostgreSQL has no secure_delete: the bytes stay in the table's pages
// until new rows overwrite them. The WAL holds the row as it was inserted
// until its segment is recycled after a checkpoint, and WAL archives,
// replicas' WAL and base backups keep it for as long as they are kept.
// The keys are age-wrapped, never plain, so a copy is useless without the
// hub's or the person's identity; still, an operator who promises erasure
// must expire archives and backups on a schedule they state.
//
// Every change to an owner's keys first locks the owner's row, so
// ShredOwner and PutKey take turns: a key put concurrently with a shred
// is either deleted by it or refused with store.ErrShredded.

// lockOwner locks the owner's row for the rest of tx and reports whether
// it exists and is shredded.
func lockOwner(ctx context.Context, tx pgx.Tx, ownerID string) (shredded, found bool, err error) {
	var at int64
	err = tx.QueryRow(ctx, `SELECT shredded_at FROM vault_owners WHERE owner_id = $1 FOR UPDATE`, ownerID).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return at != 0, true, nil
}

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
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		shredded, _, err := lockOwner(ctx, tx, o.OwnerID)
		if err != nil {
			return err
		}
		if shredded {
			return store.ErrShredded
		}
		// The WHERE clause refuses an update of an owner shredded by a
		// transaction that created the row after lockOwner found none.
		tag, err := tx.Exec(ctx, `INSERT INTO vault_owners (owner_id, mode, recipient, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (owner_id) DO UPDATE SET mode = excluded.mode, recipient = excluded.recipient, updated_at = excluded.updated_at
			WHERE vault_owners.shredded_at = 0`,
			o.OwnerID, string(o.Mode), o.Recipient, ts[0], ts[1])
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrShredded
		}
		for _, k := range rewrapped {
			if k.OwnerID != o.OwnerID {
				return fmt.Errorf("rewrapped key %q belongs to owner %q", k.KeyID, k.OwnerID)
			}
			if err := checkKeyMode(k.Mode); err != nil {
				return fmt.Errorf("rewrapped key %q: bad mode %q", k.KeyID, k.Mode)
			}
			tag, err := tx.Exec(ctx, `UPDATE vault_keys SET mode = $1, recipient = $2, wrapped = $3 WHERE owner_id = $4 AND key_id = $5`,
				string(k.Mode), k.Recipient, k.Wrapped, k.OwnerID, k.KeyID)
			if err != nil {
				return err
			}
			if err := notFoundIfNone(tag, "vault key", k.KeyID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrapErr(err, "set key owner %q", o.OwnerID)
	}
	if len(rewrapped) > 0 {
		// The old wrapping is a dead row now; free its space so new rows
		// overwrite it sooner. The change stands whether or not this runs.
		db.vacuumKeys(ctx)
	}
	return nil
}

const keyOwnerCols = `owner_id, mode, recipient, created_at, updated_at, shredded_at`

// KeyOwner returns one key owner.
func (db *DB) KeyOwner(ctx context.Context, ownerID string) (store.KeyOwner, error) {
	o, err := scanKeyOwner(db.pool.QueryRow(ctx, `SELECT `+keyOwnerCols+` FROM vault_owners WHERE owner_id = $1`, ownerID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.KeyOwner{}, fmt.Errorf("key owner %q: %w", ownerID, store.ErrNotFound)
	}
	if err != nil {
		return store.KeyOwner{}, fmt.Errorf("key owner %q: %w", ownerID, err)
	}
	return o, nil
}

// KeyOwners lists every key owner, shredded ones included.
func (db *DB) KeyOwners(ctx context.Context) ([]store.KeyOwner, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+keyOwnerCols+` FROM vault_owners ORDER BY owner_id`)
	if err != nil {
		return nil, fmt.Errorf("list key owners: %w", err)
	}
	out, err := collect(rows, scanKeyOwner)
	if err != nil {
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
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		shredded, found, err := lockOwner(ctx, tx, rec.OwnerID)
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
			if _, err := tx.Exec(ctx, `UPDATE vault_keys SET retired_at = $1 WHERE owner_id = $2 AND retired_at = 0`,
				ts[0], rec.OwnerID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO vault_keys (owner_id, key_id, mode, recipient, wrapped, created_at, retired_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
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
	rows, err := db.pool.Query(ctx, `SELECT owner_id, key_id, mode, recipient, wrapped, created_at, retired_at
		FROM vault_keys WHERE owner_id = $1 ORDER BY created_at, key_id`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("keys of %q: %w", ownerID, err)
	}
	out, err := collect(rows, func(r rowScanner) (store.KeyRecord, error) {
		var (
			k                store.KeyRecord
			mode             string
			created, retired int64
		)
		err := r.Scan(&k.OwnerID, &k.KeyID, &mode, &k.Recipient, &k.Wrapped, &created, &retired)
		k.Mode = store.KeyMode(mode)
		k.CreatedAt = decTime(created)
		k.RetiredAt = decTime(retired)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("keys of %q: %w", ownerID, err)
	}
	return out, nil
}

// ShredOwner marks the owner shredded (locking its row, or creating it as
// a tombstone without recipient) and deletes every key of the owner with
// one DELETE on the (owner_id, key_id) primary key, in one transaction:
// its cost grows with the owner's keys only, whatever the number of
// readings sealed under them. It then vacuums vault_keys, so the dead
// rows' space is free for new rows to overwrite; what PostgreSQL keeps
// beyond that is described at the top of this file.
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
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		// The upsert takes the owner's row lock before the keys are
		// deleted, so a PutKey in flight either commits first (and its key
		// is deleted here) or waits and then sees the owner shredded.
		if _, err := tx.Exec(ctx, `INSERT INTO vault_owners (owner_id, mode, recipient, created_at, updated_at, shredded_at)
			VALUES ($1, '', '', $2, $2, $2)
			ON CONFLICT (owner_id) DO UPDATE SET recipient = '',
				updated_at = CASE WHEN vault_owners.shredded_at = 0 THEN excluded.updated_at ELSE vault_owners.updated_at END,
				shredded_at = CASE WHEN vault_owners.shredded_at = 0 THEN excluded.shredded_at ELSE vault_owners.shredded_at END`,
			ownerID, ts); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM vault_keys WHERE owner_id = $1`, ownerID)
		return err
	})
	if err != nil {
		return wrapErr(err, "shred owner %q", ownerID)
	}
	db.vacuumKeys(ctx)
	return nil
}

// vacuumKeys frees the space of deleted and rewritten key rows. It is
// best effort: the deletion already committed, and autovacuum gets there
// later if this fails (a role without the right to vacuum, a cancelled
// context).
func (db *DB) vacuumKeys(ctx context.Context) {
	_, _ = db.pool.Exec(ctx, `VACUUM vault_keys`)
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
