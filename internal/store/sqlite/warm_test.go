package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// warmStore makes a store file with devices that sent readings (marks,
// staged and merged readings), one erased device whose purge is pending,
// and readings of an id that is no device; it returns the file's path and
// the devices that exist.
func warmStore(t *testing.T, devices int) (string, []string) {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateHousehold(ctx, store.Household{ID: "h1"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var ids []string
	for i := range devices + 1 {
		id := fmt.Sprintf("dev-%03d", i)
		if err := db.CreateDevice(ctx, store.Device{ID: id, HouseholdID: "h1", Name: id, Type: "meter", SecretHash: "x", CredentialSetAt: t0, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// Rounds of small (staged) batches, every device a few readings a
	// round, some past a mark; times go back now and then.
	for round := range 5 {
		var rs []store.Reading
		for i, id := range append(ids, "not-a-device") {
			for j := range 3 + i%(markEvery/4) {
				ts := t0.Add(time.Duration((round*50+j)%97) * time.Second)
				rs = append(rs, store.Reading{DeviceID: id, Stream: "s", Time: ts, Payload: []byte("{}")})
			}
		}
		for len(rs) > 0 {
			n := min(len(rs), db.stageBelow-1)
			if err := db.AppendReadings(ctx, rs[:n]); err != nil {
				t.Fatal(err)
			}
			rs = rs[n:]
		}
	}
	erased := ids[len(ids)-1]
	if err := db.Erase(ctx, store.Erasure{DeleteDevices: []string{erased}, Reason: "t", At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, ids[:len(ids)-1]
}

// After a restart, the caches of device keys and mark states fill in the
// background (warmCaches) with what the file says, for the devices that
// exist, so their first readings do not look them up in the writer's
// transaction.
func TestWarmCachesAfterReopen(t *testing.T) {
	t.Parallel()
	path, ids := warmStore(t, warmChunk+6) // two chunks
	db := openPath(t, path)
	<-db.warmDone
	if db.warmErr != nil {
		t.Fatal(db.warmErr)
	}
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	for _, id := range ids {
		var k int64
		if err := db.readers.QueryRowContext(t.Context(), `SELECT dkey FROM reading_devices WHERE device_id = ?`, id).Scan(&k); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if c, ok := db.dkeys.Load(id); !ok || c != k {
			t.Fatalf("%s: cached key %d (%v), file %d", id, c, ok, k)
		}
		st, ok := db.marks[k]
		if want := marksFromRows(t, db, k); !ok || st != want {
			t.Fatalf("%s: cached mark state %+v (%v), from its rows %+v", id, st, ok, want)
		}
	}
	for _, id := range []string{"dev-150", "not-a-device"} {
		if _, ok := db.dkeys.Load(id); ok {
			t.Errorf("%s is not a device, but its key was cached", id)
		}
	}
}

// A deletion between warmCaches' read and its caching makes what it read
// stale: it must not be cached (the devices' first readings look their
// states up instead), and what is cached must be what the file says.
func TestWarmCachesDropsWhatADeletionMadeStale(t *testing.T) {
	t.Parallel()
	path, ids := warmStore(t, 20)
	// Open without the background warm-up, so the test can run it with
	// its hook set.
	db := openPath(t, path)
	<-db.warmDone
	db.keyMu.Lock()
	clear(db.marks)
	db.keyMu.Unlock()
	ctx := t.Context()
	deleted := false
	db.warmHook = func([]int64) {
		if deleted {
			return
		}
		deleted = true
		// Everything of dev-000 at or after t0+50s: its running maximum
		// and count change.
		if _, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: ids[0], Since: time.Date(2026, 3, 1, 12, 0, 50, 0, time.UTC)}, 0); err != nil {
			t.Error(err)
		}
	}
	if err := db.warm(ctx); err != nil {
		t.Fatal(err)
	}
	if !deleted {
		t.Fatal("the hook never ran")
	}
	// The devices' first readings after the warm-up see the right state.
	var rs []store.Reading
	for _, id := range ids {
		rs = append(rs, store.Reading{DeviceID: id, Stream: "s", Time: time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC), Payload: []byte("{}")})
	}
	if err := db.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	for _, id := range ids {
		k, _ := db.dkeys.Load(id)
		if st, want := db.marks[k], marksFromRows(t, db, k); st != want {
			t.Errorf("%s: cached mark state %+v, from its rows %+v", id, st, want)
		}
	}
}
