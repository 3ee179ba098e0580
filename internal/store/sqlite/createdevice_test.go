package sqlite

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Devices created at the same time are committed together, and each call
// answers for its own device: all of them are readable once their calls
// returned, and the calls whose insert fails (an id taken, a household
// missing) get their own error while the others in the same commit
// succeed.
func TestCreateDeviceConcurrent(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if err := db.CreateHousehold(ctx, store.Household{ID: "h1"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	dev := func(id, hh string) store.Device {
		return store.Device{ID: id, HouseholdID: hh, Name: id, Type: "meter", SecretHash: "x", CredentialSetAt: now, CreatedAt: now}
	}
	if err := db.CreateDevice(ctx, dev("dev_taken", "h1")); err != nil {
		t.Fatal(err)
	}
	const n = 64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d := dev(fmt.Sprintf("dev_%02d", i), "h1")
			switch i {
			case 10:
				d.ID = "dev_taken"
			case 20:
				d.HouseholdID = "h_missing"
			}
			errs[i] = db.CreateDevice(ctx, d)
			if errs[i] == nil {
				// Committed before the call returned: a reader sees it.
				if _, err := db.Device(ctx, d.ID); err != nil {
					errs[i] = fmt.Errorf("created, but not readable: %w", err)
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch i {
		case 10:
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("taken id: %v, want ErrConflict", err)
			}
		case 20:
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("missing household: %v, want ErrNotFound", err)
			}
		default:
			if err != nil {
				t.Errorf("device %d: %v", i, err)
			}
		}
	}
	if _, err := db.Device(ctx, "dev_20"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the device of the missing household was stored (%v)", err)
	}
}

// Within one commit, a failed insert is undone alone.
func TestCreateDevicesBatchIsolatesFailures(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if err := db.CreateHousehold(ctx, store.Household{ID: "h1"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	req := func(id, hh string) *createReq {
		d := store.Device{ID: id, HouseholdID: hh, Name: id, Type: "meter", SecretHash: "x", CredentialSetAt: now, CreatedAt: now}
		ts, err := encTimes(d.CredentialSetAt, d.RevokedAt, d.CreatedAt)
		if err != nil {
			t.Fatal(err)
		}
		return &createReq{d: d, ts: ts}
	}
	batch := []*createReq{req("dev_a", "h1"), req("dev_a", "h1"), req("dev_b", "h_none"), req("dev_c", "h1")}
	db.createDevices(ctx, batch)
	if batch[0].err != nil || batch[3].err != nil {
		t.Fatalf("good inserts failed: %v, %v", batch[0].err, batch[3].err)
	}
	if !errors.Is(batch[1].err, store.ErrConflict) || !errors.Is(batch[2].err, store.ErrNotFound) {
		t.Fatalf("bad inserts: %v, %v", batch[1].err, batch[2].err)
	}
	for _, id := range []string{"dev_a", "dev_c"} {
		if _, err := db.Device(ctx, id); err != nil {
			t.Errorf("%s not committed: %v", id, err)
		}
	}
}

// A created device has its reading key and its (empty) time-mark state
// from the start, so its first readings do not make or look them up in
// the ingest writer's transaction (createDevices). What is remembered
// must be what the file says: after readings of it, across marks, the
// state loaded afresh from the file equals the one kept in memory.
func TestCreateDeviceMakesReadingKey(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if err := db.CreateHousehold(ctx, store.Household{ID: "h1"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	dev := func(id string) store.Device {
		return store.Device{ID: id, HouseholdID: "h1", Name: id, Type: "meter", SecretHash: "x", CredentialSetAt: now, CreatedAt: now}
	}
	for _, id := range []string{"dev_a", "dev_b"} {
		if err := db.CreateDevice(ctx, dev(id)); err != nil {
			t.Fatal(err)
		}
	}
	// A taken id makes no second key.
	if err := db.CreateDevice(ctx, dev("dev_a")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second dev_a: %v, want ErrConflict", err)
	}
	keys := map[string]int64{}
	for _, id := range []string{"dev_a", "dev_b"} {
		var k int64
		if err := db.readers.QueryRowContext(ctx, `SELECT dkey FROM reading_devices WHERE device_id = ?`, id).Scan(&k); err != nil {
			t.Fatalf("%s has no reading key in the file: %v", id, err)
		}
		if c, ok := db.dkeys.Load(id); !ok || c != k {
			t.Errorf("%s: cached key %d (%v), file %d", id, c, ok, k)
		}
		db.keyMu.Lock()
		st, ok := db.marks[k]
		db.keyMu.Unlock()
		if !ok || st != noMarks() {
			t.Errorf("%s: cached mark state %+v (%v), want the empty one", id, st, ok)
		}
		keys[id] = k
	}
	if keys["dev_a"] == keys["dev_b"] {
		t.Fatalf("both devices got key %d", keys["dev_a"])
	}

	// Readings in batches, times going back now and then, past two marks.
	const n = 2*markEvery + 40
	for i := 0; i < n; i += 50 {
		var rs []store.Reading
		for j := i; j < min(i+50, n); j++ {
			ts := now.Add(time.Duration(j%97) * time.Second)
			rs = append(rs, store.Reading{DeviceID: "dev_a", Stream: "s", Time: ts, Payload: []byte("{}")})
		}
		if err := db.AppendReadings(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	cached := db.marks[keys["dev_a"]]
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	loaded, err := db.markFor(ctx, tx, keys["dev_a"], nil)
	delete(db.marks, keys["dev_a"])
	if err == nil {
		loaded, err = db.markFor(ctx, tx, keys["dev_a"], nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if cached != loaded || cached.since != n-2*markEvery {
		t.Errorf("mark state kept %+v, from the file %+v (want %d readings after the newest mark)", cached, loaded, n-2*markEvery)
	}
	var marks int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM reading_marks WHERE dkey = ?`, keys["dev_a"]).Scan(&marks); err != nil || marks != 2 {
		t.Errorf("%d marks (%v), want 2", marks, err)
	}
}

// A device erased without ever sending does not leave its id behind in
// the reading keys once its purge is done, as a device whose readings
// were all purged does not.
func TestEraseDropsUnusedReadingKey(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if err := db.CreateHousehold(ctx, store.Household{ID: "h1"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := db.CreateDevice(ctx, store.Device{ID: "dev_q", HouseholdID: "h1", Name: "q", Type: "meter", SecretHash: "x", CredentialSetAt: now, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.Erase(ctx, store.Erasure{DeleteDevices: []string{"dev_q"}, Reason: "test", At: now}); err != nil {
		t.Fatal(err)
	}
	ps, err := db.Purges(ctx)
	if err != nil || len(ps) != 1 {
		t.Fatalf("purges %v (%v), want one", ps, err)
	}
	if _, err := db.PurgeReadings(ctx, ps[0], 0); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishPurge(ctx, ps[0]); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.readers.QueryRowContext(ctx, `SELECT count(*) FROM reading_devices WHERE device_id = 'dev_q'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d reading keys left for the erased device (%v)", n, err)
	}
	if _, ok := db.dkeys.Load("dev_q"); ok {
		t.Error("the erased device's key is still cached")
	}
}
