package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// --- erasure and unlinking -----------------------------------

func testDeviceKeyOwner(t *testing.T, s store.Store) {
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateAccount(t, s, account("a1", "h1", "alice"))
	d := device("d1", "h1")
	d.KeyOwner = "a1"
	mustCreateDevice(t, s, d)
	mustCreateDevice(t, s, device("d2", "h1"))
	if got := mustDevice(t, s, "d1"); got.KeyOwner != "a1" || got.KeyOwnerID() != "a1" {
		t.Errorf("d1 key owner = %q (%q), want a1", got.KeyOwner, got.KeyOwnerID())
	}
	if got := mustDevice(t, s, "d2"); got.KeyOwner != "" || got.KeyOwnerID() != "h1" {
		t.Errorf("d2 key owner = %q (%q), want the household's", got.KeyOwner, got.KeyOwnerID())
	}
}

func testEraseDevices(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupReadingDevices(t, s, "d1", "d2")
	var rs []store.Reading
	for i := range 7 {
		rs = append(rs, reading("d1", "temp", at(time.Duration(i)*time.Second), `{"c":1}`))
		rs = append(rs, reading("d2", "temp", at(time.Duration(i)*time.Second), `{"c":2}`))
	}
	mustAppend(t, s, rs)
	if err := s.AddViolations(ctx, []store.ViolationCount{{DeviceID: "d1", Stream: "temp", Field: "x", Reason: "undeclared", Count: 1, LastAt: at(0)}}); err != nil {
		t.Fatal(err)
	}
	rec := store.ConsentRecord{ID: "r1", AccountID: "a", DeviceID: "d1", Stream: "temp", Purpose: "p", Recipient: "hub", CreatedAt: at(0), Doc: []byte(`{}`)}
	if err := s.RecordConsentDecision(ctx, rec, store.ConsentDecision{DeviceID: "d1", Stream: "temp", Purpose: "p", Recipient: "hub", On: true}); err != nil {
		t.Fatal(err)
	}

	if err := s.Erase(ctx, store.Erasure{DeleteDevices: []string{"d1"}, Reason: "account deleted", At: at(time.Hour)}); err != nil {
		t.Fatalf("Erase: %v", err)
	}
	if _, err := s.Device(ctx, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("erased device still there: %v", err)
	}
	mustDevice(t, s, "d2")
	if ds, _ := s.ConsentDecisions(ctx, "d1"); len(ds) != 0 {
		t.Errorf("consent decisions of an erased device kept: %v", ds)
	}
	if vs, _, _ := s.Violations(ctx, "d1", 0); len(vs) != 0 {
		t.Errorf("violations of an erased device kept: %v", vs)
	}
	if _, err := s.ConsentRecord(ctx, "r1"); err != nil {
		t.Errorf("consent record (evidence) lost: %v", err)
	}
	ps, err := s.Purges(ctx)
	if err != nil || len(ps) != 1 || ps[0].DeviceID != "d1" || ps[0].UntilSeq != 0 || ps[0].Reason != "account deleted" {
		t.Fatalf("Purges = %+v, %v; want one full purge of d1", ps, err)
	}
	// Readings go in bounded chunks, and only the purged device's.
	n, err := s.PurgeReadings(ctx, ps[0], 5)
	if err != nil || n != 5 {
		t.Fatalf("PurgeReadings(limit 5) = %d, %v", n, err)
	}
	n, err = s.PurgeReadings(ctx, ps[0], 5)
	if err != nil || n != 2 {
		t.Fatalf("second PurgeReadings = %d, %v; want the 2 left", n, err)
	}
	if got := mustReadings(t, s, store.ReadingQuery{DeviceID: "d2"}); len(got) != 7 {
		t.Errorf("other device lost readings: %d left", len(got))
	}
	if err := s.FinishPurge(ctx, ps[0]); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.Purges(ctx); len(ps) != 0 {
		t.Errorf("finished purge still queued: %+v", ps)
	}
}

