package erasure

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
	"github.com/candor-iot/candor/internal/vault"
)

// rig is a real SQLite store and a real vault, as the hub wires them.
type rig struct {
	t     testing.TB
	path  string
	db    *sqlite.DB
	hub   *age.X25519Identity
	v     *vault.Vault
	svc   *Service
	rec   *recorder
	gone  []string // devices reported erased
	goneM sync.Mutex
	// shredded are the key owners reported shredded, deleted the
	// households reported deleted.
	shredded, deleted []string
}

// recorder keeps the events the service logs (a stand-in for the
// transparency log, which has tests of its own).
type recorder struct {
	mu  sync.Mutex
	evs []auditlog.Event
}

func (r *recorder) Record(_ context.Context, ev auditlog.Event) error {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
	return nil
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{t: t, path: filepath.Join(t.TempDir(), "candor.db"), rec: &recorder{}}
	sqlitetest.Write(t, r.path) // a copy of a migrated store; r.open reopens it
	var err error
	if r.hub, err = age.GenerateX25519Identity(); err != nil {
		t.Fatal(err)
	}
	r.open()
	t.Cleanup(func() { r.close() })
	return r
}

func (r *rig) open() {
	t := r.t
	var err error
	if r.db, err = sqlite.Open(context.Background(), r.path); err != nil {
		t.Fatal(err)
	}
	if r.v, err = vault.New(context.Background(), r.db, vault.Options{Hub: r.hub}); err != nil {
		t.Fatal(err)
	}
	r.svc = New(Config{Store: r.db, Vault: r.v, Log: r.rec, Reclaim: r.db.ReclaimSpace, Grace: time.Nanosecond,
		Erased:   func(ids []string) { r.goneM.Lock(); r.gone = append(r.gone, ids...); r.goneM.Unlock() },
		Shredded: func(o string) { r.goneM.Lock(); r.shredded = append(r.shredded, o); r.goneM.Unlock() },
		HouseholdDeleted: func(_ context.Context, hh string) {
			r.goneM.Lock()
			r.deleted = append(r.deleted, hh)
			r.goneM.Unlock()
		}})
}

func (r *rig) close() {
	if r.v != nil {
		r.v.Close()
	}
	if r.db != nil {
		r.db.Close()
	}
	r.v, r.db = nil, nil
}

