package postgres

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// partitionBlocks is the block accesses (heap and indexes, hits and
// reads) of each readings partition in conn's database so far. Call it
// once every other backend of the database has gone (quiesce): backends
// report their statistics as they exit.
func partitionBlocks(t testing.TB, conn *pgx.Conn) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT relname::text, coalesce(heap_blks_hit + heap_blks_read, 0) + coalesce(idx_blks_hit + idx_blks_read, 0)
		FROM pg_statio_user_tables WHERE relname LIKE 'readings\_p%'`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReadingsVisitOnlyTheirPartitions: a device's oldest readings and
// the page after a cursor read only the partition holding them, however
// many months are stored (issue #19: every month's (device_id, seq) index
// was merged, so blocks per query grew with the history).
func TestReadingsVisitOnlyTheirPartitions(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := t.Context()
	db, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64 // d1's, in order
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
				seqs = append(seqs, r.Seq)
			}
		}
	}
	db.Close()
	stats, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close(context.Background())

	for _, tc := range []struct {
		name string
		q    store.ReadingQuery
		want []int64 // seqs
		part string  // the only partition to visit
	}{
		{"oldest", store.ReadingQuery{DeviceID: "d1", Limit: 10}, seqs[:10], "readings_p202401"},
		{"after", store.ReadingQuery{DeviceID: "d1", AfterSeq: seqs[3*50+5], Limit: 10}, seqs[3*50+6 : 3*50+16], "readings_p202404"},
		{"since", store.ReadingQuery{DeviceID: "d1", Since: time.Date(2024, time.June, 2, 0, 0, 0, 0, time.UTC), Limit: 5},
			seqs[5*50+4 : 5*50+9], "readings_p202406"},
	} {
		quiesce(t, stats)
		before := partitionBlocks(t, stats)
		db, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.Readings(ctx, tc.q)
		db.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if g := readingSeqs(got); !slices.Equal(g, tc.want) {
			t.Fatalf("%s: seqs %v, want %v", tc.name, g, tc.want)
		}
		quiesce(t, stats)
		after := partitionBlocks(t, stats)
		for name, n := range after {
			d := n - before[name]
			if name == tc.part && d == 0 {
				t.Errorf("%s: no block of %s read, which holds the answer", tc.name, name)
			}
			if name != tc.part && d != 0 {
				t.Errorf("%s: %d blocks of %s read, which holds none of the answer", tc.name, d, name)
			}
		}
	}
}

func readingSeqs(rs []store.Reading) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

// TestReadingsAcrossMonthsMatchModel runs random queries against random
// histories spread over months, with readings out of time order (late,
// and from the future), deletions, and a month emptied, dropped and
// filled again, and checks every answer against a model in memory.
func TestReadingsAcrossMonthsMatchModel(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(19, 2026))
	months := []time.Time{
		minTime.Add(time.Hour), // the first, partial month (MINVALUE)
		time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, time.February, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, time.March, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, time.April, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, time.May, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2200, time.July, 1, 0, 0, 0, 0, time.UTC),
	}
	devices, streams := []string{"d1", "d2", "d3"}, []string{"a", "b"}
	var model []store.Reading
	appendSome := func(cur int) {
		rs := make([]store.Reading, 1+rng.IntN(20))
		for i := range rs {
			m := cur
			switch rng.IntN(10) {
			case 0:
				m = rng.IntN(len(months)) // out of time order
			case 1:
				m = min(cur+1, len(months)-1) // a batch across two months
			}
			rs[i] = store.Reading{
				DeviceID: devices[rng.IntN(len(devices))], Stream: streams[rng.IntN(len(streams))],
				Time:    months[m].Add(time.Duration(rng.IntN(27*24)) * time.Hour),
				Payload: fmt.Appendf(nil, `{"i":%d}`, len(model)+i), ManifestVersion: 1 + rng.IntN(2),
			}
		}
		if err := db.AppendReadings(ctx, rs); err != nil {
			t.Fatal(err)
		}
		model = append(model, rs...)
	}
	matches := func(r store.Reading, q store.ReadingQuery) bool {
		return r.DeviceID == q.DeviceID && (q.Stream == "" || r.Stream == q.Stream) &&
			(q.Since.IsZero() || !r.Time.Before(q.Since)) && (q.Until.IsZero() || r.Time.Before(q.Until)) &&
			r.Seq > q.AfterSeq && (q.ManifestVersion == 0 || r.ManifestVersion == q.ManifestVersion)
	}
	check := func(q store.ReadingQuery) {
		t.Helper()
		got, err := db.Readings(ctx, q)
		if err != nil {
			t.Fatalf("Readings(%+v): %v", q, err)
		}
		var want []int64
		for _, r := range model {
			if matches(r, q) {
				want = append(want, r.Seq)
			}
		}
		slices.Sort(want)
		want = want[:min(len(want), cmp.Or(q.Limit, DefaultReadingLimit))]
		if g := readingSeqs(got); !slices.Equal(g, want) {
			t.Fatalf("Readings(%+v) = seqs %v, want %v", q, g, want)
		}
	}
	randomTime := func() time.Time {
		return months[rng.IntN(len(months))].Add(time.Duration(rng.IntN(30*24)) * time.Hour)
	}
	query := func() {
		q := store.ReadingQuery{DeviceID: devices[rng.IntN(len(devices))], Limit: 1 + rng.IntN(12)}
		if rng.IntN(3) == 0 {
			q.Stream = streams[rng.IntN(len(streams))]
		}
		if rng.IntN(3) == 0 {
			q.ManifestVersion = 1 + rng.IntN(2)
		}
		if len(model) > 0 && rng.IntN(2) == 0 {
			q.AfterSeq = model[rng.IntN(len(model))].Seq
		}
		switch rng.IntN(4) {
		case 0:
			q.Since = randomTime()
		case 1:
			q.Until = randomTime()
		case 2:
			q.Since, q.Until = randomTime(), randomTime()
		}
		check(q)
	}
	for cur := 1; cur < len(months)-1; cur++ {
		for range 10 {
			appendSome(cur)
			for range 5 {
				query()
			}
		}
		// Retention and erasure: a random range of one device goes.
		q := store.ReadingQuery{DeviceID: devices[rng.IntN(len(devices))], Since: randomTime()}
		q.Until = q.Since.Add(time.Duration(rng.IntN(40*24)) * time.Hour)
		if _, err := db.DeleteReadings(ctx, q, 0); err != nil {
			t.Fatal(err)
		}
		model = slices.DeleteFunc(model, func(r store.Reading) bool { return matches(r, q) })
		for range 10 {
			query()
		}
	}
	// January empties and its partition is dropped, with its span; a late
	// reading makes it again.
	jan := store.ReadingQuery{Since: months[1], Until: months[2]}
	for _, d := range devices {
		jan.DeviceID = d
		if _, err := db.DeleteReadings(ctx, jan, 0); err != nil {
			t.Fatal(err)
		}
		model = slices.DeleteFunc(model, func(r store.Reading) bool { return matches(r, jan) })
	}
	if _, err := db.ReclaimSpace(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM reading_spans WHERE month = $1`, months[1].UnixNano()).Scan(&n); err != nil || n != 0 {
		t.Fatalf("January's spans after its partition was dropped: %d, %v", n, err)
	}
	appendSome(1)
	for range 50 {
		query()
	}
	// Paging through each device's history a few readings at a time
	// returns all of it, in order.
	for _, d := range devices {
		var all []int64
		for after := int64(0); ; {
			rs, err := db.Readings(ctx, store.ReadingQuery{DeviceID: d, AfterSeq: after, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) == 0 {
				break
			}
			all = append(all, readingSeqs(rs)...)
			after = rs[len(rs)-1].Seq
		}
		var want []int64
		for _, r := range model {
			if r.DeviceID == d {
				want = append(want, r.Seq)
			}
		}
		slices.Sort(want)
		if !slices.Equal(all, want) {
			t.Fatalf("paging through %s: %v, want %v", d, all, want)
		}
	}
}

