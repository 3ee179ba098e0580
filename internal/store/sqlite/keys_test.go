package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// A shred whose WAL truncation a reader blocks says so: the keys are
// deleted, and the error tells the caller that old WAL frames may still
// hold them. Shredding again once the reader is done clears them.
func TestShredReportsWALNotTruncated(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db := openPath(t, path)
	now := time.Now().UTC()
	if err := db.SetKeyOwner(ctx, store.KeyOwner{OwnerID: "acc_a", Mode: store.KeyModeHubAssisted, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutKey(ctx, store.KeyRecord{OwnerID: "acc_a", KeyID: "k1", Mode: store.KeyModeHubAssisted,
		Wrapped: []byte("wrapped-key-bytes"), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}

	// A second connection to the same file holds a read transaction open:
	// SQLite cannot truncate the WAL under it (busy=1 in the checkpoint's
	// result row, which is not an error).
	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	reader, err := other.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRowContext(ctx, `SELECT count(*) FROM vault_keys`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("reader sees %d keys, %v", n, err)
	}

	err = db.ShredOwner(ctx, "acc_a", now)
	if !errors.Is(err, store.ErrKeyRemnants) {
		_ = reader.Rollback()
		t.Fatalf("ShredOwner with the WAL held open: %v, want ErrKeyRemnants", err)
	}
	if ks, err := db.Keys(ctx, "acc_a"); err != nil || len(ks) != 0 {
		t.Fatalf("keys after a shred that could not truncate the WAL: %d, %v; want none", len(ks), err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("WAL after the blocked truncation: %v, %v; want frames still there", fi, err)
	}
	if err := reader.Rollback(); err != nil {
		t.Fatal(err)
	}

	if err := db.ShredOwner(context.Background(), "acc_a", now); err != nil {
		t.Fatalf("shredding again once the reader is done: %v", err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() != 0 {
		t.Fatalf("WAL after the retried shred: size %d, %v; want truncated", fi.Size(), err)
	}
}
