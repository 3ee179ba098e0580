package advisories

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// recorder keeps the events the service records.
type recorder struct {
	mu  sync.Mutex
	evs []auditlog.Event
}

func (r *recorder) Record(_ context.Context, ev auditlog.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	return nil
}

type fixes map[string]string

func (f fixes) FixReady(_ context.Context, dev, adv string) (string, bool) {
	v, ok := f[dev+"/"+adv]
	return v, ok
}

func fixture(t *testing.T, name string) Document {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return Document{Source: name, Data: b}
}

// newHub opens a real SQLite store with one household, the thermostat
// template in force, and three thermostats at different versions.
func newHub(t *testing.T) (*sqlite.DB, Options, *recorder) {
	t.Helper()
	ctx := t.Context()
	db, err := sqlite.Open(ctx, sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if err := db.CreateHousehold(ctx, store.Household{ID: "hh_1", Name: "Home", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	for id, fw := range map[string]string{"dev_old": "1.3.0", "dev_fixed": "1.4.2", "dev_new": "2.0.0", "dev_silent": ""} {
		if err := db.CreateDevice(ctx, store.Device{ID: id, HouseholdID: "hh_1", Name: id, Type: "thermostat", SecretHash: "x", CreatedAt: at, CredentialSetAt: at}); err != nil {
			t.Fatal(err)
		}
		if fw != "" {
			if _, err := db.RecordFirmware(ctx, store.FirmwareReport{DeviceID: id, Firmware: fw, ReportedAt: at}); err != nil {
				t.Fatal(err)
			}
		}
	}
	tpl, err := manifest.Templates()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	opts := Options{
		Store:     db,
		Inventory: StoreInventory{Store: db, Manifest: func(typ string) *manifest.Manifest { return tpl[typ] }},
		Log:       rec,
		Now:       func() time.Time { return at },
	}
	return db, opts, rec
}

func TestImportRefusesAllOrNothing(t *testing.T) {
	db, opts, rec := newHub(t)
	s := New(opts)
	_, err := s.Import(t.Context(), []Document{fixture(t, "osv-thermostat.json"), fixture(t, "osv-bad-range.json")})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "osv-bad-range.json") || !strings.Contains(err.Error(), "$.affected[0].ranges[0].type") {
		t.Fatalf("err = %v, want ErrInvalid naming the file and the JSON path", err)
	}
	if rows, _ := db.Advisories(t.Context()); len(rows) != 0 {
		t.Fatalf("a refused import stored %d documents", len(rows))
	}
	if len(rec.evs) != 0 {
		t.Errorf("a refused import recorded %d events", len(rec.evs))
	}
	// Two documents with one id in one import are refused too.
	if _, err := s.Import(t.Context(), []Document{fixture(t, "osv-thermostat.json"), fixture(t, "osv-thermostat.json")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate ids: err = %v", err)
	}
	// What was there before a refused import stays.
	if _, err := s.Import(t.Context(), []Document{fixture(t, "csaf-thermostat.json")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(t.Context(), []Document{fixture(t, "csaf-no-publisher.json")}); err == nil {
		t.Fatal("invalid CSAF accepted")
	}
	if n, _ := s.Count(t.Context()); n != 1 {
		t.Errorf("count = %d after a refused import, want the 1 stored before", n)
	}
}

func TestImportAndFindings(t *testing.T) {
	_, opts, rec := newHub(t)
	opts.Fixes = fixes{"dev_old/CANDOR-DEMO-2026-0001": "1.4.2"}
	s := New(opts)
	ctx := t.Context()
	if _, err := s.Import(ctx, []Document{fixture(t, "osv-thermostat.json"), fixture(t, "csaf-thermostat.json")}); err != nil {
		t.Fatal(err)
	}
	if len(rec.evs) != 2 || rec.evs[0].Action != ActionAdvisoryImport || rec.evs[0].Detail["advisory"] == "" || rec.evs[0].Detail["sha256"] == "" {
		t.Fatalf("events = %+v, want one advisory.import per document with its id and hash", rec.evs)
	}
	fs, err := s.Findings(ctx, "hh_1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range s.Views(ctx, fs) {
		got[v.Device+" "+v.Advisory] = v.Status
		for _, text := range []string{v.AttackerCan, v.SeverityWords} {
			if e := readability.Ease(text); e < 60 {
				t.Errorf("%q scores %.0f, want at least 60", text, e)
			}
		}
		if v.Device == "dev_old" && v.Advisory == "CANDOR-DEMO-2026-0001" && (!v.UpdateReady || !strings.Contains(v.Action, "1.4.2")) {
			t.Errorf("dev_old: action %q, want the ready update", v.Action)
		}
		if v.Advisory == "CANDOR-DEMO-SA-2026-07" && v.Device == "dev_old" && !strings.Contains(v.Action, "Install firmware 1.4.2") {
			t.Errorf("CSAF action %q, want its vendor fix", v.Action)
		}
	}
	want := map[string]string{
		"dev_old CANDOR-DEMO-2026-0001":     "affected",
		"dev_old CANDOR-DEMO-SA-2026-07":    "affected",
		"dev_silent CANDOR-DEMO-2026-0001":  "possibly_affected",
		"dev_silent CANDOR-DEMO-SA-2026-07": "possibly_affected",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "dev_new") || strings.HasPrefix(k, "dev_fixed") {
			t.Errorf("finding %s: a fixed or VEX not-affected device must not alarm", k)
		}
	}
	if other, err := s.Findings(ctx, "hh_other"); err != nil || len(other) != 0 {
		t.Errorf("another household sees %d findings (%v)", len(other), err)
	}

	// A new service over the same store reads what was imported.
	again := New(opts)
	fs2, err := again.Findings(ctx, "")
	if err != nil || len(fs2) != len(fs) {
		t.Errorf("after restart: %d findings (%v), want %d", len(fs2), err, len(fs))
	}
}
