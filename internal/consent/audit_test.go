package consent

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/logtest"
)

// recordingFixture is a fixture whose service records in a real log and
// whose wearable is in the store, in household hh_1.
func recordingFixture(t *testing.T) (*fixture, *auditlog.Log) {
	t.Helper()
	f := newFixture(t)
	ctx := context.Background()
	if err := f.db.CreateHousehold(ctx, store.Household{ID: "hh_1", Name: "Home", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.CreateDevice(ctx, store.Device{ID: wearable, HouseholdID: "hh_1", Name: "Band", Type: "wearable", SecretHash: "x", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	log := logtest.Open(t)
	f.svc.audit = log
	return f, log
}

func TestDecisionsAreRecordedByTheService(t *testing.T) {
	sam := auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_sam"}
	ctx := auditlog.WithActor(context.Background(), sam)
	tests := []struct {
		name   string
		decide func(s *Service) (Record, error)
		stream string
		kind   string
	}{
		{"use off", func(s *Service) (Record, error) {
			return s.Set(ctx, Change{AccountID: "acc_sam", DeviceID: wearable, Stream: "steps", Purpose: "candor:HealthMonitoring", Recipient: RecipientHub, On: false})
		}, "steps", KindConsent},
		{"use on for a recipient", func(s *Service) (Record, error) {
			return s.Set(ctx, Change{AccountID: "acc_sam", DeviceID: wearable, Stream: "heart_rate", Purpose: "dpv:ResearchAndDevelopment", Recipient: research, On: true})
		}, "heart_rate", KindConsent},
		{"routing", func(s *Service) (Record, error) {
			return s.SetRouting(ctx, "acc_sam", wearable, "sleep", StreamRouting{KeepOnHub: true})
		}, "sleep", KindStorage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, log := recordingFixture(t)
			rec, err := tt.decide(f.svc)
			if err != nil {
				t.Fatal(err)
			}
			evs := logtest.Events(t, log, "")
			if len(evs) != 1 {
				t.Fatalf("%d events recorded, want 1", len(evs))
			}
			want := auditlog.Event{Actor: sam, Action: auditlog.ActionConsentChange, Household: "hh_1",
				Subject: auditlog.Subject{Device: wearable, Stream: tt.stream}, Purpose: "consent choice"}
			got := evs[0]
			detail := got.Detail
			if got.Actor != want.Actor || got.Action != want.Action || got.Household != want.Household ||
				got.Subject != want.Subject || got.Purpose != want.Purpose {
				t.Errorf("recorded %+v, want %+v", got, want)
			}
			// Ids only: the record names the choice; the event does not.
			wantDetail := map[string]string{"record": rec.RecordID, "kind": tt.kind}
			if !maps.Equal(detail, wantDetail) {
				t.Errorf("detail %v, want %v", detail, wantDetail)
			}
		})
	}
}

func TestARefusedDecisionIsNotRecorded(t *testing.T) {
	f, log := recordingFixture(t)
	_, err := f.svc.Set(context.Background(), Change{AccountID: "acc_sam", DeviceID: wearable, Stream: "steps", Purpose: "dpv:Marketing", Recipient: RecipientHub})
	if err == nil {
		t.Fatal("an undeclared purpose was accepted")
	}
	if evs := logtest.Events(t, log, ""); len(evs) != 0 {
		t.Errorf("a refused decision was recorded: %+v", evs)
	}
}

// The person's choice stands when the log cannot take it: the decision is
// in force and its record stored; the hub's own log reports the miss.
func TestADecisionStandsWhenTheLogFails(t *testing.T) {
	f, log := recordingFixture(t)
	log.Close()
	rec, err := f.svc.Set(context.Background(), Change{AccountID: "acc_sam", DeviceID: wearable, Stream: "steps", Purpose: "candor:HealthMonitoring", Recipient: RecipientHub, On: false})
	if err != nil {
		t.Fatalf("Set with the log down: %v", err)
	}
	if d := f.svc.Allowed(wearable, "steps"); d.StoreOnHub {
		t.Errorf("decision not in force: %+v", d)
	}
	h, err := f.svc.History(context.Background(), HistoryQuery{DeviceID: wearable})
	if err != nil || !slices.ContainsFunc(h, func(r Record) bool { return r.RecordID == rec.RecordID }) {
		t.Errorf("record not stored: %v", err)
	}
}
