package consent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/store"
)

type versionedManifests struct {
	*fakeManifests
	vs []*catalog.Entry
}

func (v versionedManifests) Versions(context.Context, string) ([]*catalog.Entry, error) {
	return v.vs, nil
}

// A device added while v2 was already in force agreed to v2: it has no
// older base. (A base chosen among older versions only gave it v1.)
func TestBaseOfDeviceAddedUnderCurrentVersion(t *testing.T) {
	ctx := context.Background()
	m := templates(t)["smart-meter"]
	jan := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := &catalog.Entry{Version: 1, Manifest: m, CreatedAt: jan}
	v2 := &catalog.Entry{Version: 2, Manifest: m, CreatedAt: jan.AddDate(0, 2, 0)}
	s := meterAddedUnderV2(t, v1, v2)
	if b := s.baseline(ctx, meter, v2); b != nil {
		t.Fatalf("device added under v2 got base version %d, want none (v2 itself)", b.Version)
	}
}

// The consequence: a stream that v2 added and the device was added under
// v2 is not stored (readings acknowledged, then dropped).
func TestStreamOfCurrentVersionStoredForDeviceAddedUnderIt(t *testing.T) {
	m := templates(t)["smart-meter"]
	next := *m
	next.Streams = nil
	for _, st := range m.Streams {
		c := *st
		next.Streams = append(next.Streams, &c)
	}
	extra := *m.Streams[0]
	extra.Name = "extra"
	next.Streams = append(next.Streams, &extra)
	jan := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := &catalog.Entry{Version: 1, Manifest: m, CreatedAt: jan}
	v2 := &catalog.Entry{Version: 2, Manifest: &next, CreatedAt: jan.AddDate(0, 2, 0)}
	s := meterAddedUnderV2(t, v1, v2)
	first := s.Allowed(meter, m.Streams[0].Name)
	got := s.Allowed(meter, "extra")
	if got.StoreOnHub != first.StoreOnHub || got.Collect != first.Collect {
		t.Fatalf("stream added in v2, device added under v2: %+v; want the same defaults as %s: %+v", got, m.Streams[0].Name, first)
	}
}

// meterAddedUnderV2 is a service on a real store holding the smart meter,
// added a month after v2 of its manifest came into force, with v1 and v2
// its manifest's versions and v2 in force.
func meterAddedUnderV2(t *testing.T, v1, v2 *catalog.Entry) *Service {
	t.Helper()
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "candor.db"))
	if err := db.CreateHousehold(ctx, store.Household{ID: "hh", Name: "h", CreatedAt: v1.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateDevice(ctx, store.Device{ID: meter, HouseholdID: "hh", Name: "m", Type: "smart-meter",
		SecretHash: "x", CreatedAt: v2.CreatedAt.AddDate(0, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	fm := newFakeManifests(t, map[string]string{meter: "smart-meter"})
	fm.set(meter, v2)
	return newService(t, db, versionedManifests{fm, []*catalog.Entry{v1, v2}})
}
