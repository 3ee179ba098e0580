package apps

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// events records what the service logs (a stand-in for the transparency
// log in this package's own tests).
type events struct {
	mu  sync.Mutex
	evs []auditlog.Event
}

func (e *events) Record(_ context.Context, ev auditlog.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
	return nil
}

func (e *events) actions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.evs {
		out = append(out, ev.Action)
	}
	return out
}

// rig is a service over a real SQLite store with the shipped manifests:
// household h1 has thermostat t1, household h2 thermostat t2.
func rig(t *testing.T) (*Service, *sqlite.DB, *events) {
	t.Helper()
	ctx := t.Context()
	db, err := sqlite.Open(ctx, sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cat, err := catalog.Open(ctx, db, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, hh := range []string{"h1", "h2"} {
		if err := db.CreateHousehold(ctx, store.Household{ID: hh, Name: hh, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []store.Device{
		{ID: "t1", HouseholdID: "h1", Name: "Hall", Type: "thermostat"},
		{ID: "t2", HouseholdID: "h2", Name: "Flat", Type: "thermostat"},
	} {
		d.SecretHash, d.CreatedAt, d.CredentialSetAt = "x", now, now
		if err := db.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	ev := &events{}
	s, err := New(ctx, Options{Store: db, Manifests: cat, Log: ev})
	if err != nil {
		t.Fatal(err)
	}
	return s, db, ev
}

type published struct {
	mu  sync.Mutex
	got []string
}

func (p *published) Publish(string, []byte, bool) error { return nil }

func (p *published) PublishReading(deviceID, stream string, _ []byte) {
	p.mu.Lock()
	p.got = append(p.got, deviceID+"/"+stream)
	p.mu.Unlock()
}

func TestAppGrantsOffByDefaultAndPerHousehold(t *testing.T) {
	s, _, ev := rig(t)
	ctx := t.Context()
	pub := &published{}
	s.SetPublisher(pub)
	a, secret, err := s.Add(ctx, NewApp{HouseholdID: "h1", Name: "Home Assistant", Purposes: []string{"candor:HomeAutomation"}})
	if err != nil {
		t.Fatal(err)
	}
	if !IsApp(a.ID) || secret == "" || a.SecretHash == secret {
		t.Fatalf("app %q: want an app id and a secret stored only as a hash", a.ID)
	}
	topic := "candor/t1/temperature"
	if s.Visible(a.ID, topic) {
		t.Error("a new app may see a stream before anyone allowed it")
	}
	s.Deliver("t1", "temperature", []byte(`{}`))
	if len(pub.got) != 0 {
		t.Errorf("a reading nobody allowed was handed to the broker: %v", pub.got)
	}
	if err := s.Set(ctx, Switch{AppID: a.ID, DeviceID: "t1", Stream: "temperature", On: true}); err != nil {
		t.Fatal(err)
	}
	if !s.Visible(a.ID, topic) || s.Visible(a.ID, "candor/t1/setpoint") {
		t.Error("allowing one stream did not allow exactly that stream")
	}
	s.Deliver("t1", "temperature", []byte(`{}`))
	if !slices.Equal(pub.got, []string{"t1/temperature"}) {
		t.Errorf("handed to the broker: %v", pub.got)
	}
	// Another household's device is unknown to the app, whatever is asked.
	if err := s.Set(ctx, Switch{AppID: a.ID, DeviceID: "t2", Stream: "temperature", On: true}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("allow another household's device: %v, want not found", err)
	}
	if err := s.Set(ctx, Switch{AppID: a.ID, DeviceID: "t1", Stream: "nosuch", On: true}); !errors.Is(err, ErrInvalid) {
		t.Errorf("allow an undeclared stream: %v, want invalid", err)
	}
	if s.MayMatch(ctx, a.ID, "candor/t2/#") || s.MayMatch(ctx, a.ID, "other/#") || s.MayMatch(ctx, a.ID, "candor/t1/control/#") {
		t.Error("a filter matching nothing the app may see was accepted")
	}
	for _, f := range []string{"candor/#", "candor/+/temperature", "candor/t1/+", "+/+/setpoint"} {
		if !s.MayMatch(ctx, a.ID, f) {
			t.Errorf("filter %q, which matches the household's reading topics, was refused", f)
		}
	}
	if err := s.Set(ctx, Switch{AppID: a.ID, DeviceID: "t1", Stream: "temperature", On: false}); err != nil {
		t.Fatal(err)
	}
	if s.Visible(a.ID, topic) {
		t.Error("withdrawn, but still visible")
	}
	want := []string{ActionAppCreate, auditlog.ActionConsentChange, auditlog.ActionConsentChange}
	if got := ev.actions(); !slices.Equal(got, want) {
		t.Errorf("logged %v, want %v", got, want)
	}
}

func TestAppCredential(t *testing.T) {
	s, _, ev := rig(t)
	ctx := t.Context()
	a, secret, err := s.Add(ctx, NewApp{HouseholdID: "h1", Name: "Node-RED", Purposes: []string{"dpv:ServiceProvision"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, a.ID, secret); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if _, err := s.Authenticate(ctx, a.ID, secret+"x"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong secret: %v", err)
	}
	var cut []string
	s.OnRevoke(func(id string) { cut = append(cut, id) })
	fresh, err := s.Rotate(ctx, auditlog.Actor{Kind: auditlog.ActorOperator}, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, a.ID, secret); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("old secret after rotation: %v", err)
	}
	if _, err := s.Authenticate(ctx, a.ID, fresh); err != nil {
		t.Errorf("new secret: %v", err)
	}
	if err := s.Set(ctx, Switch{AppID: a.ID, DeviceID: "t1", Stream: "temperature", On: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, auditlog.Actor{Kind: auditlog.ActorOperator}, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, a.ID, fresh); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked: %v", err)
	}
	if s.Visible(a.ID, "candor/t1/temperature") {
		t.Error("a revoked app still sees what it was allowed")
	}
	if !slices.Equal(cut, []string{a.ID, a.ID}) {
		t.Errorf("connections cut for %v, want the app after rotation and revocation", cut)
	}
	if got := ev.actions(); !slices.Contains(got, ActionAppRotate) || !slices.Contains(got, ActionAppRevoke) {
		t.Errorf("logged %v", got)
	}
	for _, bad := range []NewApp{
		{HouseholdID: "h1", Name: "x"},
		{HouseholdID: "h1", Name: "x", Purposes: []string{"marketing"}},
		{HouseholdID: "h1", Name: "", Purposes: []string{"dpv:ServiceProvision"}},
		{HouseholdID: "h1", Name: "Ho\u200bme", Purposes: []string{"dpv:ServiceProvision"}},
	} {
		if _, _, err := s.Add(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("add %+v: %v, want invalid", bad, err)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"candor/#", "candor/d/s", true},
		{"#", "candor/d/s", true},
		{"candor/+/s", "candor/d/s", true},
		{"candor/+", "candor/d/s", false},
		{"candor/d/s/#", "candor/d/s", true},
		{"candor/+/+/+", "candor/d/s", false},
		{"+/+/+", "$SYS/d/s", false},
		{"candor/d/t", "candor/d/s", false},
	} {
		if got := matchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

// OnChange hears of each change of what apps may receive once it is in
// force (a hub node passes it on to the others with it), and of nothing
// else: not of a refused switch, nor of a reload (which applies another
// node's change), nor of a revocation (OnRevoke's).
func TestAppChangesAreTold(t *testing.T) {
	s, _, _ := rig(t)
	ctx := t.Context()
	var told []string
	s.OnChange(func(id string) { told = append(told, id) })
	a, _, err := s.Add(ctx, NewApp{HouseholdID: "h1", Name: "Home Assistant", Purposes: []string{"candor:HomeAutomation"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, Switch{AppID: a.ID, DeviceID: "t1", Stream: "temperature", On: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, Switch{AppID: a.ID, DeviceID: "t2", Stream: "temperature", On: true}); err == nil {
		t.Fatal("another household's device was allowed")
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, auditlog.Actor{}, a.ID); err != nil {
		t.Fatal(err)
	}
	if want := []string{a.ID, a.ID}; !slices.Equal(told, want) {
		t.Errorf("told %v; want %v (the app added, the stream allowed)", told, want)
	}
}
