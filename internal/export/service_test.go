package export_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/export/exporttest"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
	"github.com/candor-iot/candor/internal/vault"
)

// serviceRig is the export service on a real SQLite store, catalog,
// vault and transparency log: Alex's household has a meter with sealed
// readings, Sam's household next door has one too.
type serviceRig struct {
	st         *sqlite.DB
	cat        *catalog.Catalog
	vault      *vault.Vault
	alog       *auditlog.Log
	alex, sam  store.Account
	alexMeter  store.Device
	samMeter   store.Device
	alexHeldID string // alex's age identity, once alex's keys are user-held
}

func newServiceRig(t testing.TB) *serviceRig {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	sqlitetest.Write(t, filepath.Join(dir, "candor.db")) // migrated once per test binary
	st, err := sqlite.Open(ctx, filepath.Join(dir, "candor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := catalog.Open(ctx, st, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lkey, err := auditlog.GenerateKey("test.candor.local")
	if err != nil {
		t.Fatal(err)
	}
	alog, err := auditlog.Open(ctx, filepath.Join(dir, "audit"), lkey, auditlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	hubKey, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(ctx, st, vault.Options{Hub: hubKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	id := identity.New(st, identity.Options{})
	r := &serviceRig{st: st, cat: cat, vault: v, alog: alog}
	tok, err := id.SetupToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const pw = "violet-canyon-drifting-41"
	if r.alex, err = id.Setup(ctx, tok, "Home", identity.NewAccount{Username: "alex", Password: pw}); err != nil {
		t.Fatal(err)
	}
	if _, r.sam, err = id.CreateHousehold(ctx, "Next door", identity.NewAccount{Username: "sam", Password: pw}); err != nil {
		t.Fatal(err)
	}
	r.alexMeter = r.meter(t, id, r.alex, 5)
	r.samMeter = r.meter(t, id, r.sam, 2)
	return r
}

// meter adds a smart meter with n readings sealed under acc's key.
func (r *serviceRig) meter(t testing.TB, id *identity.Service, acc store.Account, n int) store.Device {
	t.Helper()
	ctx := context.Background()
	d, _, err := id.AddDevice(ctx, identity.NewDevice{HouseholdID: acc.HouseholdID, Name: "Meter", Type: "smart-meter", KeyOwner: acc.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.vault.Enroll(ctx, acc.ID, vault.Settings{Mode: vault.HubAssisted}); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Hour)
	var rs []store.Reading
	var aad []byte
	for i := range n {
		ts := at.Add(time.Duration(i) * time.Second)
		aad = vault.AppendReadingAAD(aad[:0], d.ID, "power", ts)
		sealed, err := r.vault.Seal(acc.ID, []byte(`{"watts": 7}`), aad)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, store.Reading{DeviceID: d.ID, Stream: "power", Time: ts, ManifestVersion: 1, Payload: sealed})
	}
	if err := r.st.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	return d
}

// holdAlexKeys puts Alex's keys in user-held mode: the hub keeps no copy
// it can open.
func (r *serviceRig) holdAlexKeys(t *testing.T) {
	t.Helper()
	en, err := r.vault.Enroll(context.Background(), r.alex.ID, vault.Settings{Mode: vault.UserHeld, GenerateIdentity: true})
	if err != nil {
		t.Fatal(err)
	}
	// A restart would drop the live key; rotating ends its epoch the same way.
	if _, err := r.vault.Rotate(context.Background(), r.alex.ID); err != nil {
		t.Fatal(err)
	}
	r.alexHeldID = en.Identity
}

func (r *serviceRig) config(jobs *export.Jobs) export.ServiceConfig {
	return export.ServiceConfig{Store: r.st, Catalog: r.cat, Opener: r.vault, IdentityOpener: r.vault, Keys: r.vault,
		Log: r.alog, Recorder: r.alog, Jobs: jobs}
}

// exportsRecorded returns the data exports in the transparency log.
func (r *serviceRig) exportsRecorded(t *testing.T) []auditlog.Event {
	t.Helper()
	var evs []auditlog.Event
	_, err := r.alog.Export(context.Background(), io.Discard, auditlog.ExportOptions{Match: func(ev *auditlog.Event) bool {
		if ev.Action == auditlog.ActionReadingsExport {
			evs = append(evs, *ev)
		}
		return false
	}})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// failingRecorder is a transparency log that cannot be written.
type failingRecorder struct{}

var errLogDown = errors.New("log disk full")

func (failingRecorder) Record(context.Context, auditlog.Event) error { return errLogDown }

// TestServicePrepare checks what the service decides before a streamed
// export: who it is for, whether the hub could complete it, and that it
// is recorded before anything is read.
func TestServicePrepare(t *testing.T) {
	tests := []struct {
		name      string
		who       func(*serviceRig) store.Account
		held      bool
		recorder  export.Recorder
		wantErr   error
		wantKind  *problem.Kind
		wantTrail int
	}{
		{name: "person", who: func(r *serviceRig) store.Account { return r.alex }, wantTrail: 1},
		{name: "operator", who: func(*serviceRig) store.Account { return store.Account{} },
			wantErr: export.ErrNotAPerson, wantKind: export.ErrNotAPerson},
		{name: "user-held history", who: func(r *serviceRig) store.Account { return r.alex }, held: true,
			wantErr: export.ErrLocked, wantKind: export.ErrLocked},
		{name: "log cannot be written", who: func(r *serviceRig) store.Account { return r.alex },
			recorder: failingRecorder{}, wantErr: errLogDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newServiceRig(t)
			if tt.held {
				r.holdAlexKeys(t)
			}
			cfg := r.config(nil)
			if tt.recorder != nil {
				cfg.Recorder = tt.recorder
			}
			acc := tt.who(r)
			ex, err := export.NewService(cfg).Prepare(context.Background(), acc)
			if n := len(r.exportsRecorded(t)); n != tt.wantTrail {
				t.Errorf("%d exports recorded, want %d", n, tt.wantTrail)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Prepare: %v, want %v", err, tt.wantErr)
				}
				if kind, _, _ := problem.Of(err); kind != tt.wantKind {
					t.Errorf("kind of %v: %v, want %v", err, kind, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			ev := r.exportsRecorded(t)[0]
			if ev.Household != acc.HouseholdID || ev.Subject.Account != acc.ID {
				t.Errorf("recorded %+v for %s of %s", ev, acc.ID, acc.HouseholdID)
			}
			var buf bytes.Buffer
			if err := ex.Write(context.Background(), &buf, time.Now()); err != nil {
				t.Fatal(err)
			}
			files := exporttest.Open(t, buf.Bytes()).Files
			csv := string(files["readings/"+r.alexMeter.ID+"/power.csv"])
			if strings.Count(csv, "\n") != 6 || strings.Count(csv, ",7") != 5 {
				t.Errorf("Alex's meter, opened: want a header and 5 rows of 7 watts:\n%s", csv)
			}
			for name := range files {
				if strings.Contains(name, r.samMeter.ID) {
					t.Errorf("the export holds %s, from the household next door", name)
				}
			}
		})
	}
}

// TestServiceStart checks background exports: recorded once per job as
// the person who asked, history only the person can open opened with
// their identity and refused without it, and a clear error with no jobs.
func TestServiceStart(t *testing.T) {
	r := newServiceRig(t)
	jobs, err := export.NewJobs(filepath.Join(t.TempDir(), "exports"), export.JobsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jobs.Close() })
	svc := export.NewService(r.config(jobs))
	ctx := context.Background()

	if _, _, err := export.NewService(r.config(nil)).Start(ctx, r.alex, nil); !errors.Is(err, export.ErrJobsOff) {
		t.Errorf("Start without jobs: %v, want ErrJobsOff", err)
	}
	if _, _, err := svc.Start(ctx, store.Account{}, nil); !errors.Is(err, export.ErrNotAPerson) {
		t.Errorf("Start for no one: %v, want ErrNotAPerson", err)
	}

	st, started, err := svc.Start(ctx, r.alex, nil)
	if err != nil || !started {
		t.Fatalf("Start: %v (started %v)", err, started)
	}
	if st, err = jobs.Wait(ctx, r.alex.ID, st.ID); err != nil || st.State != export.JobDone || st.ReadingsDone != 5 {
		t.Fatalf("job: %+v, %v", st, err)
	}
	evs := r.exportsRecorded(t)
	if len(evs) != 1 || evs[0].Actor.Kind != auditlog.ActorPerson || evs[0].Actor.ID != r.alex.ID || evs[0].Subject.Account != r.alex.ID {
		t.Fatalf("recorded %+v, want one export by and about Alex", evs)
	}
	if got, _ := svc.List(ctx, r.alex.ID); len(got.Jobs) != 1 || got.Jobs[0].ID != st.ID || !got.Complete() {
		t.Errorf("List: %+v", got)
	}

	r.holdAlexKeys(t)
	if _, _, err := svc.Start(ctx, r.alex, nil); !errors.As(err, new(*export.LockedError)) {
		t.Fatalf("Start with user-held history and no identity: %v, want a LockedError", err)
	}
	if n := len(r.exportsRecorded(t)); n != 1 {
		t.Errorf("a refused export was recorded: %d exports", n)
	}
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	held, err := vault.ParseIdentity(r.alexHeldID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		identity  age.Identity
		wantState export.JobState
	}{
		{"another identity", other, export.JobFailed},
		{"the owner's identity", held, export.JobDone},
	} {
		st, _, err := svc.Start(ctx, r.alex, tt.identity)
		if err != nil {
			t.Fatalf("%s: Start: %v", tt.name, err)
		}
		if st, err = jobs.Wait(ctx, r.alex.ID, st.ID); err != nil || st.State != tt.wantState {
			t.Errorf("%s: job %+v, %v; want %s", tt.name, st, err, tt.wantState)
		}
	}
	if n := len(r.exportsRecorded(t)); n != 3 {
		t.Errorf("%d exports recorded, want 3 (one per job started)", n)
	}

	list, _ := svc.List(ctx, r.alex.ID)
	rc, st, err := svc.Open(ctx, r.alex.ID, list.Jobs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zb, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if csv := exporttest.Open(t, zb).Files["readings/"+r.alexMeter.ID+"/power.csv"]; strings.Count(string(csv), ",7") != 5 {
		t.Errorf("export %s opened with the owner's identity:\n%s", st.ID, csv)
	}
	if err := svc.Cancel(r.sam.ID, st.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Sam cancels Alex's export: %v, want not found", err)
	}
	if k, detail, ok := problem.Of(&export.LockedError{Msg: "locked"}); !ok || k.Status != http.StatusConflict || k.Type != "user-held" || detail != "locked" {
		t.Errorf("LockedError answers %v %q %v", k, detail, ok)
	}
}

// TestServiceListWithOtherNodes: on a hub of several nodes the list holds
// the account's jobs from every node, newest first, each once, never a job
// of another account an answer carried; a part that could not be had is
// reported with the rest of the list.
func TestServiceListWithOtherNodes(t *testing.T) {
	r := newServiceRig(t)
	jobs, err := export.NewJobs(filepath.Join(t.TempDir(), "exports"), export.JobsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jobs.Close() })
	ctx := context.Background()
	svc := export.NewService(r.config(jobs))
	here, _, err := svc.Start(ctx, r.alex, nil)
	if err != nil {
		t.Fatal(err)
	}
	if here, err = jobs.Wait(ctx, r.alex.ID, here.ID); err != nil {
		t.Fatal(err)
	}
	older := export.JobStatus{ID: "exp_older", Owner: r.alex.ID, State: export.JobDone, StartedAt: here.StartedAt.Add(-time.Hour)}
	newer := export.JobStatus{ID: "exp_newer", Owner: r.alex.ID, State: export.JobRunning, StartedAt: here.StartedAt.Add(time.Hour)}
	samsJob := export.JobStatus{ID: "exp_sam", Owner: r.sam.ID, State: export.JobDone, StartedAt: here.StartedAt}
	errNATS := errors.New("nats: connection closed")
	tests := []struct {
		name       string
		elsewhere  export.JobList
		err        error
		want       []string
		unanswered []string
		notAsked   []string
	}{
		{"one node", export.JobList{}, nil, []string{here.ID}, nil, nil},
		{"other nodes", export.JobList{Jobs: []export.JobStatus{older, newer}}, nil, []string{newer.ID, here.ID, older.ID}, nil, nil},
		{"another account's job", export.JobList{Jobs: []export.JobStatus{samsJob, older}}, nil, []string{here.ID, older.ID}, nil, nil},
		{"this node's job answered twice", export.JobList{Jobs: []export.JobStatus{here}}, nil, []string{here.ID}, nil, nil},
		{"a node silent, one of an older version", export.JobList{Jobs: []export.JobStatus{older}, Unanswered: []string{"c"}, NotAsked: []string{"d"}},
			nil, []string{here.ID, older.ID}, []string{"c"}, []string{"d"}},
		{"the others could not be asked", export.JobList{Unanswered: []string{"b", "c"}}, errNATS, []string{here.ID}, []string{"b", "c"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := r.config(jobs)
			cfg.Elsewhere = func(_ context.Context, accountID string) (export.JobList, error) {
				if accountID != r.alex.ID {
					t.Errorf("asked other nodes for %s's jobs", accountID)
				}
				return tc.elsewhere, tc.err
			}
			list, err := export.NewService(cfg).List(ctx, r.alex.ID)
			if !errors.Is(err, tc.err) {
				t.Errorf("error %v, want %v", err, tc.err)
			}
			var ids []string
			for _, st := range list.Jobs {
				ids = append(ids, st.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("list %v, want %v", ids, tc.want)
			}
			// The person is told whose jobs are missing.
			if !slices.Equal(list.Unanswered, tc.unanswered) || !slices.Equal(list.NotAsked, tc.notAsked) ||
				list.Complete() != (tc.unanswered == nil && tc.notAsked == nil) || list.Missing() != len(tc.unanswered)+len(tc.notAsked) {
				t.Errorf("missing: unanswered %v, not asked %v (complete %v); want %v, %v", list.Unanswered, list.NotAsked, list.Complete(), tc.unanswered, tc.notAsked)
			}
		})
	}
}

// TestServiceStartFindsAJobRunningOnAnotherNode: a person has one running
// export at a time whichever node they ask; a finished one elsewhere, or
// another account's, does not stop a new one.
func TestServiceStartFindsAJobRunningOnAnotherNode(t *testing.T) {
	r := newServiceRig(t)
	ctx := context.Background()
	running := export.JobStatus{ID: "exp_there", Owner: r.alex.ID, State: export.JobRunning, ReadingsTotal: -1, StartedAt: time.Now()}
	done := running
	done.State = export.JobDone
	samsRunning := running
	samsRunning.Owner = r.sam.ID
	tests := []struct {
		name      string
		elsewhere []export.JobStatus
		found     bool
	}{
		{"running elsewhere", []export.JobStatus{done, running}, true},
		{"done elsewhere", []export.JobStatus{done}, false},
		{"another account's running", []export.JobStatus{samsRunning}, false},
		{"none", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jobs, err := export.NewJobs(filepath.Join(t.TempDir(), "exports"), export.JobsOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { jobs.Close() })
			cfg := r.config(jobs)
			cfg.Elsewhere = func(context.Context, string) (export.JobList, error) { return export.JobList{Jobs: tc.elsewhere}, nil }
			before := len(r.exportsRecorded(t))
			st, started, err := export.NewService(cfg).Start(ctx, r.alex, nil)
			if err != nil {
				t.Fatal(err)
			}
			recorded := len(r.exportsRecorded(t)) - before
			if tc.found {
				if started || st.ID != running.ID || recorded != 0 {
					t.Errorf("Start: %+v, started %v, %d recorded; want the job running elsewhere, nothing started or recorded", st, started, recorded)
				}
				return
			}
			if !started || st.ID == running.ID || recorded != 1 {
				t.Errorf("Start: %+v, started %v, %d recorded; want a new job, recorded once", st, started, recorded)
			}
			if _, err := jobs.Wait(ctx, r.alex.ID, st.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}
