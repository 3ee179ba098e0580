package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// testDeleteReadingsOfAVersion checks that a query naming a manifest
// version selects, and deletes, only the readings stored under it.
func testDeleteReadingsOfAVersion(t *testing.T, s store.Store) {
	ctx := context.Background()
	var rs []store.Reading
	for i := range 6 {
		rs = append(rs, store.Reading{DeviceID: "dev_v", Stream: "a", Time: base.Add(time.Duration(i) * time.Minute),
			Payload: []byte(`{}`), ManifestVersion: 1 + i%2})
	}
	if err := s.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Readings(ctx, store.ReadingQuery{DeviceID: "dev_v", ManifestVersion: 2})
	if err != nil || len(got) != 3 {
		t.Fatalf("readings of version 2: %d, %v; want 3", len(got), err)
	}
	for _, r := range got {
		if r.ManifestVersion != 2 {
			t.Errorf("reading %d of version %d selected", r.Seq, r.ManifestVersion)
		}
	}
	n, err := s.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "dev_v", Stream: "a", ManifestVersion: 1, Until: base.Add(3 * time.Minute)}, 0)
	if err != nil || n != 2 {
		t.Fatalf("delete version 1 before minute 3: %d, %v; want 2", n, err)
	}
	if left, _ := s.CountReadings(ctx, "dev_v"); left != 4 {
		t.Errorf("%d readings left, want 4", left)
	}
}

func testConsentRequests(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := store.ConsentRequest{ID: "crq_1", HouseholdID: "hh_1", DeviceID: "dev_1", AccountID: "acc_kim", Stream: "energy",
		Purpose: "candor:Billing", Recipient: "Your energy supplier", On: true, CreatedAt: base}
	if err := s.AddConsentRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.AddConsentRequest(ctx, r); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a taken request id: %v, want ErrConflict", err)
	}
	other := r
	other.ID, other.HouseholdID, other.DeviceID = "crq_2", "hh_2", "dev_2"
	if err := s.AddConsentRequest(ctx, other); err != nil {
		t.Fatal(err)
	}
	got, err := s.ConsentRequests(ctx, "hh_1")
	if err != nil || len(got) != 1 || got[0] != r {
		t.Fatalf("requests of hh_1: %+v, %v; want only %+v", got, err, r)
	}
	// Another use of the stream does not close it; its own use does.
	if err := s.CloseConsentRequests(ctx, "dev_1", "energy", "candor:Billing", "hub"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ConsentRequests(ctx, "hh_1"); len(got) != 1 {
		t.Errorf("closing another use closed the request")
	}
	if err := s.CloseConsentRequests(ctx, "dev_1", "energy", "candor:Billing", "Your energy supplier"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ConsentRequests(ctx, "hh_1"); len(got) != 0 {
		t.Errorf("requests left after closing: %+v", got)
	}
	if got, _ := s.ConsentRequests(ctx, "hh_2"); len(got) != 1 {
		t.Errorf("closing one device's request closed another's")
	}
}
