package consent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"

	_ "modernc.org/sqlite" // the driver, for TestSQLiteRecordsAreAppendOnly
)

func TestDefaults(t *testing.T) {
	f := newFixture(t)
	// Essential purposes on, kept on the hub for the manifest's retention;
	// nothing goes to a recipient.
	hr := f.svc.Allowed(wearable, "heart_rate")
	// heart_rate feeds automated decisions (on since the device was added).
	want := Decision{Resolved: true, Collect: true, StoreOnHub: true, Retention: dur(t, "P1Y"), ManifestVersion: 1, Decide: true, decides: true}
	if !reflect.DeepEqual(hr, want) {
		t.Errorf("heart_rate: got %+v, want %+v", hr, want)
	}
	// The energy supplier gets energy for an essential purpose (billing),
	// and is still off until someone says yes.
	if d := f.svc.Allowed(meter, "energy"); !d.StoreOnHub || len(d.Recipients) != 0 || d.Retention.Text != "P2Y" {
		t.Errorf("energy: %+v, want stored, no recipients", d)
	}
	// Unknown device and undeclared stream: nothing allowed.
	for _, d := range []Decision{f.svc.Allowed("dev_nobody", "x"), f.svc.Allowed(wearable, "location")} {
		if d.Resolved || d.Collect || d.StoreOnHub || d.Recipients != nil {
			t.Errorf("unresolved: %+v, want the zero Decision", d)
		}
	}

	st, err := f.svc.State(context.Background(), wearable)
	if err != nil {
		t.Fatal(err)
	}
	uses := map[string]UseState{}
	for _, s := range st.Streams {
		if s.Stream != "heart_rate" {
			continue
		}
		if s.Routing.Source != SourceDefault || !s.Routing.KeepOnHub || s.Routing.Max.Text != "P1Y" {
			t.Errorf("routing: %+v", s.Routing)
		}
		for _, u := range s.Uses {
			uses[u.Purpose+"|"+u.Recipient] = u
		}
	}
	check := func(key string, on, essential bool, why string) {
		t.Helper()
		u, ok := uses[key]
		if !ok {
			t.Fatalf("use %s not listed; have %v", key, uses)
		}
		if u.On != on || u.Essential != essential || u.Source != SourceDefault || !strings.Contains(u.Why, why) || u.PurposeText == "" || u.RecipientText == "" {
			t.Errorf("use %s: %+v", key, u)
		}
	}
	check("candor:HealthMonitoring|hub", true, true, "On by default")
	check("dpv:ResearchAndDevelopment|hub", false, false, "Off until you say yes")
	check("dpv:ResearchAndDevelopment|"+research, false, false, "nothing leaves this hub")
	if len(uses) != 3 {
		t.Errorf("heart_rate has %d uses, want 3: %v", len(uses), uses)
	}
	// Defaults are not decisions: nothing was recorded.
	if h, _ := f.svc.History(context.Background(), HistoryQuery{DeviceID: wearable}); len(h) != 0 {
		t.Errorf("history after only reading defaults: %+v", h)
	}
}

func TestTurningOffTakesEffectAtOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// steps has one purpose, essential, for the hub.
	rec := f.set(t, wearable, "steps", "candor:HealthMonitoring", RecipientHub, false)
	if d := f.svc.Allowed(wearable, "steps"); d.StoreOnHub || d.Collect {
		t.Fatalf("right after Set off: %+v, want nothing stored or collected", d)
	}
	if rec.Event != StatusWithdrawn || rec.On() {
		t.Errorf("turning off an essential default: event %s, want %s", rec.Event, StatusWithdrawn)
	}
	if got := f.notices(); !slices.Equal(got, []notice{{wearable, "steps", false}}) {
		t.Errorf("listener calls: %+v", got)
	}
	// Other streams are untouched.
	if d := f.svc.Allowed(wearable, "heart_rate"); !d.StoreOnHub {
		t.Errorf("heart_rate changed too: %+v", d)
	}
	f.set(t, wearable, "steps", "candor:HealthMonitoring", RecipientHub, true)
	if d := f.svc.Allowed(wearable, "steps"); !d.StoreOnHub || !d.Collect {
		t.Fatalf("right after Set on: %+v", d)
	}
	if got := f.notices(); !slices.Equal(got, []notice{{wearable, "steps", true}}) {
		t.Errorf("listener calls: %+v", got)
	}

	// heart_rate: essential off, optional on: still stored.
	f.set(t, wearable, "heart_rate", "candor:HealthMonitoring", RecipientHub, false)
	if d := f.svc.Allowed(wearable, "heart_rate"); d.StoreOnHub || d.Collect {
		t.Errorf("heart_rate with every hub purpose off: %+v", d)
	}
	rec = f.set(t, wearable, "heart_rate", "https://w3id.org/dpv#ResearchAndDevelopment", RecipientHub, true) // an IRI works too
	if d := f.svc.Allowed(wearable, "heart_rate"); !d.StoreOnHub {
		t.Errorf("heart_rate with research on: %+v", d)
	}
	if rec.Event != StatusGiven || rec.Purposes[0].Term != "dpv:ResearchAndDevelopment" {
		t.Errorf("record: %+v", rec)
	}
	// Refusing what was never on is a refusal, not a withdrawal.
	rec = f.set(t, wearable, "sleep", "dpv:ServicePersonalisation", RecipientHub, false)
	if rec.Event != StatusRefused {
		t.Errorf("off while off: event %s, want %s", rec.Event, StatusRefused)
	}
	_ = ctx
}

