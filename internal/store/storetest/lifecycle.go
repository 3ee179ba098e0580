package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

func testFirmware(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateDevice(t, s, device("d1", "h1"))
	mustCreateDevice(t, s, device("d2", "h1"))
	steps := []struct {
		r           store.FirmwareReport
		wantChanged bool
	}{
		{store.FirmwareReport{DeviceID: "d1", Firmware: "1.0.0", ReportedAt: at(time.Hour)}, true},
		{store.FirmwareReport{DeviceID: "d1", Firmware: "1.0.0", ReportedAt: at(2 * time.Hour)}, false},
		{store.FirmwareReport{DeviceID: "d1", Firmware: "1.0.0", Hardware: "rev-b", ReportedAt: at(3 * time.Hour)}, true},
		{store.FirmwareReport{DeviceID: "d1", Firmware: "1.1.0", Hardware: "rev-b", ReportedAt: at(4 * time.Hour)}, true},
		{store.FirmwareReport{DeviceID: "d2", Firmware: "2.0", ReportedAt: at(time.Hour)}, true},
	}
	for i, st := range steps {
		changed, err := s.RecordFirmware(ctx, st.r)
		if err != nil || changed != st.wantChanged {
			t.Fatalf("step %d: RecordFirmware(%+v) = %v, %v; want %v", i, st.r, changed, err, st.wantChanged)
		}
	}
	_, err := s.RecordFirmware(ctx, store.FirmwareReport{DeviceID: "nope", Firmware: "1", ReportedAt: at(0)})
	wantErr(t, "RecordFirmware(no device)", err, store.ErrNotFound)

	h, err := s.FirmwareHistory(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range h {
		got = append(got, r.Firmware+"/"+r.Hardware+"@"+r.ReportedAt.Sub(base).String())
	}
	if want := []string{"1.1.0/rev-b@4h0m0s", "1.0.0/rev-b@3h0m0s", "1.0.0/@1h0m0s"}; !slices.Equal(got, want) {
		t.Errorf("FirmwareHistory(d1) = %v, want %v (newest first, repeats dropped)", got, want)
	}
	cur, err := s.CurrentFirmware(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byDev := map[string]string{}
	for _, r := range cur {
		byDev[r.DeviceID] = r.Firmware
	}
	if len(cur) != 2 || byDev["d1"] != "1.1.0" || byDev["d2"] != "2.0" {
		t.Errorf("CurrentFirmware = %+v, want d1 1.1.0 and d2 2.0", cur)
	}

	// An erased device takes its history with it.
	if err := s.Erase(ctx, store.Erasure{DeleteDevices: []string{"d1"}, Reason: "test", At: at(5 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if h, err := s.FirmwareHistory(ctx, "d1"); err != nil || len(h) != 0 {
		t.Errorf("FirmwareHistory(erased d1) = %+v, %v; want none", h, err)
	}
}

func testAdvisories(t *testing.T, s store.Store) {
	ctx := t.Context()
	if as, err := s.Advisories(ctx); err != nil || len(as) != 0 {
		t.Fatalf("Advisories(empty) = %+v, %v", as, err)
	}
	a := store.Advisory{ID: "OSV-1", Format: "osv", Modified: at(time.Hour), Document: []byte(`{"id":"OSV-1"}`), ImportedAt: at(2 * time.Hour)}
	b := store.Advisory{ID: "CSAF-1", Format: "csaf", Modified: at(time.Hour), Document: []byte(`{"document":{}}`), ImportedAt: at(2 * time.Hour)}
	if err := s.PutAdvisories(ctx, []store.Advisory{a, b}); err != nil {
		t.Fatal(err)
	}
	a.Document = []byte(`{"id":"OSV-1","v":2}`)
	a.Modified = at(3 * time.Hour)
	if err := s.PutAdvisories(ctx, []store.Advisory{a}); err != nil {
		t.Fatal(err)
	}
	// A batch with one bad element stores nothing of it.
	bad := []store.Advisory{{ID: "OSV-2", Format: "osv", Document: []byte(`{}`), ImportedAt: at(0)}, {ID: "", Format: "osv", Document: []byte(`{}`)}}
	if err := s.PutAdvisories(ctx, bad); err == nil {
		t.Error("PutAdvisories with an empty id succeeded")
	}
	as, err := s.Advisories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 {
		t.Fatalf("Advisories = %+v, want 2 (the refused batch stores nothing)", as)
	}
	for _, got := range as {
		if got.ID == "OSV-1" && (string(got.Document) != string(a.Document) || !got.Modified.Equal(a.Modified) || got.Format != "osv") {
			t.Errorf("OSV-1 = %+v, want the replaced document", got)
		}
	}
}

func testOperator(t *testing.T, s store.Store) {
	ctx := t.Context()
	if o, err := s.Operator(ctx); err != nil || o != (store.Operator{}) {
		t.Fatalf("Operator(unset) = %+v, %v; want the zero value", o, err)
	}
	for _, o := range []store.Operator{
		{Name: "Ada", Contact: "mailto:ada@example.org", PrivacyContact: "mailto:privacy@example.org", DisclosurePolicy: "https://example.org/disclose", UpdatedAt: at(time.Hour)},
		{Name: "Bea", Contact: "mailto:bea@example.org", UpdatedAt: at(2 * time.Hour)},
	} {
		if err := s.SetOperator(ctx, o); err != nil {
			t.Fatal(err)
		}
		got, err := s.Operator(ctx)
		if err != nil || got.Name != o.Name || got.Contact != o.Contact || got.PrivacyContact != o.PrivacyContact ||
			got.DisclosurePolicy != o.DisclosurePolicy || !got.UpdatedAt.Equal(o.UpdatedAt) {
			t.Errorf("Operator = %+v, %v; want %+v", got, err, o)
		}
	}
}
