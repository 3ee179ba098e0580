package forward

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// registryRig is the forwarding rig (a real SQLite store, a real Forwarder
// and a real recipient that checks signatures) with a Registry over the
// shipped manifest templates. Household h1 has a smart meter ("meter",
// with the rig's endpoint removed), a thermostat, a revoked wearable and a
// device of a type without a manifest; h2 has a smart meter of its own;
// h3 has no devices.
func registryRig(t *testing.T) (*rig, *Registry) {
	t.Helper()
	r := newRig(t, Options{})
	ctx := t.Context()
	if err := r.db.DeleteRecipientEndpoint(ctx, "h1", supplier); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, hh := range []string{"h2", "h3"} {
		if err := r.db.CreateHousehold(ctx, store.Household{ID: hh, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []store.Device{
		{ID: "thermo", HouseholdID: "h1", Name: "Hall", Type: "thermostat"},
		{ID: "watch", HouseholdID: "h1", Name: "Watch", Type: "wearable"},
		{ID: "odd", HouseholdID: "h1", Name: "Odd", Type: "no-such-type"},
		{ID: "meter2", HouseholdID: "h2", Name: "Flat meter", Type: "smart-meter"},
	} {
		d.SecretHash, d.CreatedAt = "x", now
		if err := r.db.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.db.RevokeDevice(ctx, "watch", now); err != nil {
		t.Fatal(err)
	}
	templates, err := manifest.Templates()
	if err != nil {
		t.Fatal(err)
	}
	return r, NewRegistry(r.db, templateManifests(templates), r.f, RegistryOptions{})
}

// templateManifests puts the shipped templates in force, without a store.
type templateManifests map[string]*manifest.Manifest

func (t templateManifests) Current(deviceType string) (*catalog.Entry, error) {
	if m, ok := t[deviceType]; ok {
		return &catalog.Entry{Version: 1, Manifest: m}, nil
	}
	return nil, fmt.Errorf("device type %q: %w", deviceType, catalog.ErrNoManifest)
}

func TestRegistryListsWhatManifestsName(t *testing.T) {
	_, g := registryRig(t)
	list, err := g.List(t.Context(), "h1")
	if err != nil {
		t.Fatal(err)
	}
	// The revoked wearable's research team is not listed, nor is anything
	// of the device without a manifest.
	if len(list) != 1 {
		t.Fatalf("recipients %+v; want only the energy supplier", list)
	}
	rc := list[0]
	if rc.Name != supplier || rc.Role != "dpv:DataController" || rc.Identifiable != "linked" || rc.Retention.Text != "P7Y" ||
		rc.Terms == "" || rc.Contact == "" {
		t.Errorf("recipient %+v", rc)
	}
	want := Use{DeviceID: "meter", Stream: "energy", StreamTitle: "Meter reading", Purpose: "candor:Billing"}
	if len(rc.Uses) != 1 || rc.Uses[0] != want {
		t.Errorf("uses %+v; want [%+v]", rc.Uses, want)
	}
	if rc.URL != "" || !rc.ConfiguredAt.IsZero() || rc.Delivery != nil {
		t.Errorf("no endpoint was set, yet %q %v %+v", rc.URL, rc.ConfiguredAt, rc.Delivery)
	}
	if list, err := g.List(t.Context(), "h3"); err != nil || len(list) != 0 {
		t.Errorf("a household without devices: %+v, %v", list, err)
	}
}

func TestRegistrySetDeliversAndStaysInItsHousehold(t *testing.T) {
	r, g := registryRig(t)
	ctx := t.Context()

	err := g.Set(ctx, "h1", "Nobody", r.rcv.srv.URL)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a name no manifest gives: %v; want not found", err)
	}
	for _, bad := range []string{"", "http://supplier.example/in", "ftp://supplier.example/in", "https://user:pw@supplier.example/"} {
		err := g.Set(ctx, "h1", supplier, bad)
		want := CheckURL(bad)
		if !errors.Is(err, ErrBadURL) || want == nil || err.Error() != want.Error() {
			t.Errorf("Set(%q) = %v; want ErrBadURL saying %v", bad, err, want)
		}
	}
	// A household whose devices do not name the recipient cannot use it.
	if err := g.Set(ctx, "h3", supplier, r.rcv.srv.URL); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Set in a household without a meter: %v; want not found", err)
	}
	if eps, _ := r.db.RecipientEndpoints(ctx, ""); len(eps) != 0 {
		t.Fatalf("refused calls stored %+v", eps)
	}

	before := time.Now().Add(-time.Second)
	if err := g.Set(ctx, "h1", supplier, r.rcv.srv.URL); err != nil {
		t.Fatal(err)
	}
	// The forwarder was reloaded: the very next reading goes out.
	r.sw.set("energy", supplier)
	r.f.Forward(ctx, "meter", "energy", time.Now(), []byte(`{"kwh_total":5}`), []string{supplier})
	waitUntil(t, "the reading delivered", func() bool { return len(r.rcv.received()) == 1 })
	waitUntil(t, "the delivery counted", func() bool {
		list, _ := g.List(ctx, "h1")
		return len(list) == 1 && list[0].Delivery != nil && list[0].Delivery.Delivered == 1
	})
	list, err := g.List(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if rc := list[0]; rc.URL != r.rcv.srv.URL || rc.ConfiguredAt.Before(before) || rc.Delivery.Dropped != 0 {
		t.Errorf("after Set: %+v", rc)
	}

	// The other household sees the same recipient, but not this one's
	// endpoint or counts.
	other, err := g.List(ctx, "h2")
	if err != nil {
		t.Fatal(err)
	}
	if len(other) != 1 || other[0].Name != supplier || other[0].URL != "" || other[0].Delivery != nil ||
		len(other[0].Uses) != 1 || other[0].Uses[0].DeviceID != "meter2" {
		t.Errorf("the other household sees %+v", other)
	}
	if _, err := g.Lookup(ctx, "h2", "Nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lookup of an undeclared name: %v", err)
	}
	if rc, err := g.Lookup(ctx, "h1", supplier); err != nil || rc.URL != r.rcv.srv.URL {
		t.Errorf("Lookup: %+v, %v", rc, err)
	}
}

func TestRegistryRemoveStopsSending(t *testing.T) {
	r, g := registryRig(t)
	ctx := t.Context()
	var told []string // OnChange: each stored change, not the refused ones
	g.changed = func(hh string) { told = append(told, hh) }
	if err := g.Remove(ctx, "h1", supplier); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Remove with no endpoint set: %v; want not found", err)
	}
	if err := g.Remove(ctx, "h1", "Nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Remove of an undeclared name: %v; want not found", err)
	}
	if err := g.Set(ctx, "h1", supplier, r.rcv.srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := g.Set(ctx, "h2", supplier, r.rcv.srv.URL); err != nil {
		t.Fatal(err)
	}
	// Another household cannot remove this one's endpoint: it removes
	// only its own.
	if err := g.Remove(ctx, "h3", supplier); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Remove from a household without a meter: %v", err)
	}
	if err := g.Remove(ctx, "h2", supplier); err != nil {
		t.Fatal(err)
	}
	if list, _ := g.List(ctx, "h1"); len(list) != 1 || list[0].URL != r.rcv.srv.URL {
		t.Fatalf("h1 lost its endpoint when h2 removed its own: %+v", list)
	}
	if err := g.Remove(ctx, "h1", supplier); err != nil {
		t.Fatal(err)
	}
	list, err := g.List(ctx, "h1")
	if err != nil || len(list) != 1 || list[0].URL != "" || list[0].Delivery != nil {
		t.Fatalf("after Remove: %+v, %v", list, err)
	}
	if want := []string{"h1", "h2", "h2", "h1"}; !slices.Equal(told, want) {
		t.Errorf("OnChange told of %v; want %v", told, want)
	}
	r.sw.set("energy", supplier)
	r.f.Forward(ctx, "meter", "energy", time.Now(), []byte(`{"kwh_total":5}`), []string{supplier})
	time.Sleep(100 * time.Millisecond)
	if n := r.rcv.calls.Load(); n != 0 {
		t.Errorf("the recipient was called %d times after Remove", n)
	}
}
