package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// The history benchmarks are the SQLite engine's of the same names (see
// internal/store/sqlite/history_bench_test.go, which describes the fill)
// on PostgreSQL: appends and GET readings' queries with 100k, 1M or 10M
// readings stored. They only run with -bench. Sizes come from
// CANDOR_BENCH_HISTORY (default "100000,1000000"):
//
//	CANDOR_BENCH_HISTORY=100000,1000000,10000000 go test -run '^$' \
//	    -bench 'AppendHistory|ReadingsHistory' -benchtime 100x ./internal/store/postgres/
//
// Each filled database is built once and kept on the server as a
// template named after the schema version and the fill's layout
// (candor_bench_hist_…; drop them when done), grown from the next
// smaller one. Benchmarks that write work on a copy (CREATE DATABASE …
// TEMPLATE, STRATEGY FILE_COPY). After the fill the template is
// analysed, as autovacuum would have done on a hub running that long.

const (
	historyDevices = 100
	historyStreams = 4
	historyEvery   = time.Second
	historyLayout  = "d100s4p140e1s"
)

var (
	historyT0      = time.Date(2025, time.March, 1, 12, 0, 0, 123456000, time.UTC)
	historyPayload = []byte(strings.Repeat("x", 140))
)

func historyDevice(d int) string { return fmt.Sprintf("dev_%012d", d) }

func historyStream(s int) string { return "stream" + strconv.Itoa(s) }

func historyTime(i int) time.Time { return historyT0.Add(time.Duration(i) * historyEvery) }

func historyBatch(n, start int) []store.Reading {
	rs := make([]store.Reading, n)
	for k := range rs {
		i := start + k
		rs[k] = store.Reading{
			DeviceID: historyDevice(i % historyDevices),
			Stream:   historyStream(i / historyDevices % historyStreams),
			Time:     historyTime(i),
			Payload:  historyPayload,
		}
	}
	return rs
}

func historySizes(b *testing.B) []int {
	v := os.Getenv("CANDOR_BENCH_HISTORY")
	if v == "" {
		return []int{100_000, 1_000_000}
	}
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("CANDOR_BENCH_HISTORY: %q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out
}

// dbURL is the URL of database name on the test server.
func dbURL(b *testing.B, name string) string {
	u, err := url.Parse(pgtest.AdminURL())
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func adminConn(b *testing.B) *pgx.Conn {
	b.Helper()
	// NewDatabase skips the benchmark when there is no server; its own
	// empty database is dropped at the end.
	pgtest.NewDatabase(b)
	c, err := pgx.Connect(context.Background(), pgtest.AdminURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// historyName names the template by the schema's migrations, their
// number and a hash of their text: a migration amended before it ships
// (a trigger added, say) must not reuse a template the old text built.
func historyName(stored int) string {
	ms, _ := migrations()
	h := crc32.NewIEEE()
	for _, m := range ms {
		h.Write([]byte(m.sql))
	}
	return fmt.Sprintf("candor_bench_hist_m%d_%08x_%s_%d", len(ms), h.Sum32(), strings.ToLower(historyLayout), stored)
}

// historyDB returns the name of the template database holding the fill's
// first stored readings, building it if needed. Nothing may write to it.
func historyDB(b *testing.B, admin *pgx.Conn, stored int) string {
	b.Helper()
	ctx := context.Background()
	name := historyName(stored)
	var names []string
	rows, err := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'candor\_bench\_hist\_%'`)
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		b.Fatal(err)
	}
	if slices.Contains(names, name) {
		return name
	}
	from := 0
	for _, n := range historySizes(b) {
		if n < stored && n > from && slices.Contains(names, historyName(n)) {
			from = n
		}
	}
	tmp := name + "_building"
	if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+tmp+` WITH (FORCE)`); err != nil {
		b.Fatal(err)
	}
	create := `CREATE DATABASE ` + tmp
	if from > 0 {
		create += ` TEMPLATE ` + historyName(from) + ` STRATEGY FILE_COPY`
	}
	if _, err := admin.Exec(ctx, create); err != nil {
		b.Fatal(err)
	}
	db, err := Open(ctx, dbURL(b, tmp))
	if err != nil {
		b.Fatal(err)
	}
	const batch = 10_000
	start, lap := time.Now(), time.Now()
	for n := from; n < stored; n += batch {
		if err := db.AppendReadings(ctx, historyBatch(min(batch, stored-n), n)); err != nil {
			db.Close()
			b.Fatal(err)
		}
		if done := n + batch; done%1_000_000 == 0 {
			b.Logf("fill: %d stored, last million at %.0f rows/s", done, 1e6/time.Since(lap).Seconds())
			lap = time.Now()
		}
	}
	if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE readings`); err != nil {
		b.Fatal(err)
	}
	db.Close()
	b.Logf("fill: %d → %d readings in %s", from, stored, time.Since(start).Round(time.Second))
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+tmp+` RENAME TO `+name); err != nil {
		b.Fatal(err)
	}
	return name
}

// historyCopy returns the URL of a fresh copy of the template of stored
// readings, dropped when b ends.
func historyCopy(b *testing.B, admin *pgx.Conn, stored int) string {
	b.Helper()
	ctx := context.Background()
	tmpl := historyDB(b, admin, stored)
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := "candor_test_" + hex.EncodeToString(r[:])
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+tmpl+` STRATEGY FILE_COPY`); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	})
	return dbURL(b, name)
}

