package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/storetest"
)

// The conformance suite with a merge pass always in progress: after every
// append a pass is planned if none is, and one step of two readings runs,
// so reads, deletions and purges meet readings that are in both tables.
func TestConformanceMidPass(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		db := openMigrated(t)
		stopMergerForTest(t, db)
		return &midPass{DB: db}
	})
}

type midPass struct {
	*DB
	mu sync.Mutex
	p  *mergePass
}

func (m *midPass) AppendReadings(ctx context.Context, rs []store.Reading) error {
	if err := m.DB.AppendReadings(ctx, rs); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for range 2 { // a second try after a stale plan
		if m.p == nil || m.p.done {
			p, err := m.planPass(ctx, mergeChunk)
			if err != nil || p == nil {
				return err
			}
			m.p = p
		}
		err := m.mergeStep(ctx, m.p, 2, false)
		if err == errStalePass {
			m.p = nil
			continue
		}
		return err
	}
	return nil
}

// passState is what the store's reads say about each device, checked
// against what was appended.
func checkReads(t *testing.T, db *DB, stage string, want map[string][]store.Reading) {
	t.Helper()
	ctx := t.Context()
	for dev, rs := range want {
		got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: dev, Limit: MaxReadingLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(rs) {
			t.Fatalf("%s: %d readings of %s, want %d: %v", stage, len(got), dev, len(rs), seqsOf(got))
		}
		counts := map[string]int64{}
		for i, r := range rs {
			if got[i].Seq != r.Seq || string(got[i].Payload) != string(r.Payload) {
				t.Fatalf("%s: reading %d of %s: seq %d, want %d", stage, i, dev, got[i].Seq, r.Seq)
			}
			counts[r.Stream]++
		}
		if n, err := db.CountReadings(ctx, dev); err != nil || n != int64(len(rs)) {
			t.Fatalf("%s: CountReadings(%s) = %d, %v; want %d", stage, dev, n, err, len(rs))
		}
		sc, err := db.StreamCounts(ctx, dev, t0.Add(1<<40))
		if err != nil || fmt.Sprint(sc) != fmt.Sprint(counts) {
			t.Fatalf("%s: StreamCounts(%s) = %v, %v; want %v", stage, dev, sc, err, counts)
		}
		if len(rs) > 0 {
			if at, err := db.LastReadingAt(ctx, dev); err != nil || !at.Equal(rs[len(rs)-1].Time) {
				t.Fatalf("%s: LastReadingAt(%s) = %v, %v", stage, dev, at, err)
			}
		}
	}
}

func progressOf(t *testing.T, db *DB) [3]int64 {
	t.Helper()
	var p [3]int64
	if err := db.readers.QueryRowContext(t.Context(), `SELECT upto, dkey, seq FROM reading_merge`).Scan(&p[0], &p[1], &p[2]); err != nil {
		t.Fatal(err)
	}
	return p
}