func testPurgeUntilSeq(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupReadingDevices(t, s, "d1")
	var rs []store.Reading
	for i := range 6 {
		rs = append(rs, reading("d1", "temp", at(time.Duration(i)*time.Second), `{}`))
	}
	mustAppend(t, s, rs)
	cut := rs[3].Seq
	p := store.Purge{DeviceID: "d1", UntilSeq: cut, Reason: "unlinked"}
	if err := s.Erase(ctx, store.Erasure{Purges: []store.Purge{p}, At: at(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ps, _ := s.Purges(ctx)
	if len(ps) != 1 {
		t.Fatalf("purges = %+v", ps)
	}
	if n, err := s.PurgeReadings(ctx, ps[0], 0); err != nil || n != 4 {
		t.Fatalf("PurgeReadings until seq %d = %d, %v; want 4", cut, n, err)
	}
	left := mustReadings(t, s, store.ReadingQuery{DeviceID: "d1"})
	if !slices.Equal(seqs(left), seqs(rs[4:])) {
		t.Errorf("left %v, want %v", seqs(left), seqs(rs[4:]))
	}

	// A wider purge replaces a narrower one, and finishing the old one
	// does not drop the new one.
	if err := s.Erase(ctx, store.Erasure{Purges: []store.Purge{{DeviceID: "d1", UntilSeq: 0, Reason: "account deleted"}}, At: at(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishPurge(ctx, ps[0]); err != nil {
		t.Fatal(err)
	}
	ps2, _ := s.Purges(ctx)
	if len(ps2) != 1 || ps2[0].UntilSeq != 0 {
		t.Fatalf("after a wider purge: %+v; want one purge of everything", ps2)
	}
	// A narrower one later does not narrow it.
	if err := s.Erase(ctx, store.Erasure{Purges: []store.Purge{{DeviceID: "d1", UntilSeq: 1}}, At: at(3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ps3, _ := s.Purges(ctx); len(ps3) != 1 || ps3[0].UntilSeq != 0 {
		t.Fatalf("narrower purge narrowed the queue: %+v", ps3)
	}
}

func testAggregates(t *testing.T, s store.Store) {
	ctx := t.Context()
	h := at(0).Truncate(time.Hour)
	add := []store.Aggregate{
		{DeviceType: "thermostat", Stream: "temp", Field: "c", Hour: h.Add(25 * time.Minute), Count: 10, Sum: 200},
		{DeviceType: "thermostat", Stream: "temp", Field: "c", Hour: h.Add(time.Hour), Count: 6, Sum: 120},
		{DeviceType: "meter", Stream: "power", Field: "w", Hour: h, Count: 8, Sum: 80},
	}
	if err := s.Erase(ctx, store.Erasure{Aggregates: add, At: at(0)}); err != nil {
		t.Fatal(err)
	}
	// Cells merge.
	if err := s.Erase(ctx, store.Erasure{Aggregates: add[:1], At: at(0)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Aggregates(ctx, store.AggregateQuery{DeviceType: "thermostat"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("aggregates = %+v; want 2 thermostat cells", got)
	}
	if !got[0].Hour.Equal(h) || got[0].Count != 20 || got[0].Sum != 400 {
		t.Errorf("merged cell = %+v; want hour %v, 20 readings, sum 400", got[0], h)
	}
	if got, _ := s.Aggregates(ctx, store.AggregateQuery{Since: h.Add(time.Hour)}); len(got) != 1 || got[0].Count != 6 {
		t.Errorf("since filter: %+v", got)
	}
	if err := s.Erase(ctx, store.Erasure{Aggregates: []store.Aggregate{{DeviceType: "x", Stream: "y", Field: "z", Hour: h}}, At: at(0)}); err == nil {
		t.Error("an empty cell was accepted")
	}
}

func testSetAccountRole(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateAccount(t, s, account("a1", "h1", "alice"))
	if err := s.SetAccountRole(ctx, "a1", store.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Account(ctx, "a1"); a.Role != store.RoleOwner {
		t.Errorf("role = %q", a.Role)
	}
	wantErr(t, "SetAccountRole(missing)", s.SetAccountRole(ctx, "nope", store.RoleOwner), store.ErrNotFound)
}

func testDeleteHousehold(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateAccount(t, s, account("a1", "h1", "alice"))
	wantErr(t, "DeleteHousehold(with an account)", s.DeleteHousehold(ctx, "h1"), store.ErrConflict)
	if err := s.DeleteAccount(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	mustCreateDevice(t, s, device("d1", "h1"))
	wantErr(t, "DeleteHousehold(with a device)", s.DeleteHousehold(ctx, "h1"), store.ErrConflict)
	if err := s.Erase(ctx, store.Erasure{DeleteDevices: []string{"d1"}, At: at(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteHousehold(ctx, "h1"); err != nil {
		t.Fatalf("DeleteHousehold(empty): %v", err)
	}
	wantErr(t, "Household(deleted)", func() error { _, err := s.Household(ctx, "h1"); return err }(), store.ErrNotFound)
	wantErr(t, "DeleteHousehold(again)", s.DeleteHousehold(ctx, "h1"), store.ErrNotFound)
}

func testRecipientEndpoints(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateHousehold(t, s, household("h2", at(0)))
	e := store.RecipientEndpoint{HouseholdID: "h1", Recipient: "Your energy supplier", URL: "https://a.example/in", CreatedAt: at(time.Minute)}
	if err := s.PutRecipientEndpoint(ctx, e); err != nil {
		t.Fatal(err)
	}
	e.URL = "https://b.example/in"
	if err := s.PutRecipientEndpoint(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecipientEndpoint(ctx, store.RecipientEndpoint{HouseholdID: "h2", Recipient: "Other", URL: "https://c.example", CreatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "PutRecipientEndpoint(no household)", s.PutRecipientEndpoint(ctx, store.RecipientEndpoint{HouseholdID: "nope", Recipient: "x", URL: "https://x", CreatedAt: at(0)}), store.ErrNotFound)
	got, err := s.RecipientEndpoints(ctx, "h1")
	if err != nil || len(got) != 1 || got[0].URL != "https://b.example/in" || got[0].Recipient != "Your energy supplier" {
		t.Fatalf("RecipientEndpoints(h1) = %+v, %v; want the replaced endpoint only", got, err)
	}
	if all, _ := s.RecipientEndpoints(ctx, ""); len(all) != 2 {
		t.Errorf("all endpoints: %+v", all)
	}
	if err := s.DeleteRecipientEndpoint(ctx, "h1", "Your energy supplier"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "DeleteRecipientEndpoint(again)", s.DeleteRecipientEndpoint(ctx, "h1", "Your energy supplier"), store.ErrNotFound)
}