func TestRecipients(t *testing.T) {
	f := newFixture(t)
	rec := f.set(t, wearable, "heart_rate", "dpv:ResearchAndDevelopment", research, true)
	d := f.svc.Allowed(wearable, "heart_rate")
	if !slices.Equal(d.Recipients, []string{research}) || !d.StoreOnHub {
		t.Errorf("with research team on: %+v", d)
	}
	if rec.Recipient.Name != research || rec.Recipient.Role != manifest.DPVNamespace+"DataProcessor" ||
		rec.Storage.Location != StoredByRecipient || rec.Storage.Duration != "P2Y" || !slices.Contains(rec.Processing, ProcessShare) {
		t.Errorf("recipient record: %+v", rec)
	}
	// Nothing kept on the hub, still forwarded: collected.
	f.set(t, wearable, "heart_rate", "candor:HealthMonitoring", RecipientHub, false)
	f.notices()
	d = f.svc.Allowed(wearable, "heart_rate")
	if d.StoreOnHub || !d.Collect || len(d.Recipients) != 1 {
		t.Errorf("only the recipient on: %+v", d)
	}
	f.set(t, wearable, "heart_rate", "dpv:ResearchAndDevelopment", research, false)
	if d := f.svc.Allowed(wearable, "heart_rate"); d.Collect || len(d.Recipients) != 0 {
		t.Errorf("everything off: %+v", d)
	}
	if got := f.notices(); !slices.Equal(got, []notice{{wearable, "heart_rate", false}}) {
		t.Errorf("listener calls: %+v", got)
	}
	// The supplier of the meter, for billing.
	f.set(t, meter, "energy", "candor:Billing", supplier, true)
	if d := f.svc.Allowed(meter, "energy"); !slices.Equal(d.Recipients, []string{supplier}) {
		t.Errorf("energy: %+v", d)
	}
}

