// Package storetest is the conformance suite every store.Store engine
// must pass, so that the embedded SQLite store and any shared database
// engine behave alike and callers can switch between them without
// surprises.
//
// An engine's test calls Run with a function that opens an empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := Open(t.Context(), filepath.Join(t.TempDir(), "candor.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call and arrange for it to be closed when t ends (t.Cleanup).
//
// The suite uses times with millisecond precision, so engines storing
// microseconds pass as well as those storing nanoseconds.
//
// Beyond what package store documents, the suite expects: ids are opaque
// caller-chosen strings; creating a record whose household or account does
// not exist fails with store.ErrNotFound; a Readings query without a
// DeviceID fails; and lists may come back in any order.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, open(t))
		})
	}
}

var suite = []struct {
	name string
	run  func(t *testing.T, s store.Store)
}{
	{"Ping", testPing},
	{"FirstAccount", testFirstAccount},
	{"FirstAccountJoinsOldestHousehold", testFirstAccountJoinsOldestHousehold},
	{"FirstAccountConcurrent", testFirstAccountConcurrent},
	{"Households", testHouseholds},
	{"Accounts", testAccounts},
	{"UsernameUnique", testUsernameUnique},
	{"AccountNotFound", testAccountNotFound},
	{"Devices", testDevices},
	{"DevicesStayInTheirHousehold", testDevicesStayInTheirHousehold},
	{"DeviceNotFound", testDeviceNotFound},
	{"RotateSecret", testRotateSecret},
	{"Revoke", testRevoke},
	{"Counters", testCounters},
	{"Sessions", testSessions},
	{"SessionNotFound", testSessionNotFound},
	{"DeleteAccountDeletesSessions", testDeleteAccountDeletesSessions},
	{"AppendReadings", testAppendReadings},
	{"AppendReadingsCancelled", testAppendReadingsCancelled},
	{"ReadingsQuery", testReadingsQuery},
	{"ReadingsDefaultLimit", testReadingsDefaultLimit},
	{"ReadingsRequireDevice", testReadingsRequireDevice},
	{"CountReadings", testCountReadings},
	{"StreamCounts", testStreamCounts},
	{"ConcurrentAppend", testConcurrentAppend},
	{"Manifests", testManifests},
	{"Violations", testViolations},
	{"ViolationsBounded", testViolationsBounded},
	{"ReadingKeepsManifestVersion", testReadingKeepsManifestVersion},
	{"HouseholdWithOwner", testHouseholdWithOwner},
	{"DeleteReadings", testDeleteReadings},
	{"DeleteReadingsOfAVersion", testDeleteReadingsOfAVersion},
	{"ConsentRequests", testConsentRequests},
	{"ConsentRecords", testConsentRecords},
	{"ConsentDecisions", testConsentDecisions},
	{"ConsentRouting", testConsentRouting},
	{"ConsentAtomic", testConsentAtomic},
	{"KeyOwners", testKeyOwners},
	{"Keys", testKeys},
	{"KeyRewrap", testKeyRewrap},
	{"ShredOwner", testShredOwner},
	{"ShredConcurrentPut", testShredConcurrentPut},
	{"DeviceKeyOwner", testDeviceKeyOwner},
	{"EraseDevices", testEraseDevices},
	{"PurgeUntilSeq", testPurgeUntilSeq},
	{"Aggregates", testAggregates},
	{"SetAccountRole", testSetAccountRole},
	{"DeleteHousehold", testDeleteHousehold},
	{"RecipientEndpoints", testRecipientEndpoints},
	{"Firmware", testFirmware},
	{"Advisories", testAdvisories},
	{"Operator", testOperator},
	{"AdvisoryFeeds", testAdvisoryFeeds},
	{"UpdateStages", testUpdateStages},
	{"Quarantines", testQuarantines},
	{"AlertPrefs", testAlertPrefs},
	{"MonitorWindows", testMonitorWindows},
	{"MonitorActions", testMonitorActions},
	{"AuditRuns", testAuditRuns},
	{"AuditSuppressions", testAuditSuppressions},
	{"AuditMarks", testAuditMarks},
	{"SecretOrigin", testSecretOrigin},
	{"Assessments", testAssessments},
	{"SecondFactors", testSecondFactors},
}

// base is a fixed instant; tests offset from it so expectations are
// exact. It is deliberately not "now": nothing in a store should depend
// on the wall clock.
var base = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

// --- fixtures ---------------------------------------------------------

func household(id string, created time.Time) store.Household {
	return store.Household{ID: id, Name: "Household " + id, CreatedAt: created}
}

func account(id, hh, username string) store.Account {
	return store.Account{
		ID:           id,
		HouseholdID:  hh,
		Username:     username,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$" + id,
		Role:         store.RoleMember,
		CreatedAt:    at(time.Minute),
	}
}

func device(id, hh string) store.Device {
	return store.Device{
		ID:              id,
		HouseholdID:     hh,
		Name:            "Device " + id,
		Type:            "thermometer",
		SecretHash:      "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$" + id,
		CredentialSetAt: at(2 * time.Minute),
		CreatedAt:       at(2 * time.Minute),
	}
}

