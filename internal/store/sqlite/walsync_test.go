package sqlite

import (
	"os"
	"path/filepath"
	"testing"
)

// The merger's transactions that commit without an fsync (merge steps,
// spare rows) are followed by a sync of this database's WAL from the
// merger's goroutine, with the writer connection already handed back, so
// the next ingest commit's fsync no longer carries their frames (issue
// #19, the paced PUBACK tail). Fails on the old code, where nothing but
// the ingest commits synced the WAL.
func TestMergerSyncsWALOffTheWriter(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db := openPath(t, path)
	db.stopMerger()
	db.stopCheckpointer()
	type sync struct {
		name   string
		inUse  int // writer connections in use during the sync
		staged int64
	}
	var syncs []sync
	old := walSyncFile
	walSyncFile = func(f *os.File) error {
		syncs = append(syncs, sync{f.Name(), db.writer.Stats().InUse, stagedRows(ctx, db)})
		return old(f)
	}
	t.Cleanup(func() { walSyncFile = old })

	const readings, stepRows = 300, 64
	for i := 0; i < readings; i += 25 {
		if err := db.AppendReadings(ctx, historyBatch(25, i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(syncs) != 0 {
		t.Fatalf("%d syncs by ingest commits, want none (they sync themselves)", len(syncs))
	}
	db.sparesSynced(ctx)
	if n := spareRowsIn(t, db); n == 0 {
		t.Fatal("no spares added")
	}
	if len(syncs) != 1 {
		t.Fatalf("%d syncs after spares were added, want 1", len(syncs))
	}
	db.sparesSynced(ctx) // enough spares: none added, nothing to sync
	if len(syncs) != 1 {
		t.Fatalf("%d syncs after no spares were added, want still 1", len(syncs))
	}

	db.mergeStepRows.Store(stepRows)
	p, err := db.planPass(ctx, mergeChunk)
	if err != nil || p == nil {
		t.Fatalf("planPass = %v, %v", p, err)
	}
	if left := db.runPass(ctx, p, make(chan struct{})); left != nil {
		t.Fatal("pass not finished")
	}
	steps := (readings + stepRows - 1) / stepRows
	if len(syncs) != 1+steps {
		t.Fatalf("%d syncs after a pass of %d steps, want %d", len(syncs), steps, 1+steps)
	}
	for i, s := range syncs {
		if s.name != path+"-wal" {
			t.Errorf("sync %d of %q, want the WAL %q", i, s.name, path+"-wal")
		}
		if s.inUse != 0 {
			t.Errorf("sync %d with the writer connection in use", i)
		}
	}
	// One sync after each step's commit: the last one saw the stage empty.
	if got := syncs[len(syncs)-1].staged; got != 0 {
		t.Errorf("%d readings staged at the last sync, want 0 (after the last step)", got)
	}
	if got := syncs[1].staged; got != readings {
		t.Errorf("%d readings staged at the first step's sync, want %d (steps copy, the last clears)", got, readings)
	}
}