// A pass moves the staged readings in steps: between steps every reading
// is read exactly once, appends and deletions in the middle of a pass
// keep it right, a restart resumes it, and its last step empties the
// stage, clears the progress and leaves the writer synchronous=FULL.
func TestMergePassInSteps(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db := openPath(t, path)
	stopMergerForTest(t, db)
	want := map[string][]store.Reading{}
	stage := func(db *DB, n int) {
		for i := range n {
			dev := fmt.Sprintf("d%d", i%3)
			rs := stageReadings(t, db, dev, 1+i%2)
			want[dev] = append(want[dev], rs...)
		}
	}
	stage(db, 12) // 18 readings of 3 devices, interleaved
	p, err := db.planPass(ctx, mergeChunk)
	if err != nil || p == nil || len(p.seqs) != 18 || !p.fresh {
		t.Fatalf("planPass = %+v, %v; want a fresh pass of 18", p, err)
	}
	steps := 0
	step := func(db *DB, p *mergePass) {
		t.Helper()
		if err := db.mergeStep(ctx, p, 4, true); err != nil {
			t.Fatal(err)
		}
		steps++
		checkReads(t, db, fmt.Sprintf("after step %d", steps), want)
	}
	step(db, p)
	step(db, p)
	if got := progressOf(t, db); got[0] != p.upto || got[1] != p.at[0] || got[2] != p.at[1] || got[0] == 0 {
		t.Fatalf("progress %v, want upto %d at %v", got, p.upto, p.at)
	}
	// Appends in the middle of the pass are not part of it.
	stage(db, 3)
	step(db, p)

	// A restart: the pass goes on where it was. crash is the files as
	// they are now, with the store open (as kill -9 leaves them; the
	// steps committed without their own fsync are in the WAL).
	left := len(p.seqs)
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
	crashWant := map[string][]store.Reading{}
	for dev, rs := range want {
		crashWant[dev] = slices.Clone(rs)
	}
	db.Close()
	db = openPath(t, path)
	stopMergerForTest(t, db)
	checkReads(t, db, "after the restart", want)
	p, err = db.planPass(ctx, mergeChunk)
	if err != nil || p == nil || p.fresh || len(p.seqs) != left {
		t.Fatalf("planPass after restart = %+v, %v; want the pass with %d left", p, err, left)
	}
	for !p.done {
		step(db, p)
	}
	if got := progressOf(t, db); got != [3]int64{} {
		t.Fatalf("progress %v after the last step, want none", got)
	}
	if n := stagedRows(ctx, db); n != 4 {
		t.Fatalf("%d rows staged after the pass, want the 4 appended during it", n)
	}
	var sync int
	if err := db.writer.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("writer synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
	more := stageReadings(t, db, "d0", 1)
	for _, rs := range want {
		for _, r := range rs {
			if r.Seq >= more[0].Seq {
				t.Fatalf("seq %d handed out again", r.Seq)
			}
		}
	}
	want["d0"] = append(want["d0"], more...)

	// A deletion in the middle of a pass finishes it; the merger's plan
	// is then stale and a new one starts clean.
	stage(db, 6)
	p, err = db.planPass(ctx, mergeChunk)
	if err != nil || p == nil {
		t.Fatal(p, err)
	}
	step(db, p)
	n, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d1"}, 0)
	if err != nil || n != int64(len(want["d1"])) {
		t.Fatalf("DeleteReadings = %d, %v; want %d", n, err, len(want["d1"]))
	}
	want["d1"] = nil
	checkReads(t, db, "after the deletion", want)
	if err := db.mergeStep(ctx, p, 4, true); err != errStalePass {
		t.Fatalf("step after the deletion: %v, want errStalePass", err)
	}
	if got := progressOf(t, db); got != [3]int64{} || stagedRows(ctx, db) != 0 {
		t.Fatalf("after the deletion: progress %v, %d staged", got, stagedRows(ctx, db))
	}
	checkReads(t, db, "after the stale step", want)

	// The crash image: the merger, started by Open, finishes the pass
	// it finds by itself.
	cdb := openPath(t, crash)
	checkReads(t, cdb, "crash image", crashWant)
	deadline := time.Now().Add(30 * time.Second)
	for progressOf(t, cdb)[0] != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("crash image: the pass was never resumed: progress %v", progressOf(t, cdb))
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkReads(t, cdb, "crash image, pass resumed", crashWant)
	if n := stagedRows(ctx, cdb); n != 4 {
		t.Fatalf("crash image: %d rows staged after the pass, want the 4 appended during it", n)
	}
}

// An ingest commit that arrives while a step runs waits for that step
// only: the merger starts no further step while it waits, even when the
// commit has not reached the writer connection's queue yet (here it is
// held at keyMu, as behind another append). Counted in steps, not time;
// without the yield the step after the third begins while the commit
// waits, and the count is 1.
func TestMergeStepYieldsToWaitingCommit(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	stopMergerForTest(t, db)
	for i := range 40 {
		stageReadings(t, db, fmt.Sprintf("d%d", i%5), 1)
	}
	db.mergeStepRows.Store(2)
	p, err := db.planPass(ctx, mergeChunk)
	if err != nil || p == nil {
		t.Fatal(p, err)
	}
	var (
		steps, during int
		stepped       atomic.Bool
		appended      = make(chan error, 1)
	)
	db.stepHook = func() {
		steps++
		if db.ingestWaiting.Load() > 0 {
			during++ // a step that began while a commit was waiting
			stepped.Store(true)
		}
		if steps != 3 {
			return
		}
		db.keyMu.Lock()
		go func() {
			_, err := appendOne(db, "late")
			appended <- err
		}()
		for db.ingestWaiting.Load() == 0 {
			runtime.Gosched()
		}
		// Let the commit go once the merger has either yielded or
		// started another step.
		go func() {
			for db.mergeYields.Load() == 0 && !stepped.Load() {
				runtime.Gosched()
			}
			db.keyMu.Unlock()
		}()
	}
	if rest := db.runPass(ctx, p, make(chan struct{})); rest != nil || !p.done {
		t.Fatalf("runPass left %+v", rest)
	}
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if steps != 20 {
		t.Fatalf("%d steps for 40 readings, want 20", steps)
	}
	if during != 0 {
		t.Fatalf("%d steps began while the commit waited, want 0", during)
	}
	if db.mergeYields.Load() == 0 {
		t.Fatal("the merger never yielded")
	}
	if n, err := db.CountReadings(ctx, "late"); err != nil || n != 1 {
		t.Fatalf("CountReadings(late) = %d, %v", n, err)
	}
}

func appendOne(db *DB, dev string) (int64, error) {
	rs := []store.Reading{{DeviceID: dev, Stream: "s", Time: t0, Payload: []byte(`{}`)}}
	err := db.AppendReadings(context.Background(), rs)
	return rs[0].Seq, err
}