func session(id, accountID string, kind store.SessionKind) store.Session {
	return store.Session{
		ID:         id,
		AccountID:  accountID,
		Kind:       kind,
		Name:       "session " + id,
		TokenHash:  tokenHash(id),
		CreatedAt:  at(3 * time.Minute),
		LastSeenAt: at(3 * time.Minute),
	}
}

// tokenHash returns a distinct 32-byte value per id, shaped like the
// SHA-256 the real callers store.
func tokenHash(id string) []byte {
	h := make([]byte, 32)
	copy(h, "token:"+id)
	return h
}

func mustCreateHousehold(t *testing.T, s store.Store, hh store.Household) {
	t.Helper()
	if err := s.CreateHousehold(t.Context(), hh); err != nil {
		t.Fatalf("CreateHousehold(%q): %v", hh.ID, err)
	}
}

func mustCreateAccount(t *testing.T, s store.Store, a store.Account) {
	t.Helper()
	if err := s.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount(%q): %v", a.Username, err)
	}
}

func mustCreateDevice(t *testing.T, s store.Store, d store.Device) {
	t.Helper()
	if err := s.CreateDevice(t.Context(), d); err != nil {
		t.Fatalf("CreateDevice(%q): %v", d.ID, err)
	}
}

func mustCreateSession(t *testing.T, s store.Store, se store.Session) {
	t.Helper()
	if err := s.CreateSession(t.Context(), se); err != nil {
		t.Fatalf("CreateSession(%q): %v", se.ID, err)
	}
}

func mustDevice(t *testing.T, s store.Store, id string) store.Device {
	t.Helper()
	d, err := s.Device(t.Context(), id)
	if err != nil {
		t.Fatalf("Device(%q): %v", id, err)
	}
	return d
}

// wantErr fails the test unless err matches target with errors.Is.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want %v", what, err, target)
	}
}

// --- comparison -------------------------------------------------------
//
// Engines may return times in any location and with or without a
// monotonic reading; only the instant matters. Normalising to UTC makes
// equal instants compare equal with ==.

func normHousehold(h store.Household) store.Household {
	h.CreatedAt = h.CreatedAt.UTC()
	return h
}

func normAccount(a store.Account) store.Account {
	a.CreatedAt = a.CreatedAt.UTC()
	return a
}

func normDevice(d store.Device) store.Device {
	d.CredentialSetAt = d.CredentialSetAt.UTC()
	d.RevokedAt = d.RevokedAt.UTC()
	d.CreatedAt = d.CreatedAt.UTC()
	return d
}

func sameSession(a, b store.Session) bool {
	return a.ID == b.ID && a.AccountID == b.AccountID && a.Kind == b.Kind && a.Name == b.Name &&
		bytes.Equal(a.TokenHash, b.TokenHash) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.LastSeenAt.Equal(b.LastSeenAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.CreatedAt.IsZero() == b.CreatedAt.IsZero() &&
		a.LastSeenAt.IsZero() == b.LastSeenAt.IsZero() &&
		a.ExpiresAt.IsZero() == b.ExpiresAt.IsZero()
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, id(x))
	}
	slices.Sort(out)
	return out
}

func householdID(h store.Household) string { return h.ID }
func accountID(a store.Account) string     { return a.ID }
func deviceID(d store.Device) string       { return d.ID }
func sessionID(s store.Session) string     { return s.ID }

// --- households and accounts ------------------------------------------

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testFirstAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	hh := household("home", at(0))
	acc := account("acc-1", "", "alice")
	acc.Role = store.RoleOwner
	acc.Admin = true

	got, err := s.CreateFirstAccount(ctx, hh, acc)
	if err != nil {
		t.Fatalf("CreateFirstAccount: %v", err)
	}
	want := acc
	want.HouseholdID = hh.ID
	if normAccount(got) != normAccount(want) {
		t.Errorf("CreateFirstAccount returned %+v, want %+v", got, want)
	}
	stored, err := s.Account(ctx, acc.ID)
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	if normAccount(stored) != normAccount(want) {
		t.Errorf("stored account %+v, want %+v", stored, want)
	}
	gotHH, err := s.Household(ctx, hh.ID)
	if err != nil {
		t.Fatalf("Household: %v", err)
	}
	if normHousehold(gotHH) != normHousehold(hh) {
		t.Errorf("household %+v, want %+v", gotHH, hh)
	}

	// A second first account must fail and change nothing, whatever
	// household and username it brings.
	_, err = s.CreateFirstAccount(ctx, household("other", at(time.Hour)), account("acc-2", "", "bob"))
	wantErr(t, "second CreateFirstAccount", err, store.ErrConflict)
	if n, err := s.CountAccounts(ctx); err != nil || n != 1 {
		t.Errorf("CountAccounts = %d, %v; want 1", n, err)
	}
	if _, err := s.Household(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("household of refused first account: err = %v, want ErrNotFound", err)
	}
	if _, err := s.AccountByUsername(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused first account stored: err = %v, want ErrNotFound", err)
	}
}