func TestRouting(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.svc.SetRouting(ctx, "acc_sam", wearable, "sleep", StreamRouting{KeepOnHub: true, Retention: dur(t, "P1Y")})
	var ce *Error
	if !errors.Is(err, ErrRetentionTooLong) || !errors.As(err, &ce) || ce.Field != "retention" ||
		!strings.Contains(err.Error(), "P1Y") || !strings.Contains(err.Error(), "P6M") || !strings.Contains(err.Error(), `"sleep"`) {
		t.Fatalf("retention over the manifest's: %v", err)
	}
	if d := f.svc.Allowed(wearable, "sleep"); d.Retention.Text != "P6M" {
		t.Errorf("refused routing changed retention: %+v", d)
	}
	// Shorter is always allowed; so is the manifest's own.
	rec, err := f.svc.SetRouting(ctx, "acc_sam", wearable, "sleep", StreamRouting{KeepOnHub: true, Retention: dur(t, "P30D")})
	if err != nil {
		t.Fatal(err)
	}
	if d := f.svc.Allowed(wearable, "sleep"); d.Retention.Text != "P30D" || !d.StoreOnHub {
		t.Errorf("after P30D: %+v", d)
	}
	if rec.Kind != KindStorage || rec.Event != StatusGiven || rec.Storage != (RecordStorage{Location: StoredOnHub, Duration: "P30D", MaxDuration: "P6M"}) || len(rec.Purposes) != 2 {
		t.Errorf("storage record: %+v", rec)
	}
	if _, err := f.svc.SetRouting(ctx, "acc_sam", wearable, "sleep", StreamRouting{KeepOnHub: true, Retention: dur(t, "P6M")}); err != nil {
		t.Errorf("the manifest's own retention: %v", err)
	}
	// Not kept on the hub: not stored, still collected (in use).
	rec, err = f.svc.SetRouting(ctx, "acc_sam", wearable, "sleep", StreamRouting{KeepOnHub: false})
	if err != nil {
		t.Fatal(err)
	}
	if d := f.svc.Allowed(wearable, "sleep"); d.StoreOnHub || !d.Collect {
		t.Errorf("not kept: %+v", d)
	}
	if rec.Event != StatusWithdrawn || rec.Storage.Location != StoredNowhere {
		t.Errorf("not-kept record: %+v", rec)
	}
	// Zero retention means the manifest's.
	if _, err := f.svc.SetRouting(ctx, "acc_sam", wearable, "sleep", StreamRouting{KeepOnHub: true}); err != nil {
		t.Fatal(err)
	}
	if d := f.svc.Allowed(wearable, "sleep"); d.Retention.Text != "P6M" || !d.StoreOnHub {
		t.Errorf("zero retention: %+v", d)
	}
	// Malformed and zero durations are refused.
	for _, r := range []manifest.Duration{{Text: "30 days"}, {D: time.Hour}, {Text: "P0D"}} {
		if _, err := f.svc.SetRouting(ctx, "acc_sam", wearable, "sleep", StreamRouting{KeepOnHub: true, Retention: r}); !errors.Is(err, ErrInvalid) {
			t.Errorf("retention %+v: %v, want ErrInvalid", r, err)
		}
	}
	st, _ := f.svc.State(ctx, wearable)
	for _, s := range st.Streams {
		if s.Stream == "sleep" && (s.Routing.Source != SourceExplicit || s.Routing.DecidedBy != "acc_sam" || s.Routing.RecordID == "") {
			t.Errorf("routing state: %+v", s.Routing)
		}
	}
}

func TestUnknownRefusedAndNothingChanged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	before, err := f.svc.State(ctx, wearable)
	if err != nil {
		t.Fatal(err)
	}
	ok := Change{AccountID: "acc_sam", DeviceID: wearable, Stream: "heart_rate", Purpose: "dpv:ResearchAndDevelopment", Recipient: RecipientHub, On: true}
	cases := []struct {
		name   string
		change func(*Change)
		field  string
		err    error
		names  string // the message must name it
	}{
		{"device", func(c *Change) { c.DeviceID = "dev_nobody" }, "device_id", ErrUnknownDevice, "dev_nobody"},
		{"stream", func(c *Change) { c.Stream = "location" }, "stream", ErrUnknownStream, `"location"`},
		{"purpose", func(c *Change) { c.Purpose = "dpv:Marketing" }, "purpose", ErrUnknownPurpose, `"dpv:Marketing"`},
		{"recipient", func(c *Change) { c.Recipient = "Ad Network Ltd" }, "recipient", ErrUnknownRecipient, `"Ad Network Ltd"`},
		{"recipient's purpose", func(c *Change) { c.Purpose = "candor:HealthMonitoring"; c.Recipient = research }, "purpose", ErrUnknownPurpose, `"candor:HealthMonitoring"`},
		{"no recipient", func(c *Change) { c.Recipient = "" }, "recipient", ErrUnknownRecipient, `""`},
		{"no account", func(c *Change) { c.AccountID = " " }, "account_id", ErrInvalid, "account"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			_, err := f.svc.Set(ctx, c)
			var ce *Error
			if !errors.Is(err, tc.err) || !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("got %v (%+v), want %v on field %s naming %s", err, ce, tc.err, tc.field, tc.names)
			}
		})
	}
	if _, err := f.svc.SetRouting(ctx, "acc_sam", wearable, "location", StreamRouting{KeepOnHub: false}); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("routing of an unknown stream: %v", err)
	}
	if _, err := f.svc.SetRouting(ctx, "acc_sam", "dev_nobody", "sleep", StreamRouting{}); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("routing of an unknown device: %v", err)
	}
	if h, err := f.svc.History(ctx, HistoryQuery{}); err != nil || len(h) != 0 {
		t.Errorf("history after refusals: %d records, %v", len(h), err)
	}
	after, err := f.svc.State(ctx, wearable)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("state changed by refused calls:\nbefore %+v\nafter  %+v", before, after)
	}
	if got := f.notices(); len(got) != 0 {
		t.Errorf("listeners called for refused calls: %+v", got)
	}
	if ds, _ := f.db.ConsentDecisions(ctx, ""); len(ds) != 0 {
		t.Errorf("decisions stored: %+v", ds)
	}
	// And the good change still works.
	if _, err := f.svc.Set(ctx, ok); err != nil {
		t.Fatal(err)
	}
}

