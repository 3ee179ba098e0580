package sqlite

import (
	"context"
	"database/sql"
	"testing"

	"github.com/candor-iot/candor/internal/store"

	"modernc.org/sqlite"
)

// Issue #19 asks for ingest and GET readings at 10M stored readings to be
// within 10% of 100k. On a shared 2-core VM with CPU steal, timings of
// identical runs differ by more than that, so the history benchmarks
// also count work the noise cannot move: the pages SQLite's pager hands
// out to the b-tree layer (SQLITE_DBSTATUS_CACHE_HIT + CACHE_MISS of the
// connection), i.e. every page visit of the statements, whether it came
// from the connection's cache or from the file.

// pagerCounts is one connection's cumulative pager counters.
type pagerCounts struct{ hit, miss, write int }

func (c pagerCounts) visits() int { return c.hit + c.miss }

func (c pagerCounts) sub(d pagerCounts) pagerCounts {
	return pagerCounts{c.hit - d.hit, c.miss - d.miss, c.write - d.write}
}

// pager reads the counters of pool's connection. pool must hold exactly
// one connection (the writer; the readers after SetMaxOpenConns(1)):
// another would have counters of its own.
func pager(tb testing.TB, pool *sql.DB) pagerCounts {
	tb.Helper()
	ctx := context.Background()
	conn, err := pool.Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	var c pagerCounts
	err = conn.Raw(func(dc any) error {
		st, ok := dc.(sqlite.DBStatus)
		if !ok {
			tb.Skip("driver connection has no sqlite3_db_status")
		}
		for _, f := range []struct {
			op  sqlite.DBStatusOp
			dst *int
		}{{sqlite.DBStatusCacheHit, &c.hit}, {sqlite.DBStatusCacheMiss, &c.miss}, {sqlite.DBStatusCacheWrite, &c.write}} {
			cur, _, err := st.Status(f.op, false)
			if err != nil {
				return err
			}
			*f.dst = cur
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestPagerCounts: the counters move with the work done, so the
// benchmarks' page figures can neither stay at zero nor miss a query's
// size.
func TestPagerCounts(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	ctx := context.Background()
	db.readers.SetMaxOpenConns(1)
	w0 := pager(t, db.writer)
	for n := 0; n < 40_000; n += 4000 {
		if err := db.AppendReadings(ctx, historyBatch(4000, n)); err != nil {
			t.Fatal(err)
		}
	}
	if w := pager(t, db.writer).sub(w0); w.visits() == 0 || w.write == 0 {
		t.Fatalf("appends of 40,000 readings: writer counted %+v", w)
	}
	visits := map[int]int{}
	for _, limit := range []int{10, 400} {
		r0 := pager(t, db.readers)
		rs, err := db.Readings(ctx, store.ReadingQuery{DeviceID: historyDevice(0), Limit: limit})
		if err != nil || len(rs) != limit {
			t.Fatalf("limit %d: %d readings, %v", limit, len(rs), err)
		}
		visits[limit] = pager(t, db.readers).sub(r0).visits()
	}
	// 400 readings of 140 bytes span tens of pages, 10 readings one or two.
	if visits[10] <= 0 || visits[400] < visits[10]+10 {
		t.Fatalf("page visits by readings read: %v", visits)
	}
}