func testFirstAccountJoinsOldestHousehold(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Created newest first so that insertion order and age disagree:
	// "oldest" is about CreatedAt.
	mustCreateHousehold(t, s, household("newer", at(2*time.Hour)))
	mustCreateHousehold(t, s, household("demo", at(time.Hour)))

	got, err := s.CreateFirstAccount(ctx, household("fresh", at(3*time.Hour)), account("acc-1", "", "alice"))
	if err != nil {
		t.Fatalf("CreateFirstAccount: %v", err)
	}
	if got.HouseholdID != "demo" {
		t.Errorf("first account joined %q, want the oldest household %q", got.HouseholdID, "demo")
	}
	stored, err := s.Account(ctx, "acc-1")
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	if stored.HouseholdID != "demo" {
		t.Errorf("stored account is in %q, want %q", stored.HouseholdID, "demo")
	}
	if _, err := s.Household(ctx, "fresh"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unneeded household was created: err = %v, want ErrNotFound", err)
	}
	hhs, err := s.Households(ctx)
	if err != nil {
		t.Fatalf("Households: %v", err)
	}
	if got := ids(hhs, householdID); !slices.Equal(got, []string{"demo", "newer"}) {
		t.Errorf("Households = %v, want [demo newer]", got)
	}
}

// testFirstAccountConcurrent races several first-account attempts; the
// operation is atomic, so exactly one may win.
func testFirstAccountConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprint(i)
			_, errs[i] = s.CreateFirstAccount(ctx, household("hh-"+id, at(0)), account("acc-"+id, "", "user-"+id))
		})
	}
	wg.Wait()
	var won int
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("attempt %d: err = %v, want nil or ErrConflict", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d attempts succeeded, want exactly 1", won)
	}
	if n, err := s.CountAccounts(ctx); err != nil || n != 1 {
		t.Errorf("CountAccounts = %d, %v; want 1", n, err)
	}
	if hhs, err := s.Households(ctx); err != nil || len(hhs) != 1 {
		t.Errorf("Households = %d, %v; want 1", len(hhs), err)
	}
}

func testHouseholds(t *testing.T, s store.Store) {
	ctx := t.Context()
	if hhs, err := s.Households(ctx); err != nil || len(hhs) != 0 {
		t.Fatalf("Households of empty store = %v, %v; want none", hhs, err)
	}
	a, b := household("a", at(0)), household("b", at(time.Second))
	mustCreateHousehold(t, s, a)
	mustCreateHousehold(t, s, b)

	got, err := s.Household(ctx, "b")
	if err != nil {
		t.Fatalf("Household: %v", err)
	}
	if normHousehold(got) != normHousehold(b) {
		t.Errorf("Household = %+v, want %+v", got, b)
	}
	hhs, err := s.Households(ctx)
	if err != nil {
		t.Fatalf("Households: %v", err)
	}
	if got := ids(hhs, householdID); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Households = %v, want [a b]", got)
	}

	wantErr(t, "CreateHousehold with taken id", s.CreateHousehold(ctx, household("a", at(time.Hour))), store.ErrConflict)
	_, err = s.Household(ctx, "missing")
	wantErr(t, "Household(missing)", err, store.ErrNotFound)
}

func testAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateHousehold(t, s, household("h2", at(0)))
	owner := account("a1", "h1", "alice")
	owner.Role = store.RoleOwner
	owner.Admin = true
	member := account("a2", "h1", "bob")
	other := account("a3", "h2", "carol")
	for _, a := range []store.Account{owner, member, other} {
		mustCreateAccount(t, s, a)
	}

	for _, want := range []store.Account{owner, member, other} {
		got, err := s.Account(ctx, want.ID)
		if err != nil {
			t.Fatalf("Account(%q): %v", want.ID, err)
		}
		if normAccount(got) != normAccount(want) {
			t.Errorf("Account(%q) = %+v, want %+v", want.ID, got, want)
		}
		got, err = s.AccountByUsername(ctx, want.Username)
		if err != nil {
			t.Fatalf("AccountByUsername(%q): %v", want.Username, err)
		}
		if normAccount(got) != normAccount(want) {
			t.Errorf("AccountByUsername(%q) = %+v, want %+v", want.Username, got, want)
		}
	}

	list, err := s.Accounts(ctx, "h1")
	if err != nil {
		t.Fatalf("Accounts: %v", err)
	}
	if got := ids(list, accountID); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Errorf("Accounts(h1) = %v, want [a1 a2]", got)
	}
	if n, err := s.CountAccounts(ctx); err != nil || n != 3 {
		t.Errorf("CountAccounts = %d, %v; want 3", n, err)
	}

	if err := s.SetAccountPassword(ctx, "a2", "$argon2id$new"); err != nil {
		t.Fatalf("SetAccountPassword: %v", err)
	}
	got, err := s.Account(ctx, "a2")
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	want := member
	want.PasswordHash = "$argon2id$new"
	if normAccount(got) != normAccount(want) {
		t.Errorf("after SetAccountPassword: %+v, want %+v", got, want)
	}

	if err := s.DeleteAccount(ctx, "a2"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	_, err = s.Account(ctx, "a2")
	wantErr(t, "Account after delete", err, store.ErrNotFound)
	if n, err := s.CountAccounts(ctx); err != nil || n != 2 {
		t.Errorf("CountAccounts after delete = %d, %v; want 2", n, err)
	}
	// The username is free again.
	mustCreateAccount(t, s, account("a4", "h1", "bob"))
}

