package monitor

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
)

// racingStore is the real store, with a hook that runs right after a
// Reload's read, before the monitor has changed anything in memory: the
// moment another of the monitor's own hold changes could slip in.
type racingStore struct {
	*sqlite.DB
	afterRead func()
}

func (s *racingStore) Quarantines(ctx context.Context) ([]store.Quarantine, error) {
	qs, err := s.DB.Quarantines(ctx)
	if f := s.afterRead; f != nil {
		s.afterRead = nil
		f()
	}
	return qs, err
}

// A hold this node places or lifts while a Reload runs (its own change
// coming back over the cluster, or another node's) is what memory and
// the store end with: the Reload's read, made just before the change was
// stored, neither drops a hold just placed nor brings back one just
// released, and the device is not told the opposite.
func TestReloadKeepsTheNodesOwnHoldChanges(t *testing.T) {
	owner := auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_1"}
	tests := []struct {
		name   string
		before func(ctx context.Context, t *testing.T, m *Monitor, c *clock) // the hold before the Reload
		during func(ctx context.Context, m *Monitor, c *clock) error         // the change that races it
		want   Verdict
	}{
		{
			name: "alarm quarantines",
			during: func(ctx context.Context, m *Monitor, c *clock) error {
				applyAll(ctx, m)
				return nil
			},
			want: Quarantined,
		},
		{
			name: "owner restricts until fixed",
			during: func(ctx context.Context, m *Monitor, _ *clock) error {
				return m.Restrict(ctx, "d1", "CANDOR-SA-1", owner)
			},
			want: Quarantined,
		},
		{
			name: "owner releases",
			before: func(ctx context.Context, t *testing.T, m *Monitor, _ *clock) {
				applyAll(ctx, m)
				if m.Admit("d1") != Quarantined {
					t.Fatal("the flood did not quarantine d1")
				}
			},
			during: func(ctx context.Context, m *Monitor, _ *clock) error {
				return m.Release(ctx, "d1", owner, "unplugged the copy")
			},
			want: Allow,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			p := newParts(t)
			rs := &racingStore{DB: p.st}
			m, c := p.monitor(t, Config{Store: rs})
			flood(m, c, "d1", 3) // queues a critical alarm
			if tt.before != nil {
				tt.before(ctx, t, m, c)
			}
			done := make(chan error, 1)
			rs.afterRead = func() {
				go func() { done <- tt.during(ctx, m, c) }()
				// The change either finishes now (nothing holds it back:
				// the Reload then works from a stale read) or waits for
				// the Reload; give it the chance to finish.
				select {
				case err := <-done:
					done <- err
				case <-time.After(300 * time.Millisecond):
				}
			}
			if err := m.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			qs, err := p.st.Quarantines(ctx)
			if err != nil {
				t.Fatal(err)
			}
			stored := len(qs) == 1
			if got := m.Admit("d1"); got != tt.want || stored != (tt.want != Allow) {
				t.Errorf("after the change and a Reload that raced it: Admit = %v, stored %v; want %v", got, qs, tt.want)
			}
			if msgs := p.control["d1"]; len(msgs) == 0 || (msgs[len(msgs)-1] == `{"quarantined":false}`) != (tt.want == Allow) {
				t.Errorf("the device was told %q; want its last message to say %v", msgs, tt.want)
			}
		})
	}
}

// Reload installs what another node stored as it is: a hold until fixed
// that the fix lifted there is gone here too, a quarantine that became a
// rate limit there is one here, and the device connected here is told
// each change of its quarantine.
func TestReloadInstallsTheStoredHold(t *testing.T) {
	ctx := t.Context()
	p := newParts(t)
	there, _ := p.monitor(t, Config{})
	alarm := store.Quarantine{DeviceID: "d1", Kind: string(KindDeclaredRate), Stream: "power", Severity: "critical",
		Observed: 3000, Limit: 120, Since: t0}
	both := alarm
	both.Advisory = "CANDOR-SA-1"
	limited := store.Quarantine{DeviceID: "d1", Kind: string(KindDeclaredRate), Stream: "power", Severity: "warning",
		Observed: 300, Limit: 120, RateLimited: true, Rate: 4, Since: t0.Add(time.Hour)}
	steps := []struct {
		name     string
		stored   store.Quarantine // what the other node stored
		verdict  Verdict
		advisory string
		told     string // the control message, "" for none
	}{
		{"an alarm joins a hold until fixed", both, Quarantined, "CANDOR-SA-1", `{"quarantined":true,"reason":"declared_rate"}`},
		{"the fix lifts the hold until fixed", alarm, Quarantined, "", `{"quarantined":true,"reason":"declared_rate"}`},
		{"released, then rate-limited", limited, Allow, "", `{"quarantined":false}`},
		{"quarantined again", alarm, Quarantined, "", `{"quarantined":true,"reason":"declared_rate"}`},
	}
	for _, s := range steps {
		if err := p.st.PutQuarantine(ctx, s.stored); err != nil {
			t.Fatal(err)
		}
		n := len(p.control["d1"])
		if err := there.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if v := there.Admit("d1"); v != s.verdict {
			t.Errorf("%s: Admit = %v; want %v", s.name, v, s.verdict)
		}
		if adv, _ := there.RestrictedFor("d1"); adv != s.advisory {
			t.Errorf("%s: held until fixed for %q; want %q", s.name, adv, s.advisory)
		}
		if got := p.control["d1"][n:]; !slices.Equal(got, []string{s.told}) {
			t.Errorf("%s: told %q; want %q", s.name, got, s.told)
		}
		if s.stored.RateLimited {
			// The stored rate, not one a second: a burst of ten seconds
			// (40), one of them taken by the Admit above.
			if b := burst(there, "d1"); b != 39 {
				t.Errorf("%s: burst %d; want 39", s.name, b)
			}
		}
	}
	// The owner's release here ends the hold: no advisory comes back
	// from the hold until fixed that the fix lifted elsewhere.
	if err := there.Release(ctx, "d1", auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_1"}, "fixed"); err != nil {
		t.Fatal(err)
	}
	if qs, _ := p.st.Quarantines(ctx); len(qs) != 0 {
		t.Errorf("after the release the store holds %+v; want nothing", qs)
	}
	if v := there.Admit("d1"); v != Allow {
		t.Errorf("after the release Admit = %v", v)
	}
}

// A rate limit kept before its rate was (rate 0) counts as unchanged on
// the next Reload, so reloading (any hold changed anywhere) does not
// refill its bucket.
func TestReloadKeepsTheBucketOfAnOldRateLimit(t *testing.T) {
	ctx := t.Context()
	p := newParts(t)
	m, _ := p.monitor(t, Config{})
	old := store.Quarantine{DeviceID: "d1", Kind: string(KindDeclaredRate), Stream: "power", Severity: "warning",
		RateLimited: true, Since: t0}
	if err := p.st.PutQuarantine(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if b := burst(m, "d1"); b != 10 {
		t.Fatalf("burst %d; want 10 (one a second)", b)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if v := m.Admit("d1"); v != Limited {
		t.Errorf("after its burst and another reload: %v; want Limited", v)
	}
}

// burst counts the publishes a device may make before it is held back
// (the test clock stands still, so the bucket does not refill).
func burst(m *Monitor, id string) int {
	n := 0
	for m.Admit(id) == Allow {
		n++
	}
	return n
}
