package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Vault keys.

func keyOwner(id string, mode store.KeyMode, recipient string) store.KeyOwner {
	return store.KeyOwner{OwnerID: id, Mode: mode, Recipient: recipient, CreatedAt: at(time.Hour), UpdatedAt: at(time.Hour)}
}

func keyRecord(owner, id string, created time.Time) store.KeyRecord {
	return store.KeyRecord{
		OwnerID:   owner,
		KeyID:     id,
		Mode:      store.KeyModeHubAssisted,
		Recipient: "age1recipient" + owner,
		Wrapped:   []byte("wrapped:" + owner + "/" + id),
		CreatedAt: created,
	}
}

func mustSetKeyOwner(t *testing.T, s store.Store, o store.KeyOwner, rewrapped ...store.KeyRecord) {
	t.Helper()
	if err := s.SetKeyOwner(t.Context(), o, rewrapped...); err != nil {
		t.Fatalf("SetKeyOwner(%q): %v", o.OwnerID, err)
	}
}

func mustPutKey(t *testing.T, s store.Store, k store.KeyRecord) {
	t.Helper()
	if err := s.PutKey(t.Context(), k); err != nil {
		t.Fatalf("PutKey(%q, %q): %v", k.OwnerID, k.KeyID, err)
	}
}

func mustKeys(t *testing.T, s store.Store, owner string) []store.KeyRecord {
	t.Helper()
	ks, err := s.Keys(t.Context(), owner)
	if err != nil {
		t.Fatalf("Keys(%q): %v", owner, err)
	}
	return ks
}

func testKeyOwners(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.KeyOwner(ctx, "acc_x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown owner: %v, want ErrNotFound", err)
	}
	mustSetKeyOwner(t, s, keyOwner("acc_a", store.KeyModeUserHeld, "age1aaa"))
	mustSetKeyOwner(t, s, keyOwner("hh_b", store.KeyModeHubAssisted, ""))
	got, err := s.KeyOwner(ctx, "acc_a")
	if err != nil || got != keyOwner("acc_a", store.KeyModeUserHeld, "age1aaa") {
		t.Fatalf("KeyOwner = %+v, %v", got, err)
	}
	// An update changes mode and recipient but keeps CreatedAt.
	upd := keyOwner("acc_a", store.KeyModeHubAssisted, "age1bbb")
	upd.CreatedAt = at(5 * time.Hour)
	upd.UpdatedAt = at(2 * time.Hour)
	mustSetKeyOwner(t, s, upd)
	got, err = s.KeyOwner(ctx, "acc_a")
	want := store.KeyOwner{OwnerID: "acc_a", Mode: store.KeyModeHubAssisted, Recipient: "age1bbb", CreatedAt: at(time.Hour), UpdatedAt: at(2 * time.Hour)}
	if err != nil || got != want {
		t.Fatalf("after update: %+v, %v; want %+v", got, err, want)
	}
	all, err := s.KeyOwners(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("KeyOwners = %+v, %v", all, err)
	}
	if err := s.SetKeyOwner(ctx, store.KeyOwner{OwnerID: "acc_c", Mode: "plaintext"}); err == nil {
		t.Error("SetKeyOwner accepted an unknown mode")
	}
	if err := s.SetKeyOwner(ctx, store.KeyOwner{Mode: store.KeyModeUserHeld}); err == nil {
		t.Error("SetKeyOwner accepted an empty owner id")
	}
}

func testKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.PutKey(ctx, keyRecord("acc_none", "k1", at(0))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PutKey for an unknown owner: %v, want ErrNotFound", err)
	}
	mustSetKeyOwner(t, s, keyOwner("acc_a", store.KeyModeHubAssisted, "age1aaa"))
	mustSetKeyOwner(t, s, keyOwner("acc_b", store.KeyModeHubAssisted, "age1bbb"))
	if ks := mustKeys(t, s, "acc_a"); len(ks) != 0 {
		t.Fatalf("keys of a new owner: %+v", ks)
	}
	k1 := keyRecord("acc_a", "k1", at(time.Minute))
	mustPutKey(t, s, k1)
	k2 := keyRecord("acc_a", "k2", at(2*time.Minute))
	mustPutKey(t, s, k2)
	mustPutKey(t, s, keyRecord("acc_b", "k1", at(time.Minute))) // ids are per owner
	if err := s.PutKey(ctx, keyRecord("acc_a", "k1", at(3*time.Minute))); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate key id: %v, want ErrConflict", err)
	}
	ks := mustKeys(t, s, "acc_a")
	if len(ks) != 2 || ks[0].KeyID != "k1" || ks[1].KeyID != "k2" {
		t.Fatalf("keys: %+v", ks)
	}
	// Putting k2 retired k1 at k2's creation; k2 is in use.
	wantK1 := k1
	wantK1.RetiredAt = k2.CreatedAt
	if !sameKey(ks[0], wantK1) || !sameKey(ks[1], k2) {
		t.Fatalf("keys = %+v\nwant %+v and %+v", ks, wantK1, k2)
	}
	// A key put already retired retires nothing else.
	k3 := keyRecord("acc_a", "k3", at(4*time.Minute))
	k3.RetiredAt = at(5 * time.Minute)
	k3.Mode = store.KeyModeUserHeld
	mustPutKey(t, s, k3)
	ks = mustKeys(t, s, "acc_a")
	if len(ks) != 3 || !ks[1].RetiredAt.IsZero() || !sameKey(ks[2], k3) {
		t.Fatalf("after putting a retired key: %+v", ks)
	}
	if err := s.PutKey(ctx, store.KeyRecord{OwnerID: "acc_a", KeyID: "k4", Mode: "none", Wrapped: []byte{1}}); err == nil {
		t.Error("PutKey accepted an unknown mode")
	}
	if err := s.PutKey(ctx, store.KeyRecord{OwnerID: "acc_a", KeyID: "k4", Mode: store.KeyModeUserHeld}); err == nil {
		t.Error("PutKey accepted an empty wrapped key")
	}
	if ks := mustKeys(t, s, "acc_b"); len(ks) != 1 || ks[0].RetiredAt != (time.Time{}) {
		t.Fatalf("keys of another owner changed: %+v", ks)
	}
}

func testKeyRewrap(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustSetKeyOwner(t, s, keyOwner("acc_a", store.KeyModeHubAssisted, "age1aaa"))
	mustPutKey(t, s, keyRecord("acc_a", "k1", at(time.Minute)))
	mustPutKey(t, s, keyRecord("acc_a", "k2", at(2*time.Minute)))
	mustSetKeyOwner(t, s, keyOwner("acc_b", store.KeyModeHubAssisted, ""))
	mustPutKey(t, s, keyRecord("acc_b", "k9", at(time.Minute)))

	// Switching to user-held rewraps both keys with the owner, atomically.
	o := keyOwner("acc_a", store.KeyModeUserHeld, "age1aaa")
	re := func(id string) store.KeyRecord {
		return store.KeyRecord{OwnerID: "acc_a", KeyID: id, Mode: store.KeyModeUserHeld, Recipient: "age1aaa", Wrapped: []byte("user-only:" + id)}
	}
	mustSetKeyOwner(t, s, o, re("k1"), re("k2"))
	ks := mustKeys(t, s, "acc_a")
	for _, k := range ks {
		if k.Mode != store.KeyModeUserHeld || string(k.Wrapped) != "user-only:"+k.KeyID || k.Recipient != "age1aaa" {
			t.Fatalf("after rewrap: %+v", k)
		}
	}
	if !ks[0].CreatedAt.Equal(at(time.Minute)) || !ks[0].RetiredAt.Equal(at(2*time.Minute)) {
		t.Fatalf("rewrap changed times: %+v", ks[0])
	}
	// A rewrap naming a missing key, or another owner's key, changes
	// nothing at all: not the settings, not the other keys.
	bad := keyOwner("acc_a", store.KeyModeHubAssisted, "age1zzz")
	k1 := re("k1")
	k1.Wrapped = []byte("should not land")
	if err := s.SetKeyOwner(ctx, bad, k1, re("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rewrap of a missing key: %v, want ErrNotFound", err)
	}
	foreign := store.KeyRecord{OwnerID: "acc_b", KeyID: "k9", Mode: store.KeyModeUserHeld, Wrapped: []byte("x")}
	if err := s.SetKeyOwner(ctx, bad, foreign); err == nil {
		t.Fatal("rewrap of another owner's key succeeded")
	}
	if got, err := s.KeyOwner(ctx, "acc_a"); err != nil || got.Mode != store.KeyModeUserHeld || got.Recipient != "age1aaa" {
		t.Fatalf("failed rewrap changed the owner: %+v, %v", got, err)
	}
	if ks := mustKeys(t, s, "acc_a"); string(ks[0].Wrapped) != "user-only:k1" {
		t.Fatalf("failed rewrap changed a key: %q", ks[0].Wrapped)
	}
	if ks := mustKeys(t, s, "acc_b"); string(ks[0].Wrapped) != "wrapped:acc_b/k9" {
		t.Fatalf("failed rewrap changed another owner's key: %q", ks[0].Wrapped)
	}
}

