package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

func testQuarantines(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateDevice(t, s, device("d1", "h1"))
	mustCreateDevice(t, s, device("d2", "h1"))
	q := store.Quarantine{DeviceID: "d1", Kind: "declared_rate", Stream: "power", Severity: "critical",
		Observed: 540, Limit: 12, Since: at(time.Minute)}
	if err := s.PutQuarantine(ctx, q); err != nil {
		t.Fatal(err)
	}
	// A later hold replaces the earlier one: one row per device.
	q.Kind, q.Observed, q.Since = "clone", 2, at(2*time.Minute)
	// An alarm that joins a hold until fixed keeps the advisory.
	q.Advisory = "CANDOR-SA-2026-07"
	if err := s.PutQuarantine(ctx, q); err != nil {
		t.Fatal(err)
	}
	r := store.Quarantine{DeviceID: "d2", Kind: "probe", Severity: "warning", Observed: 7.5, Limit: 5, RateLimited: true, Rate: 0.25, Since: at(0)}
	if err := s.PutQuarantine(ctx, r); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "PutQuarantine(no device)", s.PutQuarantine(ctx, store.Quarantine{DeviceID: "nope", Kind: "probe", Since: at(0)}), store.ErrNotFound)
	got, err := s.Quarantines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.Quarantine{q, r}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Quarantines = %+v\nwant %+v", got, want)
	}
	if err := s.DeleteQuarantine(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "DeleteQuarantine(again)", s.DeleteQuarantine(ctx, "d1"), store.ErrNotFound)
	if got, _ := s.Quarantines(ctx); len(got) != 1 || got[0].DeviceID != "d2" {
		t.Fatalf("after release: %+v; want d2 only", got)
	}
}

func testAlertPrefs(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateHousehold(t, s, household("h2", at(0)))
	mustCreateAccount(t, s, account("a1", "h1", "ann"))
	mustCreateAccount(t, s, account("a2", "h2", "bob"))
	p := store.AlertPrefs{AccountID: "a1", MinSeverity: "warning", Email: "ann@example.org"}
	if err := s.PutAlertPrefs(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.MinSeverity = "critical"
	if err := s.PutAlertPrefs(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlertPrefs(ctx, store.AlertPrefs{AccountID: "a2", MinSeverity: "info"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "PutAlertPrefs(no account)", s.PutAlertPrefs(ctx, store.AlertPrefs{AccountID: "nope"}), store.ErrNotFound)
	got, err := s.AlertPrefs(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.AlertPrefs{p}; !reflect.DeepEqual(got, want) {
		t.Fatalf("AlertPrefs(h1) = %+v; want %+v (the replaced choice, no other household's)", got, want)
	}
}

func testMonitorWindows(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateDevice(t, s, device("d1", "h1"))
	mustCreateDevice(t, s, device("d2", "h1"))
	w := func(dev string, start time.Duration, n int64) store.MonitorWindow {
		return store.MonitorWindow{DeviceID: dev, Start: at(start), Length: time.Minute, Readings: n, Bytes: 40 * n,
			MaxBytes: 40, Refused: 1, WrongSecrets: 2, Probes: 3, Connects: 4}
	}
	steps := []struct {
		name string
		add  []store.MonitorWindow
	}{
		{"first windows", []store.MonitorWindow{w("d1", 0, 5), w("d1", time.Minute, 6), w("d2", 0, 7)}},
		// The same window again adds up (a restart may report a window
		// twice in part); a device that is gone is skipped, not an error.
		{"same window again, and a gone device", []store.MonitorWindow{w("d1", time.Minute, 1), w("gone", 0, 9)}},
		{"nothing", nil},
	}
	for _, st := range steps {
		if err := s.AddMonitorWindows(ctx, st.add); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}
	got, err := s.MonitorWindows(ctx, "d1", at(0))
	if err != nil {
		t.Fatal(err)
	}
	merged := w("d1", time.Minute, 7)
	merged.Bytes, merged.Refused, merged.WrongSecrets, merged.Probes, merged.Connects = 40*7, 2, 4, 6, 8
	if want := []store.MonitorWindow{w("d1", 0, 5), merged}; !reflect.DeepEqual(got, want) {
		t.Fatalf("MonitorWindows(d1) = %+v\nwant %+v", got, want)
	}
	if got, _ := s.MonitorWindows(ctx, "d1", at(time.Minute)); len(got) != 1 {
		t.Fatalf("MonitorWindows(d1, since the second) = %+v; want the second only", got)
	}
	n, err := s.PurgeMonitorWindows(ctx, at(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("PurgeMonitorWindows removed %d; want 2 (d1's and d2's first)", n)
	}
	if got, _ := s.MonitorWindows(ctx, "d2", at(0)); len(got) != 0 {
		t.Fatalf("d2 after purge: %+v; want none", got)
	}
	// Erasing a device erases its windows with it.
	if err := s.Erase(ctx, store.Erasure{DeleteDevices: []string{"d1"}, Reason: "account deleted", At: at(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.MonitorWindows(ctx, "d1", at(0)); err != nil || len(got) != 0 {
		t.Fatalf("d1 after erasure: %+v, %v; want none", got, err)
	}
}

func testMonitorActions(t *testing.T, s store.Store) {
	ctx := t.Context()
	steps := []struct {
		put  map[string]string // nil: read only
		want map[string]string
	}{
		{nil, map[string]string{}},
		{map[string]string{"info": "notify", "warning": "rate_limit", "critical": "quarantine"},
			map[string]string{"info": "notify", "warning": "rate_limit", "critical": "quarantine"}},
		// A new choice replaces the whole old one.
		{map[string]string{"critical": "revoke"}, map[string]string{"critical": "revoke"}},
	}
	for i, st := range steps {
		if st.put != nil {
			if err := s.PutMonitorActions(ctx, st.put); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		got, err := s.MonitorActions(ctx)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("step %d: MonitorActions = %v; want %v", i, got, st.want)
		}
	}
}