func (r *rig) household(id string) {
	r.t.Helper()
	if err := r.db.CreateHousehold(context.Background(), store.Household{ID: id, Name: id, CreatedAt: time.Now()}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) account(id, hh string, role store.Role, admin bool) store.Account {
	r.t.Helper()
	a := store.Account{ID: id, HouseholdID: hh, Username: id, PasswordHash: "x", Role: role, Admin: admin, CreatedAt: time.Now()}
	if err := r.db.CreateAccount(context.Background(), a); err != nil {
		r.t.Fatal(err)
	}
	return a
}

func (r *rig) device(id, hh, keyOwner string) store.Device {
	r.t.Helper()
	d := store.Device{ID: id, HouseholdID: hh, Name: id, Type: "thermostat", SecretHash: "x", CreatedAt: time.Now(), KeyOwner: keyOwner}
	if err := r.db.CreateDevice(context.Background(), d); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.v.Status(d.KeyOwnerID()); errors.Is(err, vault.ErrUnknownOwner) {
		if _, err := r.v.Enroll(context.Background(), d.KeyOwnerID(), vault.Settings{Mode: vault.HubAssisted}); err != nil {
			r.t.Fatal(err)
		}
	}
	return d
}

// readings seals and stores n readings of d at times from start, one a
// minute apart unless every is given.
func (r *rig) readings(d store.Device, start time.Time, every time.Duration, n int, payload func(i int) string) {
	r.t.Helper()
	const batch = 10000
	rs := make([]store.Reading, 0, min(n, batch))
	var aad []byte
	for i := range n {
		ts := start.Add(time.Duration(i) * every).UTC()
		aad = vault.AppendReadingAAD(aad[:0], d.ID, "room", ts)
		sealed, err := r.v.Seal(d.KeyOwnerID(), []byte(payload(i)), aad)
		if err != nil {
			r.t.Fatal(err)
		}
		rs = append(rs, store.Reading{DeviceID: d.ID, Stream: "room", Time: ts, Payload: sealed})
		if len(rs) == batch || i == n-1 {
			if err := r.db.AppendReadings(context.Background(), rs); err != nil {
				r.t.Fatal(err)
			}
			rs = rs[:0]
		}
	}
}

func (r *rig) stored(deviceID string) []store.Reading {
	r.t.Helper()
	rs, err := r.db.Readings(context.Background(), store.ReadingQuery{DeviceID: deviceID, Limit: sqlite.MaxReadingLimit})
	if err != nil {
		r.t.Fatal(err)
	}
	return rs
}

func temp(i int) string {
	return fmt.Sprintf(`{"celsius":%d,"heating":%t,"mode":"eco","zone":{"id":1}}`, 20+i%3, i%2 == 0)
}

var hour0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func TestDeleteAccountShredsThenPurges(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	r.household("h1")
	alice := r.account("alice", "h1", store.RoleOwner, true)
	bob := r.account("bob", "h1", store.RoleMember, false)
	dA := r.device("dA", "h1", alice.ID)
	dB := r.device("dB", "h1", bob.ID)
	dS := r.device("dS", "h1", "")
	for _, d := range []store.Device{dA, dB, dS} {
		r.readings(d, hour0, time.Minute, 30, temp)
	}

	rep, err := r.svc.DeleteAccount(ctx, bob, DeleteOptions{})
	if err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	if len(rep.DevicesErased) != 1 || rep.DevicesErased[0] != "dB" || rep.HouseholdDeleted {
		t.Fatalf("report %+v: want only bob's device erased and the household kept", rep)
	}
	if len(r.gone) != 1 || r.gone[0] != "dB" {
		t.Errorf("devices reported erased: %v", r.gone)
	}
	// The rows are still there (the purge has not run), but nobody can
	// read them: not this vault, and not a new one after a restart.
	left := r.stored("dB")
	if len(left) != 30 {
		t.Fatalf("%d rows of dB before the purge; want all 30 still there (removal is in the background)", len(left))
	}
	if err := r.v.OpenReadings(bob.ID, "dB", left); !errors.Is(err, vault.ErrShredded) {
		t.Fatalf("opening bob's readings after deletion: %v; want ErrShredded", err)
	}
	r.close()
	r.open()
	left = r.stored("dB")
	if err := r.v.OpenReadings(bob.ID, "dB", left); !errors.Is(err, vault.ErrShredded) {
		t.Fatalf("after a restart, opening bob's readings: %v; want ErrShredded", err)
	}
	// The others' history is intact and readable.
	for _, d := range []store.Device{dA, dS} {
		rs := r.stored(d.ID)
		if err := r.v.OpenReadings(d.KeyOwnerID(), d.ID, rs); err != nil || len(rs) != 30 {
			t.Errorf("%s: %d readings, open: %v", d.ID, len(rs), err)
		}
	}
	if _, err := r.db.Account(ctx, bob.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob's account: %v; want gone", err)
	}
	if _, err := r.db.Device(ctx, "dB"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob's device: %v; want gone", err)
	}

	// The purge queue survived the restart and now removes the rows.
	n, err := r.svc.PurgePass(ctx)
	if err != nil || n != 30 {
		t.Fatalf("PurgePass = %d, %v; want 30", n, err)
	}
	if rs := r.stored("dB"); len(rs) != 0 {
		t.Errorf("%d rows left after the purge", len(rs))
	}
	if ps, _ := r.svc.Pending(ctx); len(ps) != 0 {
		t.Errorf("purges still pending: %+v", ps)
	}
	if len(r.rec.evs) != 1 || r.rec.evs[0].Action != auditlog.ActionAccountDelete || r.rec.evs[0].Subject.Account != bob.ID {
		t.Errorf("logged %+v; want one account.delete about bob", r.rec.evs)
	}
}

func TestDeleteAccountRefusals(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	r.household("h1")
	r.households(MinCellHouseholds - 1)
	alice := r.account("alice", "h1", store.RoleOwner, true)
	bob := r.account("bob", "h1", store.RoleMember, false)
	r.device("dA", "h1", alice.ID)
	r.readings(store.Device{ID: "dA", KeyOwner: alice.ID}, hour0, time.Minute, 5, temp)

	_, err := r.svc.DeleteAccount(ctx, alice, DeleteOptions{})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("only owner with a member left behind: %v; want ErrRefused", err)
	}
	// Bob becomes an owner: alice is still the only administrator.
	if err := r.db.SetAccountRole(ctx, bob.ID, store.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.DeleteAccount(ctx, alice, DeleteOptions{}); !errors.Is(err, ErrRefused) {
		t.Fatalf("only administrator: %v; want ErrRefused", err)
	}
	// Nothing changed.
	if _, err := r.db.Device(ctx, "dA"); err != nil {
		t.Errorf("device after refused deletions: %v", err)
	}
	if rs := r.stored("dA"); r.v.OpenReadings(alice.ID, "dA", rs) != nil || len(rs) != 5 {
		t.Errorf("readings after refused deletions: %d", len(rs))
	}
	if len(r.rec.evs) != 0 {
		t.Errorf("refusals were logged as deletions: %+v", r.rec.evs)
	}
}

func TestLastMemberTakesTheHousehold(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	r.household("h1")
	r.account("admin", "h1", store.RoleOwner, true)
	r.household("h2")
	carol := r.account("carol", "h2", store.RoleOwner, false)
	own := r.device("dC", "h2", carol.ID)
	shared := r.device("dShared", "h2", "")
	r.readings(own, hour0, time.Minute, 10, temp)
	r.readings(shared, hour0, time.Minute, 10, temp)

	rep, err := r.svc.DeleteAccount(ctx, carol, DeleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.HouseholdDeleted || len(rep.DevicesErased) != 2 || len(rep.KeysShredded) != 2 {
		t.Fatalf("report %+v; want both devices, both key owners and the household", rep)
	}
	// Told to the hub, which tells the other nodes.
	if !slices.Equal(r.shredded, []string{carol.ID, "h2"}) || !slices.Equal(r.deleted, []string{"h2"}) {
		t.Errorf("told of shredded keys %v and deleted households %v; want [%s h2] and [h2]", r.shredded, r.deleted, carol.ID)
	}
	if _, err := r.db.Household(ctx, "h2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("household h2: %v; want gone", err)
	}
	if err := r.v.OpenReadings("h2", "dShared", r.stored("dShared")); !errors.Is(err, vault.ErrShredded) {
		t.Errorf("shared device's readings: %v; want ErrShredded", err)
	}
	if _, err := r.db.Household(ctx, "h1"); err != nil {
		t.Errorf("other household: %v", err)
	}
}

// households adds n households (h1 … hn) beyond those the test makes, so
// the hub is big enough for unlinking to run at all.
func (r *rig) households(n int) {
	r.t.Helper()
	for i := range n {
		r.household(fmt.Sprintf("other%d", i))
	}
}

// TestCellsNeedFiveHouseholds checks that the anonymity threshold counts
// distinct households: the same readings are kept when five households
// mix in a cell and dropped when four do, however many readings it sums.
func TestCellsNeedFiveHouseholds(t *testing.T) {
	tests := []struct {
		households int
		kept       int
	}{
		{households: 1, kept: 0},
		{households: MinCellHouseholds - 1, kept: 0},
		{households: MinCellHouseholds, kept: 2}, // celsius and heating
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.households), func(t *testing.T) {
			r := newRig(t)
			var devs []store.Device
			for i := range tt.households {
				hh := fmt.Sprintf("h%d", i)
				r.household(hh)
				d := r.device(fmt.Sprintf("d%d", i), hh, "")
				// 24 readings in the first hour: plenty, by readings alone.
				r.readings(d, hour0, 2*time.Minute, 24, temp)
				devs = append(devs, d)
			}
			agg, err := r.svc.aggregate(t.Context(), devs, nil)
			if err != nil {
				t.Fatal(err)
			}
			cells, kept, _, readings := agg.result()
			if kept != tt.kept || len(cells) != tt.kept || readings != int64(24*tt.households) {
				t.Fatalf("%d households: kept %d cells of %d readings, want %d", tt.households, kept, readings, tt.kept)
			}
			for _, c := range cells {
				if c.Count != int64(24*tt.households) {
					t.Errorf("cell %+v sums %d readings, want %d", c, c.Count, 24*tt.households)
				}
			}
		})
	}
}