func testUsernameUnique(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateHousehold(t, s, household("h2", at(0)))
	mustCreateAccount(t, s, account("a1", "h1", "alice"))

	// Usernames are unique across the hub, not per household: they are
	// what people log in with.
	wantErr(t, "same username, other household",
		s.CreateAccount(ctx, account("a2", "h2", "alice")), store.ErrConflict)
	wantErr(t, "same id, other username",
		s.CreateAccount(ctx, account("a1", "h1", "bob")), store.ErrConflict)
	if n, err := s.CountAccounts(ctx); err != nil || n != 1 {
		t.Errorf("CountAccounts = %d, %v; want 1", n, err)
	}
}

func testAccountNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.Account(ctx, "missing")
	wantErr(t, "Account", err, store.ErrNotFound)
	_, err = s.AccountByUsername(ctx, "missing")
	wantErr(t, "AccountByUsername", err, store.ErrNotFound)
	wantErr(t, "SetAccountPassword", s.SetAccountPassword(ctx, "missing", "x"), store.ErrNotFound)
	wantErr(t, "DeleteAccount", s.DeleteAccount(ctx, "missing"), store.ErrNotFound)
	wantErr(t, "CreateAccount in missing household",
		s.CreateAccount(ctx, account("a1", "missing", "alice")), store.ErrNotFound)
	if list, err := s.Accounts(ctx, "missing"); err != nil || len(list) != 0 {
		t.Errorf("Accounts(missing) = %v, %v; want none", list, err)
	}
	if n, err := s.CountAccounts(ctx); err != nil || n != 0 {
		t.Errorf("CountAccounts = %d, %v; want 0", n, err)
	}
}

// --- devices ----------------------------------------------------------

func testDevices(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	d := device("d1", "h1")
	d.Counters = store.DeviceCounters{ACLDenied: 1, Refused: 2, AuthFailures: 3}
	mustCreateDevice(t, s, d)

	got := mustDevice(t, s, "d1")
	if normDevice(got) != normDevice(d) {
		t.Errorf("Device = %+v, want %+v", got, d)
	}
	if got.Revoked() {
		t.Error("new device is revoked")
	}

	wantErr(t, "CreateDevice with taken id", s.CreateDevice(ctx, device("d1", "h1")), store.ErrConflict)

	mustCreateDevice(t, s, device("d2", "h1"))
	list, err := s.Devices(ctx, "h1")
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if got := ids(list, deviceID); !slices.Equal(got, []string{"d1", "d2"}) {
		t.Errorf("Devices(h1) = %v, want [d1 d2]", got)
	}
	for _, l := range list {
		if l.ID == "d1" && normDevice(l) != normDevice(d) {
			t.Errorf("Devices(h1) entry %+v, want %+v", l, d)
		}
	}
}

func testDevicesStayInTheirHousehold(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateHousehold(t, s, household("h2", at(0)))
	mustCreateHousehold(t, s, household("empty", at(0)))
	for _, d := range []store.Device{device("a1", "h1"), device("b1", "h2"), device("a2", "h1"), device("b2", "h2")} {
		mustCreateDevice(t, s, d)
	}

	for hh, want := range map[string][]string{
		"h1":      {"a1", "a2"},
		"h2":      {"b1", "b2"},
		"empty":   {},
		"missing": {},
	} {
		list, err := s.Devices(ctx, hh)
		if err != nil {
			t.Fatalf("Devices(%q): %v", hh, err)
		}
		if got := ids(list, deviceID); !slices.Equal(got, want) {
			t.Errorf("Devices(%q) = %v, want %v", hh, got, want)
		}
		for _, d := range list {
			if d.HouseholdID != hh {
				t.Errorf("Devices(%q) returned %q of household %q", hh, d.ID, d.HouseholdID)
			}
		}
	}

	all, err := s.AllDevices(ctx)
	if err != nil {
		t.Fatalf("AllDevices: %v", err)
	}
	if got := ids(all, deviceID); !slices.Equal(got, []string{"a1", "a2", "b1", "b2"}) {
		t.Errorf("AllDevices = %v, want [a1 a2 b1 b2]", got)
	}
}

func testDeviceNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.Device(ctx, "missing")
	wantErr(t, "Device", err, store.ErrNotFound)
	wantErr(t, "SetDeviceSecret", s.SetDeviceSecret(ctx, "missing", "x", at(0)), store.ErrNotFound)
	wantErr(t, "RevokeDevice", s.RevokeDevice(ctx, "missing", at(0)), store.ErrNotFound)
	wantErr(t, "CreateDevice in missing household", s.CreateDevice(ctx, device("d1", "missing")), store.ErrNotFound)
	if all, err := s.AllDevices(ctx); err != nil || len(all) != 0 {
		t.Errorf("AllDevices = %v, %v; want none", all, err)
	}
}

