package monitor

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

type parts struct {
	st      *sqlite.DB
	log     *auditlog.Log
	control map[string][]string // device → control payloads, in order
}

// newParts opens a real store (with household h1 and devices d1, d2) and a
// real transparency log.
func newParts(t *testing.T) *parts {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	sqlitetest.Write(t, filepath.Join(dir, "candor.db")) // migrated once per test binary
	st, err := sqlite.Open(ctx, filepath.Join(dir, "candor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateHousehold(ctx, store.Household{ID: "h1", Name: "Home", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"d1", "d2"} {
		if err := st.CreateDevice(ctx, store.Device{ID: id, HouseholdID: "h1", Name: id, Type: "smart-meter",
			SecretHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$x", CredentialSetAt: t0, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	key, err := auditlog.GenerateKey("test.candor.local")
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(ctx, filepath.Join(dir, "log"), key, auditlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &parts{st: st, log: l, control: map[string][]string{}}
}

func (p *parts) config(cfg Config) Config {
	if cfg.Store == nil {
		cfg.Store = p.st
	}
	cfg.Log, cfg.Devices = p.log, p.st
	return cfg
}

// monitor makes a monitor on p's parts. Its control messages are recorded
// in p.control as the hub publishes them: read from the monitor
// (HoldMessage) when it says a device's status changed, so a message
// recorded wrong means the hold in memory was not yet changed.
func (p *parts) monitor(t testing.TB, cfg Config) (*Monitor, *clock) {
	t.Helper()
	var m *Monitor
	cfg = p.config(cfg)
	cfg.Control = func(id string) { p.control[id] = append(p.control[id], string(m.HoldMessage(id))) }
	m, c := newTestMonitor(t, cfg)
	return m, c
}

// actions lists the log's actions about a device, in order.
func (p *parts) actions(t *testing.T, device string) []string {
	t.Helper()
	var out []string
	for e, err := range p.log.Entries(t.Context(), 0, p.log.Size()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Event.Subject.Device == device {
			out = append(out, e.Event.Action)
			if e.Event.Household != "h1" {
				t.Errorf("%s logged for household %q; want h1", e.Event.Action, e.Event.Household)
			}
		}
	}
	return out
}

// applyAll applies every queued effect, as Run would.
func applyAll(ctx context.Context, m *Monitor) {
	for _, e := range drain(m) {
		m.apply(ctx, e)
	}
}

func flood(m *Monitor, c *clock, device string, windows int) {
	for range windows {
		spread(m, c, 3000, Reading{Device: device, Type: "smart-meter", Stream: "power", Size: 40, PerMinute: 60, MaxBytes: 256})
	}
}

// A critical alarm quarantines the device: its publishes are refused, the
// hold survives a restart, the device is told on its control topic, and
// everything lands in the log; a release with a reason lifts it.
func TestQuarantineLifecycle(t *testing.T) {
	ctx := t.Context()
	p := newParts(t)
	m, c := p.monitor(t, Config{})
	flood(m, c, "d1", 3)
	applyAll(ctx, m)

	if v := m.Admit("d1"); v != Quarantined {
		t.Fatalf("Admit(d1) = %v; want Quarantined", v)
	}
	if v := m.Admit("d2"); v != Allow {
		t.Fatalf("Admit(d2) = %v; want Allow: only the flooding device is held", v)
	}
	st, ok := m.Status("d1")
	if !ok || !st.Quarantined || st.Alarm.Kind != KindDeclaredRate || st.Alarm.Observed != 3000 || st.Refused != 1 {
		t.Fatalf("Status = %+v, %v", st, ok)
	}
	if ex := st.Alarm.Explain(); !containsAll(ex.Why, "3000", "120") {
		t.Errorf("explanation %q lacks the numbers", ex.Why)
	}
	if got := p.control["d1"]; !slices.Equal(got, []string{`{"quarantined":true,"reason":"declared_rate"}`}) {
		t.Errorf("control messages %q", got)
	}
	if got, want := p.actions(t, "d1"), []string{ActionAlarmRaise, auditlog.ActionDeviceQuarantine}; !slices.Equal(got, want) {
		t.Errorf("log %v; want %v", got, want)
	}

	// A restarted hub holds the device from the store.
	m2, _ := p.monitor(t, Config{})
	if err := m2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if v := m2.Admit("d1"); v != Quarantined {
		t.Fatalf("after restart Admit(d1) = %v; want Quarantined", v)
	}

	by := auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_1"}
	if err := m2.Release(ctx, "d1", by, "I updated its firmware"); err != nil {
		t.Fatal(err)
	}
	if v := m2.Admit("d1"); v != Allow {
		t.Fatalf("after release Admit(d1) = %v", v)
	}
	if qs, _ := p.st.Quarantines(ctx); len(qs) != 0 {
		t.Errorf("store still holds %+v", qs)
	}
	if err := m2.Release(ctx, "d1", by, "again"); !errors.Is(err, ErrNotHeld) {
		t.Errorf("second release: %v; want ErrNotHeld", err)
	}
	got := p.actions(t, "d1")
	if got[len(got)-1] != ActionRelease {
		t.Fatalf("log %v; want a release last", got)
	}
	if c := p.control["d1"]; c[len(c)-1] != `{"quarantined":false}` {
		t.Errorf("last control message %q", c[len(c)-1])
	}
}

// The admin's policy decides what each severity does.
func TestPolicy(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		drive  func(m *Monitor, c *clock)
		want   Verdict
		log    []string
	}{
		{"critical quarantines by default", nil, func(m *Monitor, c *clock) { flood(m, c, "d1", 3) },
			Quarantined, []string{ActionAlarmRaise, auditlog.ActionDeviceQuarantine}},
		{"notify only", Policy{Critical: ActNotify}, func(m *Monitor, c *clock) { flood(m, c, "d1", 3) },
			Allow, []string{ActionAlarmRaise}},
		{"warning rate-limits by default", nil, func(m *Monitor, c *clock) {
			for range 5 {
				m.Denied("d1")
			}
		}, Limited, []string{ActionAlarmRaise, ActionRateLimit}},
		{"wrong secrets only notify, whatever the policy", Policy{Warning: ActQuarantine}, func(m *Monitor, c *clock) {
			for range 10 {
				m.AuthFailure(t.Context(), "d1")
			}
		}, Allow, []string{ActionAlarmRaise}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			p := newParts(t)
			m, c := p.monitor(t, Config{Policy: tc.policy})
			tc.drive(m, c)
			applyAll(ctx, m)
			// Use up any burst the rate limit allows, on a frozen clock.
			v := Allow
			for range 100 {
				if v = m.Admit("d1"); v != Allow {
					break
				}
			}
			if v != tc.want {
				t.Errorf("verdict %v; want %v", v, tc.want)
			}
			if got := p.actions(t, "d1"); !slices.Equal(got, tc.log) {
				t.Errorf("log %v; want %v", got, tc.log)
			}
		})
	}
}

// A rate-limited device gets tokens back as time passes.
func TestRateLimitRefills(t *testing.T) {
	m, c := newTestMonitor(t, Config{})
	m.hold(store.Quarantine{DeviceID: "d1", Kind: string(KindProbe), RateLimited: true, Since: t0}, 60)
	n := 0
	for m.Admit("d1") == Allow {
		n++
	}
	if n != 20 { // a burst of ten seconds at twice 60 a minute
		t.Fatalf("burst of %d; want 20", n)
	}
	c.advance(time.Second)
	var got []Verdict
	for range 3 {
		got = append(got, m.Admit("d1"))
	}
	if want := []Verdict{Allow, Allow, Limited}; !slices.Equal(got, want) {
		t.Fatalf("after one second %v; want %v (two tokens back)", got, want)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// actions is an ActionStore in memory.
type actions struct{ m map[string]string }

func (a *actions) PutMonitorActions(_ context.Context, m map[string]string) error {
	a.m = m
	return nil
}

func (a *actions) MonitorActions(context.Context) (map[string]string, error) { return a.m, nil }

// The admin's choice on the page takes effect at once, outlasts a restart
// (winning over the configured policy), and a policy that leaves a
// severity out or names no known action is refused.
func TestChangePolicy(t *testing.T) {
	st := &actions{}
	m, _ := newTestMonitor(t, Config{Actions: st})
	admin := auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_admin"}
	tests := []struct {
		name string
		p    Policy
		ok   bool
	}{
		{"all three", Policy{Info: ActNotify, Warning: ActQuarantine, Critical: ActRevoke}, true},
		{"one missing", Policy{Info: ActNotify, Warning: ActQuarantine}, false},
		{"unknown action", Policy{Info: ActNotify, Warning: ActQuarantine, Critical: "explode"}, false},
	}
	for _, tc := range tests {
		err := m.ChangePolicy(t.Context(), admin, tc.p)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadPolicy)) {
			t.Errorf("%s: err = %v; want ok %v", tc.name, err, tc.ok)
		}
	}
	want := Policy{Info: ActNotify, Warning: ActQuarantine, Critical: ActRevoke}
	if got := m.Policy(); !maps.Equal(got, want) {
		t.Errorf("policy in force %v; want %v", got, want)
	}
	if got := m.actionFor(Alarm{Kind: KindDeclaredRate, Severity: Warning}); got != ActQuarantine {
		t.Errorf("a warning now leads to %s; want quarantine", got)
	}
	// A restart with the default policy configured keeps the choice.
	m2, _ := newTestMonitor(t, Config{Actions: st})
	if err := m2.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := m2.Policy(); !maps.Equal(got, want) {
		t.Errorf("after restart: %v; want %v", got, want)
	}
}

// A change of the actions is told to OnPolicyChange (a hub node passes it
// on with it), and another monitor sharing the store (another node) acts
// by it once it reloads; reloading tells nobody, so a change is not
// passed on again by the node that applied it.
func TestPolicyChangeReachesAMonitorSharingTheStore(t *testing.T) {
	st := &actions{}
	here, _ := newTestMonitor(t, Config{Actions: st})
	there, _ := newTestMonitor(t, Config{Actions: st})
	told := map[*Monitor]int{}
	here.OnPolicyChange(func() { told[here]++ })
	there.OnPolicyChange(func() { told[there]++ })
	want := Policy{Info: ActRateLimit, Warning: ActQuarantine, Critical: ActRevoke}
	if err := here.ChangePolicy(t.Context(), auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_admin"}, want); err != nil {
		t.Fatal(err)
	}
	if got := there.Policy(); maps.Equal(got, want) {
		t.Fatalf("the other monitor acts by %v before it reloads", got)
	}
	if err := there.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := there.Policy(); !maps.Equal(got, want) {
		t.Errorf("the other monitor after Reload: %v; want %v", got, want)
	}
	if told[here] != 1 || told[there] != 0 {
		t.Errorf("told %d times here and %d there; want once here (the change), never there (the reload)", told[here], told[there])
	}
}

// A hold the monitor places, a rate limit too, is told to OnHoldChange
// (a hub node passes it on with it), and another monitor sharing the
// store (another node) limits the device at the same rate once it
// reloads; reloading tells nobody. A release is told as well.
func TestRateLimitReachesAMonitorSharingTheStore(t *testing.T) {
	ctx := t.Context()
	p := newParts(t)
	limit := Policy{Info: ActNotify, Warning: ActRateLimit, Critical: ActRateLimit}
	here, c := p.monitor(t, Config{Policy: limit})
	there, _ := p.monitor(t, Config{Policy: limit})
	told := map[*Monitor][]string{}
	here.OnHoldChange(func(id string) { told[here] = append(told[here], id) })
	there.OnHoldChange(func(id string) { told[there] = append(told[there], id) })

	flood(here, c, "d1", 3)
	applyAll(ctx, here)
	if st, held := here.Status("d1"); !held || !st.RateLimited {
		t.Fatalf("the flooding device: %+v, %v; want rate-limited", st, held)
	}
	if err := there.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	burst := func(m *Monitor) int {
		n := 0
		for m.Admit("d1") == Allow {
			n++
		}
		return n
	}
	// Twice the declared 60 a minute, a burst of ten seconds of it: the
	// other monitor does not fall back to one a second.
	if b1, b2 := burst(here), burst(there); b1 != 20 || b2 != 20 {
		t.Errorf("burst %d here and %d on the monitor that reloaded; want 20 on both", b1, b2)
	}
	// Reloading again (another hold changed somewhere) does not refill
	// the bucket.
	if err := there.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if v := there.Admit("d1"); v != Limited {
		t.Errorf("after its burst and another reload: %v; want Limited", v)
	}
	if !slices.Equal(told[here], []string{"d1"}) || told[there] != nil {
		t.Errorf("told %v here and %v there; want d1 once here (the hold), never there (the reload)", told[here], told[there])
	}

	if err := there.Release(ctx, "d1", auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_1"}, "fixed"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(told[there], []string{"d1"}) {
		t.Errorf("a release told %v; want d1", told[there])
	}
}