// TestUnlinkIsHonestAboutWhatItKeeps checks a person's unlinking: on a
// hub of fewer than five households it refuses and says to delete
// instead; on a bigger hub it runs, but one household's history mixes
// with no other, so every cell is dropped and only the exact readings go.
func TestUnlinkIsHonestAboutWhatItKeeps(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	r.household("h1")
	alice := r.account("alice", "h1", store.RoleOwner, true)
	d := r.device("dA", "h1", alice.ID)
	r.readings(d, hour0, 2*time.Minute, 24, temp)

	_, err := r.svc.Unlink(ctx, alice, UnlinkOptions{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "nothing can be kept anonymously") {
		t.Fatalf("Unlink on a hub of one household: %v; want refused, saying nothing can be kept anonymously", err)
	}
	if len(r.stored("dA")) != 24 {
		t.Fatal("a refused unlink removed readings")
	}

	r.households(MinCellHouseholds - 1)
	rep, err := r.svc.Unlink(ctx, alice, UnlinkOptions{})
	if err != nil {
		t.Fatalf("Unlink: %v", err)
	}
	if rep.ReadingsUnlinked != 24 || rep.CellsKept != 0 || rep.CellsSuppressed != 2 {
		t.Fatalf("report %+v; want 24 readings, no cell kept, 2 dropped", rep)
	}
	// A reading arriving after the unlink is new history: it stays.
	r.readings(d, hour0.Add(3*time.Hour), time.Minute, 1, temp)
	if _, err := r.svc.PurgePass(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := r.stored("dA"); len(rs) != 1 || !rs[0].Time.Equal(hour0.Add(3*time.Hour)) {
		t.Fatalf("after unlink and purge: %d readings; want only the one sent afterwards", len(rs))
	}
	if got, _ := r.db.Aggregates(ctx, store.AggregateQuery{}); len(got) != 0 {
		t.Errorf("cells of one household kept: %+v", got)
	}
	if _, err := r.db.Device(ctx, "dA"); err != nil {
		t.Errorf("device after unlink: %v", err)
	}
}

// TestUnlinkSkipsUserHeldDevices checks that a device whose history only
// its owner's key opens is skipped with its reason, while the others are
// unlinked.
func TestUnlinkSkipsUserHeldDevices(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	r.household("h1")
	r.households(MinCellHouseholds - 1)
	alice := r.account("alice", "h1", store.RoleOwner, true)
	held := r.device("dA", "h1", alice.ID)
	shared := r.device("dS", "h1", "")
	if _, err := r.v.Enroll(ctx, alice.ID, vault.Settings{Mode: vault.UserHeld, GenerateIdentity: true}); err != nil {
		t.Fatal(err)
	}
	r.readings(held, hour0, time.Minute, 12, temp)
	r.readings(shared, hour0, time.Minute, 12, temp)
	r.close() // a restart: the hub no longer holds even the live epoch key
	r.open()
	rep, err := r.svc.Unlink(ctx, alice, UnlinkOptions{})
	if err != nil {
		t.Fatalf("Unlink with a user-held device: %v; want the others unlinked", err)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].DeviceID != "dA" || !strings.Contains(rep.Skipped[0].Reason, "own key") {
		t.Fatalf("skipped %+v; want dA, with the reason", rep.Skipped)
	}
	if rep.ReadingsUnlinked != 12 {
		t.Errorf("unlinked %d readings, want the shared device's 12", rep.ReadingsUnlinked)
	}
	if _, err := r.svc.PurgePass(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(r.stored("dA")); n != 12 {
		t.Errorf("the skipped device has %d readings left, want its 12", n)
	}
	if n := len(r.stored("dS")); n != 0 {
		t.Errorf("the unlinked device has %d readings left, want 0", n)
	}
}

func TestUnlinkSomeoneElsesDeviceIsRefused(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	r.household("h1")
	r.households(MinCellHouseholds - 1)
	alice := r.account("alice", "h1", store.RoleOwner, true)
	bob := r.account("bob", "h1", store.RoleMember, false)
	r.device("dA", "h1", alice.ID)
	r.device("dS", "h1", "")
	for _, tc := range []struct {
		who    store.Account
		device string
		want   error
	}{
		{bob, "dA", ErrRefused},          // alice's
		{bob, "dS", ErrRefused},          // shared: owners decide
		{bob, "nope", store.ErrNotFound}, // unknown
		{alice, "dS", nil},
	} {
		_, err := r.svc.Unlink(ctx, tc.who, UnlinkOptions{DeviceIDs: []string{tc.device}})
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s unlinks %s: %v; want %v", tc.who.ID, tc.device, err, tc.want)
		}
	}
}

// BenchmarkDeleteAccount measures the part of an account deletion the
// person waits for (erasing the devices and destroying the keys) at
// growing history sizes. Run it once per size:
//
//	go test -run '^$' -bench DeleteAccount -benchtime 1x ./internal/erasure/
//
// The rows themselves are removed afterwards by the purger, which is
// reported separately ("purge-s").
func BenchmarkDeleteAccount(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("readings=%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				r := newRig(b)
				ctx := context.Background()
				r.household("h1")
				r.account("admin", "h1", store.RoleOwner, true)
				alice := r.account("alice", "h1", store.RoleOwner, false)
				d := r.device("dA", "h1", alice.ID)
				r.readings(d, hour0, time.Second, n, temp)
				b.StartTimer()
				start := time.Now()
				if _, err := r.svc.DeleteAccount(ctx, alice, DeleteOptions{}); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "delete-ms")
				b.StopTimer()
				rs, _ := r.db.Readings(ctx, store.ReadingQuery{DeviceID: "dA", Limit: 10})
				if err := r.v.OpenReadings(alice.ID, "dA", rs); !errors.Is(err, vault.ErrShredded) || len(rs) == 0 {
					b.Fatalf("after deletion: %d rows, open: %v", len(rs), err)
				}
				pstart := time.Now()
				if _, err := r.svc.PurgePass(ctx); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(pstart).Seconds(), "purge-s")
				r.close()
			}
		})
	}
}

