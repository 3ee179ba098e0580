package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/candor-iot/candor/internal/store"
)

// A file written before readings were clustered by device keeps every
// reading, with its seq, device, stream, time, payload and manifest
// version; and a seq handed out before, even one whose reading was
// deleted since, is never handed out again.
func TestMigrateReadingsClustered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "candor.db")
	ctx := context.Background()

	// Build the file as the schema version before clustering left it;
	// later migrations run on top when it is opened again.
	old := beforeClustering(t, path)
	for i, r := range []struct {
		dev, stream string
		ts          int64
		mv          int
	}{{"d1", "a", 10, 1}, {"d2", "b", 20, 2}, {"d1", "b", 30, 0}, {"d2", "a", 40, 1}, {"d1", "a", 50, 1}} {
		if _, err := old.ExecContext(ctx, `INSERT INTO readings (device_id, stream, ts, payload, manifest_version) VALUES (?, ?, ?, ?, ?)`,
			r.dev, r.stream, r.ts, []byte{byte(i)}, r.mv); err != nil {
			t.Fatal(err)
		}
	}
	// The newest reading goes (retention): its seq 5 must stay used.
	if _, err := old.ExecContext(ctx, `DELETE FROM readings WHERE seq = 5`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	db := openPath(t, path)
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 3 || got[0].Stream != "a" || got[1].Stream != "b" ||
		got[0].ManifestVersion != 1 || string(got[1].Payload) != "\x02" || got[1].DeviceID != "d1" || got[1].Time != decTime(30) {
		t.Fatalf("d1 after migration: %+v", got)
	}
	if n, err := db.CountReadings(ctx, "d2"); err != nil || n != 2 {
		t.Fatalf("d2 after migration: %d, %v", n, err)
	}
	rs := []store.Reading{{DeviceID: "d3", Stream: "a", Time: t0, Payload: []byte("x")}, {DeviceID: "d1", Stream: "a", Time: t0, Payload: []byte("y")}}
	if err := db.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if rs[0].Seq != 6 || rs[1].Seq != 7 {
		t.Errorf("new seqs %d, %d; want 6, 7 (5 was handed out before the migration)", rs[0].Seq, rs[1].Seq)
	}
	var leftover int
	if err := db.readers.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name IN ('readings_clustered', 'readings_device_seq', 'readings_device_stream_ts')`).Scan(&leftover); err != nil || leftover != 0 {
		t.Errorf("%d objects of the old layout remain (%v)", leftover, err)
	}
}

// The seq high-water mark survives deleting the newest readings and
// reopening the file.
func TestSeqNotReusedAfterDeletingNewest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "candor.db")
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	rs := []store.Reading{{DeviceID: "d1", Stream: "a", Time: t0}, {DeviceID: "d1", Stream: "a", Time: t0}}
	if err := db.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d1"}, 0); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openPath(t, path)
	next := []store.Reading{{DeviceID: "d1", Stream: "a", Time: t0}}
	if err := db.AppendReadings(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next[0].Seq <= rs[1].Seq {
		t.Errorf("seq %d handed out again (last was %d)", next[0].Seq, rs[1].Seq)
	}
}

// A purge that leaves a device without readings drops its key, and the
// device's next reading gets a new key (never the old one) and is found.
func TestFinishPurgeDropsDeviceKey(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	if err := db.AppendReadings(ctx, []store.Reading{{DeviceID: "d1", Stream: "a", Time: t0}}); err != nil {
		t.Fatal(err)
	}
	keyOf := func() (int64, error) {
		var k int64
		err := db.readers.QueryRowContext(ctx, `SELECT dkey FROM reading_devices WHERE device_id = 'd1'`).Scan(&k)
		return k, err
	}
	k1, err := keyOf()
	if err != nil {
		t.Fatal(err)
	}
	p := store.Purge{DeviceID: "d1", RequestedAt: t0}
	if _, err := db.PurgeReadings(ctx, p, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishPurge(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := keyOf(); err != sql.ErrNoRows {
		t.Fatalf("device key after purge: %v, want none", err)
	}
	if err := db.AppendReadings(ctx, []store.Reading{{DeviceID: "d1", Stream: "a", Time: t0}}); err != nil {
		t.Fatal(err)
	}
	if k2, err := keyOf(); err != nil || k2 == k1 {
		t.Fatalf("new key %d (%v), old %d: want a different key", k2, err, k1)
	}
	if n, err := db.CountReadings(ctx, "d1"); err != nil || n != 1 {
		t.Fatalf("readings after re-adding: %d, %v", n, err)
	}
}

// A migration that rewrites the readings leaves no WAL the size of the
// readings beside the file (review, session 7): Open checkpoints and
// truncates it. Without that the -wal file stayed at the size of the
// copied table for the whole run. 8,000 rows are enough: without the
// checkpoint the WAL is then 6.5 MB, six times the bound (20,000 rows
// took 2.5 times as long under -race).
func TestMigrationLeavesNoLargeWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "candor.db")
	ctx := context.Background()
	old := beforeClustering(t, path)
	// beforeClustering sets the package's migrations for a moment, so
	// only what follows runs beside the other parallel tests.
	t.Parallel()
	tx, err := old.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 200)
	const n = 8000 // about 2 MB of rows
	for i := range n {
		if _, err := tx.ExecContext(ctx, `INSERT INTO readings (device_id, stream, ts, payload, manifest_version) VALUES (?, 'a', ?, ?, 1)`,
			fmt.Sprintf("d%d", i%50), int64(i), payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	db := openPath(t, path)
	if c, err := db.CountReadings(ctx, "d7"); err != nil || c != n/50 {
		t.Fatalf("d7 after migration: %d readings, %v; want %d", c, err, n/50)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err == nil && fi.Size() > 1<<20 {
		t.Errorf("WAL after the migration: %d bytes; want it truncated (the readings are about %d bytes)", fi.Size(), n*len(payload))
	}
}

// beforeClustering creates path at the schema version just before the
// readings were clustered by device and returns a bare connection to it:
// Open would prepare statements on tables of the current schema, which
// the file does not have yet. Opening it with Open runs the rest.
func beforeClustering(t *testing.T, path string) *sql.DB {
	t.Helper()
	return migrateTo(t, path, "readings clustered by device")
}
