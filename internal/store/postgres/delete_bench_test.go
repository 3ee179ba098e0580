package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// BenchmarkDeleteBlocks counts the block accesses of the purger's and
// retention's bounded deletes (PurgeReadings, DeleteReadings with a limit,
// in the callers' chunks of 5,000), and of LastReadingAt, with 1, 4 and 12
// months stored: issue
// #19 asks for their cost to stay flat as history grows. Each month holds
// 16,000 readings of each of two heavy devices and 2,000 of each of two
// light ones, interleaved by seq; every measured call deletes 5,000 rows
// of the earliest month (at most 3 calls: -benchtime 3x). Counts, not
// times:
//
//	go test -run '^$' -bench DeleteBlocks -benchtime 3x ./internal/store/postgres/
func BenchmarkDeleteBlocks(b *testing.B) {
	ctx := context.Background()
	const (
		heavy, light = 16000, 2000
		chunk        = 5000
	)
	for _, months := range []int{1, 4, 12} {
		url := pgtest.NewDatabase(b)
		db, err := Open(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		first := time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)
		for m := range months {
			start := first.AddDate(0, m, 0)
			end := start.AddDate(0, 1, 0)
			if err := db.ensurePartitions(ctx, []int64{start.UnixNano()}); err != nil {
				b.Fatal(err)
			}
			// Through the parent, so the spans' trigger sees the rows.
			step := end.Sub(start).Nanoseconds() / heavy
			if _, err := db.pool.Exec(ctx, `INSERT INTO readings (seq, device_id, stream, ts, payload, manifest_version)
				SELECT nextval('readings_seq'), 'd' || k, 's', $1::bigint + i * $2::bigint + k, '\x7b7d'::bytea, 1
				  FROM generate_series(0, $3 - 1) i, generate_series(0, 3) k
				 WHERE k < 2 OR i % ($3 / $4) = 0
				 ORDER BY i, k`, start.UnixNano(), step, heavy, light); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE readings`); err != nil {
			b.Fatal(err)
		}
		db.Close()
		// Retention as the job runs it: a stream's readings older than
		// its keep, here up to the last day of January, whatever the months
		// after.
		until := first.Add(30 * 24 * time.Hour)
		for _, tc := range []struct {
			name string
			call func(db *DB) (int64, error)
		}{
			{"purge", func(db *DB) (int64, error) { return db.PurgeReadings(ctx, store.Purge{DeviceID: "d0"}, chunk) }},
			{"retention", func(db *DB) (int64, error) {
				return db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "d1", Stream: "s", Until: until}, chunk)
			}},
			// Not a delete: the assessment's newest reading of a light
			// device (in the last month), counted as one call of chunk.
			{"newest", func(db *DB) (int64, error) {
				at, err := db.LastReadingAt(ctx, "d2")
				if err == nil && at.Before(first.AddDate(0, months-1, 0)) {
					err = fmt.Errorf("newest reading at %v, before the last month", at)
				}
				return chunk, err
			}},
		} {
			b.Run(fmt.Sprintf("months=%d/%s", months, tc.name), func(b *testing.B) {
				stats, err := pgx.Connect(ctx, url)
				if err != nil {
					b.Fatal(err)
				}
				defer stats.Close(ctx)
				quiesce(b, stats)
				s0, p0 := pgBlocks(b, stats), partitionBlocks(b, stats)
				db, err := Open(ctx, url)
				if err != nil {
					b.Fatal(err)
				}
				calls := 0
				for b.Loop() {
					if calls == 3 {
						b.Fatal("run with -benchtime 3x or less: the fourth chunk is not in the first month")
					}
					n, err := tc.call(db)
					if err != nil || n != chunk {
						b.Fatalf("deleted %d, %v", n, err)
					}
					calls++
				}
				db.Close()
				quiesce(b, stats)
				p1 := partitionBlocks(b, stats)
				visited := 0
				for name, n := range p1 {
					if n != p0[name] {
						visited++
					}
				}
				b.ReportMetric(float64(visited), "partitions-visited")
				reportBlocks(b, pgBlocks(b, stats).sub(s0), float64(calls), "call")
			})
		}
	}
}
