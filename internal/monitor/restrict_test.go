package monitor

import (
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
)

// A device held until fixed that an alarm then quarantines keeps both
// reasons, in memory and in the store: the owner's release lifts the
// alarm's and leaves the hold until fixed; the fix lifts that one and
// frees the device. Each refusal text says what ends the hold.
func TestHoldKeepsBothReasons(t *testing.T) {
	ctx := t.Context()
	p := newParts(t)
	m, c := p.monitor(t, Config{})
	owner := auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_1"}
	const adv = "CANDOR-SA-1"
	if err := m.Restrict(ctx, "d1", adv, owner); err != nil {
		t.Fatal(err)
	}
	if why := m.HoldReason("d1"); !strings.Contains(why, "until a security flaw is fixed (advisory "+adv+")") || strings.Contains(why, "must release") {
		t.Errorf("HoldReason(held until fixed) = %q", why)
	}
	flood(m, c, "d1", 3)
	applyAll(ctx, m)
	if st, ok := m.Status("d1"); !ok || st.Alarm.Kind != KindDeclaredRate {
		t.Fatalf("Status after the alarm = %+v, %v", st, ok)
	}
	if got, ok := m.RestrictedFor("d1"); !ok || got != adv {
		t.Fatalf("RestrictedFor after the alarm = %q, %v; want %s kept", got, ok, adv)
	}
	if why := m.HoldReason("d1"); !strings.Contains(why, "its owner releases it and it reports firmware") {
		t.Errorf("HoldReason(both) = %q", why)
	}
	// A restart keeps both reasons.
	m2, _ := p.monitor(t, Config{})
	if err := m2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got, ok := m2.RestrictedFor("d1"); !ok || got != adv {
		t.Fatalf("after restart RestrictedFor = %q, %v", got, ok)
	}
	// The owner's release lifts the alarm's reason only.
	if err := m2.Release(ctx, "d1", owner, "I unplugged the copy"); err != nil {
		t.Fatal(err)
	}
	if v := m2.Admit("d1"); v != Quarantined {
		t.Fatalf("after the owner's release Admit = %v; want still Quarantined until fixed", v)
	}
	if st, _ := m2.Status("d1"); st.Alarm.Kind != KindAdvisory {
		t.Errorf("hold after the release = %+v, want the hold until fixed", st.Alarm)
	}
	if qs, _ := p.st.Quarantines(ctx); len(qs) != 1 || qs[0].Kind != string(KindAdvisory) || qs[0].Advisory != adv {
		t.Errorf("stored holds %+v, want the hold until fixed", qs)
	}
	if got := p.control["d1"]; got[len(got)-1] != `{"quarantined":true,"reason":"advisory"}` {
		t.Errorf("last control message %q", got[len(got)-1])
	}
	// The fix frees it.
	if err := m2.Lift(ctx, "d1", auditlog.Actor{Kind: auditlog.ActorHub}, "fixed"); err != nil {
		t.Fatal(err)
	}
	if v := m2.Admit("d1"); v != Allow {
		t.Fatalf("after the fix Admit = %v", v)
	}
	if qs, _ := p.st.Quarantines(ctx); len(qs) != 0 {
		t.Errorf("store still holds %+v", qs)
	}
}
