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
			for j := range readingsPerRound(i) {
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

// readingsPerRound is how many readings device i of warmStore sends in
// each of its 5 rounds: past a mark (at least 260 in all), except every
// fifth device (15 in all, no mark).
func readingsPerRound(i int) int {
	if i%5 == 4 {
		return 3
	}
	return 52 + i*7%20
}

// After a restart, the caches of device keys and mark states fill in the
// background (warmCaches) with what the file says, for the devices that
// exist, so their first readings do not look them up in the writer's
// transaction: keys for all of them, mark states for those with a mark.
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
	for i, id := range ids {
		var k int64
		var marks int
		if err := db.readers.QueryRowContext(t.Context(), `SELECT dkey, (SELECT count(*) FROM reading_marks m WHERE m.dkey = r.dkey)
			FROM reading_devices r WHERE device_id = ?`, id).Scan(&k, &marks); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if c, ok := db.dkeys.Load(id); !ok || c != k {
			t.Fatalf("%s: cached key %d (%v), file %d", id, c, ok, k)
		}
		st, ok := db.marks[k]
		if marked := i%5 != 4; marked != (marks > 0) {
			t.Fatalf("%s: %d marks: the test's devices are not as it means them", id, marks)
		}
		if marks == 0 {
			if ok {
				t.Errorf("%s has no mark, but its state was read", id)
			}
			continue
		}
		if want := marksFromRows(t, db, k); !ok || st != want {
			t.Fatalf("%s: cached mark state %+v (%v), from its rows %+v", id, st, ok, want)
		}
	}
	// The erased device (its purge pending) and readings of an id that
	// is no device: keys cached (a purge then forgets only its own
	// device's state), mark states not read.
	for _, id := range []string{fmt.Sprintf("dev-%03d", len(ids)), "not-a-device"} {
		k, ok := db.dkeys.Load(id)
		if !ok {
			t.Errorf("%s: key not cached", id)
		}
		if _, ok := db.marks[k]; ok {
			t.Errorf("%s is no device, but its mark state was read", id)
		}
	}
}

// A purge of an erased device after a restart forgets that device's mark
// state only, not those the warm-up read for the others.
func TestWarmedMarksSurviveAnErasedDevicesPurge(t *testing.T) {
	t.Parallel()
	path, ids := warmStore(t, 10)
	db := openPath(t, path)
	<-db.warmDone
	if db.warmErr != nil {
		t.Fatal(db.warmErr)
	}
	ctx := t.Context()
	ps, err := db.Purges(ctx)
	if err != nil || len(ps) == 0 {
		t.Fatalf("purges %v (%v): the test would prove nothing", ps, err)
	}
	for _, p := range ps {
		if n, err := db.PurgeReadings(ctx, p, 0); err != nil || n == 0 {
			t.Fatalf("purged %d (%v): the test would prove nothing", n, err)
		}
		if err := db.FinishPurge(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	lost, marked := 0, 0
	for i, id := range ids {
		k, ok := db.dkeys.Load(id)
		if !ok {
			t.Fatalf("%s: key not cached by the warm-up", id)
		}
		if readingsPerRound(i) == 3 {
			continue // no mark: not read
		}
		marked++
		if _, ok := db.marks[k]; !ok {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("the purge of one erased device dropped the warmed mark states of %d of %d other devices", lost, marked)
	}
}

// An append refused before it wrote anything (a time out of range) does
// not make what the warm-up read stale.
func TestWarmKeepsChunkAcrossARefusedAppend(t *testing.T) {
	t.Parallel()
	path, ids := warmStore(t, 5)
	db := rewarm(t, path, func(db *DB) {
		err := db.AppendReadings(t.Context(), []store.Reading{{DeviceID: ids[0], Stream: "s", Time: time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), Payload: []byte("{}")}})
		if err == nil {
			t.Error("a reading of 1500 was stored")
		}
	})
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	marked := 0
	for i := range ids {
		if readingsPerRound(i) > 3 {
			marked++
		}
	}
	if len(db.marks) != marked {
		t.Errorf("a refused batch that wrote nothing made the warm-up drop its chunk: %d of %d mark states cached", len(db.marks), marked)
	}
}

// A deletion between warmCaches' read and its caching makes what it read
// stale: it must not be cached (the devices' first readings look their
// states up instead), and what is cached must be what the file says.
func TestWarmCachesDropsWhatADeletionMadeStale(t *testing.T) {
	t.Parallel()
	path, ids := warmStore(t, 20)
	db := rewarm(t, path, func(db *DB) {
		// Everything of dev-000 at or after t0+50s: its running maximum
		// and count change.
		if _, err := db.DeleteReadings(t.Context(), store.ReadingQuery{DeviceID: ids[0], Since: time.Date(2026, 3, 1, 12, 0, 50, 0, time.UTC)}, 0); err != nil {
			t.Error(err)
		}
	})
	ctx := t.Context()
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

// rewarm opens the store at path, lets the background warm-up end,
// forgets the mark states it read, and runs the warm-up again with between
// set to run between its first chunk's read and its caching.
func rewarm(t *testing.T, path string, between func(*DB)) *DB {
	t.Helper()
	db := openPath(t, path)
	<-db.warmDone
	db.keyMu.Lock()
	clear(db.marks)
	db.keyMu.Unlock()
	ran := false
	db.warmHook = func([]int64) {
		if !ran {
			ran = true
			between(db)
		}
	}
	if err := db.warm(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("the warm-up read no chunk")
	}
	return db
}