func TestNoManifest(t *testing.T) {
	f := newFixture(t)
	f.mf.set("dev_orphan", &catalog.Entry{}) // resolves to an entry without a manifest
	_, err := f.svc.Set(context.Background(), Change{AccountID: "a", DeviceID: "dev_orphan", Stream: "s", Purpose: "dpv:X", Recipient: RecipientHub})
	var ce *Error
	if !errors.As(err, &ce) || ce.Field != "device_id" || !errors.Is(err, catalog.ErrNoManifest) {
		t.Errorf("device without a manifest: %v", err)
	}
}

// failingStore refuses every write.
type failingStore struct{ Store }

func (failingStore) RecordConsentDecision(context.Context, store.ConsentRecord, store.ConsentDecision) error {
	return errors.New("disk full")
}

func (failingStore) RecordConsentRouting(context.Context, store.ConsentRecord, store.ConsentRouting) error {
	return errors.New("disk full")
}

func TestStoreFailureChangesNothing(t *testing.T) {
	f := newFixture(t)
	svc := newService(t, failingStore{f.db}, f.mf)
	called := false
	svc.OnChange(func(string, string, bool) { called = true })
	before := svc.Allowed(wearable, "steps")
	_, err := svc.Set(context.Background(), Change{AccountID: "acc_sam", DeviceID: wearable, Stream: "steps", Purpose: "candor:HealthMonitoring", Recipient: RecipientHub, On: false})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Set with a failing store: %v", err)
	}
	if _, err := svc.SetRouting(context.Background(), "acc_sam", wearable, "steps", StreamRouting{}); err == nil {
		t.Fatal("SetRouting with a failing store succeeded")
	}
	if after := svc.Allowed(wearable, "steps"); !reflect.DeepEqual(before, after) {
		t.Errorf("Allowed changed: %+v → %+v", before, after)
	}
	if called {
		t.Error("listener called for a change that was not stored")
	}
}

func TestRestartRebuildsFromStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "candor.db")
	var recordIDs []string
	{
		db := openDB(t, path)
		if err := db.CreateHousehold(ctx, store.Household{ID: "hh_1", Name: "Home", CreatedAt: testNow}); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateDevice(ctx, store.Device{ID: "dev_band", HouseholdID: "hh_1", Name: "Band", Type: "wearable", SecretHash: "x", CreatedAt: testNow}); err != nil {
			t.Fatal(err)
		}
		cat, err := catalog.Open(ctx, db, catalog.Options{}) // the real catalog, seeded with the templates
		if err != nil {
			t.Fatal(err)
		}
		svc := newService(t, db, cat)
		for _, c := range []Change{
			{AccountID: "acc_sam", DeviceID: "dev_band", Stream: "steps", Purpose: "candor:HealthMonitoring", Recipient: RecipientHub, On: false},
			{AccountID: "acc_kim", DeviceID: "dev_band", Stream: "heart_rate", Purpose: "dpv:ResearchAndDevelopment", Recipient: research, On: true},
		} {
			rec, err := svc.Set(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			recordIDs = append(recordIDs, rec.RecordID)
		}
		rec, err := svc.SetRouting(ctx, "acc_sam", "dev_band", "sleep", StreamRouting{KeepOnHub: true, Retention: dur(t, "P7D")})
		if err != nil {
			t.Fatal(err)
		}
		recordIDs = append(recordIDs, rec.RecordID)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db := openDB(t, path)
	cat, err := catalog.Open(ctx, db, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, db, cat)
	// Loaded by New: no slow path needed.
	if dt := svc.snap.Load().get("dev_band"); dt == nil {
		t.Fatal("device with decisions not loaded at start")
	}
	if d := svc.Allowed("dev_band", "steps"); d.StoreOnHub || d.Collect {
		t.Errorf("steps after restart: %+v", d)
	}
	if d := svc.Allowed("dev_band", "heart_rate"); !slices.Equal(d.Recipients, []string{research}) || !d.StoreOnHub {
		t.Errorf("heart_rate after restart: %+v", d)
	}
	if d := svc.Allowed("dev_band", "sleep"); d.Retention.Text != "P7D" {
		t.Errorf("sleep after restart: %+v", d)
	}
	h, err := svc.History(ctx, HistoryQuery{DeviceID: "dev_band"})
	if err != nil || len(h) != 3 {
		t.Fatalf("history after restart: %d, %v", len(h), err)
	}
	for i, r := range h {
		if r.RecordID != recordIDs[i] || (i > 0 && r.Seq <= h[i-1].Seq) {
			t.Errorf("history[%d] = %s (seq %d), want %s", i, r.RecordID, r.Seq, recordIDs[i])
		}
		if r.Notice.DeviceType != "wearable" || r.Notice.Version != 1 || len(r.Notice.SHA256) != 64 {
			t.Errorf("notice: %+v", r.Notice)
		}
		rc, err := svc.Receipt(ctx, r.RecordID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := VerifyReceipt(rc, svc.PublicKey())
		if err != nil {
			t.Fatalf("receipt after restart: %v", err)
		}
		got.Seq = r.Seq
		if !reflect.DeepEqual(got, r) {
			t.Errorf("receipt record differs from history:\n%+v\n%+v", got, r)
		}
	}
	if h, _ := svc.History(ctx, HistoryQuery{AccountID: "acc_kim"}); len(h) != 1 || h[0].DataSubject.ID != "acc_kim" {
		t.Errorf("history of acc_kim: %+v", h)
	}
}

func TestLazyLoadAndRefresh(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// A device never decided about is loaded on first use.
	if f.svc.snap.Load().get(thermo) != nil {
		t.Fatal("thermostat loaded before anyone asked")
	}
	if d := f.svc.Allowed(thermo, "temperature"); !d.StoreOnHub {
		t.Errorf("thermostat: %+v", d)
	}
	f.set(t, wearable, "sleep", "dpv:ServicePersonalisation", RecipientHub, true)
	if _, err := f.svc.SetRouting(ctx, "acc_sam", wearable, "heart_rate", StreamRouting{KeepOnHub: true, Retention: dur(t, "P6M")}); err != nil {
		t.Fatal(err)
	}
	f.notices()

	// Version 2 of the wearable manifest: steps' only purpose is no longer
	// essential, heart_rate may be kept only 30 days, sleep drops its
	// optional purpose.
	old, _ := f.mf.ForDevice(ctx, wearable)
	m := *old.Manifest
	m.Streams = nil
	for _, s := range old.Manifest.Streams {
		c := *s
		c.Purposes = slices.Clone(s.Purposes)
		switch s.Name {
		case "steps":
			c.Purposes[0].Essential = false
		case "heart_rate":
			c.Retention = dur(t, "P30D")
		case "sleep":
			c.Purposes = c.Purposes[:1]
		}
		m.Streams = append(m.Streams, &c)
	}
	f.mf.set(wearable, &catalog.Entry{Version: 2, Manifest: &m})
	// Until Refresh, the table answers from version 1 and says so.
	if d := f.svc.Allowed(wearable, "steps"); d.ManifestVersion != 1 || !d.Collect {
		t.Errorf("before refresh: %+v", d)
	}
	if err := f.svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if d := f.svc.Allowed(wearable, "steps"); d.ManifestVersion != 2 || d.Collect {
		t.Errorf("steps after refresh: %+v", d)
	}
	if got := f.notices(); !slices.Equal(got, []notice{{wearable, "steps", false}}) {
		t.Errorf("refresh notices: %+v", got)
	}
	// The chosen P6M is cut to the new P30D.
	if d := f.svc.Allowed(wearable, "heart_rate"); d.Retention.Text != "P30D" {
		t.Errorf("heart_rate retention: %+v", d)
	}
	// A decision about a purpose no longer declared is not enforced and
	// not listed; it stays in the log.
	st, _ := f.svc.State(ctx, wearable)
	for _, s := range st.Streams {
		if s.Stream == "sleep" && len(s.Uses) != 1 {
			t.Errorf("sleep uses: %+v", s.Uses)
		}
	}
	if h, _ := f.svc.History(ctx, HistoryQuery{DeviceID: wearable}); len(h) != 2 {
		t.Errorf("history: %d records", len(h))
	}
	// Set against a newer manifest than the table's rebuilds it first.
	f.mf.set(meter, &catalog.Entry{Version: 5, Manifest: templates(t)["smart-meter"]})
	f.set(t, meter, "power", "dpv:ServiceOptimisation", RecipientHub, true)
	if d := f.svc.Allowed(meter, "energy"); d.ManifestVersion != 5 {
		t.Errorf("meter after Set under version 5: %+v", d)
	}
	f.notices()
	// Refresh of a device that no longer resolves drops it: fail closed.
	f.mf.mu.Lock()
	delete(f.mf.devices, thermo)
	f.mf.mu.Unlock()
	if err := f.svc.Refresh(ctx, thermo); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("refresh of a removed device: %v", err)
	}
	if d := f.svc.Allowed(thermo, "temperature"); d.Resolved {
		t.Errorf("removed device still allowed: %+v", d)
	}
	if got := f.notices(); len(got) != 3 {
		t.Errorf("dropping the thermostat should say its 3 streams stop: %+v", got)
	}
}

func TestConcurrentSetAndAllowed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, s := range []string{"steps", "heart_rate", "sleep"} {
					d := f.svc.Allowed(wearable, s)
					if !d.Resolved || d.StoreOnHub && !d.Collect {
						t.Errorf("inconsistent decision %+v", d)
						return
					}
				}
				_ = f.svc.Allowed(meter, "energy")
			}
		}()
	}
	var writers sync.WaitGroup
	for i := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for j := range 8 {
				on := (i+j)%2 == 0
				if _, err := f.svc.Set(ctx, Change{AccountID: fmt.Sprintf("acc_%d", i), DeviceID: wearable, Stream: "steps",
					Purpose: "candor:HealthMonitoring", Recipient: RecipientHub, On: on}); err != nil {
					t.Error(err)
				}
				if _, err := f.svc.SetRouting(ctx, "acc_x", meter, "energy", StreamRouting{KeepOnHub: on}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	// The table agrees with the last stored decision, and the last listener
	// call agrees with the table.
	ds, _ := f.db.ConsentDecisions(ctx, wearable)
	if len(ds) != 1 {
		t.Fatalf("decisions: %+v", ds)
	}
	if d := f.svc.Allowed(wearable, "steps"); d.StoreOnHub != ds[0].On {
		t.Errorf("table %+v, store %+v", d, ds[0])
	}
	var last *notice
	for _, n := range f.notices() {
		if n.stream == "steps" {
			last = &n
		}
	}
	if last == nil || last.collect != ds[0].On {
		t.Errorf("last listener call %+v, stored %v", last, ds[0].On)
	}
	if h, _ := f.svc.History(ctx, HistoryQuery{}); len(h) != 64 {
		t.Errorf("records: %d, want 64", len(h))
	}
}

func TestAllowedDoesNotAllocate(t *testing.T) {
	f := newFixture(t)
	f.svc.Allowed(wearable, "heart_rate") // load
	if n := testing.AllocsPerRun(1000, func() { f.svc.Allowed(wearable, "heart_rate") }); n != 0 {
		t.Errorf("Allowed allocates %.1f times per call", n)
	}
}

func TestNewValidates(t *testing.T) {
	f := newFixture(t)
	if _, err := New(context.Background(), Options{Store: f.db, Manifests: f.mf}); err == nil {
		t.Error("New without a key succeeded")
	}
	if _, err := New(context.Background(), Options{Manifests: f.mf, Key: testKey}); err == nil {
		t.Error("New without a store succeeded")
	}
	svc, err := New(context.Background(), Options{Store: f.db, Manifests: f.mf, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := svc.Set(context.Background(), Change{AccountID: "a", DeviceID: meter, Stream: "power", Purpose: "dpv:ServiceOptimisation", Recipient: RecipientHub, On: true})
	if err != nil || rec.Controller.Name == "" || rec.Jurisdiction != "" {
		t.Errorf("defaults: %+v %v", rec.Controller, err)
	}
}

// TestSQLiteRecordsAreAppendOnly checks the engine's own guard: even SQL
// written by hand cannot rewrite a consent record.
func TestSQLiteRecordsAreAppendOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "candor.db")
	db := openDB(t, path)
	mf := newFakeManifests(t, map[string]string{wearable: "wearable"})
	svc := newService(t, db, mf)
	rec, err := svc.Set(context.Background(), Change{AccountID: "acc_sam", DeviceID: wearable, Stream: "steps", Purpose: "candor:HealthMonitoring", Recipient: RecipientHub, On: false})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, err = raw.Exec(`UPDATE consent_records SET account_id = 'acc_mallory' WHERE id = ?`, rec.RecordID)
	if err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("UPDATE of a consent record: %v, want refused", err)
	}
}
