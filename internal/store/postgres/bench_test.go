package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// BenchmarkAppendReadings is the SQLite engine's benchmark of the same
// name on PostgreSQL: 1,000-row batches of 100-byte readings from 100
// interleaved devices, each batch one durable transaction (COPY, commit
// with synchronous_commit on). Run both side by side:
//
//	go test -run '^$' -bench AppendReadings ./internal/store/sqlite/ ./internal/store/postgres/
func BenchmarkAppendReadings(b *testing.B) {
	for _, batchSize := range []int{1000, 100, 10} {
		b.Run(fmt.Sprintf("batch=%d", batchSize), func(b *testing.B) {
			benchAppend(b, batchSize)
		})
	}
}

func benchAppend(b *testing.B, batchSize int) {
	const devices = 100
	db, err := Open(context.Background(), pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := context.Background()
	devIDs := make([]string, devices)
	for i := range devIDs {
		devIDs[i] = fmt.Sprintf("device-%03d", i)
	}
	payload := []byte(`{"temperature_c":21.37,"humidity_pct":48.2,"battery_v":3.71,"rssi_dbm":-67,"seq":1234567}`)
	for len(payload) < 100 {
		payload = append(payload, ' ')
	}
	t0 := time.Date(2025, time.March, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]store.Reading, batchSize)

	b.ReportAllocs()
	rows := 0
	for b.Loop() {
		ts := t0.Add(time.Duration(rows) * time.Microsecond)
		for i := range batch {
			batch[i] = store.Reading{
				DeviceID: devIDs[(rows+i)%devices],
				Stream:   "telemetry",
				Time:     ts.Add(time.Duration(i) * time.Microsecond),
				Payload:  payload,
			}
		}
		if err := db.AppendReadings(ctx, batch); err != nil {
			b.Fatal(err)
		}
		rows += batchSize
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
