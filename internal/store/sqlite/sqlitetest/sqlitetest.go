// Package sqlitetest gives tests an empty SQLite store file that is
// already migrated, so a test's sqlite.Open only opens it. Only tests
// import it.
//
// Migrating a new file runs every schema step in a transaction of its own
// with a synchronous commit; under the race detector that took about a
// second per store against a fifth for opening a migrated copy, and the
// web and hub tests open one store per test (CI wall time, session 7).
// The copy is of a file this build's sqlite.Open created, so it is the
// schema a new store gets; the store's own tests still migrate new and
// old files themselves.
package sqlitetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/candor-iot/candor/internal/store/sqlite"
)

var (
	once     sync.Once
	template []byte      // the migrated empty store file
	mode     os.FileMode // its permissions as sqlite.Open left them
	tErr     error
)

// build creates a store with sqlite.Open in a temporary directory, closes
// it (which folds the write-ahead log into the file) and keeps the file's
// bytes.
func build() ([]byte, os.FileMode, error) {
	dir, err := os.MkdirTemp("", "candor-sqlitetest")
	if err != nil {
		return nil, 0, fmt.Errorf("sqlitetest: temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "candor.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlitetest: create the template store: %w", err)
	}
	if err := db.Close(); err != nil {
		return nil, 0, fmt.Errorf("sqlitetest: close the template store: %w", err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		return nil, 0, fmt.Errorf("sqlitetest: the template store kept a write-ahead log after closing")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlitetest: template store: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlitetest: read the template store: %w", err)
	}
	return b, fi.Mode().Perm(), nil
}

// Write puts an empty, migrated store file at path, which must not exist
// yet; sqlite.Open(path) then opens it without migrating.
func Write(tb testing.TB, path string) {
	tb.Helper()
	once.Do(func() { template, mode, tErr = build() })
	if tErr != nil {
		tb.Fatal(tErr)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		tb.Fatalf("sqlitetest: %v", err)
	}
	if _, err := f.Write(template); err != nil {
		f.Close()
		tb.Fatalf("sqlitetest: write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		tb.Fatalf("sqlitetest: write %s: %v", path, err)
	}
}

// Ensure is Write when nothing is at path yet; a store file already there
// (a test reopening its store) is left as it is.
func Ensure(tb testing.TB, path string) {
	tb.Helper()
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		Write(tb, path)
		return
	}
	if err != nil {
		tb.Fatalf("sqlitetest: %v", err)
	}
}

// Open writes a migrated store file at path and opens it; the store is
// closed when the test ends.
func Open(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	Write(tb, path)
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Path writes a migrated store file in a new temporary directory of tb and
// returns its path, for sqlite.Open.
func Path(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "candor.db")
	Write(tb, path)
	return path
}
