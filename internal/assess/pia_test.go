package assess

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/sim"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// demoEnv is the demo household as `candor serve --demo` makes it (one
// device of each simulated kind, named "Demo <kind>", in "Home"), with
// fixed ids and clock so its PIA is the same on every run.
func demoEnv(t *testing.T) (*env, *consent.Service) {
	t.Helper()
	e := newEnv(t)
	e.now = time.Date(2026, time.December, 1, 9, 0, 0, 0, time.UTC)
	if err := e.st.CreateHousehold(t.Context(), store.Household{ID: "hh_demo", Name: "Home", CreatedAt: e.now}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range sim.KindNames() {
		if err := e.st.CreateDevice(t.Context(), store.Device{ID: "dev_demo_" + strings.ReplaceAll(kind, "-", "_"), HouseholdID: "hh_demo",
			Name: "Demo " + kind, Type: kind, SecretHash: "$argon2id$x", CredentialSetAt: e.now, CreatedAt: e.now}); err != nil {
			t.Fatal(err)
		}
	}
	_, ckey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := consent.New(t.Context(), consent.Options{Store: e.st, Manifests: e.cat, Key: ckey, Log: e.alog})
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Consent, e.cfg.Key = cs, key
	e.rebuild()
	return e, cs
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", name, got)
	}
}

var operator = access.Operator()

func TestPIADemoHouseholdGolden(t *testing.T) {
	e, _ := demoEnv(t)
	v, p, err := e.svc.PIA(t.Context(), operator, "hh_demo")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "pia-demo.md", PIAMarkdown(v, p))
	ld, err := PIAJSONLD(v, p)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "pia-demo.jsonld", append(ld, '\n'))
	golden(t, "pia-demo.html", HTMLDocument("Privacy impact assessment: "+p.HouseholdName, PIAIntro(v), PIAHTMLBody(v, p)))

	// Signed by the hub, checkable with its public key alone.
	sd, err := Verify(e.svc.PublicKey(), v.Document, v.Signature)
	if err != nil || sd.Version != 1 || sd.Kind != KindPIA {
		t.Fatalf("verify: %+v %v", sd, err)
	}
	tampered := bytes.Replace(v.Document, []byte("Home"), []byte("Hove"), 1)
	if _, err := Verify(e.svc.PublicKey(), tampered, v.Signature); err == nil {
		t.Fatal("a changed document verified")
	}
	if !slices.Contains(logActions(t, e.alog), ActionReportSign) {
		t.Fatal("the new version is not in the transparency log")
	}
	// Nothing changed: no new version.
	again, _, err := e.svc.PIA(t.Context(), operator, "hh_demo")
	if err != nil || again.Version != 1 {
		t.Fatalf("unchanged facts made version %d (%v)", again.Version, err)
	}
	// Another household's person cannot see it.
	stranger := access.Person(store.Account{ID: "acc_x", HouseholdID: "hh_other", Role: store.RoleOwner}, store.Session{})
	if _, _, err := e.svc.PIA(t.Context(), stranger, "hh_demo"); err == nil {
		t.Fatal("another household read the PIA")
	}
}

