package postgres

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
	"github.com/candor-iot/candor/internal/store/storetest"
)

func openTest(t *testing.T) (*DB, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	db, err := Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, url
}

// Each subtest has a database of its own, and most of its time is the
// server creating, migrating and dropping it: the subtests run two at a
// time (t.Parallel in the store's constructor, called once per subtest),
// after the package's sequential tests.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Parallel()
		db, _ := openTest(t)
		return db
	})
}

// TestMigrationsIdempotent opens a migrated database again, from two
// processes' worth of pools at once: nothing runs twice and the data stays.
func TestMigrationsIdempotent(t *testing.T) {
	db, url := openTest(t)
	ctx := t.Context()
	if err := db.CreateHousehold(ctx, store.Household{ID: "hh", Name: "Home", CreatedAt: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			again, err := Open(ctx, url)
			if err == nil {
				again.Close()
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("reopen: %v", err)
		}
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, v int
	if err := db.pool.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || v != len(ms) {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d", n, v, len(ms))
	}
	if _, err := db.Household(ctx, "hh"); err != nil {
		t.Errorf("household after reopening: %v", err)
	}
}

// TestNewerSchemaRefused: a database a newer build migrated further is
// left alone rather than misread.
func TestNewerSchemaRefused(t *testing.T) {
	db, url := openTest(t)
	if _, err := db.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (999, 'future')`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), url); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("Open of a newer schema: %v, want a refusal", err)
	}
}

func partitions(t *testing.T, db *DB) []string {
	t.Helper()
	rows, err := db.pool.Query(t.Context(), `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'readings'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// TestPartitionsByMonth: readings land in one partition per month,
// created on demand, and ReclaimSpace drops a past month once it is empty
// while a month that still holds readings, and the current month, stay.
func TestPartitionsByMonth(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	now := time.Now().UTC()
	jan := time.Date(2024, time.January, 31, 23, 59, 59, 0, time.UTC)
	feb := jan.Add(2 * time.Second)
	rs := []store.Reading{
		{DeviceID: "d1", Stream: "t", Time: jan, Payload: []byte(`{}`)},
		{DeviceID: "d1", Stream: "t", Time: feb, Payload: []byte(`{}`)},
		{DeviceID: "d2", Stream: "t", Time: now, Payload: []byte(`{}`)},
	}
	if err := db.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	cur := "readings_p" + now.Format("200601")
	next := "readings_p" + time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC).Format("200601")
	want := []string{"readings_p202401", "readings_p202402", cur}
	if got := partitions(t, db); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("partitions %v, want %v", got, want)
	}
	// Retention removes January's reading: its month can go, February's
	// cannot.
	if n, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d1", Until: feb}, 0); err != nil || n != 1 {
		t.Fatalf("DeleteReadings = %d, %v", n, err)
	}
	freed, err := db.ReclaimSpace(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if freed <= 0 {
		t.Errorf("ReclaimSpace freed %d pages, want some", freed)
	}
	// Next month's partition is made ahead, off the ingest path.
	want = []string{"readings_p202402", cur, next}
	if got := partitions(t, db); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("partitions after reclaim %v, want %v", got, want)
	}
	// The purger calls it until it frees nothing.
	if freed, err := db.ReclaimSpace(ctx, 0); err != nil || freed != 0 {
		t.Errorf("second ReclaimSpace = %d, %v; want 0", freed, err)
	}
	// A late reading for the dropped month brings its partition back.
	late := []store.Reading{{DeviceID: "d1", Stream: "t", Time: jan, Payload: []byte(`{"late":1}`)}}
	if err := db.AppendReadings(ctx, late); err != nil {
		t.Fatalf("append into a dropped month: %v", err)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil || len(got) != 2 || got[1].Seq != late[0].Seq || got[0].Seq != rs[1].Seq {
		t.Fatalf("readings of d1: %+v, %v", got, err)
	}
}

// TestBadURL: an unparsable URL is refused without quoting it, since it
// may carry a password.
func TestBadURL(t *testing.T) {
	_, err := Open(context.Background(), "postgres://user:s3cret@[::1")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open of a bad URL: %v", err)
	}
	// Nothing listens on port 1: the connection error names the server,
	// not the password.
	_, err = Open(context.Background(), "postgres://user:s3cret@127.0.0.1:1/candor?connect_timeout=5")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1/candor") {
		t.Fatalf("Open of an unreachable server: %v", err)
	}
}

// TestDurableSetting: connections commit with synchronous_commit on even
// when the role's default is off, so an acknowledged batch is flushed.
func TestDurableSetting(t *testing.T) {
	db, dbURL := openTest(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()
	if _, err := db.pool.Exec(t.Context(), `ALTER DATABASE `+name+` SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	db, err = Open(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.pool.QueryRow(t.Context(), `SHOW synchronous_commit`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "on" {
		t.Errorf("synchronous_commit = %q, want on", v)
	}
}

// TestReclaimSpaceDoesNotQueueBehindReads: while a long read (an export)
// holds the readings table, dropping an emptied month would have to wait
// for it, and every insert would queue behind that wait. ReclaimSpace
// gives up instead, and drops the month at a later call.
func TestReclaimSpaceDoesNotQueueBehindReads(t *testing.T) {
	db, dbURL := openTest(t)
	ctx := t.Context()
	old := []store.Reading{{DeviceID: "d1", Stream: "t", Time: time.Date(2024, time.January, 5, 0, 0, 0, 0, time.UTC), Payload: []byte(`{}`)}}
	if err := db.AppendReadings(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d1"}, 0); err != nil {
		t.Fatal(err)
	}
	// The current month exists, as it does on any hub that is taking
	// readings (creating a month waits for readers; ReclaimSpace makes
	// next month's ahead so ingest never has to).
	if err := db.AppendReadings(ctx, []store.Reading{{DeviceID: "d2", Stream: "t", Time: time.Now(), Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}

	reader, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(context.Background())
	tx, err := reader.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM readings`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if freed, err := db.ReclaimSpace(ctx, 0); err != nil || freed != 0 {
		t.Fatalf("ReclaimSpace during a long read = %d, %v; want 0, nil", freed, err)
	}
	if !slices.Contains(partitions(t, db), "readings_p202401") {
		t.Fatal("the month was dropped while a read held it")
	}
	// Ingest goes on meanwhile.
	if err := db.AppendReadings(ctx, []store.Reading{{DeviceID: "d1", Stream: "t", Time: time.Now(), Payload: []byte(`{}`)}}); err != nil {
		t.Fatalf("append during a long read: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if freed, err := db.ReclaimSpace(ctx, 0); err != nil || freed <= 0 {
		t.Fatalf("ReclaimSpace after the read = %d, %v; want pages freed", freed, err)
	}
	if slices.Contains(partitions(t, db), "readings_p202401") {
		t.Fatal("the emptied month is still there")
	}
}
