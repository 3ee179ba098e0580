package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

func finding(id string, seen time.Time) store.AuditFinding {
	return store.AuditFinding{ID: id, Check: "check", Severity: "high", Subject: id, Doc: []byte(`{}`), FirstSeen: seen, LastSeen: seen}
}

func openIDs(t *testing.T, s store.Store) map[string]store.AuditFinding {
	t.Helper()
	fs, err := s.AuditFindings(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.AuditFinding{}
	for _, f := range fs {
		out[f.ID] = f
	}
	return out
}

func testAuditRuns(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.SaveAuditRun(ctx, []store.AuditFinding{finding("a", at(0)), finding("b", at(0))}, at(0)); err != nil {
		t.Fatal(err)
	}
	// Found again: first sighting kept. Not found: closed.
	if err := s.SaveAuditRun(ctx, []store.AuditFinding{finding("a", at(time.Hour))}, at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	open := openIDs(t, s)
	if len(open) != 1 || !open["a"].FirstSeen.Equal(at(0)) || !open["a"].LastSeen.Equal(at(time.Hour)) {
		t.Fatalf("after the second run: %+v", open)
	}
	all, err := s.AuditFindings(ctx, true)
	if err != nil || len(all) != 2 || all[1].ID != "b" || !all[1].ClosedAt.Equal(at(time.Hour)) || all[1].Open() {
		t.Fatalf("with closed: %+v %v", all, err)
	}
	// A closed finding seen again reopens with a new first sighting.
	if err := s.SaveAuditRun(ctx, []store.AuditFinding{finding("a", at(2*time.Hour)), finding("b", at(2*time.Hour))}, at(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	open = openIDs(t, s)
	if len(open) != 2 || !open["b"].FirstSeen.Equal(at(2*time.Hour)) || !open["a"].FirstSeen.Equal(at(0)) {
		t.Fatalf("after reopening: %+v", open)
	}
}

func testAuditSuppressions(t *testing.T, s store.Store) {
	ctx := t.Context()
	sup := store.AuditSuppression{FindingID: "a", HouseholdID: "h1", Reason: "test bench", By: "acc_1", CreatedAt: at(0), Until: at(time.Hour)}
	if err := s.PutAuditSuppression(ctx, sup); err != nil {
		t.Fatal(err)
	}
	sup.Until = at(2 * time.Hour)
	if err := s.PutAuditSuppression(ctx, sup); err != nil {
		t.Fatal(err)
	}
	got, err := s.AuditSuppressions(ctx)
	if err != nil || len(got) != 1 || got[0] != sup {
		t.Fatalf("suppressions: %+v %v", got, err)
	}
	if err := s.DeleteAuditSuppression(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete again", s.DeleteAuditSuppression(ctx, "a"), store.ErrNotFound)
}

func testAuditMarks(t *testing.T, s store.Store) {
	ctx := t.Context()
	if m, err := s.AuditMark(ctx, "checkpoint"); err != nil || !m.IsZero() {
		t.Fatalf("unset mark: %v %v", m, err)
	}
	for _, ts := range []time.Time{at(time.Hour), at(0)} {
		if err := s.SetAuditMark(ctx, "checkpoint", ts); err != nil {
			t.Fatal(err)
		}
	}
	// An earlier time never moves a mark back.
	if m, err := s.AuditMark(ctx, "checkpoint"); err != nil || !m.Equal(at(time.Hour)) {
		t.Fatalf("mark: %v %v", m, err)
	}
}

func testSecretOrigin(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateDevice(t, s, device("d1", "h1"))
	mustCreateDevice(t, s, device("d2", "h1"))
	if err := s.SetDeviceSecretOrigin(ctx, "d1", true, at(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDeviceSecretOrigin(ctx, "d2", true, at(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDeviceSecretOrigin(ctx, "d2", false, at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ChosenSecretDevices(ctx)
	if err != nil || len(got) != 1 || got[0] != "d1" {
		t.Fatalf("chosen: %v %v", got, err)
	}
	if last, err := s.LastReadingAt(ctx, "d1"); err != nil || !last.IsZero() {
		t.Fatalf("last reading of a quiet device: %v %v", last, err)
	}
	mustAppend(t, s, []store.Reading{reading("d1", "s", at(time.Minute), `{}`), reading("d1", "s", at(2*time.Minute), `{}`)})
	if last, err := s.LastReadingAt(ctx, "d1"); err != nil || !last.Equal(at(2*time.Minute)) {
		t.Fatalf("last reading: %v %v", last, err)
	}
}

func testAssessments(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := range 3 {
		d, err := s.PutAssessment(ctx, store.AssessmentDoc{Kind: "pia", HouseholdID: "h1", Digest: "x", Doc: []byte(`{}`), Signature: []byte{byte(i)}, CreatedAt: at(time.Duration(i))})
		if err != nil || d.Version != i+1 {
			t.Fatalf("version %d: %+v %v", i+1, d, err)
		}
	}
	if _, err := s.PutAssessment(ctx, store.AssessmentDoc{Kind: "pia", HouseholdID: "h2", Doc: []byte(`{}`), Signature: []byte{1}, CreatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Assessments(ctx, "pia", "h1", 2)
	if err != nil || len(got) != 2 || got[0].Version != 3 || got[1].Version != 2 || got[0].Signature[0] != 2 {
		t.Fatalf("latest two: %+v %v", got, err)
	}
	if none, err := s.Assessments(ctx, "conformance", "", 0); err != nil || len(none) != 0 {
		t.Fatalf("none: %+v %v", none, err)
	}
	if errors.Is(err, store.ErrNotFound) {
		t.Fatal("an empty list is not an error")
	}
}
