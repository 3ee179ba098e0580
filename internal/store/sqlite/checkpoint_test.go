package sqlite

import (
	"database/sql"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// The checkpointer copies the WAL after checkpointReadings readings or
// checkpointMaxAge, not at every check: paced ingest rewrites the same
// pages between merge passes, and each checkpoint copies them again
// (issue #19).
func TestCheckpointDue(t *testing.T) {
	for _, c := range []struct {
		readings int64
		since    time.Duration
		want     bool
	}{
		{0, checkpointEvery, false},
		{checkpointReadings - 1, checkpointMaxAge - time.Millisecond, false},
		{checkpointReadings, checkpointEvery, true},
		{0, checkpointMaxAge, true},
		{10, 2 * checkpointMaxAge, true},
	} {
		if got := checkpointDue(c.readings, c.since); got != c.want {
			t.Errorf("checkpointDue(%d, %v) = %v, want %v", c.readings, c.since, got, c.want)
		}
	}
}

// A few paced readings do not make the checkpointer copy the WAL at its
// next checks; enough readings do.
func TestCheckpointerWaitsForReadings(t *testing.T) {
	ctx := t.Context()
	start := time.Now()
	db := openTemp(t)
	if err := db.AppendReadings(ctx, historyBatch(10, 0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * checkpointEvery)
	n := db.checkpoints.Load()
	if n != 0 && time.Since(start) < checkpointMaxAge {
		t.Fatalf("%d checkpoints after 10 readings in %v, want none before %v", n, time.Since(start), checkpointMaxAge)
	}
	if err := db.AppendReadings(ctx, historyBatch(checkpointReadings, 10)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for db.checkpoints.Load() == n || db.sinceCheckpoint.Load() >= checkpointReadings {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint after %d readings: %d counted since the last", checkpointReadings+10, db.sinceCheckpoint.Load())
		}
		time.Sleep(checkpointEvery / 2)
	}
}

// walCheckpointSeq reads the checkpoint sequence number in the WAL's
// header, which SQLite raises each time the WAL starts over from its
// beginning.
func walCheckpointSeq(t *testing.T, path string) uint32 {
	t.Helper()
	b, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 32 {
		t.Fatalf("WAL of %d bytes, no header", len(b))
	}
	return binary.BigEndian.Uint32(b[12:16])
}

// A checkpoint that could not copy every frame at once still leaves the
// WAL wholly copied, so the next transaction starts it over (issue #19):
// before, under steady ingest a commit always landed while the PASSIVE
// checkpoint copied, the WAL only started over at the writer's backstop,
// and that checkpoint ran inside a commit. Here readers' snapshots hold
// the passes back from the newest frames, as commits landing during them
// would: one holds the first pass back and ends before the second; a
// second holds the second back, from a commit made between the two, and
// ends only once the last pass holds the writer. Fails on the old code
// (one PASSIVE checkpoint: the WAL does not start over) and with the
// held pass removed.
func TestCheckpointLeavesWALToStartOver(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db := openPath(t, path)
	db.stopMerger()
	// Stop the checkpointer's loop but keep its connection.
	close(db.ckptStop)
	<-db.ckptDone
	db.ckptOnce.Do(func() {})
	t.Cleanup(func() { _ = db.ckpt.Close() })
	db.walRestartAt = 1 // this test's WAL is small

	n := 0
	appendBatch := func() {
		t.Helper()
		if err := db.AppendReadings(ctx, historyBatch(25, n)); err != nil {
			t.Fatal(err)
		}
		n += 25
	}
	for round := 0; round < 3; round++ {
		for range 10 {
			appendBatch()
		}
		snapshot := func() *sql.Tx {
			t.Helper()
			rd, err := db.readers.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var k int
			if err := rd.QueryRowContext(ctx, `SELECT count(*) FROM readings_stage`).Scan(&k); err != nil {
				t.Fatal(err)
			}
			return rd
		}
		rd := snapshot()
		appendBatch() // frames the reader's snapshot keeps the first pass from
		before := walCheckpointSeq(t, path)
		var rd2 *sql.Tx
		held := 0
		db.ckptHook = func(writerHeld bool) {
			if !writerHeld {
				_ = rd.Rollback()
				rd2 = snapshot()
				appendBatch() // committed "during" the second pass
				return
			}
			held++
			if n := db.writer.Stats().InUse; n != 1 {
				t.Errorf("last pass with %d writer connections in use, want 1 (held)", n)
			}
			_ = rd2.Rollback()
		}
		db.checkpointWAL(ctx)
		db.ckptHook = nil
		if held != 1 {
			t.Fatalf("round %d: %d held passes, want 1", round, held)
		}
		_ = rd.Rollback()
		appendBatch()
		if got := walCheckpointSeq(t, path); got != before+1 {
			t.Fatalf("round %d: WAL checkpoint sequence %d after the checkpoint and a commit, want %d (the WAL started over)", round, got, before+1)
		}
	}
	// Below walRestartAt the checkpoint makes one pass and leaves the
	// restart to a later one (fewer pages copied twice).
	db.walRestartAt = 1 << 30
	for range 10 {
		appendBatch()
	}
	rd, err := db.readers.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var k int
	if err := rd.QueryRowContext(ctx, `SELECT count(*) FROM readings_stage`).Scan(&k); err != nil {
		t.Fatal(err)
	}
	appendBatch()
	before := walCheckpointSeq(t, path)
	db.ckptHook = func(bool) { t.Error("a second pass below walRestartAt") }
	db.checkpointWAL(ctx)
	db.ckptHook = nil
	_ = rd.Rollback()
	appendBatch()
	if got := walCheckpointSeq(t, path); got != before {
		t.Fatalf("WAL checkpoint sequence %d after a checkpoint below walRestartAt, want %d (left to grow)", got, before)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: historyBatch(1, 0)[0].DeviceID})
	if err != nil || len(got) == 0 {
		t.Fatalf("readings after the restarts: %d, %v", len(got), err)
	}
}
