package updates

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// TestStageSurvivesRestart: a service over a real SQLite store offers an
// update, the device reports it is downloading, and the hub restarts. The
// new service knows the stage before any check, takes the device's next
// report, offers the image again on the control topic without logging a
// second offer, and does not start over.
func TestStageSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := newFixture(t)
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if err := db.CreateHousehold(ctx, store.Household{ID: f.dev.Household, Name: "Home", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateDevice(ctx, store.Device{ID: f.dev.ID, HouseholdID: f.dev.Household, Name: "Hall", Type: "thermostat",
		SecretHash: "x", CreatedAt: at, CredentialSetAt: at}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	open := func() *Service {
		svc, err := New(Config{Dir: dir, BaseURL: func() string { return "http://hub.test" }, Versions: f.ver, Recorder: f.rec, Announce: f.pub,
			Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return f.now }, Stages: db})
		if err != nil {
			t.Fatal(err)
		}
		f.pub.svc = svc
		if err := svc.SetSource("thermostat", f.repo.source(t, "thermostat/")); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	f.svc = open()
	f.repo.add(t, "thermostat", "1.2.0", true, "CVE-2026-0001")
	if st := f.check(t); st.Stage != StatusOffered {
		t.Fatalf("stage %s, want offered", st.Stage)
	}
	if err := f.svc.HandleProgress(ctx, f.dev, []byte(`{"version":"1.2.0","stage":"downloading"}`)); err != nil {
		t.Fatal(err)
	}

	// The restart: a new service over the same store.
	f.svc = open()
	if st, ok := f.svc.Status(f.dev.ID); !ok || st.Stage != string(StageDownloading) {
		t.Fatalf("after restart, before a check: %+v %v; want downloading", st, ok)
	}
	if err := f.svc.HandleProgress(ctx, f.dev, []byte(`{"version":"1.2.0","stage":"verified"}`)); err != nil {
		t.Fatalf("progress after restart: %v", err)
	}
	published := len(f.pub.msgs)
	st := f.check(t)
	if st.Stage != string(StageVerified) || st.Available == nil || st.Available.Version != "1.2.0" {
		t.Fatalf("after restart and a check: %+v; want verified with 1.2.0", st)
	}
	if got := f.pub.msgs[published:]; len(got) != 1 || got[0] != OfferTopic(f.dev.ID)+" offer" {
		t.Errorf("published after restart %v, want the offer again", got)
	}
	offers := 0
	for _, a := range f.rec.actions() {
		if a == "update.offer:" {
			offers++
		}
	}
	if offers != 1 {
		t.Errorf("%d update.offer entries, want 1 (the offer again is not a new offer)", offers)
	}
	if err := f.svc.HandleProgress(ctx, f.dev, []byte(`{"version":"1.2.0","stage":"installed"}`)); err != nil {
		t.Fatal(err)
	}
	rows, err := db.UpdateStages(ctx)
	if err != nil || len(rows) != 1 || rows[0].Stage != "installed" || rows[0].Version != "1.2.0" || rows[0].SHA256 == "" {
		t.Errorf("stored stages = %+v, %v", rows, err)
	}
}
