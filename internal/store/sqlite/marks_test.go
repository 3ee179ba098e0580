package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// markedReadings appends n readings of two devices in batches, with times
// that mostly move forward and sometimes jump back by up to an hour (a
// device's clock being set), and returns them as stored.
func markedReadings(t *testing.T, db *DB, rng *rand.Rand, start time.Time, n int) []store.Reading {
	t.Helper()
	var all []store.Reading
	ts := start
	for len(all) < n {
		batch := make([]store.Reading, 0, 100)
		for range 100 {
			ts = ts.Add(time.Duration(rng.IntN(20)) * time.Second)
			at := ts
			if rng.IntN(50) == 0 {
				at = ts.Add(-time.Duration(rng.IntN(3600)) * time.Second)
			}
			batch = append(batch, store.Reading{
				DeviceID: fmt.Sprintf("dev-%d", rng.IntN(2)),
				Stream:   fmt.Sprintf("s%d", rng.IntN(3)),
				Time:     at,
				Payload:  []byte("{}"),
			})
		}
		if err := db.AppendReadings(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
	}
	return all
}

// checkSince compares Readings with Since (and Until) for many times
// against the readings filtered here.
func checkSince(t *testing.T, db *DB, all []store.Reading, rng *rand.Rand) {
	t.Helper()
	first, last := all[0].Time, all[len(all)-1].Time
	for range 60 {
		dev := fmt.Sprintf("dev-%d", rng.IntN(2))
		since := first.Add(time.Duration(rng.Int64N(int64(last.Sub(first)))))
		var until time.Time
		if rng.IntN(2) == 0 {
			until = since.Add(time.Duration(rng.IntN(7200)) * time.Second)
		}
		var want []int64
		for _, r := range all {
			if r.DeviceID == dev && !r.Time.Before(since) && (until.IsZero() || r.Time.Before(until)) {
				want = append(want, r.Seq)
			}
		}
		want = want[:min(len(want), 500)]
		rs, err := db.Readings(t.Context(), store.ReadingQuery{DeviceID: dev, Since: since, Until: until, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]int64, len(rs))
		for i, r := range rs {
			got[i] = r.Seq
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s since %s until %s: got %d readings %v…, want %d %v…", dev, since, until,
				len(got), got[:min(len(got), 5)], len(want), want[:min(len(want), 5)])
		}
	}
}

func markCount(t *testing.T, db *DB) (n int) {
	t.Helper()
	if err := db.readers.QueryRow(`SELECT count(*) FROM reading_marks`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A query by time that starts at a time mark returns exactly what a scan
// of the device's whole history returns, though times jump back, across
// a restart (the marks' state is loaded again), and after a deletion.
func TestReadingsSinceUsesMarksCorrectly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "candor.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	all := markedReadings(t, db, rng, t0, 4000)
	if n := markCount(t, db); n < 4000/markEvery-4 {
		t.Fatalf("%d marks for 4,000 readings of 2 devices; want about %d", n, 4000/markEvery)
	}
	checkSince(t, db, all, rng)

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openPath(t, path)
	all = append(all, markedReadings(t, db, rng, all[len(all)-1].Time, 2000)...)
	checkSince(t, db, all, rng)

	// Deleting a time range drops the marks that carry a time in it.
	from, to := all[1000].Time, all[3000].Time
	if _, err := db.DeleteReadings(t.Context(), store.ReadingQuery{DeviceID: "dev-0", Since: from, Until: to}, 0); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := db.readers.QueryRow(`SELECT count(*) FROM reading_marks m JOIN reading_devices d ON d.dkey = m.dkey
		WHERE d.device_id = 'dev-0' AND m.maxts >= ? AND m.maxts < ?`, from.UnixNano(), to.UnixNano()).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d marks of dev-0 still carry a time in the deleted range", left)
	}
	kept := all[:0:0]
	for _, r := range all {
		if r.DeviceID != "dev-0" || r.Time.Before(from) || !r.Time.Before(to) {
			kept = append(kept, r)
		}
	}
	all = append(kept, markedReadings(t, db, rng, all[len(all)-1].Time, 2000)...)
	checkSince(t, db, all, rng)
}

