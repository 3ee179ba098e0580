package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/storetest"
)

// The conformance suite with every batch written straight into the
// clustered table (the full-speed path), and with every batch staged and
// then half of the stage merged, so reads and deletions meet readings in
// both tables at once.
func TestConformanceUnstaged(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		db := openMigrated(t)
		db.stageBelow = 0
		return db
	})
}

func TestConformanceHalfMerged(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return halfMerged{openMigrated(t)} })
}

// halfMerged merges half of what is staged after every append.
type halfMerged struct{ *DB }

func (h halfMerged) AppendReadings(ctx context.Context, rs []store.Reading) error {
	if err := h.DB.AppendReadings(ctx, rs); err != nil {
		return err
	}
	if n := stagedRows(context.Background(), h.DB); n > 1 {
		if _, err := h.mergeStaged(ctx, int(n/2)); err != nil {
			return err
		}
	}
	return nil
}

func stagedRows(ctx context.Context, db *DB) int64 {
	var n int64
	if err := db.readers.QueryRowContext(ctx, `SELECT count(*) FROM readings_stage WHERE dkey <> 0`).Scan(&n); err != nil {
		panic(err)
	}
	return n
}

func stageReadings(t *testing.T, db *DB, dev string, n int) []store.Reading {
	t.Helper()
	rs := make([]store.Reading, n)
	for i := range rs {
		rs[i] = store.Reading{DeviceID: dev, Stream: fmt.Sprintf("s%d", i%2), Time: t0.Add(time.Duration(i) * time.Second),
			Payload: []byte(fmt.Sprintf(`{"i":%d}`, i)), ManifestVersion: 1}
	}
	if err := db.AppendReadings(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

func seqsOf(rs []store.Reading) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

// Small batches are staged and large ones are not; merging moves staged
// readings into the clustered table unchanged, and reads give the same
// readings, in seq order, before, during and after.
func TestStagedReadingsMerge(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	stopMergerForTest(t, db)
	a := stageReadings(t, db, "d1", 3)
	if n := stagedRows(ctx, db); n != 3 {
		t.Fatalf("%d rows staged after a batch of 3, want 3", n)
	}
	big := make([]store.Reading, stageBelow)
	for i := range big {
		big[i] = store.Reading{DeviceID: fmt.Sprintf("d%d", 1+i%2), Stream: "s0", Time: t0, Payload: []byte(`{}`)}
	}
	if err := db.AppendReadings(ctx, big); err != nil {
		t.Fatal(err)
	}
	if n := stagedRows(ctx, db); n != 3 {
		t.Fatalf("%d rows staged after a batch of %d, want still 3", n, stageBelow)
	}
	b := stageReadings(t, db, "d1", 4)

	want := func(stage string) {
		t.Helper()
		got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3+stageBelow/2+4 {
			t.Fatalf("%s: %d readings of d1, want %d", stage, len(got), 3+stageBelow/2+4)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq <= got[i-1].Seq {
				t.Fatalf("%s: readings out of seq order at %d", stage, i)
			}
		}
		if got[0].Seq != a[0].Seq || string(got[2].Payload) != string(a[2].Payload) || got[2].Stream != a[2].Stream ||
			got[2].Time != a[2].Time || got[2].ManifestVersion != 1 {
			t.Fatalf("%s: first readings %+v, want %v", stage, got[:3], seqsOf(a))
		}
		last := got[len(got)-1]
		if last.Seq != b[3].Seq || string(last.Payload) != string(b[3].Payload) {
			t.Fatalf("%s: last reading %+v, want seq %d", stage, last, b[3].Seq)
		}
		// A page boundary inside the staged readings.
		page, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1", AfterSeq: b[0].Seq, Limit: 2})
		if err != nil || len(page) != 2 || page[0].Seq != b[1].Seq || page[1].Seq != b[2].Seq {
			t.Fatalf("%s: page after seq %d: %v, %v", stage, b[0].Seq, seqsOf(page), err)
		}
		if n, err := db.CountReadings(ctx, "d1"); err != nil || n != int64(len(got)) {
			t.Fatalf("%s: CountReadings = %d, %v", stage, n, err)
		}
		counts, err := db.StreamCounts(ctx, "d1", time.Time{})
		if err != nil || counts["s0"]+counts["s1"] != int64(len(got)) || counts["s1"] != 3 {
			t.Fatalf("%s: StreamCounts = %v, %v", stage, counts, err)
		}
		if at, err := db.LastReadingAt(ctx, "d1"); err != nil || !at.Equal(b[3].Time) {
			t.Fatalf("%s: LastReadingAt = %v, %v; want %v", stage, at, err, b[3].Time)
		}
	}
	want("staged")
	if n, err := db.mergeStaged(ctx, 2); err != nil || n != 2 {
		t.Fatalf("merge of 2: %d, %v", n, err)
	}
	want("partly merged")
	if n, err := db.mergeStaged(ctx, 0); err != nil || n != 5 {
		t.Fatalf("merge of the rest: %d, %v", n, err)
	}
	if n := stagedRows(ctx, db); n != 0 {
		t.Fatalf("%d rows staged after merging all", n)
	}
	want("merged")
}

// Staged readings are committed: a hub stopped (or killed) before the
// merge finds them at its next start, reads them, merges them, and never
// hands their seqs out again.
func TestStagedReadingsSurviveRestart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	stopMergerForTest(t, db)
	rs := stageReadings(t, db, "d1", 5)
	// A crash image: the files as they are now, while the store is open
	// and the readings are only staged.
	crash := filepath.Join(t.TempDir(), "candor.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crash+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	for _, p := range []string{path, crash} {
		db := openPath(t, p)
		if got := db.staged.Load(); got != 5 {
			t.Fatalf("%s: %d rows counted as staged at start, want 5", p, got)
		}
		got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
		if err != nil || len(got) != 5 || got[4].Seq != rs[4].Seq {
			t.Fatalf("%s: staged readings after restart: %v, %v", p, seqsOf(got), err)
		}
		if n, err := db.mergeStaged(ctx, 0); err != nil || n != 5 {
			t.Fatalf("%s: merge after restart: %d, %v", p, n, err)
		}
		more := stageReadings(t, db, "d2", 1)
		if more[0].Seq <= rs[4].Seq {
			t.Fatalf("%s: seq %d handed out again after restart", p, more[0].Seq)
		}
		got, err = db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
		if err != nil || len(got) != 5 || got[0].Seq != rs[0].Seq || string(got[4].Payload) != string(rs[4].Payload) {
			t.Fatalf("%s: readings after merging: %v, %v", p, seqsOf(got), err)
		}
	}
}

// The merger runs by itself once enough rows are staged.
func TestMergerMovesStagedRows(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	for range mergeAtRows/100 + 1 {
		stageReadings(t, db, "d1", 100)
	}
	deadline := time.Now().Add(30 * time.Second)
	for stagedRows(ctx, db) >= mergeAtRows {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows still staged; the merger never ran", stagedRows(ctx, db))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, err := db.CountReadings(ctx, "d1"); err != nil || n != 100*int64(mergeAtRows/100+1) {
		t.Fatalf("CountReadings = %d, %v", n, err)
	}
}

// Deleting (a range, with a limit) and purging readings reach staged
// ones, and a device whose readings are all gone loses its key only when
// none is left in the stage either.
func TestDeleteAndPurgeStagedReadings(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	stopMergerForTest(t, db)
	first := stageReadings(t, db, "d1", 6)
	if _, err := db.mergeStaged(ctx, 3); err != nil {
		t.Fatal(err)
	}
	// 3 merged, 3 staged; delete stream s1 (readings 1, 3, 5), at most 2.
	n, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d1", Stream: "s1"}, 2)
	if err != nil || n != 2 {
		t.Fatalf("DeleteReadings = %d, %v; want 2", n, err)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil || len(got) != 4 || got[3].Seq != first[5].Seq || got[2].Seq != first[4].Seq {
		t.Fatalf("after deleting 2 of s1: %v, %v", seqsOf(got), err)
	}
	// A time range that falls on staged readings only.
	more := stageReadings(t, db, "d1", 2) // times t0, t0+1s
	n, err = db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d1", Since: t0.Add(4 * time.Second)}, 0)
	if err != nil || n != 2 {
		t.Fatalf("DeleteReadings since t0+4s = %d, %v; want 2 (readings 4 and 5)", n, err)
	}

	p := store.Purge{DeviceID: "d1", UntilSeq: more[0].Seq, RequestedAt: t0}
	if n, err := db.PurgeReadings(ctx, p, 0); err != nil || n != 3 {
		t.Fatalf("PurgeReadings = %d, %v; want 3", n, err)
	}
	if err := db.FinishPurge(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"}); err != nil || len(got) != 1 || got[0].Seq != more[1].Seq {
		t.Fatalf("after the purge: %v, %v", seqsOf(got), err)
	}
	p = store.Purge{DeviceID: "d1", RequestedAt: t0}
	if n, err := db.PurgeReadings(ctx, p, 0); err != nil || n != 1 {
		t.Fatalf("PurgeReadings of the rest = %d, %v", n, err)
	}
	// A reading staged between the purge and its end keeps the key.
	late := stageReadings(t, db, "d1", 1)
	if err := db.FinishPurge(ctx, p); err != nil {
		t.Fatal(err)
	}
	keys := func() int {
		t.Helper()
		var n int
		if err := db.readers.QueryRowContext(ctx, `SELECT count(*) FROM reading_devices WHERE device_id = 'd1'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if k := keys(); k != 1 {
		t.Fatalf("d1 has %d keys with a staged reading left; want 1", k)
	}
	if got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"}); err != nil || len(got) != 1 || got[0].Seq != late[0].Seq {
		t.Fatalf("the late reading: %v, %v", seqsOf(got), err)
	}
	if n, err := db.PurgeReadings(ctx, p, 0); err != nil || n != 1 {
		t.Fatalf("PurgeReadings of the late reading = %d, %v", n, err)
	}
	if err := db.FinishPurge(ctx, p); err != nil {
		t.Fatal(err)
	}
	if k := keys(); k != 0 {
		t.Fatalf("d1 has %d keys with no reading left; want 0", k)
	}
	if n := stagedRows(ctx, db); n != 0 {
		t.Fatalf("%d rows staged after purging everything", n)
	}
}

// Shredding an owner's keys with readings staged: the keys and the WAL
// frames that held them go, the staged readings stay (as ciphertext no
// one can open any more) and still merge.
func TestShredWithStagedReadings(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db := openPath(t, path)
	stopMergerForTest(t, db)
	now := time.Now().UTC()
	if err := db.SetKeyOwner(ctx, store.KeyOwner{OwnerID: "acc_a", Mode: store.KeyModeHubAssisted, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	secret := []byte("wrapped-key-bytes-7f3a9c")
	if err := db.PutKey(ctx, store.KeyRecord{OwnerID: "acc_a", KeyID: "k1", Mode: store.KeyModeHubAssisted, Wrapped: secret, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	rs := stageReadings(t, db, "d1", 4)
	if err := db.ShredOwner(ctx, "acc_a", now); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() != 0 {
		t.Fatalf("WAL after the shred: %v, %v; want truncated", fi, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, secret) {
		t.Fatal("the shredded key is still in the database file")
	}
	if n := stagedRows(ctx, db); n != 4 {
		t.Fatalf("%d rows staged after the shred, want 4", n)
	}
	if _, err := db.mergeStaged(ctx, 0); err != nil {
		t.Fatal(err)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil || len(got) != 4 || got[3].Seq != rs[3].Seq {
		t.Fatalf("readings after shred and merge: %v, %v", seqsOf(got), err)
	}
}

// stopMergerForTest stops the background merger, so a test decides when
// staged rows move.
func stopMergerForTest(t *testing.T, db *DB) {
	t.Helper()
	db.stopMerger()
}

// While ingest flows, the merger starts each step in the gap after an
// ingest commit (awaitGap): between two steps at least one
// AppendReadings ends, so no step starts right behind another while a
// commit gathers its batch. A paced appender runs throughout; the bounds
// of awaitGap are lengthened so that a slow machine (a commit slower
// than gapWaitMax, appends further apart than gapFlowing) cannot make
// the merger go on without a commit in between.
func TestMergeStepsStartInIngestGaps(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	db.gapFlowing.Store(int64(time.Minute))
	db.gapWait.Store(int64(time.Minute))
	db.mergeStepRows.Store(16)
	var mu sync.Mutex
	var ends []int64 // ingestEnded as each step saw it, in step order
	db.stepHook = func() {
		mu.Lock()
		ends = append(ends, db.ingestEnded.Load())
		mu.Unlock()
	}
	// The hook is set before the first append: the merger has nothing
	// to merge until then, so it has not read stepHook yet.
	stop := make(chan struct{})
	appended := make(chan error, 1)
	go func() {
		i := 0
		for {
			select {
			case <-stop:
				appended <- nil
				return
			default:
			}
			rs := []store.Reading{{DeviceID: fmt.Sprintf("d%d", i%7), Stream: "s", Time: t0.Add(time.Duration(i) * time.Second),
				Payload: []byte(`{"v":1}`), ManifestVersion: 1}}
			if err := db.AppendReadings(ctx, rs); err != nil {
				appended <- err
				return
			}
			i++
			time.Sleep(time.Millisecond)
		}
	}()
	// Enough staged for a pass, in batches small enough to be staged.
	for range mergeAtRows/100 + 1 {
		stageReadings(t, db, "bulk", 100)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		n := len(ends)
		mu.Unlock()
		if n >= 40 {
			break
		}
		select {
		case err := <-appended:
			t.Fatalf("the appender stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d merge steps in 2 minutes", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	back := 0
	for i := 1; i < len(ends); i++ {
		if ends[i] == ends[i-1] {
			back++
		}
	}
	if back > 0 {
		t.Fatalf("%d of %d merge steps started with no ingest commit ended since the step before", back, len(ends)-1)
	}
}

// awaitGap returns at once when no ingest commit ended lately; after a
// recent one it waits for the next to end, not for a signal left from an
// earlier one; and it gives up when the merger stops.
func TestAwaitGap(t *testing.T) {
	newDB := func() *DB {
		db := &DB{ingestIdle: make(chan struct{}, 1)}
		db.gapFlowing.Store(int64(time.Minute))
		db.gapWait.Store(int64(time.Hour))
		return db
	}
	// returnsTrue waits for awaitGap's answer on done, which must be true
	// and come well before gapWait (an hour) would end it.
	returnsTrue := func(t *testing.T, done <-chan bool, why string) {
		t.Helper()
		select {
		case ok := <-done:
			if !ok {
				t.Fatal("awaitGap = false")
			}
		case <-time.After(time.Minute):
			t.Fatal(why)
		}
	}
	// Each of these must return at once.
	atOnce := func(t *testing.T, db *DB) {
		t.Helper()
		done := make(chan bool, 1)
		go func() { done <- db.awaitGap(nil) }()
		returnsTrue(t, done, "awaitGap waited for a gap")
	}
	t.Run("idle", func(t *testing.T) {
		db := newDB()
		db.ingestEnded.Store(time.Now().Add(-2 * time.Minute).UnixNano())
		atOnce(t, db)
	})
	t.Run("behind", func(t *testing.T) {
		db := newDB()
		db.ingestEnded.Store(time.Now().UnixNano())
		db.staged.Store(mergeBehind)
		atOnce(t, db)
	})
	t.Run("flowing", func(t *testing.T) {
		db := newDB()
		db.ingestWaiting.Add(1)
		db.ingestDone() // a commit just ended; its signal is stale for the next wait
		done := make(chan bool, 1)
		go func() { done <- db.awaitGap(nil) }()
		select {
		case <-done:
			t.Fatal("awaitGap returned on the signal of a commit that ended before it was called")
		case <-time.After(100 * time.Millisecond):
		}
		db.ingestWaiting.Add(1)
		db.ingestDone()
		returnsTrue(t, done, "awaitGap did not return after the next commit ended")
	})
	t.Run("stop", func(t *testing.T) {
		db := newDB()
		db.ingestEnded.Store(time.Now().UnixNano())
		stop := make(chan struct{})
		close(stop)
		if db.awaitGap(stop) {
			t.Fatal("awaitGap = true with the merger stopping")
		}
	})
}

// Under steady ingest of batches larger than a step (paced batches on a
// loaded machine hold tens of rows), the merger keeps the stage bounded:
// waiting for a gap before every step moved one step per commit, and the
// stage grew by the difference (132,440 rows after 4 s of 100-row
// batches, found in review), slowing every read and the whole-stage
// merge a deletion runs while holding the writer.
func TestMergerKeepsUpWithLargeBatches(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	const batch = 100
	most := int64(0)
	end := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		rs := make([]store.Reading, batch)
		for j := range rs {
			rs[j] = store.Reading{DeviceID: fmt.Sprintf("d%d", j%50), Stream: "s",
				Time: t0.Add(time.Duration(i*batch+j) * time.Millisecond), Payload: []byte(`{"v":1}`), ManifestVersion: 1}
		}
		if err := db.AppendReadings(ctx, rs); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			most = max(most, stagedRows(ctx, db))
		}
		time.Sleep(time.Millisecond)
	}
	most = max(most, stagedRows(ctx, db))
	t.Logf("at most %d readings staged", most)
	if bound := int64(mergeForceAt + mergeChunk); most > bound {
		t.Fatalf("the stage grew to %d readings under steady ingest, want at most %d", most, bound)
	}
}
