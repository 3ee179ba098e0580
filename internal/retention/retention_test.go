package retention

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/postgres"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// choices is the retention people chose, by device and stream.
type choices map[[2]string]time.Duration

func (c choices) Allowed(deviceID, stream string) consent.Decision {
	d, ok := c[[2]string{deviceID, stream}]
	if !ok {
		return consent.Decision{Resolved: true}
	}
	return consent.Decision{Resolved: true, Retention: manifest.Duration{Text: d.String(), D: d}}
}

// perStream hides OldestReadings, so the job deletes per device and
// stream as it did before it skipped devices.
type perStream struct{ Store }

// TestSweepSkipsOnlyDevicesWithNothingToDelete runs the same sweeps over
// two SQLite stores holding the same readings, one offering
// OldestReadings (devices it rules out are skipped) and one not (one
// deletion per device and stream): they must delete the same readings,
// and afterwards no reading may be older than its stream's retention.
// Door sensors keep 30 days; some people chose 1 day for one stream, so
// one device's streams have different retentions. Readings come staged
// and clustered, with device clocks sometimes set far back, across
// restarts and range deletions of a device's oldest readings (which a
// cached or stale oldest time would get wrong).
// Both engines (PostgreSQL as the other store tests find it: pgtest).
func TestSweepSkipsOnlyDevicesWithNothingToDelete(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		open func(t *testing.T, i int) func() (store.Store, error)
	}{
		{"sqlite", func(t *testing.T, i int) func() (store.Store, error) {
			path := filepath.Join(dir, fmt.Sprintf("%d.db", i))
			sqlitetest.Write(t, path) // a copy of a migrated store; each opener call reopens it
			return func() (store.Store, error) { return sqlite.Open(context.Background(), path) }
		}},
		{"postgres", func(t *testing.T, i int) func() (store.Store, error) {
			url := pgtest.NewDatabase(t)
			return func() (store.Store, error) { return postgres.Open(context.Background(), url) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the engines' stores are apart: files here, a database there
			var openers [2]func() (store.Store, error)
			for i := range openers {
				openers[i] = tt.open(t, i)
			}
			sweepBoth(t, openers)
		})
	}
}

func sweepBoth(t *testing.T, openers [2]func() (store.Store, error)) {
	ctx := context.Background()
	dbs := make([]store.Store, 2)
	open := func(i int) {
		db, err := openers[i]()
		if err != nil {
			t.Fatal(err)
		}
		dbs[i] = db
	}
	open(0)
	open(1)
	t.Cleanup(func() { dbs[0].Close(); dbs[1].Close() })

	const devs = 6
	chose := choices{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range dbs {
		if err := dbs[i].CreateHousehold(ctx, store.Household{ID: "hh", Name: "Home", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for d := range devs {
			id := fmt.Sprintf("door-%d", d)
			if err := dbs[i].CreateDevice(ctx, store.Device{ID: id, HouseholdID: "hh", Name: id, Type: "door-sensor", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	chose[[2]string{"door-1", "battery"}] = 24 * time.Hour
	chose[[2]string{"door-2", "contact"}] = 24 * time.Hour
	jobs := func() [2]*Job {
		var out [2]*Job
		for i, st := range []Store{dbs[0], perStream{dbs[1]}} {
			cat, err := catalog.Open(ctx, dbs[i], catalog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			out[i] = &Job{Store: st, Catalog: cat, Consent: chose}
		}
		return out
	}
	js := jobs()
	if _, ok := js[0].Store.(Oldest); !ok {
		t.Fatal("the store does not offer OldestReadings")
	}

	rng := rand.New(rand.NewPCG(3, 4))
	streams := []string{"battery", "contact"}
	keep := func(dev, stream string) time.Duration {
		if d, ok := chose[[2]string{dev, stream}]; ok {
			return d
		}
		return 30 * 24 * time.Hour
	}
	for step := range 60 {
		now = now.Add(time.Duration(rng.IntN(72)) * time.Hour)
		switch op := rng.IntN(8); {
		case op < 4: // readings arrive
			n := 1 + rng.IntN(3)
			if rng.IntN(3) == 0 {
				n = 300 + rng.IntN(300) // a batch large enough to skip the stage
			}
			batch := make([]store.Reading, n)
			for k := range batch {
				at := now.Add(-time.Duration(rng.IntN(3600)) * time.Second)
				if rng.IntN(10) == 0 {
					at = now.Add(-time.Duration(rng.IntN(60*24)) * time.Hour) // a clock set back
				}
				batch[k] = store.Reading{DeviceID: fmt.Sprintf("door-%d", rng.IntN(devs)), Stream: streams[rng.IntN(2)],
					Time: at, Payload: []byte("{}"), ManifestVersion: 1}
			}
			for _, db := range dbs {
				if err := db.AppendReadings(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
		case op < 5: // a person deletes a device's oldest readings
			id := fmt.Sprintf("door-%d", rng.IntN(devs))
			q := store.ReadingQuery{DeviceID: id, Until: now.Add(-time.Duration(rng.IntN(40*24)) * time.Hour)}
			for _, db := range dbs {
				if _, err := db.DeleteReadings(ctx, q, 0); err != nil {
					t.Fatal(err)
				}
			}
		case op < 6: // restart
			for i := range dbs {
				if err := dbs[i].Close(); err != nil {
					t.Fatal(err)
				}
				open(i)
			}
			js = jobs()
		}
		var got [2]int64
		for i, j := range js {
			n, err := j.SweepAt(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			got[i] = n
		}
		if got[0] != got[1] {
			t.Fatalf("step %d: the sweep that skips deleted %d readings, the one per stream %d", step, got[0], got[1])
		}
		for d := range devs {
			id := fmt.Sprintf("door-%d", d)
			var counts [2]int64
			for i, db := range dbs {
				n, err := db.CountReadings(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				counts[i] = n
				for _, s := range streams {
					until := now.Add(-keep(id, s))
					rs, err := db.Readings(ctx, store.ReadingQuery{DeviceID: id, Stream: s, Until: until, Limit: 1})
					if err != nil {
						t.Fatal(err)
					}
					if len(rs) > 0 {
						t.Fatalf("step %d: store %d kept %s's %s reading of %s past its retention of %s", step, i, id, s, rs[0].Time, keep(id, s))
					}
				}
			}
			if counts[0] != counts[1] {
				t.Fatalf("step %d: %s has %d readings in the store that skips, %d in the other", step, id, counts[0], counts[1])
			}
		}
	}
}
