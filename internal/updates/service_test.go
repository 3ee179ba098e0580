package updates

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
)

// versions is a test double for the firmware-version store.
type versions struct {
	mu sync.Mutex
	m  map[string]string
}

func (v *versions) InstalledVersion(_ context.Context, id string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[id], nil
}

func (v *versions) set(id, version string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m[id] = version
}

// recorder keeps the events the service recorded, and forwards them to a
// real log when one is set.
type recorder struct {
	mu     sync.Mutex
	log    *auditlog.Log
	events []auditlog.Event
	notify chan auditlog.Event
}

func (r *recorder) Record(ctx context.Context, ev auditlog.Event) error {
	if r.log != nil {
		if err := r.log.Record(ctx, ev); err != nil {
			return err
		}
	} else if ev.Time.IsZero() {
		ev.Time = time.Now()
		if err := ev.Validate(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	if r.notify != nil {
		r.notify <- ev
	}
	return nil
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		out = append(out, ev.Action+":"+ev.Detail["reason"])
	}
	return out
}

// publisher records what the hub would publish on each announced change:
// the offer the service holds at that moment.
type publisher struct {
	mu   sync.Mutex
	svc  *Service
	msgs []string
}

func (p *publisher) OfferChanged(deviceID string) {
	kind := "offer"
	if len(p.svc.Offer(deviceID)) == 0 {
		kind = "clear"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, OfferTopic(deviceID)+" "+kind)
}

type fixture struct {
	repo  *testRepo
	svc   *Service
	ver   *versions
	rec   *recorder
	pub   *publisher
	now   time.Time
	dev   Device
	owner auditlog.Actor
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{repo: newTestRepo(t), ver: &versions{m: map[string]string{}}, rec: &recorder{}, pub: &publisher{},
		now: time.Now(), dev: Device{ID: "dev_thermo1", Household: "hh_1", Type: "thermostat"},
		owner: auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acct_owner"}}
	svc, err := New(Config{Dir: t.TempDir(), BaseURL: func() string { return "http://hub.test" }, Versions: f.ver, Recorder: f.rec, Announce: f.pub,
		Logger: slog.New(slog.DiscardHandler),
		Now:    func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.pub.svc = svc
	if err := svc.SetSource("thermostat", f.repo.source(t, "thermostat/")); err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	f.ver.set(f.dev.ID, "1.1.0")
	return f
}

func (f *fixture) check(t *testing.T) State {
	t.Helper()
	st, err := f.svc.Check(context.Background(), f.dev)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSecurityUpdateIsOfferedAutomatically(t *testing.T) {
	f := newFixture(t)
	f.repo.add(t, "thermostat", "1.2.0", true, "CVE-2026-0001")
	st := f.check(t)
	if st.Stage != StatusOffered || st.Available.Version != "1.2.0" {
		t.Fatalf("state %+v, want 1.2.0 offered", st)
	}
	if got := f.rec.actions(); len(got) != 1 || got[0] != "update.offer:" {
		t.Fatalf("recorded %v", got)
	}
	// A second check offers nothing new.
	if st := f.check(t); st.Stage != StatusOffered || len(f.pub.msgs) != 1 {
		t.Fatalf("second check: %+v, published %v", st, f.pub.msgs)
	}
	ctx := context.Background()
	for _, stage := range []string{"downloading", "verified", "installing", "installed"} {
		if err := f.svc.HandleProgress(ctx, f.dev, []byte(`{"version":"1.2.0","stage":"`+stage+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	st, _ = f.svc.Status(f.dev.ID)
	if st.Stage != "installed" || st.Installed != "1.2.0" {
		t.Fatalf("after install: %+v", st)
	}
	if got := f.rec.actions(); got[len(got)-1] != "update.install:" || f.pub.msgs[len(f.pub.msgs)-1] != OfferTopic(f.dev.ID)+" clear" {
		t.Fatalf("recorded %v, published %v", got, f.pub.msgs)
	}
	if hh := f.svc.Household("hh_1"); len(hh) != 1 || hh[0].Device != f.dev.ID {
		t.Fatalf("household view %+v", hh)
	}
}

func TestOrdinaryUpdateWaitsForTheOwner(t *testing.T) {
	f := newFixture(t)
	f.repo.add(t, "thermostat", "1.2.0", false)
	if st := f.check(t); st.Stage != StatusAvailable || len(f.pub.msgs) != 0 {
		t.Fatalf("state %+v, published %v; want available and nothing sent", st, f.pub.msgs)
	}
	st, err := f.svc.Install(context.Background(), f.owner, f.dev)
	if err != nil || st.Stage != StatusOffered {
		t.Fatalf("install: %+v, %v", st, err)
	}
	f.rec.mu.Lock()
	actor := f.rec.events[0].Actor
	f.rec.mu.Unlock()
	if actor != f.owner {
		t.Fatalf("offer recorded as %+v, want the owner", actor)
	}
}

func TestOptOutStopsAutomaticSecurityUpdates(t *testing.T) {
	f := newFixture(t)
	if err := f.svc.SetAutomatic(context.Background(), f.owner, f.dev, false); err != nil {
		t.Fatal(err)
	}
	f.repo.add(t, "thermostat", "1.2.0", true)
	if st := f.check(t); st.Stage != StatusAvailable || st.Automatic || len(f.pub.msgs) != 0 {
		t.Fatalf("state %+v, published %v", st, f.pub.msgs)
	}
	if got := f.rec.actions(); got[0] != "update.policy:" {
		t.Fatalf("recorded %v", got)
	}
}

func TestPostponeIsBoundedAndOncePerVersion(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.repo.add(t, "thermostat", "1.2.0", true)
	f.check(t)
	if _, err := f.svc.Postpone(ctx, f.owner, f.dev, 31*24*time.Hour); !errors.Is(err, ErrPostponeLimit) {
		t.Fatalf("postpone 31 days: %v, want ErrPostponeLimit", err)
	}
	st, err := f.svc.Postpone(ctx, f.owner, f.dev, 7*24*time.Hour)
	if err != nil || st.Stage != StatusPostponed {
		t.Fatalf("postpone: %+v, %v", st, err)
	}
	if last := f.pub.msgs[len(f.pub.msgs)-1]; last != OfferTopic(f.dev.ID)+" clear" {
		t.Fatalf("the retained offer was not withdrawn: %v", f.pub.msgs)
	}
	if st := f.check(t); st.Stage != StatusPostponed {
		t.Fatalf("check while postponed: %+v", st)
	}
	f.now = f.now.Add(7*24*time.Hour + time.Minute)
	if st := f.check(t); st.Stage != StatusOffered {
		t.Fatalf("check after the postponement: %+v, want offered again", st)
	}
	if _, err := f.svc.Postpone(ctx, f.owner, f.dev, time.Hour); !errors.Is(err, ErrPostponeLimit) {
		t.Fatalf("second postponement: %v, want ErrPostponeLimit", err)
	}
	if got := f.rec.actions(); len(got) != 3 || got[1] != "update.postpone:" {
		t.Fatalf("recorded %v, want offer, postpone, offer", got)
	}
}

func TestDowngradeIsRefusedAndRecordedOnce(t *testing.T) {
	f := newFixture(t)
	f.ver.set(f.dev.ID, "2.0.0")
	f.repo.add(t, "thermostat", "1.2.0", true)
	for range 2 {
		st, err := f.svc.Check(context.Background(), f.dev)
		wantRefused(t, err, ReasonDowngrade)
		if st.Stage != StatusRefused || st.Plain != ReasonDowngrade.Plain() {
			t.Fatalf("state %+v", st)
		}
	}
	if got := f.rec.actions(); len(got) != 1 || got[0] != "update.refuse:downgrade" || len(f.pub.msgs) != 0 {
		t.Fatalf("recorded %v, published %v", got, f.pub.msgs)
	}
}

func TestFreezeIsRefusedWithAPlainReason(t *testing.T) {
	f := newFixture(t)
	f.repo.add(t, "thermostat", "1.2.0", true)
	f.svc.sources["thermostat"].SetClock(func() time.Time { return time.Now().Add(48 * time.Hour) })
	st, err := f.svc.Check(context.Background(), f.dev)
	wantRefused(t, err, ReasonExpired)
	if st.Stage != StatusRefused || st.Reason != ReasonExpired {
		t.Fatalf("state %+v", st)
	}
	if got := f.rec.actions(); len(got) != 1 || got[0] != "update.refuse:expired" {
		t.Fatalf("recorded %v", got)
	}
	// Once the repository is good again the device is offered its update,
	// and a later freeze is recorded afresh.
	clock := f.svc.sources["thermostat"]
	clock.SetClock(nil)
	if st, err := f.svc.CheckNow(context.Background(), f.dev); err != nil || st.Stage != StatusOffered {
		t.Fatalf("after the freeze ended: %+v, %v", st, err)
	}
	clock.SetClock(func() time.Time { return time.Now().Add(48 * time.Hour) })
	_, err = f.svc.CheckNow(context.Background(), f.dev)
	wantRefused(t, err, ReasonExpired)
	if got := f.rec.actions(); len(got) != 3 || got[2] != "update.refuse:expired" {
		t.Fatalf("recorded %v, want refuse, offer, refuse", got)
	}
}

func TestProgressForAVersionNotOfferedIsRefused(t *testing.T) {
	f := newFixture(t)
	f.repo.add(t, "thermostat", "1.2.0", true)
	f.check(t)
	err := f.svc.HandleProgress(context.Background(), f.dev, []byte(`{"version":"9.0.0","stage":"installed"}`))
	if !errors.Is(err, ErrNoUpdate) {
		t.Fatalf("error %v, want ErrNoUpdate", err)
	}
	err = f.svc.HandleProgress(context.Background(), f.dev, []byte(`{"version":"1.2.0","stage":"failed","reason":"no-space"}`))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.svc.Status(f.dev.ID)
	if st.Stage != "failed" || st.FailCode != "no-space" {
		t.Fatalf("state %+v", st)
	}
	if got := f.rec.actions(); got[len(got)-1] != "update.fail:no-space" {
		t.Fatalf("recorded %v", got)
	}
	if st, err := f.svc.Install(context.Background(), f.owner, f.dev); err != nil || st.Stage != StatusOffered {
		t.Fatalf("trying a failed update again: %+v, %v", st, err)
	}
}

func TestOwnersDecisionsOutliveARestart(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.repo.add(t, "thermostat", "1.2.0", true)
	optedOut := Device{ID: "dev_optout", Household: "hh_1", Type: "thermostat"}
	f.ver.set(optedOut.ID, "1.1.0")
	if err := f.svc.SetAutomatic(ctx, f.owner, optedOut, false); err != nil {
		t.Fatal(err)
	}
	f.check(t)
	if _, err := f.svc.Postpone(ctx, f.owner, f.dev, 3*24*time.Hour); err != nil {
		t.Fatal(err)
	}

	again, err := New(f.svc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.SetSource("thermostat", f.repo.source(t, "thermostat/")); err != nil {
		t.Fatal(err)
	}
	published := len(f.pub.msgs)
	for _, d := range []Device{f.dev, optedOut} {
		st, err := again.Check(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Stage == StatusOffered {
			t.Errorf("%s: offered after a restart despite the owner's decision: %+v", d.ID, st)
		}
	}
	if len(f.pub.msgs) != published {
		t.Fatalf("published after restart: %v", f.pub.msgs[published:])
	}
	if st, _ := again.Status(f.dev.ID); st.Stage != StatusPostponed {
		t.Fatalf("postponed device after restart: %+v", st)
	}
}