// TestSpansCoverReadings: every partition's span holds the seqs of its
// readings, as appended, and as the migration computes them for readings
// stored before it (run again here on a database without spans).
func TestSpansCoverReadings(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	at := []time.Time{
		time.Date(2024, time.March, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2024, time.April, 1, 0, 0, 0, 0, time.UTC),
		minTime,
		time.Date(1970, time.January, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond),
		time.Date(2024, time.March, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, a := range at {
		rs := []store.Reading{{DeviceID: "d", Stream: "s", Time: a}, {DeviceID: "e", Stream: "s", Time: a.Add(-time.Nanosecond)}}
		if a.Equal(minTime) {
			rs[1].Time = a
		}
		if err := db.AppendReadings(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	type spanRow struct{ Month, Lo, Hi int64 }
	spans := func() []spanRow {
		rows, err := db.pool.Query(ctx, `SELECT month, lo, hi FROM reading_spans ORDER BY month`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[spanRow])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Exact spans of what is stored, by the month each reading's time
	// falls in as the store computes it.
	exact := map[int64]*spanRow{}
	rows, err := db.pool.Query(ctx, `SELECT seq, ts FROM readings`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var seq, ts int64
		if err := rows.Scan(&seq, &ts); err != nil {
			t.Fatal(err)
		}
		m := monthStart(ts)
		if s := exact[m]; s == nil {
			exact[m] = &spanRow{m, seq, seq}
		} else {
			s.Lo, s.Hi = min(s.Lo, seq), max(s.Hi, seq)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var want []spanRow
	for _, s := range exact {
		want = append(want, *s)
	}
	slices.SortFunc(want, func(a, b spanRow) int { return cmp.Compare(a.Month, b.Month) })
	// The trigger computes each month's span from the rows themselves, so
	// appended spans are exact too; the times above sit on the months'
	// edges, where its month arithmetic must agree with monthStart's.
	if appended := spans(); !slices.Equal(appended, want) {
		t.Fatalf("spans after appending: %v, want %v", appended, want)
	}
	// As before the migration: no spans table. Then the migration, as
	// migrateStep runs it.
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ms, func(m migration) bool { return m.name == "reading_spans" })
	if i < 0 {
		t.Fatal("no migration named reading_spans")
	}
	if _, err := db.pool.Exec(ctx, `DROP TRIGGER IF EXISTS readings_widen_spans ON readings;
		DROP FUNCTION IF EXISTS reading_spans_widen(); DROP TABLE reading_spans`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, ms[i].sql, pgx.QueryExecModeSimpleProtocol)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := spans(); !slices.Equal(got, want) {
		t.Fatalf("spans after the migration: %v, want %v", got, want)
	}
}

// TestCursorDoesNotSkipConcurrentBatches: a reader paging with AfterSeq
// while batches across two months commit sees every reading. The spans
// and the partitions are read by separate statements; without bounding
// the partitions' seqs by the spans', a batch committed in between could
// show in one partition and not in the other's span, and the cursor would
// pass the readings the reader never looked for.
func TestCursorDoesNotSkipConcurrentBatches(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	a := time.Date(2024, time.January, 10, 0, 0, 0, 0, time.UTC)
	b := time.Date(2024, time.February, 10, 0, 0, 0, 0, time.UTC)
	// The months' spans overlap from the start.
	if err := db.AppendReadings(ctx, []store.Reading{{DeviceID: "d", Stream: "s", Time: a}, {DeviceID: "d", Stream: "s", Time: b}}); err != nil {
		t.Fatal(err)
	}
	const batches = 300
	var (
		wg      sync.WaitGroup
		werr    error
		written = map[int64]bool{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range batches {
			rs := make([]store.Reading, 4)
			for k := range rs {
				// Alternating months: each batch widens both spans.
				at := a
				if (i+k)%2 == 1 {
					at = b
				}
				rs[k] = store.Reading{DeviceID: "d", Stream: "s", Time: at.Add(time.Duration(i) * time.Second)}
			}
			if werr = db.AppendReadings(ctx, rs); werr != nil {
				return
			}
			for _, r := range rs {
				written[r.Seq] = true
			}
		}
	}()
	seen := map[int64]bool{}
	var after int64
	page := func() int {
		rs, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d", AfterSeq: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			seen[r.Seq] = true
			after = r.Seq
		}
		return len(rs)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			page()
		}
	}
	if werr != nil {
		t.Fatal(werr)
	}
	for page() > 0 {
	}
	for s := range written {
		if !seen[s] {
			t.Fatalf("the cursor passed seq %d without returning it (%d written, %d seen)", s, len(written), len(seen))
		}
	}
}

// TestReclaimSpaceKeepsAnAppendInFlight: a past month's partition that
// looks empty while an append into it is still in flight is not dropped
// once that append commits. Before, DROP TABLE waited for the append's
// locks and then dropped its committed readings with the table.
func TestReclaimSpaceKeepsAnAppendInFlight(t *testing.T) {
	db, url := openTest(t)
	ctx := t.Context()
	jan := time.Date(2024, time.January, 10, 0, 0, 0, 0, time.UTC)
	rs := []store.Reading{{DeviceID: "d1", Stream: "t", Time: jan}, {DeviceID: "d1", Stream: "t", Time: time.Now()}}
	if err := db.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d1", Until: jan.Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	// Next month's partition is made now, so that later passes only
	// look at January.
	if _, err := db.ReclaimSpace(ctx, 0); err != nil {
		t.Fatal(err)
	}
	janTS, _ := encTime(jan)
	raw, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close(context.Background())
	// The lock wait ReclaimSpace gives up after is short: a try counts
	// only if the append committed soon after ReclaimSpace began to wait.
	for try := 0; ; try++ {
		if try == 20 {
			t.Skip("could not commit within ReclaimSpace's lock wait in 20 tries (machine too loaded)")
		}
		if _, err := db.ReclaimSpace(ctx, 0); err != nil { // January goes, if empty
			t.Fatal(err)
		}
		if err := db.createPartition(ctx, monthStart(janTS), true); err != nil {
			t.Fatal(err)
		}
		// An append into January, as AppendReadings makes it, in flight.
		tx, err := raw.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockReadings); err != nil {
			t.Fatal(err)
		}
		var seq int64
		if err := tx.QueryRow(ctx, drawSeqs, 1).Scan(&seq); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO readings (seq, device_id, stream, ts, payload) VALUES ($1, 'd1', 't', $2, '')`, seq, janTS); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := db.ReclaimSpace(ctx, 0)
			done <- err
		}()
		var waited time.Time
		for waited.IsZero() {
			var n int
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				waited = time.Now()
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		committed := time.Since(waited)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM readings WHERE seq = $1`, seq).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("an append committed while ReclaimSpace waited was dropped with its partition (try %d, committed %v after the wait began)", try, committed)
		}
		if committed < lockWait/2 {
			return
		}
		// Too slow to tell: ReclaimSpace may have given up waiting.
		if _, err := db.pool.Exec(ctx, `DELETE FROM readings WHERE seq = $1`, seq); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPartitionQueryPlannedForItsValues: the readings since a time of
// one stream, asked again and again (as a dashboard does), read only the
// blocks holding them. A cached generic plan of the partition query, not
// knowing the limit and the seq bound, read every reading of the device
// in the month by its (device_id, seq) index instead.
func TestPartitionQueryPlannedForItsValues(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := t.Context()
	db, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2024, time.March, 1, 0, 0, 0, 0, time.UTC)
	const n = 4000
	rs := make([]store.Reading, n)
	for i := range rs {
		rs[i] = store.Reading{DeviceID: fmt.Sprintf("d%d", i%4), Stream: fmt.Sprintf("s%d", i/4%4),
			Time: t0.Add(time.Duration(i) * time.Minute), Payload: make([]byte, 140)}
	}
	if err := db.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE readings`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	stats, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close(context.Background())
	quiesce(t, stats)
	before := partitionBlocks(t, stats)
	db, err = Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	const queries = 20
	for range queries {
		// The last 6 hours of one stream: 23 readings.
		got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1", Stream: "s2", Since: t0.Add((n - 360) * time.Minute), Limit: 1000})
		if err != nil || len(got) != 23 {
			t.Fatalf("%d readings, %v", len(got), err)
		}
	}
	db.Close()
	quiesce(t, stats)
	per := float64(partitionBlocks(t, stats)["readings_p202403"]-before["readings_p202403"]) / queries
	// 23 readings in the last 360 rows, about 10 heap blocks, and an
	// index descent; the device's whole month is about 1,000 rows.
	if per > 40 {
		t.Errorf("%.1f blocks of the month's partition per query, want at most 40", per)
	}
	t.Logf("%.1f blocks per query", per)
}

// TestSpanOfADroppedPartition: a partition ReclaimSpace drops after a
// query read its span (the span still listed, the table gone) holds
// nothing the query misses: it was empty.
func TestSpanOfADroppedPartition(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	jan := time.Date(2024, time.January, 10, 0, 0, 0, 0, time.UTC)
	rs := []store.Reading{{DeviceID: "d1", Stream: "t", Time: jan}, {DeviceID: "d1", Stream: "t", Time: jan.AddDate(0, 1, 0)}}
	if err := db.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d1", Until: jan.Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	// As if between the spans and the partition queries.
	if _, err := db.pool.Exec(ctx, `DROP TABLE readings_p202401`); err != nil {
		t.Fatal(err)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil || len(got) != 1 || got[0].Seq != rs[1].Seq {
		t.Fatalf("Readings = %+v, %v; want February's reading", got, err)
	}
}

// TestSpansCoverAppendsOfAnOldHub: a hub of the previous version, which
// knows nothing of reading_spans, appends after a new hub ran migration
// 0015, as in a rolling upgrade of hubs sharing one database
// (docs/deployment.md). Its readings must still be read in seq order,
// without a time range and after a cursor: exports and app catch-up page
// that way and would otherwise miss them for good. (Reported in review as
// "CountReadings 3, Readings (no range) returned 1" when only the new
// append code wrote spans.)
func TestSpansCoverAppendsOfAnOldHub(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	jan := time.Date(2024, time.January, 5, 0, 0, 0, 0, time.UTC)
	feb := time.Date(2024, time.February, 5, 0, 0, 0, 0, time.UTC)
	first := []store.Reading{{DeviceID: "d1", Stream: "t", Time: jan, Payload: []byte(`{}`)}}
	if err := db.AppendReadings(ctx, first); err != nil {
		t.Fatal(err)
	}
	// The previous version's append: seqs drawn under the readings lock,
	// the rows copied in (COPY, or an INSERT as an operator might), no
	// span touched.
	oldAppend := func(copyIn bool, at ...time.Time) {
		t.Helper()
		months := []int64{}
		for _, a := range at {
			ts, _ := encTime(a)
			months = append(months, monthStart(ts))
		}
		if err := db.ensurePartitions(ctx, months); err != nil {
			t.Fatal(err)
		}
		err := db.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockReadings); err != nil {
				return err
			}
			rows := make([][]any, len(at))
			for i, a := range at {
				var seq int64
				if err := tx.QueryRow(ctx, `SELECT nextval('readings_seq')`).Scan(&seq); err != nil {
					return err
				}
				ts, _ := encTime(a)
				rows[i] = []any{seq, "d1", "t", ts, []byte(`{}`), int32(0)}
				if !copyIn {
					if _, err := tx.Exec(ctx, `INSERT INTO readings (seq, device_id, stream, ts, payload, manifest_version)
						VALUES ($1, $2, $3, $4, $5, $6)`, rows[i]...); err != nil {
						return err
					}
				}
			}
			if copyIn {
				_, err := tx.CopyFrom(ctx, pgx.Identifier{"readings"}, readingCopyCols, pgx.CopyFromRows(rows))
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	oldAppend(true, feb, jan) // a month the new hub never appended to, and one above January's span
	oldAppend(false, feb)
	n, err := db.CountReadings(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("CountReadings %d, want 4", n)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != n {
		t.Fatalf("Readings (no range) returned %d of %d: %v", len(got), n, readingSeqs(got))
	}
	after, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1", AfterSeq: first[0].Seq})
	if err != nil {
		t.Fatal(err)
	}
	if want := readingSeqs(got)[1:]; !slices.Equal(readingSeqs(after), want) {
		t.Fatalf("Readings after seq %d: %v, want %v", first[0].Seq, readingSeqs(after), want)
	}
}

// TestMigrationSpansHoldsAppendsOut: migration 0015 running while a hub
// of the previous version appends. An append in flight when the migration
// starts is in its backfill (the migration waits for it); one that comes
// after the backfill waits until the migration commits, so it finds the
// trigger in place. Either way no reading lands between the backfill and
// the trigger, outside every span.
func TestMigrationSpansHoldsAppendsOut(t *testing.T) {
	db, url := openTest(t)
	ctx := t.Context()
	jan := time.Date(2024, time.January, 5, 0, 0, 0, 0, time.UTC)
	feb := time.Date(2024, time.February, 5, 0, 0, 0, 0, time.UTC)
	mar := time.Date(2024, time.March, 5, 0, 0, 0, 0, time.UTC)
	if err := db.AppendReadings(ctx, []store.Reading{{DeviceID: "d1", Stream: "t", Time: jan}}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []time.Time{feb, mar} {
		ts, _ := encTime(m)
		if err := db.ensurePartitions(ctx, []int64{monthStart(ts)}); err != nil {
			t.Fatal(err)
		}
	}
	// The database as before the migration.
	if _, err := db.pool.Exec(ctx, `DROP TRIGGER IF EXISTS readings_widen_spans ON readings;
		DROP FUNCTION IF EXISTS reading_spans_widen(); DROP TABLE reading_spans`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ms, func(m migration) bool { return m.name == "reading_spans" })
	if i < 0 {
		t.Fatal("no migration named reading_spans")
	}
	conn := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	oldHub, migrator, later := conn(), conn(), conn()
	oldInsert := `INSERT INTO readings (seq, device_id, stream, ts, payload)
		VALUES (nextval('readings_seq'), 'd1', 't', $1, '')`

	// An old hub's append into February, in flight.
	a, err := oldHub.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Rollback(context.Background())
	febTS, _ := encTime(feb)
	if _, err := a.Exec(ctx, oldInsert, febTS); err != nil {
		t.Fatal(err)
	}
	// The migration, as migrateStep runs it, waits for it...
	m, err := migrator.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Rollback(context.Background())
	ran := make(chan error, 1)
	go func() {
		_, err := m.Exec(ctx, ms[i].sql, pgx.QueryExecModeSimpleProtocol)
		ran <- err
	}()
	for waiting := false; !waiting; {
		if err := later.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
			WHERE pid = $1 AND wait_event_type = 'Lock'`, migrator.PgConn().PID()).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	// ...and, backfilled but not committed, holds the next one out.
	marTS, _ := encTime(mar)
	if _, err := later.Exec(ctx, `SET lock_timeout = '200ms'`); err != nil {
		t.Fatal(err)
	}
	if _, err := later.Exec(ctx, oldInsert, marTS); pgCode(err) != codeLockNotAvailable {
		t.Fatalf("an insert while the migration is uncommitted: %v, want it to wait (lock_not_available)", err)
	}
	if err := m.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := later.Exec(ctx, oldInsert, marTS); err != nil {
		t.Fatal(err)
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Readings (no range) after the migration: %v, want all 3", readingSeqs(got))
	}
}