// A purge drops every time mark of the device: they hold times of its
// readings.
func TestPurgeDropsMarks(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	rng := rand.New(rand.NewPCG(3, 4))
	all := markedReadings(t, db, rng, t0, 2000)
	if markCount(t, db) == 0 {
		t.Fatal("no marks written")
	}
	for _, dev := range []string{"dev-0", "dev-1"} {
		p := store.Purge{DeviceID: dev, UntilSeq: all[len(all)-1].Seq, RequestedAt: t0}
		if _, err := db.PurgeReadings(t.Context(), p, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := markCount(t, db); n != 0 {
		t.Errorf("%d marks left after purging every reading", n)
	}
}

// TestMarkStateCountsStagedReadings: a device's mark state loaded from
// the file (after a restart) must bound the times of its readings still
// in the staging table, or a later mark would claim they are older than
// they are and a query by time would skip them.
func TestMarkStateCountsStagedReadings(t *testing.T) {
	db := openTemp(t)
	stopMergerForTest(t, db)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var late []int64
	for i := range 2 { // two paced commits: staged, not merged
		batch := make([]store.Reading, 10)
		for j := range batch {
			batch[j] = store.Reading{DeviceID: "dev-1", Stream: "s", Time: t0.Add(2*time.Hour + time.Duration(i*10+j)*time.Second), Payload: []byte("{}")}
		}
		if err := db.AppendReadings(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for _, r := range batch {
			late = append(late, r.Seq)
		}
	}
	if db.staged.Load() == 0 {
		t.Fatal("the paced commits were not staged: the test would prove nothing")
	}
	// As after a restart: no cached mark state.
	db.keyMu.Lock()
	clear(db.marks)
	db.keyMu.Unlock()
	// The device's clock is set back: the next readings are older than
	// the staged ones, enough of them for marks to be written.
	for i := range 3 {
		batch := make([]store.Reading, 10)
		for j := range batch {
			batch[j] = store.Reading{DeviceID: "dev-1", Stream: "s", Time: t0.Add(time.Duration(i*10+j) * time.Second), Payload: []byte("{}")}
		}
		if err := db.AppendReadings(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]store.Reading, markEvery*2)
	for j := range big {
		big[j] = store.Reading{DeviceID: "dev-1", Stream: "s", Time: t0.Add(time.Minute + time.Duration(j)*time.Millisecond), Payload: []byte("{}")}
	}
	if err := db.AppendReadings(ctx, big); err != nil {
		t.Fatal(err)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "dev-1", Since: t0.Add(time.Hour), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, r := range got {
		seqs = append(seqs, r.Seq)
	}
	if !slices.Equal(seqs, late) {
		t.Fatalf("readings since t0+1h: seqs %v, want the staged ones %v", seqs, late)
	}
}

// windowReadings is what Readings must return for dev in [since, until):
// the seqs of all that match, in order, at most limit.
func windowReadings(all []store.Reading, dev string, since, until time.Time, limit int) []int64 {
	var want []int64
	for _, r := range all {
		if r.DeviceID == dev && !r.Time.Before(since) && r.Time.Before(until) {
			want = append(want, r.Seq)
		}
	}
	return want[:min(len(want), limit)]
}

// windowsPerCheck is how many random windows checkWindows compares at
// each of TestReadingsUntilUsesChunkMinimum's nine checks: the queries are
// most of its time under -race. With 50 instead of 150, the test still
// fails at once when markUntil ignores the chunk minimum or unknown (NULL)
// minimums, or dropMarks leaves the next mark's minimum as it was
// (docs/benchmarks.md, session 11).
const windowsPerCheck = 50

// checkWindows compares Readings for time windows [since, until) of every
// length, start and device with the readings filtered here.
func checkWindows(t *testing.T, db *DB, all []store.Reading, rng *rand.Rand, devs int) {
	t.Helper()
	first, last := all[0].Time, all[len(all)-1].Time
	span := int64(last.Sub(first))
	for range windowsPerCheck {
		dev := fmt.Sprintf("dev-%d", rng.IntN(devs))
		since := first.Add(time.Duration(rng.Int64N(span)))
		until := since.Add(time.Duration(rng.Int64N(span / int64(1+rng.IntN(20)))))
		if rng.IntN(10) == 0 {
			since = time.Time{} // until alone
		}
		rs, err := db.Readings(t.Context(), store.ReadingQuery{DeviceID: dev, Since: since, Until: until, Limit: 300})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]int64, len(rs))
		for i, r := range rs {
			got[i] = r.Seq
		}
		if want := windowReadings(all, dev, since, until, 300); !slices.Equal(got, want) {
			t.Fatalf("%s since %s until %s: got %d readings %v…, want %d %v…", dev, since, until,
				len(got), got[:min(len(got), 5)], len(want), want[:min(len(want), 5)])
		}
	}
}

// forward appends n readings of the devices, one every 10 s in turn, in
// batches of batch (small ones are staged, large ones are not), with a
// reading at a time far in the past one time in back (0: never; a clock
// reset): such a reading, late in seq, must still be found by a window
// that ends early.
func forward(t *testing.T, db *DB, rng *rand.Rand, devs int, from time.Time, n, batch, back int) []store.Reading {
	t.Helper()
	var all []store.Reading
	at := from
	for len(all) < n {
		rs := make([]store.Reading, batch)
		for i := range rs {
			at = at.Add(10 * time.Second)
			ts := at
			if back > 0 && rng.IntN(back) == 0 {
				ts = t0.Add(time.Duration(rng.Int64N(int64(at.Sub(t0)))))
			}
			rs[i] = store.Reading{DeviceID: fmt.Sprintf("dev-%d", rng.IntN(devs)), Stream: "s", Time: ts, Payload: []byte("{}")}
		}
		if err := db.AppendReadings(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
		all = append(all, rs...)
	}
	return all
}

// A window [since, until) ends its scan at the last marked chunk holding
// a time before until (its mints), and still returns exactly what a
// filter over everything returns: with clocks set back into the window
// much later, after a restart, after range deletions that drop marks
// (their chunks join the next mark's), and with marks whose minimum is
// unknown (written before it was kept).
func TestReadingsUntilUsesChunkMinimum(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "candor.db")
	db := openPath(t, path)
	rng := rand.New(rand.NewPCG(5, 6))
	const devs = 2
	all := forward(t, db, rng, devs, t0, 6000, 300, 700)
	all = append(all, forward(t, db, rng, devs, all[len(all)-1].Time, 2000, 20, 700)...)
	checkWindows(t, db, all, rng, devs)

	// The bound applies: an early window of a history whose times grow
	// reads the start and the unmarked tail, not everything between.
	clean := openTemp(t)
	mono := forward(t, clean, rand.New(rand.NewPCG(7, 8)), 1, t0, 3000, 500, 0)
	var newest int64
	if err := clean.readers.QueryRow(`SELECT max(seq) FROM reading_marks`).Scan(&newest); err != nil {
		t.Fatal(err)
	}
	spans, err := markUntil(t.Context(), clean.readers, "dev-0", 0, mono[300].Time.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 2 || spans[0].to > int64(300+markEvery+1) || spans[1].from != newest {
		t.Fatalf("spans %v for a window ending at reading 300 of 3,000 (newest mark at %d): want [1, ≤%d) and [%d, end)",
			spans, newest, 300+markEvery+1, newest)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openPath(t, path)
	all = append(all, forward(t, db, rng, devs, all[len(all)-1].Time, 1500, 100, 700)...)
	checkWindows(t, db, all, rng, devs)

	// Range deletions drop marks in the middle and at the start.
	for _, d := range []struct{ from, to int }{{2000, 2600}, {0, 500}, {4000, 6100}} {
		from, to := all[d.from].Time, all[d.to].Time
		if d.from == 0 {
			from = time.Time{}
		}
		if _, err := db.DeleteReadings(t.Context(), store.ReadingQuery{DeviceID: "dev-0", Since: from, Until: to}, 0); err != nil {
			t.Fatal(err)
		}
		kept := all[:0:0]
		for _, r := range all {
			if r.DeviceID != "dev-0" || r.Time.Before(from) || !r.Time.Before(to) {
				kept = append(kept, r)
			}
		}
		all = kept
		checkWindows(t, db, all, rng, devs)
	}
	all = append(all, forward(t, db, rng, devs, all[len(all)-1].Time, 1000, 300, 700)...)
	checkWindows(t, db, all, rng, devs)

	// Marks from before the chunk minimum was kept: unknown.
	if _, err := db.writer.Exec(`UPDATE reading_marks SET mints = NULL WHERE seq % 3 = 0`); err != nil {
		t.Fatal(err)
	}
	checkWindows(t, db, all, rng, devs)
	if _, err := db.DeleteReadings(t.Context(), store.ReadingQuery{DeviceID: "dev-1", Since: all[1000].Time, Until: all[3000].Time}, 0); err != nil {
		t.Fatal(err)
	}
	kept := all[:0:0]
	for _, r := range all {
		if r.DeviceID != "dev-1" || r.Time.Before(all[1000].Time) || !r.Time.Before(all[3000].Time) {
			kept = append(kept, r)
		}
	}
	all = append(kept, forward(t, db, rng, devs, all[len(all)-1].Time, 600, 50, 700)...)
	checkWindows(t, db, all, rng, devs)

	// Readings after the newest mark (no chunk minimum yet) with a time
	// set far back: queries and deletions must still see them.
	old := make([]store.Reading, 3)
	for i := range old {
		old[i] = store.Reading{DeviceID: "dev-1", Stream: "s", Time: all[100+i].Time.Add(time.Second), Payload: []byte("{}")}
	}
	if err := db.AppendReadings(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	all = append(all, old...)
	checkWindows(t, db, all, rng, devs)

	// A retention sweep: a stream's readings before a cutoff, in small
	// chunks (the deletion's scan is bounded by the marks as well).
	cut := all[len(all)/3].Time
	for {
		k, err := db.DeleteReadings(t.Context(), store.ReadingQuery{DeviceID: "dev-1", Stream: "s", Until: cut}, 7)
		if err != nil {
			t.Fatal(err)
		}
		if k < 7 {
			break
		}
	}
	kept = all[:0:0]
	for _, r := range all {
		if r.DeviceID != "dev-1" || !r.Time.Before(cut) {
			kept = append(kept, r)
		}
	}
	all = kept
	if n, err := db.CountReadings(t.Context(), "dev-1"); err != nil || n != int64(len(windowReadings(all, "dev-1", t0.Add(-time.Hour), all[len(all)-1].Time.Add(time.Hour), len(all)))) {
		t.Fatalf("dev-1 holds %d readings after the sweep (%v)", n, err)
	}
	checkWindows(t, db, all, rng, devs)
}

// loadMarks reads the mark states of many devices at once (a batch's
// first readings after a restart): each must be what the device's marks
// and readings say, and what appends kept in memory, whether its readings
// are in the clustered table, staged, or both, with or without marks,
// and with a clock that goes back.
func TestLoadMarksReadsEveryDevice(t *testing.T) {
	db := openTemp(t)
	stopMergerForTest(t, db)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rnd := rand.New(rand.NewPCG(7, 11))
	at := func() time.Time { return t0.Add(time.Duration(rnd.IntN(3600)) * time.Second) }
	batch := func(dev string, n int) []store.Reading {
		rs := make([]store.Reading, n)
		for i := range rs {
			rs[i] = store.Reading{DeviceID: dev, Stream: "s", Time: at(), Payload: []byte("{}")}
		}
		return rs
	}
	appendAll := func(rs []store.Reading) {
		t.Helper()
		if err := db.AppendReadings(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	// dev-main: straight into the clustered table, past two marks, then
	// staged; dev-staged: staged only, past a mark; dev-few: a few in
	// the clustered table, no mark; dev-mixed: both, interleaved with
	// the others.
	appendAll(batch("dev-main", 2*markEvery+37))
	appendAll(batch("dev-few", db.stageBelow))
	for range 30 {
		var rs []store.Reading
		rs = append(rs, batch("dev-staged", 9)...)
		rs = append(rs, batch("dev-mixed", 3)...)
		rs = append(rs, batch("dev-main", 1)...)
		appendAll(rs)
	}
	appendAll(batch("dev-mixed", db.stageBelow+5))
	appendAll(append(batch("dev-staged", 4), batch("dev-mixed", 2)...))
	if db.staged.Load() == 0 {
		t.Fatal("nothing was staged: the test would prove nothing")
	}
	// Merge the oldest staged readings, so some of a device's readings
	// after its newest mark are in each table.
	if err := db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := db.mergeTx(ctx, tx, 100)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	devices := []string{"dev-main", "dev-staged", "dev-few", "dev-mixed"}
	var keys []int64
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	kept := map[int64]markState{}
	for _, d := range devices {
		k, ok := db.dkeys.Load(d)
		if !ok {
			t.Fatalf("%s has no cached key", d)
		}
		keys = append(keys, k)
		kept[k] = db.marks[k]
	}
	want := map[int64]markState{}
	for _, k := range keys {
		want[k] = marksFromRows(t, db, k)
	}
	got := map[int64]markState{}
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return loadMarks(ctx, tx, keys, got) }); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if got[k] != want[k] || kept[k] != want[k] {
			t.Errorf("%s: loaded %+v, kept by appends %+v, from its rows %+v", devices[i], got[k], kept[k], want[k])
		}
	}
	if want[keys[0]].since == 0 || want[keys[1]].since == 0 {
		t.Errorf("no readings after the newest mark: the test would prove little (%+v)", want)
	}
}

// marksFromRows works out a device's mark state from its rows alone:
// its newest mark, and every live reading (either table) at or after
// that mark's seq.
func marksFromRows(t *testing.T, db *DB, dkey int64) markState {
	t.Helper()
	ctx := t.Context()
	st := noMarks()
	var mseq int64
	err := db.readers.QueryRowContext(ctx, `SELECT maxts, seq FROM reading_marks WHERE dkey = ? ORDER BY maxts DESC, seq DESC LIMIT 1`, dkey).Scan(&st.maxTS, &mseq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	rows, err := db.readers.QueryContext(ctx, `SELECT id & `+sqlMaxSeq+`, ts FROM readings WHERE id >> `+sqlSeqBits+` = ?
		UNION ALL SELECT seq, ts FROM readings_stage WHERE dkey = ? AND `+stageLive, dkey, dkey)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq, ts int64
		if err := rows.Scan(&seq, &ts); err != nil {
			t.Fatal(err)
		}
		if seq >= mseq {
			st.maxTS, st.minTS = max(st.maxTS, ts), min(st.minTS, ts)
			st.since++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return st
}