func testRotateSecret(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	d := device("d1", "h1")
	d.Counters = store.DeviceCounters{AuthFailures: 4}
	mustCreateDevice(t, s, d)

	rotated := at(time.Hour)
	if err := s.SetDeviceSecret(ctx, "d1", "$argon2id$rotated", rotated); err != nil {
		t.Fatalf("SetDeviceSecret: %v", err)
	}
	want := d
	want.SecretHash = "$argon2id$rotated"
	want.CredentialSetAt = rotated
	if got := mustDevice(t, s, "d1"); normDevice(got) != normDevice(want) {
		t.Errorf("after rotation: %+v, want %+v", got, want)
	}
}

func testRevoke(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateDevice(t, s, device("d1", "h1"))
	mustCreateDevice(t, s, device("d2", "h1"))

	revoked := at(time.Hour)
	if err := s.RevokeDevice(ctx, "d1", revoked); err != nil {
		t.Fatalf("RevokeDevice: %v", err)
	}
	got := mustDevice(t, s, "d1")
	if !got.Revoked() || !got.RevokedAt.Equal(revoked) {
		t.Errorf("after revoke: RevokedAt = %v, want %v", got.RevokedAt, revoked)
	}
	if mustDevice(t, s, "d2").Revoked() {
		t.Error("revoking d1 revoked d2")
	}

	// Rotation must not quietly readmit a revoked device.
	if err := s.SetDeviceSecret(ctx, "d1", "$argon2id$rotated", at(2*time.Hour)); err != nil {
		t.Fatalf("SetDeviceSecret: %v", err)
	}
	got = mustDevice(t, s, "d1")
	if !got.Revoked() {
		t.Error("rotating the secret un-revoked the device")
	}
	if got.SecretHash != "$argon2id$rotated" {
		t.Errorf("SecretHash = %q after rotating a revoked device", got.SecretHash)
	}
}

func testCounters(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateDevice(t, s, device("d1", "h1"))
	mustCreateDevice(t, s, device("d2", "h1"))
	mustCreateDevice(t, s, device("d3", "h1"))

	steps := []map[string]store.DeviceCounters{
		{"d1": {ACLDenied: 1, Refused: 2, AuthFailures: 3}},
		{
			"d1":      {ACLDenied: 10},
			"d2":      {AuthFailures: 5},
			"unknown": {ACLDenied: 100, Refused: 100, AuthFailures: 100},
		},
		{},
		nil,
		{"d1": {Refused: 20}, "d2": {}},
	}
	for i, deltas := range steps {
		if err := s.AddDeviceCounters(ctx, deltas); err != nil {
			t.Fatalf("AddDeviceCounters step %d: %v", i, err)
		}
	}
	for id, want := range map[string]store.DeviceCounters{
		"d1": {ACLDenied: 11, Refused: 22, AuthFailures: 3},
		"d2": {AuthFailures: 5},
		"d3": {},
	} {
		if got := mustDevice(t, s, id).Counters; got != want {
			t.Errorf("counters of %s = %+v, want %+v", id, got, want)
		}
	}
	_, err := s.Device(ctx, "unknown")
	wantErr(t, "counters for unknown id created a device", err, store.ErrNotFound)
}

// --- sessions ---------------------------------------------------------

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateAccount(t, s, account("a1", "h1", "alice"))
	mustCreateAccount(t, s, account("a2", "h1", "bob"))

	browser := session("s1", "a1", store.SessionBrowser)
	token := session("s2", "a1", store.SessionToken)
	token.ExpiresAt = at(24 * time.Hour)
	other := session("s3", "a2", store.SessionBrowser)
	for _, se := range []store.Session{browser, token, other} {
		mustCreateSession(t, s, se)
	}

	for _, want := range []store.Session{browser, token, other} {
		got, err := s.SessionByTokenHash(ctx, want.TokenHash)
		if err != nil {
			t.Fatalf("SessionByTokenHash(%s): %v", want.ID, err)
		}
		if !sameSession(got, want) {
			t.Errorf("SessionByTokenHash(%s) = %+v, want %+v", want.ID, got, want)
		}
	}

	list, err := s.Sessions(ctx, "a1")
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if got := ids(list, sessionID); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Errorf("Sessions(a1) = %v, want [s1 s2]", got)
	}

	seen := at(time.Hour)
	if err := s.TouchSession(ctx, "s1", seen); err != nil {
		t.Fatalf("TouchSession: %v", err)
	}
	got, err := s.SessionByTokenHash(ctx, browser.TokenHash)
	if err != nil {
		t.Fatalf("SessionByTokenHash: %v", err)
	}
	want := browser
	want.LastSeenAt = seen
	if !sameSession(got, want) {
		t.Errorf("after TouchSession: %+v, want %+v", got, want)
	}

	dup := session("s4", "a2", store.SessionToken)
	dup.TokenHash = token.TokenHash
	wantErr(t, "CreateSession with taken token hash", s.CreateSession(ctx, dup), store.ErrConflict)
	wantErr(t, "CreateSession with taken id",
		s.CreateSession(ctx, session("s1", "a2", store.SessionToken)), store.ErrConflict)

	if err := s.DeleteSession(ctx, "s1"); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	_, err = s.SessionByTokenHash(ctx, browser.TokenHash)
	wantErr(t, "SessionByTokenHash after delete", err, store.ErrNotFound)
	list, err = s.Sessions(ctx, "a1")
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if got := ids(list, sessionID); !slices.Equal(got, []string{"s2"}) {
		t.Errorf("Sessions(a1) after delete = %v, want [s2]", got)
	}
}

func testSessionNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.SessionByTokenHash(ctx, tokenHash("missing"))
	wantErr(t, "SessionByTokenHash", err, store.ErrNotFound)
	wantErr(t, "TouchSession", s.TouchSession(ctx, "missing", at(0)), store.ErrNotFound)
	wantErr(t, "DeleteSession", s.DeleteSession(ctx, "missing"), store.ErrNotFound)
	wantErr(t, "CreateSession for missing account",
		s.CreateSession(ctx, session("s1", "missing", store.SessionBrowser)), store.ErrNotFound)
	if list, err := s.Sessions(ctx, "missing"); err != nil || len(list) != 0 {
		t.Errorf("Sessions(missing) = %v, %v; want none", list, err)
	}
}

func testDeleteAccountDeletesSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateAccount(t, s, account("a1", "h1", "alice"))
	mustCreateAccount(t, s, account("a2", "h1", "bob"))
	mustCreateSession(t, s, session("s1", "a1", store.SessionBrowser))
	mustCreateSession(t, s, session("s2", "a1", store.SessionToken))
	mustCreateSession(t, s, session("s3", "a2", store.SessionBrowser))

	if err := s.DeleteAccount(ctx, "a1"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	if list, err := s.Sessions(ctx, "a1"); err != nil || len(list) != 0 {
		t.Errorf("Sessions of deleted account = %v, %v; want none", ids(list, sessionID), err)
	}
	// A deleted account's token must stop working.
	for _, id := range []string{"s1", "s2"} {
		_, err := s.SessionByTokenHash(ctx, tokenHash(id))
		wantErr(t, "SessionByTokenHash("+id+") after account delete", err, store.ErrNotFound)
	}
	if _, err := s.SessionByTokenHash(ctx, tokenHash("s3")); err != nil {
		t.Errorf("other account's session gone: %v", err)
	}
}

// --- readings ---------------------------------------------------------

func reading(dev, stream string, ts time.Time, payload string) store.Reading {
	return store.Reading{DeviceID: dev, Stream: stream, Time: ts, Payload: []byte(payload)}
}

// setupReadingDevices creates a household with the given devices, so
// engines that check a reading's device exists are satisfied.
func setupReadingDevices(t *testing.T, s store.Store, devs ...string) {
	t.Helper()
	mustCreateHousehold(t, s, household("h1", at(0)))
	for _, d := range devs {
		mustCreateDevice(t, s, device(d, "h1"))
	}
}

func mustAppend(t *testing.T, s store.Store, rs []store.Reading) {
	t.Helper()
	if err := s.AppendReadings(t.Context(), rs); err != nil {
		t.Fatalf("AppendReadings(%d readings): %v", len(rs), err)
	}
}

func mustReadings(t *testing.T, s store.Store, q store.ReadingQuery) []store.Reading {
	t.Helper()
	rs, err := s.Readings(t.Context(), q)
	if err != nil {
		t.Fatalf("Readings(%+v): %v", q, err)
	}
	return rs
}

func seqs(rs []store.Reading) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

func testAppendReadings(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupReadingDevices(t, s, "d1", "d2")
	if err := s.AppendReadings(ctx, nil); err != nil {
		t.Fatalf("AppendReadings(nil): %v", err)
	}

	batch := []store.Reading{
		reading("d1", "temp", at(0), `{"c":20.5}`),
		reading("d2", "temp", at(time.Millisecond), `{"c":19}`),
		reading("d1", "humidity", at(2*time.Millisecond), `{"rh":40}`),
		reading("d1", "temp", at(3*time.Millisecond), `{}`),
	}
	mustAppend(t, s, batch)
	for i, r := range batch {
		if r.Seq <= 0 {
			t.Errorf("reading %d: Seq = %d, want > 0", i, r.Seq)
		}
		if i > 0 && r.Seq <= batch[i-1].Seq {
			t.Errorf("reading %d: Seq %d not above previous %d", i, r.Seq, batch[i-1].Seq)
		}
	}
	second := []store.Reading{reading("d1", "temp", at(4*time.Millisecond), `{"c":21}`)}
	mustAppend(t, s, second)
	if second[0].Seq <= batch[len(batch)-1].Seq {
		t.Errorf("second batch Seq %d not above first batch's %d", second[0].Seq, batch[len(batch)-1].Seq)
	}

	got := mustReadings(t, s, store.ReadingQuery{DeviceID: "d1"})
	want := []store.Reading{batch[0], batch[2], batch[3], second[0]}
	if len(got) != len(want) {
		t.Fatalf("Readings(d1) returned %d readings, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.DeviceID != w.DeviceID || g.Stream != w.Stream ||
			!g.Time.Equal(w.Time) || !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("reading %d = {%d %s %s %v %s}, want {%d %s %s %v %s}", i,
				g.Seq, g.DeviceID, g.Stream, g.Time, g.Payload,
				w.Seq, w.DeviceID, w.Stream, w.Time, w.Payload)
		}
		if g.Time.Location() != time.UTC {
			t.Errorf("reading %d: Time in %v, want UTC", i, g.Time.Location())
		}
	}
}

