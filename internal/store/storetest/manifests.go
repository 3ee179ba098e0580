package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/candor-iot/candor/internal/store"
)

func testManifests(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.ManifestVersions(ctx, "thermostat"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("versions of an unknown type: %v, want ErrNotFound", err)
	}
	r1, err := s.PutManifest(ctx, store.ManifestRecord{DeviceType: "thermostat", Doc: []byte(`{"v":1}`), CreatedAt: base})
	if err != nil || r1.Version != 1 {
		t.Fatalf("first version: %+v %v", r1, err)
	}
	r2, err := s.PutManifest(ctx, store.ManifestRecord{DeviceType: "thermostat", Doc: []byte(`{"v":2}`), Draft: true, CreatedAt: base.Add(1)})
	if err != nil || r2.Version != 2 {
		t.Fatalf("second version: %+v %v", r2, err)
	}
	if _, err := s.PutManifest(ctx, store.ManifestRecord{DeviceType: "wearable", Doc: []byte(`{}`), CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	vs, err := s.ManifestVersions(ctx, "thermostat")
	if err != nil || len(vs) != 2 || string(vs[1].Doc) != `{"v":2}` || !vs[1].Draft || vs[0].Draft {
		t.Fatalf("versions: %+v %v", vs, err)
	}
	all, err := s.Manifests(ctx)
	if err != nil || len(all) != 3 || all[2].DeviceType != "wearable" {
		t.Fatalf("all manifests: %+v %v", all, err)
	}
	// Concurrent writers never share a version number.
	var wg sync.WaitGroup
	seen := make(chan int, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.PutManifest(ctx, store.ManifestRecord{DeviceType: "meter", Doc: []byte(`{}`), CreatedAt: base})
			if err != nil {
				t.Error(err)
				return
			}
			seen <- r.Version
		}()
	}
	wg.Wait()
	close(seen)
	got := map[int]bool{}
	for v := range seen {
		if got[v] {
			t.Errorf("version %d handed out twice", v)
		}
		got[v] = true
	}
}

func testViolations(t *testing.T, s store.Store) {
	ctx := context.Background()
	add := []store.ViolationCount{
		{DeviceID: "dev_a", Stream: "temperature", Field: "wifi", Reason: "undeclared_field", Count: 2, LastAt: base},
		{DeviceID: "dev_a", Stream: "location", Reason: "undeclared_stream", Count: 1, LastAt: base.Add(5)},
		{DeviceID: "dev_b", Stream: "x", Reason: "undeclared_stream", Count: 7, LastAt: base},
	}
	if err := s.AddViolations(ctx, add); err != nil {
		t.Fatal(err)
	}
	if err := s.AddViolations(ctx, add[:1]); err != nil {
		t.Fatal(err)
	}
	vs, total, err := s.Violations(ctx, "dev_a", 0)
	if err != nil || len(vs) != 2 || total != 2 {
		t.Fatalf("violations: %+v (%d in all) %v", vs, total, err)
	}
	for _, v := range vs {
		if v.Field == "wifi" && v.Count != 4 {
			t.Errorf("wifi count %d, want 4", v.Count)
		}
		if v.DeviceID != "dev_a" {
			t.Errorf("another device's violation listed: %+v", v)
		}
	}
	if vs[0].Stream != "location" {
		t.Errorf("most recent first: got %+v", vs[0])
	}
}

// testViolationsBounded: a device sending ever new field names gets at
// most store.MaxViolationRows rows of its own plus one overflow row that
// counts the rest, with names clipped; Violations lists the newest up to
// its limit and says how many there are.
func testViolationsBounded(t *testing.T, s store.Store) {
	ctx := context.Background()
	const sent = 200
	var vs []store.ViolationCount
	for i := range sent {
		vs = append(vs, store.ViolationCount{DeviceID: "dev_a", Stream: "temperature",
			Field: fmt.Sprintf("pw_%03d_%s", i, strings.Repeat("x", 100)), Reason: "undeclared_field", Count: 1, LastAt: base.Add(time.Duration(i))})
	}
	// Two flushes: the cap holds across them, and rows that exist keep
	// counting where they are.
	if err := s.AddViolations(ctx, vs[:20]); err != nil {
		t.Fatal(err)
	}
	if err := s.AddViolations(ctx, append(vs[20:], vs[0])); err != nil {
		t.Fatal(err)
	}
	if err := s.AddViolations(ctx, []store.ViolationCount{{DeviceID: "dev_b", Stream: "x", Reason: "undeclared_stream", Count: 1, LastAt: base}}); err != nil {
		t.Fatal(err)
	}
	all, total, err := s.Violations(ctx, "dev_a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != store.MaxViolationRows+1 || total != len(all) {
		t.Fatalf("%d rows listed, %d in all; want %d named rows and one overflow row", len(all), total, store.MaxViolationRows)
	}
	var counted, overflow int64
	for _, v := range all {
		counted += v.Count
		if len(v.Field) > store.MaxViolationField || !utf8.ValidString(v.Field) {
			t.Errorf("field name of %d bytes kept: %q", len(v.Field), v.Field)
		}
		if v.Reason == store.ViolationOverflow {
			overflow = v.Count
			if v.Stream != "" || v.Field != "" {
				t.Errorf("the overflow row names a stream or field: %+v", v)
			}
		}
		if v.Field == store.ClipViolationField(vs[0].Field) && v.Count != 2 {
			t.Errorf("the first name's row counts %d, want 2", v.Count)
		}
	}
	if counted != sent+1 || overflow != sent-store.MaxViolationRows {
		t.Errorf("counted %d (overflow %d), want %d (overflow %d): nothing is lost", counted, overflow, sent+1, sent-store.MaxViolationRows)
	}
	some, total, err := s.Violations(ctx, "dev_a", 5)
	if err != nil || len(some) != 5 || total != store.MaxViolationRows+1 {
		t.Fatalf("Violations with limit 5: %d rows, %d in all, %v", len(some), total, err)
	}
	if some[0].Reason != store.ViolationOverflow {
		t.Errorf("newest first: the overflow row got the latest names, got %+v", some[0])
	}
	if other, total, err := s.Violations(ctx, "dev_b", 5); err != nil || len(other) != 1 || total != 1 {
		t.Errorf("another device: %d rows, %d in all, %v", len(other), total, err)
	}
	if none, total, err := s.Violations(ctx, "dev_none", 5); err != nil || len(none) != 0 || total != 0 {
		t.Errorf("a device without violations: %d rows, %d in all, %v", len(none), total, err)
	}
}

func testReadingKeepsManifestVersion(t *testing.T, s store.Store) {
	ctx := context.Background()
	rs := []store.Reading{{DeviceID: "dev_a", Stream: "t", Time: base, Payload: []byte(`{}`), ManifestVersion: 3}}
	if err := s.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Readings(ctx, store.ReadingQuery{DeviceID: "dev_a"})
	if err != nil || len(got) != 1 || got[0].ManifestVersion != 3 {
		t.Fatalf("readings: %+v %v", got, err)
	}
}

func testHouseholdWithOwner(t *testing.T, s store.Store) {
	ctx := context.Background()
	hh := store.Household{ID: "hh_x", Name: "Flat", CreatedAt: base}
	owner := store.Account{ID: "acc_x", Username: "sam", PasswordHash: "h", Role: store.RoleOwner, CreatedAt: base}
	if err := s.CreateHouseholdWithOwner(ctx, hh, owner); err != nil {
		t.Fatal(err)
	}
	got, err := s.AccountByUsername(ctx, "sam")
	if err != nil || got.HouseholdID != "hh_x" {
		t.Fatalf("owner: %+v %v", got, err)
	}
	// A taken username leaves no household behind.
	err = s.CreateHouseholdWithOwner(ctx, store.Household{ID: "hh_y", Name: "Other", CreatedAt: base},
		store.Account{ID: "acc_y", Username: "sam", PasswordHash: "h", Role: store.RoleOwner, CreatedAt: base})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("taken username: %v, want ErrConflict", err)
	}
	if _, err := s.Household(ctx, "hh_y"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("household of the failed call exists: %v", err)
	}
}

