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

// Creating a device makes no reading key: keys are never given back, and
// there are MaxDeviceKey of them, so devices made and erased without ever
// sending (a script, a household trying things out) would use the key
// space up, after which no new device could store a reading. A key is
// made by a device's first reading (deviceKey).
func TestCreatedDevicesUseNoReadingKey(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if err := db.CreateHousehold(ctx, store.Household{ID: "h1"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	counter := func() int64 {
		var seq int64
		err := db.readers.QueryRowContext(ctx, `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'reading_devices'), 0)`).Scan(&seq)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	before := counter()
	for i := range 10 {
		id := fmt.Sprintf("churn%d", i)
		if err := db.CreateDevice(ctx, store.Device{ID: id, HouseholdID: "h1", Name: id, Type: "meter", SecretHash: "x", CredentialSetAt: now, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := db.Erase(ctx, store.Erasure{DeleteDevices: []string{id}, Reason: "t", At: now}); err != nil {
			t.Fatal(err)
		}
		ps, err := db.Purges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if _, err := db.PurgeReadings(ctx, p, 0); err != nil {
				t.Fatal(err)
			}
			if err := db.FinishPurge(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if used := counter() - before; used != 0 {
		t.Errorf("10 devices created and erased without a reading used up %d device keys", used)
	}
}