func testAppendReadingsCancelled(t *testing.T, s store.Store) {
	setupReadingDevices(t, s, "d1")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	batch := []store.Reading{
		reading("d1", "temp", at(0), `{"c":1}`),
		reading("d1", "temp", at(time.Millisecond), `{"c":2}`),
	}
	if err := s.AppendReadings(ctx, batch); err == nil {
		t.Fatal("AppendReadings with cancelled context succeeded")
	}
	if n, err := s.CountReadings(t.Context(), "d1"); err != nil || n != 0 {
		t.Errorf("CountReadings after failed append = %d, %v; want 0", n, err)
	}
}

func testReadingsQuery(t *testing.T, s store.Store) {
	setupReadingDevices(t, s, "d1", "d2")
	// 20 readings of d1 one second apart, alternating streams, and noise
	// from d2 interleaved at the same times.
	var d1 []store.Reading
	var batch []store.Reading
	for i := range 20 {
		stream := "temp"
		if i%2 == 1 {
			stream = "humidity"
		}
		batch = append(batch,
			reading("d1", stream, at(time.Duration(i)*time.Second), fmt.Sprintf(`{"i":%d}`, i)),
			reading("d2", stream, at(time.Duration(i)*time.Second), `{"noise":true}`))
	}
	mustAppend(t, s, batch)
	for _, r := range batch {
		if r.DeviceID == "d1" {
			d1 = append(d1, r)
		}
	}
	// pick returns the d1 readings whose index i satisfies keep.
	pick := func(keep func(i int, r store.Reading) bool) []int64 {
		var out []int64
		for i, r := range d1 {
			if keep(i, r) {
				out = append(out, r.Seq)
			}
		}
		return out
	}

	tests := []struct {
		name string
		q    store.ReadingQuery
		want []int64
	}{
		{"all", store.ReadingQuery{DeviceID: "d1"}, seqs(d1)},
		{"stream", store.ReadingQuery{DeviceID: "d1", Stream: "temp"},
			pick(func(i int, _ store.Reading) bool { return i%2 == 0 })},
		{"unknown stream", store.ReadingQuery{DeviceID: "d1", Stream: "pressure"}, nil},
		{"since inclusive", store.ReadingQuery{DeviceID: "d1", Since: at(15 * time.Second)},
			pick(func(i int, _ store.Reading) bool { return i >= 15 })},
		{"until exclusive", store.ReadingQuery{DeviceID: "d1", Until: at(5 * time.Second)},
			pick(func(i int, _ store.Reading) bool { return i < 5 })},
		{"range", store.ReadingQuery{DeviceID: "d1", Since: at(5 * time.Second), Until: at(10 * time.Second)},
			pick(func(i int, _ store.Reading) bool { return i >= 5 && i < 10 })},
		{"range between readings", store.ReadingQuery{DeviceID: "d1",
			Since: at(5*time.Second + time.Millisecond), Until: at(6*time.Second - time.Millisecond)}, nil},
		{"after seq", store.ReadingQuery{DeviceID: "d1", AfterSeq: d1[11].Seq},
			pick(func(i int, _ store.Reading) bool { return i > 11 })},
		{"limit", store.ReadingQuery{DeviceID: "d1", Limit: 3}, seqs(d1[:3])},
		{"after seq and limit", store.ReadingQuery{DeviceID: "d1", AfterSeq: d1[3].Seq, Limit: 2}, seqs(d1[4:6])},
		{"all filters", store.ReadingQuery{DeviceID: "d1", Stream: "humidity",
			Since: at(4 * time.Second), Until: at(16 * time.Second), AfterSeq: d1[6].Seq, Limit: 3},
			[]int64{d1[7].Seq, d1[9].Seq, d1[11].Seq}},
		{"other device", store.ReadingQuery{DeviceID: "d2", Limit: 1}, []int64{batch[1].Seq}},
		{"unknown device", store.ReadingQuery{DeviceID: "missing"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustReadings(t, s, tc.q)
			if !slices.Equal(seqs(got), tc.want) {
				t.Errorf("seqs = %v, want %v", seqs(got), tc.want)
			}
			for _, r := range got {
				if r.DeviceID != tc.q.DeviceID {
					t.Errorf("reading %d belongs to %q, queried %q", r.Seq, r.DeviceID, tc.q.DeviceID)
				}
			}
		})
	}

	// Paging with AfterSeq visits every reading once, in order.
	var paged []int64
	q := store.ReadingQuery{DeviceID: "d1", Limit: 7}
	for {
		page := mustReadings(t, s, q)
		if len(page) == 0 {
			break
		}
		paged = append(paged, seqs(page)...)
		q.AfterSeq = page[len(page)-1].Seq
	}
	if !slices.Equal(paged, seqs(d1)) {
		t.Errorf("paged seqs = %v, want %v", paged, seqs(d1))
	}
}

