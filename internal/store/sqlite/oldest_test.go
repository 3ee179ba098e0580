package sqlite

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// TestOldestReadingsNeverLate checks what lets a retention sweep skip a
// device: OldestReadings is never later than the device's oldest stored
// reading, through appends (staged and clustered, times jumping back),
// retention deletions per stream, range deletions that take a device's
// oldest readings, and restarts. A time too late would let a sweep skip
// a device whose readings are past their retention. Before any deletion
// it is exact, or the sweep would skip nothing.
func TestOldestReadingsNeverLate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "candor.db")
	db := openPath(t, path)
	rng := rand.New(rand.NewPCG(7, 19))
	const devs = 4
	model := map[string][]store.Reading{} // by device, as stored
	clock := t0
	deleted := false

	check := func(step string) {
		t.Helper()
		got, err := db.OldestReadings(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for d := range devs {
			id := fmt.Sprintf("dev-%d", d)
			rs := model[id]
			o, ok := got[id]
			if len(rs) == 0 {
				continue // absent or any time: nothing to delete either way
			}
			lo := rs[0].Time
			for _, r := range rs {
				if r.Time.Before(lo) {
					lo = r.Time
				}
			}
			switch {
			case !ok:
				t.Fatalf("%s: %s has %d readings but no oldest time", step, id, len(rs))
			case o.After(lo):
				t.Fatalf("%s: %s oldest %s, after its oldest reading %s: a sweep would skip it", step, id, o, lo)
			case !deleted && !o.Equal(lo):
				t.Fatalf("%s: %s oldest %s, want exactly %s before any deletion", step, id, o, lo)
			}
		}
	}

	for i := range 300 {
		switch op := rng.IntN(10); {
		case op < 6: // append, staged (small) or clustered (large)
			n := 1 + rng.IntN(4)
			if rng.IntN(3) == 0 {
				n = db.stageBelow + rng.IntN(400)
			}
			batch := make([]store.Reading, n)
			for k := range batch {
				clock = clock.Add(time.Duration(rng.IntN(30)) * time.Second)
				at := clock
				if rng.IntN(40) == 0 { // a clock set back, far
					at = clock.Add(-time.Duration(rng.IntN(90*24)) * time.Hour)
				}
				batch[k] = store.Reading{DeviceID: fmt.Sprintf("dev-%d", rng.IntN(devs)), Stream: fmt.Sprintf("s%d", rng.IntN(3)),
					Time: at, Payload: []byte("{}"), ManifestVersion: 1}
			}
			if err := db.AppendReadings(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
			for _, r := range batch {
				model[r.DeviceID] = append(model[r.DeviceID], r)
			}
		case op < 8: // retention: one stream's readings before a cutoff
			id, stream := fmt.Sprintf("dev-%d", rng.IntN(devs)), fmt.Sprintf("s%d", rng.IntN(3))
			until := clock.Add(-time.Duration(rng.IntN(48)) * time.Hour)
			if _, err := db.DeleteReadings(t.Context(), store.ReadingQuery{DeviceID: id, Stream: stream, Until: until}, 5000); err != nil {
				t.Fatal(err)
			}
			kept := model[id][:0:0]
			for _, r := range model[id] {
				if r.Stream != stream || !r.Time.Before(until) {
					kept = append(kept, r)
				}
			}
			model[id], deleted = kept, true
		case op < 9: // a person deletes a range, often the oldest readings
			id := fmt.Sprintf("dev-%d", rng.IntN(devs))
			since := clock.Add(-time.Duration(rng.IntN(100*24)) * time.Hour)
			until := since.Add(time.Duration(1+rng.IntN(72)) * time.Hour)
			if _, err := db.DeleteReadings(t.Context(), store.ReadingQuery{DeviceID: id, Since: since, Until: until}, 0); err != nil {
				t.Fatal(err)
			}
			kept := model[id][:0:0]
			for _, r := range model[id] {
				if r.Time.Before(since) || !r.Time.Before(until) {
					kept = append(kept, r)
				}
			}
			model[id], deleted = kept, true
		default: // restart
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openPath(t, path)
		}
		check(fmt.Sprintf("step %d", i))
	}
	for d := range devs {
		id := fmt.Sprintf("dev-%d", d)
		if n, err := db.CountReadings(t.Context(), id); err != nil || n != int64(len(model[id])) {
			t.Fatalf("%s: %d readings stored (%v), model has %d", id, n, err, len(model[id]))
		}
	}
}
