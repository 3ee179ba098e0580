package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// BenchmarkFirstReadings measures one batch holding one reading of each
// of 100 devices, as the batch writer commits it when 100 devices start
// sending: devices whose first reading this is ("created": made with
// CreateDevice just before), devices that have sent before ("known"), and
// devices that have sent before whose keys and mark states the store
// has not cached ("uncached", as after a restart: each has 300 readings
// stored).
// The first readings of a phase on a fresh hub used to take about ten
// times the statements' time of later ones (docs/benchmarks.md, session
// 10 and 11), most of the bench's paced p99.
func BenchmarkFirstReadings(b *testing.B) {
	const devices = 100
	for _, kind := range []string{"known", "created", "uncached"} {
		b.Run(kind, func(b *testing.B) {
			ctx := b.Context()
			db := openMigrated(b)
			if err := db.CreateHousehold(ctx, store.Household{ID: "h1"}); err != nil {
				b.Fatal(err)
			}
			now := time.Now().UTC().Truncate(time.Millisecond)
			batch := func(round int) []store.Reading {
				rs := make([]store.Reading, devices)
				for i := range rs {
					id := fmt.Sprintf("d%d-%d", round, i)
					if kind == "known" || kind == "uncached" {
						id = fmt.Sprintf("d%d", i)
					}
					rs[i] = store.Reading{DeviceID: id, Stream: "temp", Time: now.Add(time.Duration(round) * time.Millisecond), Payload: historyPayload}
				}
				return rs
			}
			create := func(rs []store.Reading) {
				for _, r := range rs {
					d := store.Device{ID: r.DeviceID, HouseholdID: "h1", Name: r.DeviceID, Type: "meter", SecretHash: "x", CredentialSetAt: now, CreatedAt: now}
					if err := db.CreateDevice(ctx, d); err != nil {
						b.Fatal(err)
					}
				}
			}
			if kind == "known" || kind == "uncached" {
				rs := batch(0)
				create(rs)
				for range 300 {
					if err := db.AppendReadings(ctx, rs); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ResetTimer()
			for round := 1; round <= b.N; round++ {
				rs := batch(round)
				switch kind {
				case "created":
					b.StopTimer()
					create(rs)
					b.StartTimer()
				case "uncached":
					b.StopTimer()
					db.keyMu.Lock()
					clear(db.marks)
					for _, r := range rs {
						db.dkeys.Delete(r.DeviceID)
					}
					db.keyMu.Unlock()
					b.StartTimer()
				}
				if err := db.AppendReadings(ctx, rs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