// failingShred is the real vault with Shred failing once, as if the hub
// stopped half way through a deletion.
type failingShred struct {
	*vault.Vault
	failed bool
}

func (f *failingShred) Shred(ctx context.Context, owner string) error {
	if !f.failed {
		f.failed = true
		return errors.New("disk gone")
	}
	return f.Vault.Shred(ctx, owner)
}

// TestInterruptedDeletionCanBeRetried fails a deletion after the devices
// were erased but before the keys were destroyed, then retries it: the
// end state is the same as an uninterrupted deletion.
func TestInterruptedDeletionCanBeRetried(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	r.household("h1")
	r.account("admin", "h1", store.RoleOwner, true)
	bob := r.account("bob", "h1", store.RoleOwner, false)
	d := r.device("dB", "h1", bob.ID)
	r.readings(d, hour0, time.Minute, 20, temp)
	fs := &failingShred{Vault: r.v}
	svc := New(Config{Store: r.db, Vault: fs, Grace: time.Nanosecond})

	if _, err := svc.DeleteAccount(ctx, bob, DeleteOptions{}); err == nil {
		t.Fatal("the interrupted deletion reported success")
	}
	// Half way: the device is gone, the account and its keys are not.
	if _, err := r.db.Account(ctx, bob.ID); err != nil {
		t.Fatalf("account after the interruption: %v", err)
	}
	rep, err := svc.DeleteAccount(ctx, bob, DeleteOptions{})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if len(rep.KeysShredded) != 1 || rep.KeysShredded[0] != bob.ID {
		t.Errorf("retry report %+v", rep)
	}
	if err := r.v.OpenReadings(bob.ID, "dB", r.stored("dB")); !errors.Is(err, vault.ErrShredded) {
		t.Errorf("after the retry: %v; want ErrShredded", err)
	}
	if _, err := r.db.Account(ctx, bob.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("account after the retry: %v", err)
	}
	if _, err := svc.PurgePass(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := r.stored("dB"); len(rs) != 0 {
		t.Errorf("%d rows left", len(rs))
	}
}

// BenchmarkUnlink measures unlinking a device's history (read, decrypt,
// sum, store the cells and queue the purge), which the person waits for:
//
//	go test -run '^$' -bench Unlink -benchtime 1x ./internal/erasure/
func BenchmarkUnlink(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("readings=%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				r := newRig(b)
				r.household("h1")
				r.households(MinCellHouseholds - 1)
				alice := r.account("alice", "h1", store.RoleOwner, true)
				d := r.device("dA", "h1", alice.ID)
				r.readings(d, hour0, time.Second, n, temp)
				b.StartTimer()
				start := time.Now()
				rep, err := r.svc.Unlink(context.Background(), alice, UnlinkOptions{})
				if err != nil || rep.ReadingsUnlinked != int64(n) {
					b.Fatalf("unlink: %+v, %v", rep, err)
				}
				el := time.Since(start)
				b.ReportMetric(float64(el.Milliseconds()), "unlink-ms")
				b.ReportMetric(float64(el.Nanoseconds())/float64(n), "ns/reading")
				b.StopTimer()
				r.close()
			}
		})
	}
}

