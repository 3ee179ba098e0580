package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// consentRecord returns a record naming a decision on (device, stream,
// purpose, recipient), with a document that differs per id.
func consentRecord(id, account, device, stream, purpose, recipient string, d time.Duration) store.ConsentRecord {
	return store.ConsentRecord{
		ID:        id,
		AccountID: account,
		DeviceID:  device,
		Stream:    stream,
		Purpose:   purpose,
		Recipient: recipient,
		CreatedAt: at(d),
		// Not valid JSON on purpose: the store keeps bytes, it does not
		// read them. A trailing NUL and high bytes catch text handling.
		Doc: []byte(fmt.Sprintf(`{"record_id":%q} \xff\x00`, id)),
	}
}

func decisionFor(rec store.ConsentRecord, on bool) store.ConsentDecision {
	return store.ConsentDecision{DeviceID: rec.DeviceID, Stream: rec.Stream, Purpose: rec.Purpose, Recipient: rec.Recipient, On: on}
}

func testConsentRecords(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.ConsentRecord(ctx, "cr_none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown record: %v, want ErrNotFound", err)
	}
	recs := []store.ConsentRecord{
		consentRecord("cr_1", "acc_a", "dev_1", "heart_rate", "dpv:ResearchAndDevelopment", "hub", time.Second),
		consentRecord("cr_2", "acc_b", "dev_1", "heart_rate", "dpv:ResearchAndDevelopment", "The maker's research team", 2*time.Second),
		consentRecord("cr_3", "acc_a", "dev_2", "sleep", "candor:HealthMonitoring", "hub", 3*time.Second),
	}
	for _, r := range recs {
		if err := s.RecordConsentDecision(ctx, r, decisionFor(r, true)); err != nil {
			t.Fatalf("record %s: %v", r.ID, err)
		}
	}
	routing := consentRecord("cr_4", "acc_a", "dev_1", "heart_rate", "", "hub", 4*time.Second)
	if err := s.RecordConsentRouting(ctx, routing, store.ConsentRouting{DeviceID: "dev_1", Stream: "heart_rate", KeepOnHub: true, Retention: "P30D"}); err != nil {
		t.Fatalf("record routing: %v", err)
	}
	recs = append(recs, routing)

	got, err := s.ConsentRecord(ctx, "cr_2")
	if err != nil {
		t.Fatal(err)
	}
	want := recs[1]
	if got.ID != want.ID || got.AccountID != want.AccountID || got.DeviceID != want.DeviceID || got.Stream != want.Stream ||
		got.Purpose != want.Purpose || got.Recipient != want.Recipient || !got.CreatedAt.Equal(want.CreatedAt) ||
		string(got.Doc) != string(want.Doc) || got.Seq <= 0 {
		t.Errorf("record: got %+v, want %+v", got, want)
	}

	ids := func(q store.ConsentRecordQuery) []string {
		t.Helper()
		rs, err := s.ConsentRecords(ctx, q)
		if err != nil {
			t.Fatalf("records %+v: %v", q, err)
		}
		var out []string
		for i, r := range rs {
			if i > 0 && r.Seq <= rs[i-1].Seq {
				t.Errorf("records %+v not in append order: %d after %d", q, r.Seq, rs[i-1].Seq)
			}
			out = append(out, r.ID)
		}
		return out
	}
	check := func(q store.ConsentRecordQuery, want ...string) {
		t.Helper()
		if got := ids(q); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("records %+v: got %v, want %v", q, got, want)
		}
	}
	check(store.ConsentRecordQuery{}, "cr_1", "cr_2", "cr_3", "cr_4")
	check(store.ConsentRecordQuery{AccountID: "acc_a"}, "cr_1", "cr_3", "cr_4")
	check(store.ConsentRecordQuery{DeviceID: "dev_1"}, "cr_1", "cr_2", "cr_4")
	check(store.ConsentRecordQuery{AccountID: "acc_a", DeviceID: "dev_1"}, "cr_1", "cr_4")
	check(store.ConsentRecordQuery{AccountID: "acc_nobody"})
	check(store.ConsentRecordQuery{Limit: 2}, "cr_1", "cr_2")
	all, _ := s.ConsentRecords(ctx, store.ConsentRecordQuery{})
	check(store.ConsentRecordQuery{AfterSeq: all[1].Seq}, "cr_3", "cr_4")

	// A record id is never reused, and the failed call changes nothing.
	dup := consentRecord("cr_1", "acc_b", "dev_9", "steps", "candor:HealthMonitoring", "hub", 5*time.Second)
	if err := s.RecordConsentDecision(ctx, dup, decisionFor(dup, true)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("reused record id: %v, want ErrConflict", err)
	}
	if ds, err := s.ConsentDecisions(ctx, "dev_9"); err != nil || len(ds) != 0 {
		t.Errorf("decision of the refused record stored: %+v %v", ds, err)
	}
	check(store.ConsentRecordQuery{}, "cr_1", "cr_2", "cr_3", "cr_4")
}

