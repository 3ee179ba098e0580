package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// Apps and their grants round-trip, revoking drops the grants, and the
// errors name what is missing, as in the SQLite engine.
func TestApps(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := db.CreateHousehold(ctx, store.Household{ID: "hh_1", Name: "Home", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateDevice(ctx, store.Device{ID: "dev_1", HouseholdID: "hh_1", Name: "Hall", Type: "thermostat",
		SecretHash: "h", CredentialSetAt: now, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	app := store.App{ID: "app_1", HouseholdID: "hh_1", Name: "Home Assistant", Description: "automations",
		Purposes: []string{"dpv:ServiceProvision"}, Kind: "homeassistant", SecretHash: "s", CredentialSetAt: now, CreatedAt: now}
	if err := db.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateApp(ctx, app); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second CreateApp: %v, want ErrConflict", err)
	}
	if err := db.CreateApp(ctx, store.App{ID: "app_2", HouseholdID: "hh_none", CreatedAt: now, CredentialSetAt: now}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateApp in a missing household: %v, want ErrNotFound", err)
	}
	got, err := db.App(ctx, "app_1")
	if err != nil || got.Name != app.Name || len(got.Purposes) != 1 || got.Kind != "homeassistant" || !got.CreatedAt.Equal(now) {
		t.Fatalf("App = %+v, %v", got, err)
	}
	if list, err := db.Apps(ctx, "hh_1"); err != nil || len(list) != 1 {
		t.Fatalf("Apps = %v, %v", list, err)
	}
	if err := db.SetAppSecret(ctx, "app_1", "s2", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.PutAppGrant(ctx, store.AppGrant{AppID: "app_1", DeviceID: "dev_1", Stream: "temperature", DecidedBy: "acc_1", DecidedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutAppGrant(ctx, store.AppGrant{AppID: "app_1", DeviceID: "dev_none", Stream: "temperature", DecidedAt: now}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("grant on a missing device: %v, want ErrNotFound", err)
	}
	if gs, err := db.AppGrants(ctx, "app_1"); err != nil || len(gs) != 1 || gs[0].Stream != "temperature" {
		t.Fatalf("AppGrants = %v, %v", gs, err)
	}
	if err := db.RevokeApp(ctx, "app_1", now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if gs, err := db.AppGrants(ctx, ""); err != nil || len(gs) != 0 {
		t.Errorf("grants after revoking: %v, %v", gs, err)
	}
	if err := db.SetAppSecret(ctx, "app_1", "s3", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("new secret for a revoked app: %v, want ErrNotFound", err)
	}
	if got, _ := db.App(ctx, "app_1"); got.RevokedAt.IsZero() {
		t.Error("revoked app has no revocation time")
	}
}
