package sqlitetest

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

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