// BenchmarkAppendHistory: synced appends of 10, 1,000 and 4,000 readings
// on top of a stored history (see the SQLite engine's).
func BenchmarkAppendHistory(b *testing.B) {
	for _, stored := range historySizes(b) {
		for _, batch := range []int{10, 1000, 4000} {
			b.Run(fmt.Sprintf("stored=%d/batch=%d", stored, batch), func(b *testing.B) {
				admin := adminConn(b)
				db, err := Open(context.Background(), historyCopy(b, admin, stored))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { db.Close() })
				ctx := context.Background()
				warm := max(batch, historyDevices)
				if err := db.AppendReadings(ctx, historyBatch(warm, stored)); err != nil {
					b.Fatal(err)
				}
				rows := stored + warm
				var took []time.Duration
				for b.Loop() {
					rs := historyBatch(batch, rows)
					start := time.Now()
					if err := db.AppendReadings(ctx, rs); err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(start))
					rows += batch
				}
				var sum time.Duration
				for _, d := range took {
					sum += d
				}
				b.ReportMetric(float64(rows-stored-warm)/sum.Seconds(), "rows/s")
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
				b.ReportMetric(float64(took[len(took)*99/100])/1e6, "p99-ms")
			})
		}
	}
}

// historyQueries are the SQLite engine's GET readings queries.
var historyQueries = []struct {
	name string
	q    func(dev, stored int) store.ReadingQuery
}{
	{"oldest", func(dev, stored int) store.ReadingQuery {
		return store.ReadingQuery{DeviceID: historyDevice(dev), Limit: 100}
	}},
	{"after", func(dev, stored int) store.ReadingQuery {
		return store.ReadingQuery{DeviceID: historyDevice(dev), AfterSeq: int64(stored - 100*historyDevices), Limit: 100}
	}},
	{"latest", func(dev, stored int) store.ReadingQuery {
		return store.ReadingQuery{DeviceID: historyDevice(dev), Stream: historyStream(dev % historyStreams),
			Since: historyTime(stored).Add(-6 * time.Hour), Limit: 1000}
	}},
	// One hour a day ago (36 readings), every stream: since and until
	// at a fixed distance from now.
	{"dayago", func(dev, stored int) store.ReadingQuery {
		at := historyTime(stored).Add(-24 * time.Hour)
		return store.ReadingQuery{DeviceID: historyDevice(dev), Since: at, Until: at.Add(time.Hour), Limit: 1000}
	}},
	{"range", func(dev, stored int) store.ReadingQuery {
		mid := historyTime(stored / 2)
		return store.ReadingQuery{DeviceID: historyDevice(dev), Since: mid, Until: mid.Add(time.Hour), Limit: 1000}
	}},
}

// BenchmarkReadingsHistory: GET readings' store queries with the fill's
// readings stored, on the template itself (they only read).
func BenchmarkReadingsHistory(b *testing.B) {
	for _, stored := range historySizes(b) {
		for _, hq := range historyQueries {
			b.Run(fmt.Sprintf("stored=%d/%s", stored, hq.name), func(b *testing.B) {
				admin := adminConn(b)
				db, err := Open(context.Background(), dbURL(b, historyDB(b, admin, stored)))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { db.Close() })
				ctx := context.Background()
				got, n := 0, 0
				for b.Loop() {
					rs, err := db.Readings(ctx, hq.q(n%historyDevices, stored))
					if err != nil || len(rs) == 0 {
						b.Fatalf("%d readings, %v", len(rs), err)
					}
					got += len(rs)
					n++
				}
				b.ReportMetric(float64(got)/float64(n), "readings/op")
			})
		}
	}
}
