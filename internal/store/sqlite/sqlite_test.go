package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/storetest"
)

func openPath(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Tests that call t.Parallel run two at a time (GOMAXPROCS on CI's
// 2-core machine) after the sequential ones: the long data-heavy tests
// and the conformance suites, each on a file of its own. A test stays
// sequential if it reads process-wide counters (/proc/self/io), sets the
// package's migrations (migrateTo; TestMigrationLeavesNoLargeWAL calls
// t.Parallel only after it), or bounds how long something may take.
func openTemp(t testing.TB) *DB {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "candor.db"))
}

// openMigrated is openTemp on a copy of a store migrated once per test
// binary. The conformance suites open a store per subtest, and migrating
// each new file took most of their time under -race (CI wall time,
// session 7); they test the store's behaviour, not its creation, which
// the tests using openTemp cover. (Package sqlitetest does the same for
// other packages; this package's tests cannot import it.)
func openMigrated(t testing.TB) *DB {
	t.Helper()
	migratedOnce.Do(func() { migrated, migratedMode, migratedErr = buildMigrated() })
	if migratedErr != nil {
		t.Fatal(migratedErr)
	}
	path := filepath.Join(t.TempDir(), "candor.db")
	if err := os.WriteFile(path, migrated, migratedMode); err != nil {
		t.Fatal(err)
	}
	return openPath(t, path)
}

var (
	migratedOnce sync.Once
	migrated     []byte
	migratedMode os.FileMode
	migratedErr  error
)

func buildMigrated() ([]byte, os.FileMode, error) {
	dir, err := os.MkdirTemp("", "candor-migrated")
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "candor.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		return nil, 0, err
	}
	if err := db.Close(); err != nil {
		return nil, 0, err
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		return nil, 0, errors.New("the migrated store kept a write-ahead log after closing")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	b, err := os.ReadFile(path)
	return b, fi.Mode().Perm(), err
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openMigrated(t) })
}

// t0 has nanoseconds on purpose: this engine promises to keep them.
var t0 = time.Date(2025, time.March, 1, 12, 0, 0, 123456789, time.UTC)