// A deletion whose caller goes away after the devices were erased (a
// browser tab closed mid-request) still shreds the keys and removes the
// account: the erase callback is the barrier where the caller's context
// is cancelled, before the shred.
func TestDeleteAccountFinishesWhenTheCallerGoesAway(t *testing.T) {
	r := newRig(t)
	r.household("h1")
	alice := r.account("alice", "h1", store.RoleOwner, true)
	bob := r.account("bob", "h1", store.RoleMember, false)
	dB := r.device("dB", "h1", bob.ID)
	r.readings(dB, hour0, time.Minute, 5, temp)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	erased := make(chan struct{})
	r.svc.cfg.Erased = func([]string) {
		cancel()
		close(erased)
	}
	rep, err := r.svc.DeleteAccount(ctx, bob, DeleteOptions{})
	select {
	case <-erased:
	default:
		t.Fatal("the erase callback was not called: the barrier did not run")
	}
	if ctx.Err() == nil {
		t.Fatal("the caller's context was not cancelled mid-way")
	}
	if err != nil {
		t.Fatalf("DeleteAccount after the caller went away: %v", err)
	}
	if len(rep.KeysShredded) != 1 || rep.KeysShredded[0] != bob.ID {
		t.Errorf("keys shredded: %v, want bob's", rep.KeysShredded)
	}
	if err := r.v.OpenReadings(bob.ID, "dB", r.stored("dB")); !errors.Is(err, vault.ErrShredded) {
		t.Errorf("bob's readings after the deletion: %v, want ErrShredded", err)
	}
	bg := context.Background()
	if _, err := r.db.Account(bg, bob.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob's account: %v, want gone", err)
	}
	if _, err := r.db.Account(bg, alice.ID); err != nil {
		t.Errorf("alice's account: %v", err)
	}
	if len(r.rec.evs) != 1 || r.rec.evs[0].Action != auditlog.ActionAccountDelete {
		t.Errorf("logged %+v, want the account deletion", r.rec.evs)
	}
}