func testReadingsDefaultLimit(t *testing.T, s store.Store) {
	setupReadingDevices(t, s, "d1")
	const n = 1001
	batch := make([]store.Reading, n)
	for i := range batch {
		batch[i] = reading("d1", "temp", at(time.Duration(i)*time.Millisecond), `{}`)
	}
	mustAppend(t, s, batch)
	got := mustReadings(t, s, store.ReadingQuery{DeviceID: "d1"})
	if len(got) != 1000 {
		t.Fatalf("Readings with Limit 0 returned %d, want the default 1000", len(got))
	}
	if got[0].Seq != batch[0].Seq || got[999].Seq != batch[999].Seq {
		t.Errorf("default page is seq %d..%d, want the oldest %d..%d",
			got[0].Seq, got[999].Seq, batch[0].Seq, batch[999].Seq)
	}
}

func testReadingsRequireDevice(t *testing.T, s store.Store) {
	if _, err := s.Readings(t.Context(), store.ReadingQuery{Stream: "temp"}); err == nil {
		t.Error("Readings without DeviceID succeeded; want an error")
	}
}

func testCountReadings(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupReadingDevices(t, s, "d1", "d2")
	mustAppend(t, s, []store.Reading{
		reading("d1", "a", at(0), `1`),
		reading("d1", "b", at(0), `2`),
		reading("d2", "a", at(0), `3`),
	})
	mustAppend(t, s, []store.Reading{reading("d1", "a", at(time.Second), `4`)})
	for dev, want := range map[string]int64{"d1": 3, "d2": 1, "missing": 0} {
		if n, err := s.CountReadings(ctx, dev); err != nil || n != want {
			t.Errorf("CountReadings(%q) = %d, %v; want %d", dev, n, err, want)
		}
	}
}

func testStreamCounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupReadingDevices(t, s, "d1", "d2")
	mustAppend(t, s, []store.Reading{
		reading("d1", "a", at(0), `1`),
		reading("d1", "b", at(0), `2`),
		reading("d2", "a", at(0), `3`),
		reading("d1", "a", at(time.Second), `4`),
		reading("d1", "c", at(2*time.Second), `5`),
	})
	for _, c := range []struct {
		dev   string
		until time.Time
		want  map[string]int64
	}{
		{"d1", time.Time{}, map[string]int64{"a": 2, "b": 1, "c": 1}},
		{"d1", at(2 * time.Second), map[string]int64{"a": 2, "b": 1}}, // until is exclusive
		{"d1", at(2*time.Second + time.Nanosecond), map[string]int64{"a": 2, "b": 1, "c": 1}},
		{"d1", at(time.Second), map[string]int64{"a": 1, "b": 1}},
		{"d1", at(0), map[string]int64{}},
		{"d2", time.Time{}, map[string]int64{"a": 1}},
		{"missing", time.Time{}, map[string]int64{}},
	} {
		got, err := s.StreamCounts(ctx, c.dev, c.until)
		if err != nil || !maps.Equal(got, c.want) {
			t.Errorf("StreamCounts(%q, %v) = %v, %v; want %v", c.dev, c.until, got, err, c.want)
		}
	}
}

// testConcurrentAppend checks that concurrent batches, as the broker's
// ingest workers write them, lose nothing and never share a Seq. Twenty
// batches a writer (160 in all, eight at a time) are enough to catch
// unserialised appends: with SQLite's keyMu left out the race detector
// fails this test in its first seconds (docs/benchmarks.md, session 11);
// fifty took 2.5 times as long under -race.
func testConcurrentAppend(t *testing.T, s store.Store) {
	const (
		writers   = 8
		batches   = 20
		batchSize = 100
		perWriter = batches * batchSize
	)
	ctx := t.Context()
	devs := make([]string, writers)
	for w := range devs {
		devs[w] = fmt.Sprintf("dev-%d", w)
	}
	setupReadingDevices(t, s, devs...)

	assigned := make([][]int64, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				batch := make([]store.Reading, batchSize)
				for i := range batch {
					n := b*batchSize + i
					batch[i] = reading(devs[w], "s", at(time.Duration(n)*time.Millisecond), fmt.Sprintf(`{"n":%d}`, n))
				}
				if err := s.AppendReadings(ctx, batch); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
					return
				}
				assigned[w] = append(assigned[w], seqs(batch)...)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	all := make(map[int64]bool, writers*perWriter)
	for w, ss := range assigned {
		for _, seq := range ss {
			if all[seq] {
				t.Fatalf("writer %d: Seq %d handed out twice", w, seq)
			}
			all[seq] = true
		}
	}
	for w, dev := range devs {
		if n, err := s.CountReadings(ctx, dev); err != nil || n != perWriter {
			t.Errorf("CountReadings(%s) = %d, %v; want %d", dev, n, err, perWriter)
		}
		// Each writer's readings read back in the order written, via
		// the AfterSeq cursor a client would use.
		var got []int64
		q := store.ReadingQuery{DeviceID: dev, Limit: 1000}
		for {
			page := mustReadings(t, s, q)
			if len(page) == 0 {
				break
			}
			got = append(got, seqs(page)...)
			q.AfterSeq = page[len(page)-1].Seq
		}
		if !slices.Equal(got, assigned[w]) {
			t.Errorf("%s: read back %d readings not matching the %d written", dev, len(got), len(assigned[w]))
		}
	}
}