func TestPragmas(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	want := map[string]int64{
		"foreign_keys": 1,
		"synchronous":  2, // FULL
		"busy_timeout": busyTimeout.Milliseconds(),
	}
	// query runs one single-value PRAGMA on a given connection.
	type query func(pragma string, dest any) error
	check := func(name string, q query) {
		t.Helper()
		var mode string
		if err := q("journal_mode", &mode); err != nil || mode != "wal" {
			t.Errorf("%s: journal_mode = %q, %v; want wal", name, mode, err)
		}
		for p, w := range want {
			var got int64
			if err := q(p, &got); err != nil || got != w {
				t.Errorf("%s: %s = %d, %v; want %d", name, p, got, err, w)
			}
		}
	}
	on := func(c *sql.Conn) query {
		return func(pragma string, dest any) error {
			return c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(dest)
		}
	}

	wc, err := db.writer.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("writer", on(wc))
	wc.Close()

	// Hold several reader connections at once so the check covers
	// connections beyond the first, which is what DSN pragmas are for.
	for i := range 3 {
		rc, err := db.readers.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		name := fmt.Sprintf("reader %d", i)
		check(name, on(rc))
		var qo int64
		if err := on(rc)("query_only", &qo); err != nil || qo != 1 {
			t.Errorf("%s: query_only = %d, %v; want 1", name, qo, err)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	acc, err := db.CreateFirstAccount(ctx,
		store.Household{ID: "h1", Name: "Home", CreatedAt: t0},
		store.Account{ID: "a1", Username: "alice", PasswordHash: "$x", Role: store.RoleOwner, Admin: true, CreatedAt: t0})
	if err != nil {
		t.Fatalf("CreateFirstAccount: %v", err)
	}
	dev := store.Device{ID: "d1", HouseholdID: "h1", Name: "Boiler", Type: "thermo", SecretHash: "$s", CredentialSetAt: t0, CreatedAt: t0}
	if err := db.CreateDevice(ctx, dev); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	if err := db.CreateSession(ctx, store.Session{ID: "s1", AccountID: "a1", Kind: store.SessionToken, TokenHash: []byte("h"), CreatedAt: t0}); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	rs := []store.Reading{
		{DeviceID: "d1", Stream: "temp", Time: t0, Payload: []byte(`{"c":1}`)},
		{DeviceID: "d1", Stream: "temp", Time: t0.Add(time.Second), Payload: []byte(`{"c":2}`)},
	}
	if err := db.AppendReadings(ctx, rs); err != nil {
		t.Fatalf("AppendReadings: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db = openPath(t, path)
	gotAcc, err := db.AccountByUsername(ctx, "alice")
	if err != nil || gotAcc != acc {
		t.Errorf("account after reopen = %+v, %v; want %+v", gotAcc, err, acc)
	}
	if gotDev, err := db.Device(ctx, "d1"); err != nil || gotDev != dev {
		t.Errorf("device after reopen = %+v, %v; want %+v", gotDev, err, dev)
	}
	if _, err := db.SessionByTokenHash(ctx, []byte("h")); err != nil {
		t.Errorf("session after reopen: %v", err)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil || len(got) != 2 || got[1].Seq != rs[1].Seq || !got[1].Time.Equal(rs[1].Time) || string(got[1].Payload) != `{"c":2}` {
		t.Errorf("readings after reopen = %+v, %v; want %+v", got, err, rs)
	}
	// The first account exists, so setup cannot be run a second time.
	if _, err := db.CreateFirstAccount(ctx, store.Household{ID: "h2"}, store.Account{ID: "a2", Username: "mallory"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateFirstAccount after reopen: err = %v, want ErrConflict", err)
	}
	more := []store.Reading{{DeviceID: "d1", Stream: "temp", Time: t0, Payload: []byte(`{}`)}}
	if err := db.AppendReadings(ctx, more); err != nil {
		t.Fatalf("AppendReadings after reopen: %v", err)
	}
	if more[0].Seq <= rs[1].Seq {
		t.Errorf("Seq after reopen = %d, want above %d", more[0].Seq, rs[1].Seq)
	}
	var v int
	if err := db.readers.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil || v != schemaVersion() {
		t.Errorf("user_version = %d, %v; want %d", v, err, schemaVersion())
	}
}

func TestFailedBatchStoresNothing(t *testing.T) {
	const secret = `{"secret":"do-not-log"}`
	good := func(n int) []store.Reading {
		rs := make([]store.Reading, n)
		for i := range rs {
			rs[i] = store.Reading{DeviceID: "d1", Stream: "temp", Time: t0.Add(time.Duration(i)), Payload: []byte(secret)}
		}
		return rs
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		batch func() []store.Reading
	}{
		// The bad reading comes last so the good ones before it were
		// already inserted inside the transaction and must be rolled back.
		{"empty device id", context.Background(), func() []store.Reading {
			return append(good(9), store.Reading{Stream: "temp", Time: t0, Payload: []byte(secret)})
		}},
		{"time out of range", context.Background(), func() []store.Reading {
			return append(good(9), store.Reading{DeviceID: "d1", Time: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), Payload: []byte(secret)})
		}},
		{"cancelled context", cancelled, func() []store.Reading { return good(10) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openTemp(t)
			batch := tc.batch()
			err := db.AppendReadings(tc.ctx, batch)
			if err == nil {
				t.Fatal("AppendReadings succeeded, want an error")
			}
			if strings.Contains(err.Error(), "do-not-log") {
				t.Errorf("error leaks payload: %v", err)
			}
			if n, err := db.CountReadings(t.Context(), "d1"); err != nil || n != 0 {
				t.Errorf("CountReadings = %d, %v; want 0", n, err)
			}
			for i, r := range batch {
				if r.Seq != 0 {
					t.Errorf("reading %d got Seq %d from a failed batch", i, r.Seq)
				}
			}
			// The writer connection is usable again afterwards.
			if err := db.AppendReadings(t.Context(), good(3)); err != nil {
				t.Fatalf("AppendReadings after failure: %v", err)
			}
			if n, err := db.CountReadings(t.Context(), "d1"); err != nil || n != 3 {
				t.Errorf("CountReadings = %d, %v; want 3", n, err)
			}
		})
	}
}

func TestReadingsLimitCap(t *testing.T) {
	db := openTemp(t)
	rs := make([]store.Reading, MaxReadingLimit+1)
	for i := range rs {
		rs[i] = store.Reading{DeviceID: "d1", Stream: "s", Time: t0, Payload: []byte(`{}`)}
	}
	if err := db.AppendReadings(t.Context(), rs); err != nil {
		t.Fatalf("AppendReadings: %v", err)
	}
	got, err := db.Readings(t.Context(), store.ReadingQuery{DeviceID: "d1", Limit: 2 * MaxReadingLimit})
	if err != nil {
		t.Fatalf("Readings: %v", err)
	}
	if len(got) != MaxReadingLimit {
		t.Errorf("Readings returned %d, want the cap %d", len(got), MaxReadingLimit)
	}
}

func TestTimes(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if err := db.CreateHousehold(ctx, store.Household{ID: "h1", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	// Zero times must come back zero, not as 1970.
	if err := db.CreateDevice(ctx, store.Device{ID: "d1", HouseholdID: "h1"}); err != nil {
		t.Fatal(err)
	}
	d, err := db.Device(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if !d.CreatedAt.IsZero() || !d.CredentialSetAt.IsZero() || !d.RevokedAt.IsZero() || d.Revoked() {
		t.Errorf("zero times read back as %v, %v, %v", d.CreatedAt, d.CredentialSetAt, d.RevokedAt)
	}
	if err := db.RevokeDevice(ctx, "d1", time.Time{}); err == nil {
		t.Error("RevokeDevice with zero time succeeded; it would revoke nothing")
	}

	// Revoking twice keeps the first revocation time.
	if err := db.RevokeDevice(ctx, "d1", t0); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeDevice(ctx, "d1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d, err := db.Device(ctx, "d1"); err != nil || !d.RevokedAt.Equal(t0) {
		t.Errorf("RevokedAt = %v, %v; want the first revocation %v", d.RevokedAt, err, t0)
	}

	// A reading accepted in a local zone reads back in UTC, to the
	// nanosecond.
	local := t0.In(time.FixedZone("CET", 3600))
	rs := []store.Reading{{DeviceID: "d1", Stream: "s", Time: local, Payload: []byte(`{}`)}}
	if err := db.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil || len(got) != 1 {
		t.Fatalf("Readings = %v, %v", got, err)
	}
	if got[0].Time != t0 {
		t.Errorf("Time = %v (%v), want %v in UTC", got[0].Time, got[0].Time.Location(), t0)
	}
}

func TestErrorsWrapSentinels(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if err := db.CreateHousehold(ctx, store.Household{ID: "h1"}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAccount(ctx, store.Account{ID: "a1", HouseholdID: "h1", Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	err := db.CreateAccount(ctx, store.Account{ID: "a2", HouseholdID: "h1", Username: "alice"})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), `"alice"`) {
		t.Errorf("duplicate username: err = %v, want ErrConflict naming the username", err)
	}
	_, err = db.Device(ctx, "nope")
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing device: err = %v, want ErrNotFound naming the id", err)
	}
}

// TestReadsDoNotWaitForWriter holds a write transaction open and checks
// that reads still complete: they must not queue behind the writer's
// single connection nor behind SQLite's write lock.
func TestReadsDoNotWaitForWriter(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if err := db.AppendReadings(ctx, []store.Reading{{DeviceID: "d1", Stream: "s", Time: t0, Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO readings (id, stream, ts, payload) VALUES ((SELECT dkey << `+sqlSeqBits+` | 1000 FROM reading_devices WHERE device_id = 'd1'), 's', 1, x'')`); err != nil {
		t.Fatal(err)
	}

	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	n, err := db.CountReadings(rctx, "d1")
	if err != nil {
		t.Fatalf("read during open write transaction: %v", err)
	}
	if n != 1 {
		t.Errorf("CountReadings = %d, want 1 (uncommitted row must not show)", n)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "candor.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.ExecContext(t.Context(), fmt.Sprintf("PRAGMA user_version = %d", schemaVersion()+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(t.Context(), path); err == nil {
		db.Close()
		t.Fatal("Open of a file from a newer schema succeeded")
	}
}

func TestOpenPathNeedingEscapes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%chars")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "candor.db")
	db := openPath(t, path)
	if err := db.CreateHousehold(t.Context(), store.Household{ID: "h1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the given path: %v", err)
	}
}

// benchDevices returns the ids of n devices and a ~100-byte reading for
// the append benchmarks.
func benchDevices(n int) ([]string, []byte) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("device-%03d", i)
	}
	payload := []byte(`{"temperature_c":21.37,"humidity_pct":48.2,"battery_v":3.71,"rssi_dbm":-67,"seq":1234567}`)
	for len(payload) < 100 {
		payload = append(payload, ' ')
	}
	return ids, payload
}

// BenchmarkAppendReadings measures ingest: batches of 1000 readings with
// ~100-byte payloads spread over 100 devices, each batch one durable
// commit.
func BenchmarkAppendReadings(b *testing.B) {
	const (
		batchSize = 1000
		devices   = 100
	)
	db := openTemp(b)
	ctx := context.Background()
	devIDs, payload := benchDevices(devices)
	batch := make([]store.Reading, batchSize)

	b.ReportAllocs()
	rows := 0
	for b.Loop() {
		ts := t0.Add(time.Duration(rows) * time.Microsecond)
		for i := range batch {
			batch[i] = store.Reading{
				DeviceID: devIDs[i%devices],
				Stream:   "telemetry",
				Time:     ts.Add(time.Duration(i) * time.Microsecond),
				Payload:  payload,
			}
		}
		if err := db.AppendReadings(ctx, batch); err != nil {
			b.Fatal(err)
		}
		rows += batchSize
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkAppendReadingsBatch measures ingest's CPU per reading at the
// batch sizes a hub commits: 10 (paced, staged), 445 (QoS 1 full speed)
// and 2,000, over 100 devices with ~100-byte payloads. cpu-µs/row is the
// process's user and system CPU per appended reading, which moves less
// than wall time with other people's load on a shared machine; wB/row
// what it passed to write(2) per reading.
func BenchmarkAppendReadingsBatch(b *testing.B) {
	for _, size := range []int{10, 445, 2000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			const devices = 100
			db := openTemp(b)
			ctx := context.Background()
			devIDs, payload := benchDevices(devices)
			batch := make([]store.Reading, size)
			fill := func(rows int) {
				for i := range batch {
					batch[i] = store.Reading{
						DeviceID: devIDs[(rows+i)%devices],
						Stream:   "telemetry",
						Time:     t0.Add(time.Duration(rows+i) * time.Microsecond),
						Payload:  payload,
					}
				}
			}
			// Every device's key and mark state cached first, as in a
			// running hub.
			rows := 0
			for rows < devices {
				fill(rows)
				if err := db.AppendReadings(ctx, batch); err != nil {
					b.Fatal(err)
				}
				rows += size
			}
			b.ReportAllocs()
			start, cpu0, w0 := rows, procCPU(b), procWchar(b)
			b.ResetTimer()
			for b.Loop() {
				fill(rows)
				if err := db.AppendReadings(ctx, batch); err != nil {
					b.Fatal(err)
				}
				rows += size
			}
			b.StopTimer()
			n := float64(rows - start)
			b.ReportMetric(n/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(procCPU(b)-cpu0)/float64(time.Microsecond)/n, "cpu-µs/row")
			b.ReportMetric(float64(procWchar(b)-w0)/n, "wB/row")
		})
	}
}

// TestReclaimSpace checks that a new file is in incremental auto_vacuum
// mode and that deleted readings' pages go back to the file system.
func TestReclaimSpace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "candor.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	var mode int
	if err := db.writer.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil || mode != 2 {
		t.Fatalf("auto_vacuum = %d, %v; want 2 (incremental)", mode, err)
	}
	if err := db.CreateHousehold(ctx, store.Household{ID: "h1", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 512)
	for range 4 {
		var rs []store.Reading
		for range 1000 {
			rs = append(rs, store.Reading{DeviceID: "d1", Stream: "s", Time: time.Now(), Payload: payload})
		}
		if err := db.AppendReadings(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	pages := func() int64 {
		var n int64
		if err := db.writer.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := pages()
	if _, err := db.PurgeReadings(ctx, store.Purge{DeviceID: "d1"}, 0); err != nil {
		t.Fatal(err)
	}
	freed, err := db.ReclaimSpace(ctx, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	after := pages()
	if freed < 400 || after > before-400 {
		t.Errorf("reclaimed %d pages: %d → %d pages; want the ~500 pages of 4000 half-KiB readings back", freed, before, after)
	}
}

// TestOldFileSwitchesToIncrementalVacuum opens a file made without
// auto_vacuum (as earlier builds did) and checks it is converted, data kept.
func TestOldFileSwitchesToIncrementalVacuum(t *testing.T) {
	path := filepath.Join(t.TempDir(), "candor.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TABLE keepme (x TEXT); INSERT INTO keepme VALUES ('still here')`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode int
	var x string
	if err := db.writer.QueryRow(`PRAGMA auto_vacuum`).Scan(&mode); err != nil || mode != 2 {
		t.Errorf("auto_vacuum = %d, %v; want 2", mode, err)
	}
	if err := db.readers.QueryRow(`SELECT x FROM keepme`).Scan(&x); err != nil || x != "still here" {
		t.Errorf("data after the switch: %q, %v", x, err)
	}
}
