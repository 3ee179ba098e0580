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

// spareRowsIn counts the spares (dkey 0) in the stage.
func spareRowsIn(t *testing.T, db *DB) int64 {
	t.Helper()
	var n int64
	if err := db.readers.QueryRowContext(t.Context(), `SELECT count(*) FROM readings_stage WHERE dkey = 0`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// walPages returns the page numbers of the WAL frames of path from byte
// offset from on.
func walPages(t *testing.T, path string, from int64) []uint32 {
	t.Helper()
	wal, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	frame := 24 + int64(binary.BigEndian.Uint32(wal[8:12]))
	var out []uint32
	for o := max(from, 32); o+frame <= int64(len(wal)); o += frame {
		out = append(out, binary.BigEndian.Uint32(wal[o:o+4]))
	}
	return out
}

// A paced commit that lands on spares dirties only the stage leaves its
// rows go to: not the header page, nor a pointer-map page, nor the
// stage's interior page (issue #19: 3 of the 5 frames of a commit of 25
// readings before the spares).
func TestSpareCommitAddsNoPage(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db := openPath(t, path)
	db.stopMerger()
	db.stopCheckpointer()
	// Enough stage for an interior page, then spares after it.
	if err := db.AppendReadings(ctx, historyBatch(200, 0)); err != nil {
		t.Fatal(err)
	}
	if added, err := db.addSpares(ctx); err != nil || !added {
		t.Fatalf("addSpares = %v, %v; want spares added", added, err)
	}
	if n := spareRowsIn(t, db); n != spareRows {
		t.Fatalf("%d spares in the stage, want %d", n, spareRows)
	}
	for i := 200; i < 200+10*25; i += 25 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.AppendReadings(ctx, historyBatch(25, i)); err != nil {
			t.Fatal(err)
		}
		pages := walPages(t, path, fi.Size())
		for _, pg := range pages {
			if pg == 1 || pg == 2 {
				t.Fatalf("commit of readings %d-%d wrote page %d (pages %v): it added a page", i, i+24, pg, pages)
			}
		}
		// 25 readings of ~170 bytes: two leaves, at most three.
		if len(pages) > 3 {
			t.Fatalf("commit of readings %d-%d wrote %d pages (%v), want at most 3 stage leaves", i, i+24, len(pages), pages)
		}
	}
	if n := spareRowsIn(t, db); n != spareRows-250 {
		t.Fatalf("%d spares left, want %d", n, spareRows-250)
	}
	if n := stagedRows(ctx, db); n != 450 {
		t.Fatalf("%d readings staged, want 450", n)
	}
}

// Spares are no readings: reads, the merge and the staged count leave
// them out; a restart finds and uses them; and no seq is handed out
// twice, even after the newest readings are deleted, before and after a
// restart.
func TestSparesInvisibleAndSeqsNeverReused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.stopMerger()
	rs := stageReadings(t, db, "d1", 6)
	if added, err := db.addSpares(ctx); err != nil || !added {
		t.Fatalf("addSpares = %v, %v; want spares added", added, err)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil || len(got) != 6 {
		t.Fatalf("readings with spares staged: %v, %v; want the 6", seqsOf(got), err)
	}
	// The newest readings go: their seqs must not come back.
	if n, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d1", Since: t0.Add(4 * time.Second)}, 0); err != nil || n != 2 {
		t.Fatalf("DeleteReadings = %d, %v; want 2", n, err)
	}
	more := stageReadings(t, db, "d2", 3)
	if more[0].Seq <= rs[5].Seq {
		t.Fatalf("seq %d handed out again after the newest readings were deleted (newest was %d)", more[0].Seq, rs[5].Seq)
	}
	if n := stagedRows(ctx, db); n != 3 {
		t.Fatalf("%d readings staged, want d2's 3 (the deletion merged d1's)", n)
	}
	if spareRowsIn(t, db) == 0 {
		t.Fatal("no spares after the deletion's merge")
	}
	db.Close() // drops the spares (TestCloseDropsSpares)

	db = openPath(t, path)
	db.stopMerger()
	if got := db.staged.Load(); got != 3 {
		t.Fatalf("%d rows counted as staged at start, want 3 (spares are not readings)", got)
	}
	after := stageReadings(t, db, "d3", 2)
	if after[0].Seq != more[2].Seq+1 {
		t.Fatalf("after a restart the next seq is %d, want %d", after[0].Seq, more[2].Seq+1)
	}
	if added, err := db.addSpares(ctx); err != nil || !added {
		t.Fatalf("addSpares after the restart = %v, %v; want spares added", added, err)
	}
	spares := spareRowsIn(t, db)
	used := stageReadings(t, db, "d3", 2)
	if n := spareRowsIn(t, db); n != spares-2 {
		t.Fatalf("%d spares after an append, want %d (the append should use them)", n, spares-2)
	}
	after = append(after, used...)
	// Delete the newest (staged) readings, restart, append: still new seqs.
	if n, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d3"}, 0); err != nil || n != 4 {
		t.Fatalf("DeleteReadings = %d, %v; want 4", n, err)
	}
	db.Close()
	db = openPath(t, path)
	db.stopMerger()
	last := stageReadings(t, db, "d4", 1)
	if last[0].Seq <= after[3].Seq {
		t.Fatalf("seq %d handed out again after deleting the newest readings and a restart (newest was %d)", last[0].Seq, after[3].Seq)
	}
	// Merging everything leaves the spares staged and copies none.
	if _, err := db.mergeStaged(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var zero, total int64
	if err := db.readers.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE id >> `+sqlSeqBits+` = 0), count(*) FROM readings`).Scan(&zero, &total); err != nil {
		t.Fatal(err)
	}
	if zero != 0 || total != 4+3+1 {
		t.Fatalf("clustered table after merging: %d spares of %d rows, want 0 of 8", zero, total)
	}
	if n := stagedRows(ctx, db); n != 0 {
		t.Fatalf("%d readings staged after merging all", n)
	}
	for dev, want := range map[string]int{"d1": 4, "d2": 3, "d3": 0, "d4": 1} {
		got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: dev})
		if err != nil || len(got) != want {
			t.Fatalf("%s after merging: %v, %v; want %d readings", dev, seqsOf(got), err, want)
		}
	}
}

// Another process appending to the same file is seen (PRAGMA
// data_version): the writer does not hand out the seqs it took from
// memory, and its appends do not fail on them.
func TestSeqsWithTwoWriters(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	a, b := openPath(t, path), openPath(t, path)
	a.stopMerger()
	b.stopMerger()
	seen := map[int64]bool{}
	var newest int64
	for i := range 6 {
		db := a
		if i%2 == 1 {
			db = b
		}
		rs := []store.Reading{{DeviceID: "d1", Stream: "s", Time: t0, Payload: []byte(`{}`)}, {DeviceID: "d2", Stream: "s", Time: t0, Payload: []byte(`{}`)}}
		if err := db.AppendReadings(ctx, rs); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		for _, r := range rs {
			if seen[r.Seq] || r.Seq <= newest {
				t.Fatalf("append %d: seq %d handed out again (newest before %d)", i, r.Seq, newest)
			}
			seen[r.Seq], newest = true, r.Seq
		}
		if i == 1 {
			// Spares from one writer, used by both.
			if added, err := a.addSpares(ctx); err != nil {
				t.Fatalf("addSpares = %v, %v", added, err)
			}
		}
	}
	got, err := a.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil || len(got) != 6 {
		t.Fatalf("d1's readings: %v, %v; want 6", seqsOf(got), err)
	}
}

// A batch large enough for the clustered table takes the seqs the
// spares were kept at, and deletes them: the merger's next spares start
// at the next seq again (they were added only above the deleted ones,
// leaving up to spareRows seqs where paced commits added stage pages).
func TestSparesRefilledAfterClusteredBatch(t *testing.T) {
	ctx := t.Context()
	db := openPath(t, filepath.Join(t.TempDir(), "candor.db"))
	db.stopMerger()
	if err := db.AppendReadings(ctx, historyBatch(10, 0)); err != nil {
		t.Fatal(err)
	}
	if added, err := db.addSpares(ctx); err != nil || !added {
		t.Fatalf("addSpares = %v, %v; want spares added", added, err)
	}
	if err := db.AppendReadings(ctx, historyBatch(stageBelow, 10)); err != nil { // clustered
		t.Fatal(err)
	}
	if n := spareRowsIn(t, db); n != 0 {
		t.Fatalf("%d spares left after a clustered batch took their seqs", n)
	}
	paced := historyBatch(10, 10+stageBelow)
	if err := db.AppendReadings(ctx, paced); err != nil { // staged again
		t.Fatal(err)
	}
	if added, err := db.addSpares(ctx); err != nil || !added {
		t.Fatalf("addSpares = %v, %v; want spares added", added, err)
	}
	var lo, hi, n int64
	if err := db.readers.QueryRowContext(ctx, `SELECT min(seq), max(seq), count(*) FROM readings_stage WHERE dkey = 0`).Scan(&lo, &hi, &n); err != nil {
		t.Fatal(err)
	}
	next := paced[len(paced)-1].Seq + 1
	if lo != next || n != hi-lo+1 || n < spareRows-int64(len(paced)) {
		t.Errorf("spares at seqs %d-%d (%d of them), want every seq from the next one (%d) on, at least %d",
			lo, hi, n, next, spareRows-len(paced))
	}
}

// Close leaves no spare in the file: a build from before the spares
// merges every staged row and would keep them as blank readings for good
// (a rollback). Readings, staged ones included, stay.
func TestCloseDropsSpares(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.stopMerger()
	if err := db.AppendReadings(ctx, historyBatch(stageBelow, 0)); err != nil { // clustered
		t.Fatal(err)
	}
	staged := stageReadings(t, db, "d1", 5)
	if added, err := db.addSpares(ctx); err != nil || !added {
		t.Fatalf("addSpares = %v, %v; want spares added", added, err)
	}
	stageReadings(t, db, "d1", 2) // on two of them
	if n := spareRowsIn(t, db); n < spareRows-int64(len(staged)) {
		t.Fatalf("%d spares before Close, want at least %d", n, spareRows-len(staged))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	// The file as another build would open it.
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var spares, stagedRows, clustered int64
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE dkey = 0), count(*) FILTER (WHERE dkey <> 0),
		(SELECT count(*) FROM readings) FROM readings_stage`).Scan(&spares, &stagedRows, &clustered); err != nil {
		t.Fatal(err)
	}
	if spares != 0 || stagedRows != 7 || clustered != stageBelow {
		t.Errorf("closed file: %d spares, %d staged readings, %d clustered; want 0, 7, %d", spares, stagedRows, clustered, stageBelow)
	}
	raw.Close()

	// The next run appends after the newest reading as before.
	db = openPath(t, path)
	db.stopMerger()
	next := stageReadings(t, db, "d2", 1)
	if want := int64(stageBelow + 7 + 1); next[0].Seq != want {
		t.Errorf("first seq after reopening: %d, want %d", next[0].Seq, want)
	}
}
