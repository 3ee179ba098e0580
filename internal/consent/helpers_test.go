package consent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// *catalog.Catalog is what the hub passes.
var _ Manifests = (*catalog.Catalog)(nil)

// *sqlite.DB is what the hub passes.
var _ Store = (*sqlite.DB)(nil)

// testKey is a fixed key so receipts in testdata stay verifiable.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// otherKey is a second, different key.
var otherKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

// fakeManifests maps device ids to catalog entries built from the shipped
// templates, like catalog.ForDevice does from the store.
type fakeManifests struct {
	mu      sync.Mutex
	devices map[string]*catalog.Entry
}

func templates(t testing.TB) map[string]*manifest.Manifest {
	t.Helper()
	ts, err := manifest.Templates()
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// newFakeManifests returns a lookup where each device id "<type>-…" is a
// device of that template type, version 1.
func newFakeManifests(t testing.TB, devices map[string]string) *fakeManifests {
	t.Helper()
	ts := templates(t)
	f := &fakeManifests{devices: map[string]*catalog.Entry{}}
	for id, typ := range devices {
		m := ts[typ]
		if m == nil {
			t.Fatalf("no template %q", typ)
		}
		f.devices[id] = &catalog.Entry{Version: 1, Manifest: m}
	}
	return f
}

func (f *fakeManifests) set(id string, e *catalog.Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.devices[id] = e
}

func (f *fakeManifests) ForDevice(_ context.Context, id string) (*catalog.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.devices[id]
	if !ok {
		return nil, fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	return e, nil
}

func openDB(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	sqlitetest.Ensure(t, path) // a copy of a migrated store, unless reopening
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var testNow = time.Date(2025, time.March, 2, 9, 30, 0, 0, time.UTC)

func newService(t testing.TB, st Store, mf Manifests) *Service {
	t.Helper()
	s, err := New(context.Background(), Options{
		Store:        st,
		Manifests:    mf,
		Key:          testKey,
		Controller:   Party{Name: "Alex Example (hub operator)", Contact: "mailto:alex@example.invalid"},
		Jurisdiction: "EU",
		Now:          func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fixture is a service over a real SQLite file and the fake lookup with a
// wearable, a smart meter and a thermostat.
type fixture struct {
	db  *sqlite.DB
	mf  *fakeManifests
	svc *Service
	mu  sync.Mutex
	got []notice // listener calls
}

const (
	wearable = "dev_wearable"
	meter    = "dev_meter"
	thermo   = "dev_thermo"
	research = "The maker's research team"
	supplier = "Your energy supplier"
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		db: openDB(t, filepath.Join(t.TempDir(), "candor.db")),
		mf: newFakeManifests(t, map[string]string{wearable: "wearable", meter: "smart-meter", thermo: "thermostat"}),
	}
	f.svc = newService(t, f.db, f.mf)
	f.svc.OnChange(func(device, stream string, collect bool) {
		f.mu.Lock()
		f.got = append(f.got, notice{device, stream, collect})
		f.mu.Unlock()
	})
	return f
}

func (f *fixture) notices() []notice {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.got
	f.got = nil
	return out
}

func (f *fixture) set(t testing.TB, device, stream, purpose, recipient string, on bool) Record {
	t.Helper()
	rec, err := f.svc.Set(context.Background(), Change{AccountID: "acc_sam", DeviceID: device, Stream: stream, Purpose: purpose, Recipient: recipient, On: on})
	if err != nil {
		t.Fatalf("Set(%s %s %s %s %v): %v", device, stream, purpose, recipient, on, err)
	}
	return rec
}

func dur(t testing.TB, s string) manifest.Duration {
	t.Helper()
	d, err := manifest.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