func testDeleteReadings(t *testing.T, s store.Store) {
	ctx := context.Background()
	var rs []store.Reading
	for i := range 10 {
		stream := "a"
		if i%2 == 1 {
			stream = "b"
		}
		rs = append(rs, store.Reading{DeviceID: "dev_a", Stream: stream, Time: base.Add(time.Duration(i) * time.Minute), Payload: []byte(`{}`)})
	}
	rs = append(rs, store.Reading{DeviceID: "dev_b", Stream: "a", Time: base, Payload: []byte(`{}`)})
	if err := s.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	// Stream a, minutes [2, 6): readings 2 and 4.
	n, err := s.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "dev_a", Stream: "a", Since: base.Add(2 * time.Minute), Until: base.Add(6 * time.Minute)}, 0)
	if err != nil || n != 2 {
		t.Fatalf("range delete: %d %v", n, err)
	}
	// Bounded chunks.
	n, err = s.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "dev_a"}, 3)
	if err != nil || n != 3 {
		t.Fatalf("chunk delete: %d %v", n, err)
	}
	left, _ := s.CountReadings(ctx, "dev_a")
	if left != 5 {
		t.Errorf("%d readings of dev_a left, want 5", left)
	}
	if other, _ := s.CountReadings(ctx, "dev_b"); other != 1 {
		t.Errorf("another device's readings were deleted")
	}
	if _, err := s.DeleteReadings(ctx, store.ReadingQuery{}, 0); err == nil {
		t.Error("delete without a device id accepted")
	}
}
