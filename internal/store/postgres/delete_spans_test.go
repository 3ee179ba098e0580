package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

// mergedDelete is the bounded delete as it was before it chose partitions
// by their seq spans (main at 7eaf220): one statement on readings, which
// merges every month's (device_id, seq) index. The tests below hold the
// new one to its rows and counts.
func mergedDelete(ctx context.Context, db *DB, w *whereClause, limit int) (int64, error) {
	dev := w.args[0]
	stmt := `DELETE FROM readings WHERE device_id = ` + w.next(dev) + ` AND seq = ANY (ARRAY(
		SELECT seq FROM readings WHERE ` + w.String() + ` ORDER BY seq LIMIT ` + w.next(limit) + `))`
	tag, err := db.pool.Exec(ctx, stmt, w.args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// storedSeqs is every stored reading's seq, in order.
func storedSeqs(t *testing.T, db *DB) []int64 {
	t.Helper()
	rows, err := db.pool.Query(t.Context(), `SELECT seq FROM readings ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// deleteOp is one bounded delete: retention's (DeleteReadings) or a
// purge's (PurgeReadings), whichever is set.
type deleteOp struct {
	name  string
	q     *store.ReadingQuery
	p     *store.Purge
	limit int
}

// TestBoundedDeletesMatchMergedStatement applies the same appends and
// bounded deletes to two databases, one through the store and one through
// the statement it replaced, and checks that every delete reports the same
// count and leaves the same readings: over six months with interleaved
// devices, streams and manifest versions, a month without readings, late
// readings that make months' spans overlap, and a month emptied, dropped
// and made again.
func TestBoundedDeletesMatchMergedStatement(t *testing.T) {
	ctx := t.Context()
	got, _ := openTest(t)  // through DeleteReadings and PurgeReadings
	want, _ := openTest(t) // through mergedDelete
	day := func(m time.Month, d int) time.Time { return time.Date(2024, m, d, 0, 0, 0, 0, time.UTC) }
	var seqs []int64 // every appended reading's seq, the same in both
	appendBoth := func(rs []store.Reading) {
		t.Helper()
		for _, db := range []*DB{got, want} {
			batch := slices.Clone(rs)
			if err := db.AppendReadings(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if db == want {
				for i := range batch {
					if s := batch[i].Seq; s != seqs[len(seqs)-len(batch)+i] {
						t.Fatalf("the databases drew different seqs: %d, %d", seqs[len(seqs)-len(batch)+i], s)
					}
				}
			} else {
				seqs = append(seqs, readingSeqs(batch)...)
			}
		}
	}
	fill := func(m time.Month, devices ...string) {
		var rs []store.Reading
		for i := range 24 {
			for k, d := range devices {
				rs = append(rs, store.Reading{
					DeviceID: d, Stream: []string{"a", "b"}[(i+k)%2], ManifestVersion: 1 + i%3/2,
					Time: day(m, 1+i).Add(time.Duration(k) * time.Hour), Payload: fmt.Appendf(nil, `{"i":%d}`, i),
				})
			}
		}
		appendBoth(rs)
	}
	// The first, partial month (MINVALUE) too, so its span's key is used.
	appendBoth([]store.Reading{{DeviceID: "d1", Stream: "a", Time: minTime.Add(time.Hour)}})
	fill(time.January, "d1", "d2", "d3")
	fill(time.February, "d1", "d2")
	fill(time.March, "d2", "d3") // no d1
	// April has no readings at all.
	fill(time.May, "d1", "d2", "d3")
	// Late readings: February's span now reaches above May's.
	appendBoth([]store.Reading{
		{DeviceID: "d1", Stream: "a", Time: day(time.February, 27), ManifestVersion: 1},
		{DeviceID: "d2", Stream: "b", Time: day(time.February, 28), ManifestVersion: 2},
		{DeviceID: "d1", Stream: "b", Time: day(time.January, 30), ManifestVersion: 2},
	})
	fill(time.June, "d1", "d3")

	ops := []deleteOp{
		// The limit filled in the month of lowest seqs by a late reading,
		// while a later month holds lower seqs: it must be visited too.
		{name: "d1 from 24 February, a late reading fills the limit", q: &store.ReadingQuery{DeviceID: "d1", Since: day(time.February, 24)}, limit: 2},
		{name: "d1 from 30 January, the late reading alone", q: &store.ReadingQuery{DeviceID: "d1", Since: day(time.January, 30)}, limit: 1},
		{name: "purge d1, first 7", p: &store.Purge{DeviceID: "d1"}, limit: 7},
		{name: "retention d1 a before 15 March", q: &store.ReadingQuery{DeviceID: "d1", Stream: "a", Until: day(time.March, 15)}, limit: 10},
		{name: "retention d2 v2 before 10 February", q: &store.ReadingQuery{DeviceID: "d2", Until: day(time.February, 10), ManifestVersion: 2}, limit: 5},
		{name: "d1 from 5 February to 20 May (late readings in between)", q: &store.ReadingQuery{DeviceID: "d1", Since: day(time.February, 5), Until: day(time.May, 20)}, limit: 30},
		{name: "d1 late February only", q: &store.ReadingQuery{DeviceID: "d1", Since: day(time.February, 20), Until: day(time.March, 1)}, limit: 4},
		{name: "d3 empty range", q: &store.ReadingQuery{DeviceID: "d3", Since: day(time.March, 2), Until: day(time.March, 2)}, limit: 5},
		{name: "d3 in April, which has no partition", q: &store.ReadingQuery{DeviceID: "d3", Since: day(time.April, 1), Until: day(time.May, 1)}, limit: 5},
		{name: "unknown device", p: &store.Purge{DeviceID: "d9"}, limit: 5},
		{name: "purge d3 up to a March seq", p: &store.Purge{DeviceID: "d3", UntilSeq: seqs[1+72+48+30]}, limit: 20},
		{name: "purge d3 up to a March seq, the rest", p: &store.Purge{DeviceID: "d3", UntilSeq: seqs[1+72+48+30]}, limit: 1000},
		{name: "retention d2 a, limit above its count", q: &store.ReadingQuery{DeviceID: "d2", Stream: "a", Until: day(time.December, 1)}, limit: 10000},
		{name: "d2 from March", q: &store.ReadingQuery{DeviceID: "d2", Since: day(time.March, 1)}, limit: 6},
		{name: "d1 unbounded in January", q: &store.ReadingQuery{DeviceID: "d1", Since: day(time.January, 1), Until: day(time.February, 1)}, limit: 0},
		{name: "purge d1 one at a time", p: &store.Purge{DeviceID: "d1"}, limit: 1},
		{name: "purge d1, across the late readings", p: &store.Purge{DeviceID: "d1"}, limit: 25},
	}
	apply := func(t *testing.T, op deleteOp) {
		t.Helper()
		var g, w int64
		var gerr, werr error
		if op.p != nil {
			g, gerr = got.PurgeReadings(ctx, *op.p, op.limit)
			wc := &whereClause{}
			wc.add(`device_id = ?`, op.p.DeviceID)
			if op.p.UntilSeq > 0 {
				wc.add(`seq <= ?`, op.p.UntilSeq)
			}
			w, werr = mergedDelete(ctx, want, wc, op.limit)
		} else {
			g, gerr = got.DeleteReadings(ctx, *op.q, op.limit)
			if op.limit <= 0 {
				w, werr = want.DeleteReadings(ctx, *op.q, op.limit)
			} else {
				wc, err := readingFilter(*op.q)
				if err != nil {
					t.Fatal(err)
				}
				w, werr = mergedDelete(ctx, want, wc, op.limit)
			}
		}
		if gerr != nil || werr != nil {
			t.Fatalf("%s: %v / %v", op.name, gerr, werr)
		}
		if g != w {
			t.Errorf("%s: deleted %d, the merged statement %d", op.name, g, w)
		}
		if gs, ws := storedSeqs(t, got), storedSeqs(t, want); !slices.Equal(gs, ws) {
			t.Fatalf("%s: left seqs %v,\nthe merged statement %v", op.name, gs, ws)
		}
		// The newest reading's time, by spans and by the statement
		// LastReadingAt was before them (main at 7eaf220).
		for _, d := range []string{"d1", "d2", "d3", "d9"} {
			g, err := got.LastReadingAt(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			var w int64
			err = want.pool.QueryRow(ctx, `SELECT ts FROM readings WHERE device_id = $1 ORDER BY seq DESC LIMIT 1`, d).Scan(&w)
			if errors.Is(err, pgx.ErrNoRows) {
				err, w = nil, 0
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case w == 0 && !g.IsZero():
				t.Errorf("%s: LastReadingAt(%s) = %v, the merged statement none", op.name, d, g)
			case w != 0 && !g.Equal(decTime(w)):
				t.Errorf("%s: LastReadingAt(%s) = %v, the merged statement %v", op.name, d, g, decTime(w))
			}
		}
	}
	for _, op := range ops {
		apply(t, op)
	}
	// January empties and its partition is dropped with its span; a late
	// reading makes it again, with a span above every other month's.
	for _, d := range []string{"d1", "d2", "d3"} {
		apply(t, deleteOp{name: "empty January of " + d, q: &store.ReadingQuery{DeviceID: d, Since: day(time.January, 1), Until: day(time.February, 1)}})
	}
	for _, db := range []*DB{got, want} {
		if _, err := db.ReclaimSpace(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	appendBoth([]store.Reading{{DeviceID: "d2", Stream: "a", Time: day(time.January, 3)}, {DeviceID: "d2", Stream: "a", Time: day(time.June, 3)}})
	for _, op := range []deleteOp{
		{name: "retention d2 a before March, January made again", q: &store.ReadingQuery{DeviceID: "d2", Stream: "a", Until: day(time.March, 1)}, limit: 3},
		{name: "purge d2, all months", p: &store.Purge{DeviceID: "d2"}, limit: 9},
		{name: "purge d2, the rest", p: &store.Purge{DeviceID: "d2"}, limit: 500},
		{name: "purge d3", p: &store.Purge{DeviceID: "d3"}, limit: 11},
	} {
		apply(t, op)
	}
	if n := len(storedSeqs(t, got)); n == 0 {
		t.Fatal("every reading deleted: the last deletes compared nothing")
	}
}

// TestBoundedDeletesVisitOnlyTheirPartitions: the purger's and retention's
// bounded deletes read only the partitions holding the rows they delete,
// however many months are stored. Before, the delete merged the (device_id,
// seq) index of every month to choose its rows and probed every month's
// index for each of them (issue #19: the purger's cost grew with the
// months kept).
func TestBoundedDeletesVisitOnlyTheirPartitions(t *testing.T) {
	db, url := openTest(t)
	ctx := t.Context()
	var d1 []int64 // d1's seqs, in order
	for m := time.January; m <= time.June; m++ {
		rs := make([]store.Reading, 0, 100)
		for i := range 50 {
			at := time.Date(2024, m, 1+i/4, i%24, 0, 0, 0, time.UTC)
			for _, d := range []string{"d1", "d2"} {
				rs = append(rs, store.Reading{DeviceID: d, Stream: "t", Time: at, Payload: []byte(`{}`)})
			}
		}
		if err := db.AppendReadings(ctx, rs); err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.DeviceID == "d1" {
				d1 = append(d1, r.Seq)
			}
		}
	}
	db.Close()
	stats, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close(context.Background())

	last := time.Date(2024, time.June, 13, 1, 0, 0, 0, time.UTC) // d1's and d2's newest
	for _, tc := range []struct {
		name  string
		op    deleteOp // or, if empty, LastReadingAt of d1
		n     int64    // rows deleted
		parts []string // the only partitions to visit
	}{
		{"purge, first chunk", deleteOp{p: &store.Purge{DeviceID: "d1"}, limit: 10}, 10, []string{"readings_p202401"}},
		{"retention, first chunk", deleteOp{q: &store.ReadingQuery{DeviceID: "d1", Stream: "t", Until: time.Date(2024, time.May, 1, 0, 0, 0, 0, time.UTC)}, limit: 10},
			10, []string{"readings_p202401"}},
		{"purge up to a March seq", deleteOp{p: &store.Purge{DeviceID: "d1", UntilSeq: d1[2*50+4]}, limit: 1000},
			30 + 50 + 5, []string{"readings_p202401", "readings_p202402", "readings_p202403"}},
		{"retention from April", deleteOp{q: &store.ReadingQuery{DeviceID: "d2", Since: time.Date(2024, time.April, 1, 0, 0, 0, 0, time.UTC)}, limit: 5},
			5, []string{"readings_p202404"}},
		{"newest reading", deleteOp{}, 0, []string{"readings_p202406"}},
	} {
		quiesce(t, stats)
		before := partitionBlocks(t, stats)
		db, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		switch {
		case tc.op.p != nil:
			n, err = db.PurgeReadings(ctx, *tc.op.p, tc.op.limit)
		case tc.op.q != nil:
			n, err = db.DeleteReadings(ctx, *tc.op.q, tc.op.limit)
		default:
			var at time.Time
			if at, err = db.LastReadingAt(ctx, "d1"); err == nil && !at.Equal(last) {
				t.Errorf("%s: %v, want %v", tc.name, at, last)
			}
		}
		db.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n != tc.n {
			t.Fatalf("%s: deleted %d, want %d", tc.name, n, tc.n)
		}
		quiesce(t, stats)
		after := partitionBlocks(t, stats)
		for name, n := range after {
			d := n - before[name]
			visit := slices.Contains(tc.parts, name)
			if visit && d == 0 {
				t.Errorf("%s: no block of %s read, which holds rows to delete", tc.name, name)
			}
			if !visit && d != 0 {
				t.Errorf("%s: %d blocks of %s read, which holds none of the rows", tc.name, d, name)
			}
		}
	}
}

// TestBoundedDeletesRacingAppends: a purge run to its end (until a call
// deletes fewer than its limit) leaves no reading it covers that was
// stored before it began, while appends keep widening the months' spans,
// making new months' spans and filling months ReclaimSpace dropped. It
// guards the split of a delete into the spans' read, the partitions' reads
// and the delete, each with its own snapshot (and the retry when a
// partition goes in between); the single statement it replaced passes it
// too.
func TestBoundedDeletesRacingAppends(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	months := []time.Time{
		time.Date(2024, time.January, 5, 0, 0, 0, 0, time.UTC),
		time.Date(2024, time.February, 5, 0, 0, 0, 0, time.UTC),
		time.Date(2024, time.March, 5, 0, 0, 0, 0, time.UTC),
		time.Date(2024, time.April, 5, 0, 0, 0, 0, time.UTC),
	}
	var (
		mu     sync.Mutex
		top    int64 // the highest seq of an append that returned
		werr   error
		wg     sync.WaitGroup
		stop   = make(chan struct{})
		rounds = 40
		// The appends race the deletes, one batch (3 readings of each
		// device) per delete call at most: every call deletes more than
		// the appends add, so each loop below ends. Unpaced, an appender
		// filling the earliest month faster than a call deleted from it
		// kept every call full and the loop going (CI: 10 min, twice).
		tick = make(chan struct{}, 1)
	)
	pace := func() {
		select {
		case tick <- struct{}{}:
		default:
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick:
			}
			rs := make([]store.Reading, 6)
			for k := range rs {
				// Months in turn, several per batch: every batch widens
				// spans, and makes again a month ReclaimSpace dropped.
				rs[k] = store.Reading{DeviceID: []string{"d", "e"}[k%2], Stream: "s",
					Time: months[(i+k/2)%len(months)].Add(time.Duration(i) * time.Minute)}
			}
			if err := db.AppendReadings(ctx, rs); err != nil {
				werr = err
				return
			}
			mu.Lock()
			top = rs[len(rs)-1].Seq
			mu.Unlock()
			if i%7 == 0 {
				if _, err := db.ReclaimSpace(ctx, 0); err != nil {
					werr = err
					return
				}
			}
		}
	}()
	count := func(w string, args ...any) int64 {
		var n int64
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM readings WHERE `+w, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for r := range rounds {
		mu.Lock()
		stored := top
		mu.Unlock()
		if r%2 == 0 {
			// A purge of everything: what was stored when it began goes.
			// Until a call comes out short (the purger's rule), or, since
			// the appends go on and a slow machine may never let a call
			// come out short, until nothing stored before it began is left.
			for {
				pace()
				n, err := db.PurgeReadings(ctx, store.Purge{DeviceID: "d"}, 4)
				if err != nil {
					t.Fatal(err)
				}
				if n < 4 || count(`device_id = 'd' AND seq <= $1`, stored) == 0 {
					break
				}
			}
			if left := count(`device_id = 'd' AND seq <= $1`, stored); left != 0 {
				t.Fatalf("round %d: %d readings of d up to seq %d left after the purge", r, left, stored)
			}
		} else {
			// Retention of February and March: the same.
			q := store.ReadingQuery{DeviceID: "e", Since: months[1].AddDate(0, 0, -4), Until: months[3].AddDate(0, 0, -4)}
			for {
				pace()
				n, err := db.DeleteReadings(ctx, q, 3)
				if err != nil {
					t.Fatal(err)
				}
				if n < 3 || count(`device_id = 'e' AND ts >= $1 AND ts < $2 AND seq <= $3`,
					q.Since.UnixNano(), q.Until.UnixNano(), stored) == 0 {
					break
				}
			}
			if left := count(`device_id = 'e' AND ts >= $1 AND ts < $2 AND seq <= $3`,
				q.Since.UnixNano(), q.Until.UnixNano(), stored); left != 0 {
				t.Fatalf("round %d: %d readings of e in the range up to seq %d left after retention", r, left, stored)
			}
		}
	}
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
}

// A bounded purge whose chosen rows another deleter (retention, a range
// delete) removes before its DELETE runs still deletes limit rows while
// that many are left: the purger reads a short chunk as "done" and
// finishes the purge (review of pgpurge; the first subtest failed with 3
// deleted and 5 left). In the second the other delete is not yet committed
// when the purge chooses, which one statement on readings got wrong too.
func TestBoundedPurgeNotShortWhileRowsLeft(t *testing.T) {
	for _, name := range []string{"other delete commits between choice and delete", "other delete uncommitted at the choice"} {
		t.Run(name, func(t *testing.T) {
			db, url := openTest(t)
			ctx := t.Context()
			rs := make([]store.Reading, 10)
			for i := range rs {
				rs[i] = store.Reading{DeviceID: "d", Stream: "s", Time: time.Date(2024, time.January, 1+i, 0, 0, 0, 0, time.UTC)}
			}
			if err := db.AppendReadings(ctx, rs); err != nil {
				t.Fatal(err)
			}
			x, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close(ctx)
			tx, err := x.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			uncommitted := name == "other delete uncommitted at the choice"
			if uncommitted {
				// The other deleter has removed the two oldest, not yet committed.
				if _, err := tx.Exec(ctx, `DELETE FROM readings WHERE device_id = 'd' AND seq <= $1`, rs[1].Seq); err != nil {
					t.Fatal(err)
				}
			} else if _, err := tx.Exec(ctx, `LOCK TABLE readings_p202401 IN SHARE MODE`); err != nil {
				// SELECTs pass, the purge's DELETE waits.
				t.Fatal(err)
			}
			type res struct {
				n   int64
				err error
			}
			done := make(chan res, 1)
			go func() {
				n, err := db.PurgeReadings(ctx, store.Purge{DeviceID: "d", UntilSeq: rs[9].Seq}, 5)
				done <- res{n, err}
			}()
			for { // until the purge's DELETE waits for the other transaction
				var waiting bool
				if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid())`).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
				if waiting {
					break
				}
				select {
				case r := <-done:
					t.Fatalf("the purge did not wait for the other deleter: %d, %v", r.n, r.err)
				case <-time.After(5 * time.Millisecond):
				}
			}
			if !uncommitted {
				if _, err := tx.Exec(ctx, `DELETE FROM readings WHERE device_id = 'd' AND seq <= $1`, rs[1].Seq); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			var left int64
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM readings WHERE device_id = 'd'`).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if r.n != 5 || left != 3 {
				t.Errorf("PurgeReadings(limit 5) deleted %d with %d readings left; want 5 deleted and 3 left (10 stored, 2 deleted by the other transaction)", r.n, left)
			}
		})
	}
}