func testShredOwner(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustSetKeyOwner(t, s, keyOwner("acc_a", store.KeyModeUserHeld, "age1aaa"))
	mustSetKeyOwner(t, s, keyOwner("acc_b", store.KeyModeHubAssisted, "age1bbb"))
	for _, id := range []string{"k1", "k2", "k3"} {
		mustPutKey(t, s, keyRecord("acc_a", id, at(time.Minute)))
	}
	mustPutKey(t, s, keyRecord("acc_b", "k1", at(time.Minute)))

	if err := s.ShredOwner(ctx, "acc_a", at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ks := mustKeys(t, s, "acc_a"); len(ks) != 0 {
		t.Fatalf("keys after shredding: %+v", ks)
	}
	o, err := s.KeyOwner(ctx, "acc_a")
	if err != nil || !o.Shredded() || !o.ShreddedAt.Equal(at(time.Hour)) || o.Recipient != "" {
		t.Fatalf("owner after shredding: %+v, %v", o, err)
	}
	// Final: no new key, no new settings; shredding again keeps the date.
	if err := s.PutKey(ctx, keyRecord("acc_a", "k4", at(2*time.Hour))); !errors.Is(err, store.ErrShredded) {
		t.Fatalf("PutKey after shredding: %v, want ErrShredded", err)
	}
	if err := s.SetKeyOwner(ctx, keyOwner("acc_a", store.KeyModeHubAssisted, "")); !errors.Is(err, store.ErrShredded) {
		t.Fatalf("SetKeyOwner after shredding: %v, want ErrShredded", err)
	}
	if err := s.ShredOwner(ctx, "acc_a", at(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if o, _ := s.KeyOwner(ctx, "acc_a"); !o.ShreddedAt.Equal(at(time.Hour)) {
		t.Fatalf("second shred moved the date: %+v", o)
	}
	// Other owners keep their keys.
	if ks := mustKeys(t, s, "acc_b"); len(ks) != 1 || !bytes.Equal(ks[0].Wrapped, []byte("wrapped:acc_b/k1")) {
		t.Fatalf("other owner's keys: %+v", ks)
	}
	// Shredding an owner never enrolled leaves a mark that bars it.
	if err := s.ShredOwner(ctx, "hh_never", at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if o, err := s.KeyOwner(ctx, "hh_never"); err != nil || !o.Shredded() {
		t.Fatalf("never-enrolled owner after shredding: %+v, %v", o, err)
	}
	if err := s.SetKeyOwner(ctx, keyOwner("hh_never", store.KeyModeHubAssisted, "")); !errors.Is(err, store.ErrShredded) {
		t.Fatalf("enrolling a shredded id: %v, want ErrShredded", err)
	}
}

// testShredConcurrentPut races key creation against shredding: whatever
// the order, no key survives a shred that returned.
func testShredConcurrentPut(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustSetKeyOwner(t, s, keyOwner("acc_a", store.KeyModeHubAssisted, ""))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.PutKey(ctx, keyRecord("acc_a", string(rune('a'+i)), at(time.Minute)))
			if err != nil && !errors.Is(err, store.ErrShredded) {
				t.Error(err)
			}
		}()
	}
	if err := s.ShredOwner(ctx, "acc_a", at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if ks := mustKeys(t, s, "acc_a"); len(ks) != 0 {
		t.Fatalf("keys survived the shred: %d", len(ks))
	}
}

func sameKey(a, b store.KeyRecord) bool {
	return a.OwnerID == b.OwnerID && a.KeyID == b.KeyID && a.Mode == b.Mode && a.Recipient == b.Recipient &&
		bytes.Equal(a.Wrapped, b.Wrapped) && a.CreatedAt.Equal(b.CreatedAt) && a.RetiredAt.Equal(b.RetiredAt)
}
