package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

const householdCols = `id, name, created_at`

func scanHousehold(r rowScanner) (store.Household, error) {
	var (
		h       store.Household
		created int64
	)
	if err := r.Scan(&h.ID, &h.Name, &created); err != nil {
		return store.Household{}, err
	}
	h.CreatedAt = decTime(created)
	return h, nil
}

func insertHousehold(ctx context.Context, tx execer, hh store.Household) error {
	if hh.ID == "" {
		return errors.New("create household: empty id")
	}
	created, err := encTime(hh.CreatedAt)
	if err != nil {
		return fmt.Errorf("create household %q: %w", hh.ID, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO households (id, name, created_at) VALUES ($1, $2, $3)`, hh.ID, hh.Name, created)
	if err != nil {
		return wrapErr(err, "create household %q", hh.ID)
	}
	return nil
}

// CreateHousehold stores a new household. A taken id is store.ErrConflict.
func (db *DB) CreateHousehold(ctx context.Context, hh store.Household) error {
	return insertHousehold(ctx, db.pool, hh)
}

// Household returns the household with the given id.
func (db *DB) Household(ctx context.Context, id string) (store.Household, error) {
	h, err := scanHousehold(db.pool.QueryRow(ctx, `SELECT `+householdCols+` FROM households WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Household{}, fmt.Errorf("household %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Household{}, fmt.Errorf("household %q: %w", id, err)
	}
	return h, nil
}

// Households lists every household, oldest first.
func (db *DB) Households(ctx context.Context) ([]store.Household, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+householdCols+` FROM households ORDER BY created_at, pos`)
	if err != nil {
		return nil, fmt.Errorf("list households: %w", err)
	}
	out, err := collect(rows, scanHousehold)
	if err != nil {
		return nil, fmt.Errorf("list households: %w", err)
	}
	return out, nil
}

const accountCols = `id, household_id, username, password_hash, role, admin, created_at`

func scanAccount(r rowScanner) (store.Account, error) {
	var (
		a       store.Account
		role    string
		created int64
	)
	if err := r.Scan(&a.ID, &a.HouseholdID, &a.Username, &a.PasswordHash, &role, &a.Admin, &created); err != nil {
		return store.Account{}, err
	}
	a.Role = store.Role(role)
	a.CreatedAt = decTime(created)
	return a, nil
}

func insertAccount(ctx context.Context, tx execer, acc store.Account) error {
	if acc.ID == "" {
		return fmt.Errorf("create account %q: empty id", acc.Username)
	}
	if acc.Username == "" {
		return fmt.Errorf("create account %q: empty username", acc.ID)
	}
	created, err := encTime(acc.CreatedAt)
	if err != nil {
		return fmt.Errorf("create account %q: %w", acc.Username, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO accounts (`+accountCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		acc.ID, acc.HouseholdID, acc.Username, acc.PasswordHash, string(acc.Role), acc.Admin, created)
	if err != nil {
		if missingParent(err) {
			return fmt.Errorf("create account %q: household %q: %w", acc.Username, acc.HouseholdID, store.ErrNotFound)
		}
		return wrapErr(err, "create account %q", acc.Username)
	}
	return nil
}

// CreateFirstAccount creates the hub's first account in one transaction:
// it fails with store.ErrConflict if any account exists, makes the account
// a member of the oldest household if there is one and otherwise creates
// hh for it. Under READ COMMITTED two such transactions could both see no
// account, so they take turns on an advisory lock.
func (db *DB) CreateFirstAccount(ctx context.Context, hh store.Household, acc store.Account) (store.Account, error) {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockFirstAccount); err != nil {
			return fmt.Errorf("create first account: lock: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts)`).Scan(&exists); err != nil {
			return fmt.Errorf("create first account: count accounts: %w", err)
		}
		if exists {
			return fmt.Errorf("create first account %q: an account already exists: %w", acc.Username, store.ErrConflict)
		}
		var oldest string
		err := tx.QueryRow(ctx, `SELECT id FROM households ORDER BY created_at, pos LIMIT 1`).Scan(&oldest)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if err := insertHousehold(ctx, tx, hh); err != nil {
				return fmt.Errorf("create first account: %w", err)
			}
			acc.HouseholdID = hh.ID
		case err != nil:
			return fmt.Errorf("create first account: find oldest household: %w", err)
		default:
			acc.HouseholdID = oldest
		}
		return insertAccount(ctx, tx, acc)
	})
	if err != nil {
		return store.Account{}, err
	}
	return acc, nil
}

// CreateAccount stores a new account. A taken id or username is
// store.ErrConflict; a missing household is store.ErrNotFound.
func (db *DB) CreateAccount(ctx context.Context, acc store.Account) error {
	return insertAccount(ctx, db.pool, acc)
}

func (db *DB) oneAccount(ctx context.Context, what, where string, arg string) (store.Account, error) {
	a, err := scanAccount(db.pool.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE `+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Account{}, fmt.Errorf("%s %q: %w", what, arg, store.ErrNotFound)
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("%s %q: %w", what, arg, err)
	}
	return a, nil
}

// Account returns the account with the given id.
func (db *DB) Account(ctx context.Context, id string) (store.Account, error) {
	return db.oneAccount(ctx, "account", "id = $1", id)
}

// AccountByUsername returns the account with exactly this username
// (compared byte for byte).
func (db *DB) AccountByUsername(ctx context.Context, username string) (store.Account, error) {
	return db.oneAccount(ctx, "account with username", "username = $1", username)
}

// Accounts lists the members of a household, oldest first.
func (db *DB) Accounts(ctx context.Context, householdID string) ([]store.Account, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT `+accountCols+` FROM accounts WHERE household_id = $1 ORDER BY created_at, pos`, householdID)
	if err != nil {
		return nil, fmt.Errorf("list accounts of household %q: %w", householdID, err)
	}
	out, err := collect(rows, scanAccount)
	if err != nil {
		return nil, fmt.Errorf("list accounts of household %q: %w", householdID, err)
	}
	return out, nil
}

// CountAccounts returns how many accounts exist across all households.
func (db *DB) CountAccounts(ctx context.Context) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count accounts: %w", err)
	}
	return n, nil
}

// SetAccountPassword replaces the account's password hash. Existing
// sessions are left alone; ending them is the caller's decision.
func (db *DB) SetAccountPassword(ctx context.Context, id, hash string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE accounts SET password_hash = $1 WHERE id = $2`, hash, id)
	if err != nil {
		return fmt.Errorf("set password of account %q: %w", id, err)
	}
	return notFoundIfNone(tag, "set password of account", id)
}

// DeleteAccount removes the account; its sessions go with it through the
// foreign key's ON DELETE CASCADE.
func (db *DB) DeleteAccount(ctx context.Context, id string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete account %q: %w", id, err)
	}
	return notFoundIfNone(tag, "delete account", id)
}

// CreateHouseholdWithOwner creates a household and its first account in
// one transaction: if the account cannot be created (its username was
// taken meanwhile) no empty household is left behind.
func (db *DB) CreateHouseholdWithOwner(ctx context.Context, hh store.Household, owner store.Account) error {
	owner.HouseholdID = hh.ID
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if err := insertHousehold(ctx, tx, hh); err != nil {
			return fmt.Errorf("create household: %w", err)
		}
		return insertAccount(ctx, tx, owner)
	})
}

// collect scans every row with scan and closes rows.
func collect[T any](rows pgx.Rows, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
