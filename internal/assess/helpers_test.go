package assess

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// env is a real store, catalog, transparency log and identity service in
// a temporary data directory, with the audit's clock in the test's hand.
type env struct {
	t    *testing.T
	dir  string
	st   *sqlite.DB
	cat  *catalog.Catalog
	alog *auditlog.Log
	id   *identity.Service
	now  time.Time
	cfg  Config
	svc  *Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	sqlitetest.Write(t, filepath.Join(dir, "candor.db")) // migrated once per test binary
	st, err := sqlite.Open(ctx, filepath.Join(dir, "candor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	key, err := auditlog.LoadOrCreateKey(filepath.Join(dir, "audit"), "")
	if err != nil {
		t.Fatal(err)
	}
	alog, err := auditlog.Open(ctx, filepath.Join(dir, "audit"), key, auditlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	cat, err := catalog.Open(ctx, st, catalog.Options{Log: alog})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, st: st, cat: cat, alog: alog, now: time.Now().UTC(),
		id: identity.New(st, identity.Options{Log: alog})}
	e.cfg = Config{Store: st, Manifests: cat, Log: alog, DataDir: dir, LogSize: alog.Size,
		RotationPeriod: 365 * 24 * time.Hour, Now: func() time.Time { return e.now }}
	e.svc = New(e.cfg)
	return e
}

// rebuild makes a new service from e.cfg over the same store, as a
// restart with changed settings would.
func (e *env) rebuild() { e.svc = New(e.cfg) }

func (e *env) household(id string) {
	e.t.Helper()
	if err := e.st.CreateHousehold(e.t.Context(), store.Household{ID: id, Name: id, CreatedAt: e.now}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) addDevice(hh, typ, secret string) store.Device {
	e.t.Helper()
	d, _, err := e.id.AddDevice(e.t.Context(), identity.NewDevice{HouseholdID: hh, Name: "dev", Type: typ, Secret: secret})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// run runs the audit and returns the operator's view.
func (e *env) run() Report {
	e.t.Helper()
	rep, err := e.svc.Run(e.t.Context())
	if err != nil {
		e.t.Fatalf("audit run: %v", err)
	}
	return rep
}

// open returns the open findings of a check.
func open(rep Report, check string) []Finding {
	var out []Finding
	for _, f := range rep.Findings {
		if f.Check == check && f.ClosedAt == nil {
			out = append(out, f)
		}
	}
	return out
}

// mustFind runs the audit and wants exactly one open finding of check,
// with its explanation complete.
func (e *env) mustFind(check string) Finding {
	e.t.Helper()
	fs := open(e.run(), check)
	if len(fs) != 1 {
		e.t.Fatalf("%s: %d open findings, want 1: %+v", check, len(fs), fs)
	}
	f := fs[0]
	if f.Evidence == "" || f.Why == "" || f.Fix == "" || f.Title == "" || f.Severity.Rank() < 0 {
		e.t.Fatalf("%s: incomplete finding %+v", check, f)
	}
	return f
}

// mustClose runs the audit and wants no open finding of check, and the
// one that was open listed as closed.
func (e *env) mustClose(check, id string) {
	e.t.Helper()
	if fs := open(e.run(), check); len(fs) != 0 {
		e.t.Fatalf("%s: still open after the fix: %+v", check, fs)
	}
	rep, err := e.svc.Findings(e.t.Context(), access.Operator(), true)
	if err != nil {
		e.t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Findings, func(f Finding) bool { return f.ID == id && f.ClosedAt != nil }) {
		e.t.Fatalf("%s: finding %s not listed as closed", check, id)
	}
}

// putManifest stores a version of a shipped template after edit.
func (e *env) putManifest(typ string, edit func(string) string) {
	e.t.Helper()
	ts, err := manifest.Templates()
	if err != nil {
		e.t.Fatal(err)
	}
	doc := edit(string(ts[typ].Raw))
	if _, err := e.cat.Put(context.WithoutCancel(e.t.Context()), []byte(doc)); err != nil {
		e.t.Fatalf("put manifest: %v", err)
	}
}

func logActions(t *testing.T, l *auditlog.Log) []string {
	t.Helper()
	var out []string
	for en, err := range l.Entries(t.Context(), 0, l.Size()) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, en.Event.Action)
	}
	return out
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func access0Person() access.Principal {
	return access.Person(store.Account{ID: "acc_p", HouseholdID: "h1", Role: store.RoleOwner}, store.Session{})
}