// A deletion whose WAL truncation a reader blocks (a second connection to
// the database file holding a read transaction) finishes, and says in its
// report and its log entry that copies of the keys may remain.
func TestDeleteAccountReportsKeyRemnants(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	r.household("h1")
	r.account("alice", "h1", store.RoleOwner, true)
	bob := r.account("bob", "h1", store.RoleMember, false)
	r.readings(r.device("dB", "h1", bob.ID), hour0, time.Minute, 5, temp)

	other, err := sql.Open("sqlite", "file:"+r.path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	reader, err := other.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback()
	var n int
	if err := reader.QueryRowContext(ctx, `SELECT count(*) FROM vault_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}

	rep, err := r.svc.DeleteAccount(ctx, bob, DeleteOptions{})
	if err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	if len(rep.KeyRemnants) != 1 || rep.KeyRemnants[0] != bob.ID {
		t.Errorf("report's key remnants: %v, want bob's", rep.KeyRemnants)
	}
	if err := r.v.OpenReadings(bob.ID, "dB", r.stored("dB")); !errors.Is(err, vault.ErrShredded) {
		t.Errorf("bob's readings: %v, want ErrShredded", err)
	}
	if _, err := r.db.Account(ctx, bob.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob's account: %v, want gone", err)
	}
	if len(r.rec.evs) != 1 || r.rec.evs[0].Detail["key_remnants"] != bob.ID {
		t.Errorf("logged %+v, want key_remnants=%s", r.rec.evs, bob.ID)
	}
}