func testConsentDecisions(t *testing.T, s store.Store) {
	ctx := context.Background()
	r1 := consentRecord("cr_1", "acc_a", "dev_1", "heart_rate", "dpv:ResearchAndDevelopment", "hub", time.Second)
	r2 := consentRecord("cr_2", "acc_a", "dev_1", "heart_rate", "candor:HealthMonitoring", "hub", 2*time.Second)
	r3 := consentRecord("cr_3", "acc_b", "dev_2", "sleep", "candor:HealthMonitoring", "hub", 3*time.Second)
	for i, r := range []store.ConsentRecord{r1, r2, r3} {
		if err := s.RecordConsentDecision(ctx, r, decisionFor(r, i != 1)); err != nil {
			t.Fatal(err)
		}
	}
	// A later record on the same use replaces the decision.
	r4 := consentRecord("cr_4", "acc_b", "dev_1", "heart_rate", "dpv:ResearchAndDevelopment", "hub", 4*time.Second)
	if err := s.RecordConsentDecision(ctx, r4, decisionFor(r4, false)); err != nil {
		t.Fatal(err)
	}
	ds, err := s.ConsentDecisions(ctx, "dev_1")
	if err != nil || len(ds) != 2 {
		t.Fatalf("decisions of dev_1: %+v %v", ds, err)
	}
	for _, d := range ds {
		switch d.Purpose {
		case "dpv:ResearchAndDevelopment":
			if d.On || d.RecordID != "cr_4" || d.AccountID != "acc_b" || !d.DecidedAt.Equal(at(4*time.Second)) {
				t.Errorf("replaced decision: %+v", d)
			}
		case "candor:HealthMonitoring":
			if d.On || d.RecordID != "cr_2" || d.Recipient != "hub" || d.Stream != "heart_rate" {
				t.Errorf("decision: %+v", d)
			}
		default:
			t.Errorf("unexpected decision %+v", d)
		}
	}
	all, err := s.ConsentDecisions(ctx, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("all decisions: %+v %v", all, err)
	}
	if none, err := s.ConsentDecisions(ctx, "dev_none"); err != nil || len(none) != 0 {
		t.Errorf("decisions of an unknown device: %+v %v", none, err)
	}
	// The decision must be the one the record names.
	bad := consentRecord("cr_5", "acc_a", "dev_1", "heart_rate", "candor:HealthMonitoring", "hub", 5*time.Second)
	wrong := decisionFor(bad, true)
	wrong.Stream = "steps"
	if err := s.RecordConsentDecision(ctx, bad, wrong); err == nil {
		t.Error("a decision for another stream than its record's was stored")
	}
	if _, err := s.ConsentRecord(ctx, "cr_5"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record of the refused call: %v, want ErrNotFound", err)
	}
	// Concurrent writers on one use: every record kept, one decision.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := consentRecord(fmt.Sprintf("cr_c%d", i), "acc_a", "dev_3", "steps", "candor:HealthMonitoring", "hub", time.Duration(10+i)*time.Second)
			if err := s.RecordConsentDecision(ctx, r, decisionFor(r, i%2 == 0)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if rs, err := s.ConsentRecords(ctx, store.ConsentRecordQuery{DeviceID: "dev_3"}); err != nil || len(rs) != 8 {
		t.Errorf("concurrent records: %d %v", len(rs), err)
	}
	if ds, err := s.ConsentDecisions(ctx, "dev_3"); err != nil || len(ds) != 1 {
		t.Errorf("concurrent decisions: %+v %v", ds, err)
	}
}

func testConsentRouting(t *testing.T, s store.Store) {
	ctx := context.Background()
	r1 := consentRecord("cr_1", "acc_a", "dev_1", "heart_rate", "", "hub", time.Second)
	if err := s.RecordConsentRouting(ctx, r1, store.ConsentRouting{DeviceID: "dev_1", Stream: "heart_rate", KeepOnHub: true, Retention: "P30D"}); err != nil {
		t.Fatal(err)
	}
	r2 := consentRecord("cr_2", "acc_b", "dev_1", "heart_rate", "", "hub", 2*time.Second)
	if err := s.RecordConsentRouting(ctx, r2, store.ConsentRouting{DeviceID: "dev_1", Stream: "heart_rate", KeepOnHub: false}); err != nil {
		t.Fatal(err)
	}
	r3 := consentRecord("cr_3", "acc_b", "dev_2", "sleep", "", "hub", 3*time.Second)
	if err := s.RecordConsentRouting(ctx, r3, store.ConsentRouting{DeviceID: "dev_2", Stream: "sleep", KeepOnHub: true, Retention: "P7D"}); err != nil {
		t.Fatal(err)
	}
	rs, err := s.ConsentRoutings(ctx, "dev_1")
	if err != nil || len(rs) != 1 {
		t.Fatalf("routings of dev_1: %+v %v", rs, err)
	}
	if r := rs[0]; r.KeepOnHub || r.Retention != "" || r.RecordID != "cr_2" || r.AccountID != "acc_b" || !r.DecidedAt.Equal(at(2*time.Second)) {
		t.Errorf("replaced routing: %+v", r)
	}
	all, err := s.ConsentRoutings(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("all routings: %+v %v", all, err)
	}
	for _, r := range all {
		if r.DeviceID == "dev_2" && (!r.KeepOnHub || r.Retention != "P7D") {
			t.Errorf("routing of dev_2: %+v", r)
		}
	}
	// The routing must be the one the record names.
	bad := consentRecord("cr_4", "acc_a", "dev_1", "heart_rate", "", "hub", 4*time.Second)
	if err := s.RecordConsentRouting(ctx, bad, store.ConsentRouting{DeviceID: "dev_2", Stream: "heart_rate"}); err == nil {
		t.Error("a routing for another device than its record's was stored")
	}
	if _, err := s.ConsentRecord(ctx, "cr_4"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record of the refused call: %v, want ErrNotFound", err)
	}
}

// testConsentAtomic checks that a refused write leaves neither the record
// nor the state it would have set.
func testConsentAtomic(t *testing.T, s store.Store) {
	ctx := context.Background()
	r1 := consentRecord("cr_1", "acc_a", "dev_1", "sleep", "", "hub", time.Second)
	if err := s.RecordConsentRouting(ctx, r1, store.ConsentRouting{DeviceID: "dev_1", Stream: "sleep", KeepOnHub: true}); err != nil {
		t.Fatal(err)
	}
	// Same record id, different device: the routing must not appear.
	dup := consentRecord("cr_1", "acc_a", "dev_2", "sleep", "", "hub", 2*time.Second)
	if err := s.RecordConsentRouting(ctx, dup, store.ConsentRouting{DeviceID: "dev_2", Stream: "sleep"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("reused record id: %v, want ErrConflict", err)
	}
	if rs, err := s.ConsentRoutings(ctx, "dev_2"); err != nil || len(rs) != 0 {
		t.Errorf("routing of the refused record stored: %+v %v", rs, err)
	}
	// A cancelled context stores nothing either.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	r2 := consentRecord("cr_2", "acc_a", "dev_3", "sleep", "candor:HealthMonitoring", "hub", 3*time.Second)
	if err := s.RecordConsentDecision(cctx, r2, decisionFor(r2, true)); err == nil {
		t.Error("decision stored under a cancelled context")
	}
	if _, err := s.ConsentRecord(ctx, "cr_2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record stored under a cancelled context: %v", err)
	}
	if ds, err := s.ConsentDecisions(ctx, "dev_3"); err != nil || len(ds) != 0 {
		t.Errorf("decision stored under a cancelled context: %+v %v", ds, err)
	}
}
