package sqlitetest

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
)

// schema is what a test can tell apart between two store files: the
// schema objects, the version the migrations left, and the file-level
// modes sqlite.Open sets.
func schema(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	rows, err := db.Query(`SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, name, def string
		if err := rows.Scan(&typ, &name, &def); err != nil {
			t.Fatal(err)
		}
		b.WriteString(typ + " " + name + ": " + def + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"user_version", "auto_vacuum", "journal_mode"} {
		var v string
		if err := db.QueryRow("PRAGMA " + p).Scan(&v); err != nil {
			t.Fatal(err)
		}
		b.WriteString(p + " = " + v + "\n")
	}
	return b.String()
}

// A written store is what sqlite.Open makes of a new file: the same
// schema at the same version, and opening it changes nothing.
func TestWriteIsAFreshStore(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.db")
	db, err := sqlite.Open(context.Background(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	want := schema(t, fresh)
	if !strings.Contains(want, "table devices") {
		t.Fatalf("a new store has no devices table, so this test compares nothing:\n%s", want)
	}

	copied := filepath.Join(dir, "copied.db")
	Write(t, copied)
	if got := schema(t, copied); got != want {
		t.Errorf("written store differs from a new one:\n got %s\nwant %s", got, want)
	}
	db = Open(t, filepath.Join(dir, "opened.db"))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := schema(t, filepath.Join(dir, "opened.db")); got != want {
		t.Errorf("written store differs from a new one after sqlite.Open:\n got %s\nwant %s", got, want)
	}
}

// Write refuses to overwrite a store that is there already.
func TestWriteKeepsAnExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "candor.db")
	Write(t, path)
	ft := &fakeTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		Write(ft, path)
	}()
	if !ft.failed {
		t.Error("Write over an existing file did not fail the test")
	}
}

type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
func (f *fakeTB) Fatal(...any) {
	f.failed = true
	panic("fatal")
}

// Ensure writes a migrated store where there is none and leaves a store
// already at the path as it is: a test that reopens its store must find
// what it wrote, not an empty copy.
func TestEnsureKeepsAnExistingStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "candor.db")
	Ensure(t, path)
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("Ensure on a new path wrote no store: %v", err)
	}
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("open the ensured store: %v", err)
	}
	if err := db.CreateHousehold(ctx, store.Household{ID: "hh", Name: "Home", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	Ensure(t, path)
	db = openClosed(t, path)
	if _, err := db.Household(ctx, "hh"); err != nil {
		t.Fatalf("the household written before the second Ensure: %v", err)
	}
}

func openClosed(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