func TestPIAAddedRecipientAndUseTurnedOn(t *testing.T) {
	e, cs := demoEnv(t)
	if _, _, err := e.svc.PIA(t.Context(), operator, "hh_demo"); err != nil {
		t.Fatal(err)
	}
	// The maker's new label adds a recipient to the thermostat.
	e.putManifest("thermostat", func(doc string) string {
		return strings.Replace(doc, `"candor:automatedDecisions"`, `"dpv:hasRecipient": [{"name": "Heating research lab", "@type": "dpv:ThirdParty",
			"dpv:hasPurpose": "dpv:ResearchAndDevelopment", "candor:terms": "https://example.com/lab/terms", "candor:retention": "P1Y",
			"candor:contact": "mailto:lab@example.invalid", "candor:identifiable": "linked"}],
			"candor:automatedDecisions"`, 1)
	})
	if err := cs.Refresh(t.Context(), "dev_demo_thermostat"); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Hour)
	v2, p2, err := e.svc.PIA(t.Context(), operator, "hh_demo")
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || !slices.ContainsFunc(v2.Changes, func(c string) bool {
		return strings.HasPrefix(c, "New: Heating research lab may get")
	}) {
		t.Fatalf("version %d changes: %q", v2.Version, v2.Changes)
	}
	if slices.ContainsFunc(p2.Risks, func(r Risk) bool { return strings.Contains(r.Text, "Heating research lab") }) {
		t.Fatal("a recipient nobody turned on is a risk already")
	}
	var stream, purpose string
	for _, d := range p2.Processing.Devices {
		for _, st := range d.Streams {
			for _, rc := range st.Recipients {
				if rc.Name == "Heating research lab" {
					stream, purpose = st.Name, rc.Purpose.ID
				}
			}
		}
	}
	if stream == "" {
		t.Fatalf("the new recipient is not in the processing section")
	}

	// A person turns that use on: the risks say the data now leaves,
	// linked to them.
	if _, err := cs.Set(t.Context(), consent.Change{AccountID: "acc_1", DeviceID: "dev_demo_thermostat", Stream: stream,
		Purpose: purpose, Recipient: "Heating research lab", On: true}); err != nil {
		t.Fatal(err)
	}
	v3, p3, err := e.svc.PIA(t.Context(), operator, "hh_demo")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(p3.Risks, func(r Risk) bool { return r.Kind == "leaves" && strings.Contains(r.Text, "Heating research lab") })
	if v3.Version != 3 || i < 0 || p3.Risks[i].Level != "high" {
		t.Fatalf("risks after turning the use on: %+v", p3.Risks)
	}
	if !slices.ContainsFunc(v3.Changes, func(c string) bool { return strings.HasPrefix(c, "New: risk:") }) {
		t.Fatalf("changes do not name the new risk: %q", v3.Changes)
	}
	old, err := e.svc.Versions(t.Context(), KindPIA, "hh_demo")
	if err != nil || len(old) != 3 {
		t.Fatalf("versions kept: %d %v", len(old), err)
	}
}

// Every sentence the PIA writes for a household reads easily.
func TestPIAReadable(t *testing.T) {
	e, cs := demoEnv(t)
	if _, err := cs.Set(context.Background(), consent.Change{AccountID: "acc_1", DeviceID: "dev_demo_smart_meter", Stream: "energy",
		Purpose: "candor:Billing", Recipient: "Your energy supplier", On: true}); err != nil {
		t.Fatal(err)
	}
	v, p, err := e.svc.PIA(t.Context(), operator, "hh_demo")
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, n := range p.Necessity {
		texts = append(texts, n.Text)
	}
	for _, r := range append(append([]Risk{}, p.Risks...), p.Residual...) {
		texts = append(texts, r.Text)
	}
	for _, m := range p.Measures {
		texts = append(texts, m.Title+".", m.Evidence)
	}
	for _, en := range p.Processing.Encryption {
		texts = append(texts, en.Text)
	}
	for _, d := range p.Processing.Devices {
		for _, st := range d.Streams {
			texts = append(texts, streamSummary(st))
		}
	}
	texts = append(texts, PIAIntro(v), p.Processing.StoredAt)
	for _, text := range texts {
		if ease := readability.Ease(text); ease < 60 {
			t.Errorf("%q scores %.0f, want at least 60", text, ease)
		}
	}
}

// The assessment says what abuse monitoring keeps and for how long, as
// the hub is configured, in plain words.
func TestPIASaysWhatMonitoringKeeps(t *testing.T) {
	tests := []struct {
		keep time.Duration
		want string // "" for no mention
	}{
		{30 * 24 * time.Hour, "It keeps only these counts, for 30 days."},
		{7 * 24 * time.Hour, "for 7 days."},
		{36 * time.Hour, "for 36 hours."},
		{0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.keep.String(), func(t *testing.T) {
			e, _ := demoEnv(t)
			e.cfg.Quarantine, e.cfg.MonitorKeep = &fakeParts{}, tc.keep
			e.rebuild()
			_, p, err := e.svc.PIA(t.Context(), operator, "hh_demo")
			if err != nil {
				t.Fatal(err)
			}
			var ev string
			for _, m := range p.Measures {
				if m.ID == "quarantine" {
					ev = m.Evidence
				}
			}
			if tc.want == "" {
				if strings.Contains(ev, "keeps") {
					t.Errorf("evidence %q speaks of keeping with no time set", ev)
				}
				return
			}
			if !strings.Contains(ev, tc.want) || !strings.Contains(ev, "never what they say") {
				t.Errorf("evidence %q; want %q and that values are never looked at", ev, tc.want)
			}
			if ease := readability.Ease(ev); ease < 60 {
				t.Errorf("%q scores %.0f, want at least 60", ev, ease)
			}
		})
	}
}
