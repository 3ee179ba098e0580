package manifest

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/testsupport/readability"
)

var updateGolden = flag.Bool("update", false, "rewrite the label golden files in testdata/")

// labelDate is the date the golden labels are written for.
var labelDate = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

func templateLabels(t *testing.T) map[string]Label {
	t.Helper()
	ts, err := Templates()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]Label, len(ts))
	for k, m := range ts {
		out[k] = Explain(m, labelDate)
	}
	return out
}

// explainDoc returns a shipped template as a JSON document to change.
func explainDoc(t *testing.T, kind string) map[string]any {
	t.Helper()
	b, err := templateFS.ReadFile("templates/" + kind + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// explainSet sets the value at a slash-separated path; nil deletes it.
func explainSet(doc map[string]any, path string, v any) {
	parts := strings.Split(path, "/")
	cur := doc
	for _, p := range parts[:len(parts)-1] {
		cur = cur[p].(map[string]any)
	}
	if v == nil {
		delete(cur, parts[len(parts)-1])
	} else {
		cur[parts[len(parts)-1]] = v
	}
}

func explainParse(t *testing.T, doc map[string]any) *Manifest {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse("changed.json", b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLabelsReadEasily(t *testing.T) {
	for _, kind := range TemplateTypes() {
		l := templateLabels(t)[kind]
		for _, r := range []struct {
			name, text string
		}{{"text", l.Text()}, {"markdown", l.Markdown()}} {
			s := readability.Score(r.text)
			t.Logf("%-13s %-8s Flesch Reading Ease %.1f (%d words, %d sentences, %d syllables)",
				kind, r.name, s.Ease, s.Words, s.Sentences, s.Syllables)
			if s.Ease < readability.PlainEnglish {
				t.Errorf("%s: %s label scores %.1f, want at least %.0f", kind, r.name, s.Ease, readability.PlainEnglish)
			}
		}
		for _, st := range l.Streams {
			s := readability.Score(st.Sentence)
			t.Logf("%-13s   %-12s %.1f", kind, st.Name, s.Ease)
			if s.Ease < 50 {
				t.Errorf("%s/%s: stream sentence scores %.1f, want at least 50: %s", kind, st.Name, s.Ease, st.Sentence)
			}
			for _, r := range st.Recipients {
				if e := readability.Ease(r); e < 50 {
					t.Errorf("%s/%s: recipient sentence scores %.1f: %s", kind, st.Name, e, r)
				}
			}
		}
	}
}

func TestLabelGoldenFiles(t *testing.T) {
	for kind, l := range templateLabels(t) {
		for ext, got := range map[string]string{"txt": l.Text(), "md": l.Markdown()} {
			path := filepath.Join("testdata", "label-"+kind+"."+ext)
			if *updateGolden {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestLabelGoldenFiles -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the golden file; if the change is intended, run go test -run TestLabelGoldenFiles -update and review the diff.\n--- got ---\n%s", path, got)
			}
		}
	}
}

func TestWhereTheDataGoes(t *testing.T) {
	ls := templateLabels(t)
	ts, _ := Templates()
	// The wearable's only recipient is de-identified, the smart meter's is
	// linked and the thermostat has none: check the templates still say so.
	recipients := func(kind string) []string {
		var ids []string
		for _, s := range ts[kind].Streams {
			for _, r := range s.Recipients {
				ids = append(ids, r.Identifiable)
			}
		}
		return ids
	}
	if r := recipients("thermostat"); len(r) != 0 {
		t.Fatalf("thermostat template now has recipients %v; update this test", r)
	}
	for _, id := range recipients("wearable") {
		if id != "de-identified" {
			t.Fatalf("wearable template now has a %s recipient; update this test", id)
		}
	}
	for kind, want := range map[string]string{
		"thermostat":    GoesNowhere,
		"door-sensor":   GoesNowhere,
		"motion-camera": GoesNowhere,
		"smart-meter":   GoesLinked,
		"wearable":      GoesDeidentified,
	} {
		if got := ls[kind].Short.DataGoes; got != want {
			t.Errorf("%s: DataGoes %q, want %q", kind, got, want)
		}
	}
	if !strings.Contains(ls["thermostat"].Text(), "stays on this hub") {
		t.Error("thermostat text does not say the data stays on this hub")
	}
	if !strings.Contains(ls["smart-meter"].Text(), "linked to you") {
		t.Error("smart meter text does not say the data leaves linked to you")
	}
	// The wearable shares only for research, which is off until the owner
	// says yes; the label says so in both layers.
	w := ls["wearable"]
	if !w.Short.OnlyIfYouAgree || ls["smart-meter"].Short.OnlyIfYouAgree {
		t.Errorf("OnlyIfYouAgree: wearable %v (want true), smart meter %v (want false)",
			w.Short.OnlyIfYouAgree, ls["smart-meter"].Short.OnlyIfYouAgree)
	}
	hr := w.Streams[0]
	if hr.Name != "heart_rate" || !strings.Contains(hr.Sentence, "unless you say yes") || !strings.HasPrefix(hr.Recipients[0], "If you say yes") {
		t.Errorf("heart rate does not say sharing needs a yes: %q %q", hr.Sentence, hr.Recipients)
	}
	// Recipients keeping data longer than the hub are named in the short layer.
	if got := strings.Join(ls["smart-meter"].Short.OthersKeep, " "); !strings.Contains(got, "7 years") {
		t.Errorf("smart meter short layer does not say the supplier keeps 7 years: %q", got)
	}
	if ls["smart-meter"].Short.KeptFor != "2 years" || ls["door-sensor"].Short.KeptFor != "1 month" {
		t.Errorf("KeptFor: smart meter %q, door sensor %q", ls["smart-meter"].Short.KeptFor, ls["door-sensor"].Short.KeptFor)
	}
}

func TestShortLayer(t *testing.T) {
	ls := templateLabels(t)
	th := ls["thermostat"].Short
	if got := strings.Join(th.SnoopRisk, "|"); got != "Can tell when someone is home" {
		t.Errorf("thermostat SnoopRisk %q", got)
	}
	if got := strings.Join(ls["wearable"].Short.SnoopRisk, "|"); !strings.Contains(got, "health") || !strings.Contains(got, "home") {
		t.Errorf("wearable SnoopRisk %q", got)
	}
	if got := strings.Join(ls["motion-camera"].Short.SnoopRisk, "|"); !strings.Contains(got, "someone is home") {
		t.Errorf("motion camera SnoopRisk %q", got)
	}
	if th.UpdatesUntil != "31 December 2031" || th.SupportEnded {
		t.Errorf("thermostat updates until %q, ended %v", th.UpdatesUntil, th.SupportEnded)
	}
	if len(th.Senses) != 3 || !strings.Contains(strings.Join(th.Senses, ","), "room temperature and humidity") {
		t.Errorf("thermostat senses %q", th.Senses)
	}
	if !strings.Contains(th.Control, "stops sending") || strings.Contains(ls["smart-meter"].Short.Control, "stops sending") {
		t.Errorf("control: thermostat %q, smart meter %q", th.Control, ls["smart-meter"].Short.Control)
	}
	r := ls["thermostat"].Responsible
	if r.Maker == "" || r.Contact != "support@candor.invalid" || r.SecurityContact != "security@candor.invalid" || r.UpdateMechanism == "" {
		t.Errorf("responsible: %+v", r)
	}
}

func TestStreamSentences(t *testing.T) {
	ls := templateLabels(t)
	find := func(kind, name string) StreamLabel {
		for _, s := range ls[kind].Streams {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("%s has no stream %s", kind, name)
		return StreamLabel{}
	}
	tests := []struct {
		kind, stream string
		want         []string
	}{
		{"thermostat", "temperature", []string{"Every 5 seconds, your room thermostat tells the hub", "It stays on this hub.", "The hub keeps it for 1 year.", "It can show roughly when a room is in use"}},
		{"door-sensor", "contact", []string{"tells the hub each time the door opens or closes.", "1 month"}},
		{"thermostat", "setpoint", []string{"each time it changes"}},
		{"smart-meter", "energy", []string{"It also goes to your energy supplier."}},
		{"thermostat", "heating", []string{"It can show when the heating runs"}},
		{"door-sensor", "battery", []string{"Every minute,", "The maker says it tells nothing about you."}},
	}
	for _, tc := range tests {
		s := find(tc.kind, tc.stream).Sentence
		for _, w := range tc.want {
			if !strings.Contains(s, w) {
				t.Errorf("%s/%s: %q does not contain %q", tc.kind, tc.stream, s, w)
			}
		}
		if !strings.Contains(s, "you") {
			t.Errorf("%s/%s: not in the second person: %q", tc.kind, tc.stream, s)
		}
	}
	sup := find("smart-meter", "energy").Recipients
	if len(sup) != 1 || !strings.HasPrefix(sup[0], "Your energy supplier gets it, linked to you, to bill you. They decide how to use it. They keep it for 7 years. Ask them at privacy@energy-supplier.invalid.") {
		t.Errorf("supplier sentence: %q", sup)
	}
	if l := find("thermostat", "temperature").Learning; !strings.Contains(l, "learns") || !strings.Contains(l, "by itself") {
		t.Errorf("thermostat temperature learning: %q", l)
	}
	if l := find("door-sensor", "battery").Learning; l != "" {
		t.Errorf("battery learning: %q", l)
	}
	if p := find("wearable", "heart_rate").Purposes; len(p) != 2 || !p[0].Essential || p[1].Essential {
		t.Errorf("heart rate purposes: %+v", p)
	}
	if c := ls["thermostat"].Correlations; len(c) != 1 {
		t.Errorf("thermostat correlations: %q", c)
	}
	if c := find("thermostat", "temperature").RevealsWith; len(c) != 1 || !strings.Contains(c[0], `"Heating state"`) {
		t.Errorf("thermostat temperature reveals with: %q", c)
	}
}

func TestEveryStreamAndRecipientAppears(t *testing.T) {
	ts, _ := Templates()
	for kind, m := range ts {
		l := Explain(m, labelDate)
		for name, text := range map[string]string{"text": l.Text(), "markdown": l.Markdown()} {
			// Words may be wrapped onto the next line.
			flat := strings.Join(strings.Fields(text), " ")
			for _, s := range m.Streams {
				if !strings.Contains(flat, s.Title) {
					t.Errorf("%s %s: stream %q (%s) missing", kind, name, s.Title, s.Name)
				}
				for _, r := range s.Recipients {
					if !strings.Contains(strings.ToLower(flat), strings.ToLower(r.Name)) {
						t.Errorf("%s %s: recipient %q missing", kind, name, r.Name)
					}
					if !strings.Contains(flat, contact(r.Contact)) {
						t.Errorf("%s %s: contact of %q missing", kind, name, r.Name)
					}
				}
			}
			for _, c := range []string{m.Maker.Name, contact(m.Support.Contact), contact(m.Support.VulnerabilityDisclosure)} {
				if !strings.Contains(flat, c) {
					t.Errorf("%s %s: %q missing from who is responsible", kind, name, c)
				}
			}
		}
	}
}

func TestLabelHasNoJargon(t *testing.T) {
	for kind, l := range templateLabels(t) {
		for name, text := range map[string]string{"text": l.Text(), "markdown": l.Markdown()} {
			low := strings.ToLower(text)
			for _, bad := range []string{"dpv", "pd:", "candor:", "processor", "controller", "retention", "third party", "thirdparty", "mailto:", "{{", "p1y", "pt5s"} {
				if strings.Contains(low, bad) {
					t.Errorf("%s %s contains %q", kind, name, bad)
				}
			}
		}
	}
}

func TestSupportEnded(t *testing.T) {
	ts, _ := Templates()
	m := ts["wearable"] // security updates until 2028-12-31
	last := Explain(m, time.Date(2028, 12, 31, 23, 59, 0, 0, time.UTC))
	if last.Short.SupportEnded || strings.Contains(last.Text(), "ended") {
		t.Error("support reported ended on its last day")
	}
	after := Explain(m, time.Date(2029, 1, 1, 0, 0, 1, 0, time.UTC))
	if !after.Short.SupportEnded || !after.Responsible.SupportEnded {
		t.Fatal("support not reported ended the day after")
	}
	text := after.Text()
	lines := strings.SplitN(text, "\n", 5)
	flat := strings.Join(strings.Fields(text), " ")
	if !strings.Contains(lines[3], "NO MORE SECURITY FIXES") {
		t.Errorf("end of support is not said at the top:\n%s", text)
	}
	if !strings.Contains(flat, "Security updates: ended on 31 December 2028.") {
		t.Errorf("short layer does not say support ended:\n%s", text)
	}
	if !strings.Contains(after.Markdown(), "> **NO MORE SECURITY FIXES.") {
		t.Error("markdown does not warn that support ended")
	}
}

func TestDraftLabelSaysSo(t *testing.T) {
	doc := explainDoc(t, "thermostat")
	explainSet(doc, "candor:draft", true)
	l := Explain(explainParse(t, doc), labelDate)
	if !l.Short.Draft {
		t.Fatal("Draft not set")
	}
	// Right under the title, before anything else.
	lines := strings.Split(l.Text(), "\n")
	if !strings.HasPrefix(lines[3], "!! DRAFT.") {
		t.Errorf("draft not said at the top:\n%s", strings.Join(lines[:6], "\n"))
	}
	md := strings.Split(l.Markdown(), "\n")
	if !strings.HasPrefix(md[2], "> **DRAFT.") {
		t.Errorf("markdown draft not said at the top:\n%s", strings.Join(md[:4], "\n"))
	}
	if e := readability.Ease(l.Text()); e < readability.PlainEnglish {
		t.Errorf("draft label scores %.1f", e)
	}
	if tl := templateLabels(t)["thermostat"]; strings.Contains(tl.Text(), "DRAFT") {
		t.Error("a confirmed manifest is labelled draft")
	}
}

// A label describes data; it never shows any. Give the fields values
// nothing else in the manifest says and check none reaches the label.
func TestLabelShowsNoFieldValues(t *testing.T) {
	doc := explainDoc(t, "thermostat")
	fields := "properties/temperature/properties/"
	explainSet(doc, fields+"celsius/minimum", -17.375)
	explainSet(doc, fields+"celsius/maximum", 48.625)
	explainSet(doc, fields+"mood", map[string]any{
		"type": "string", "enum": []any{"Zanzibar", "Quokka"}, "description": "xyzzy mood",
	})
	explainSet(doc, fields+"note", map[string]any{"type": "string", "maxLength": 77})
	m := explainParse(t, doc)
	l := Explain(m, labelDate)
	// The limits, the allowed words and what a reading would hold.
	sample := string(m.Stream("temperature").SamplePayload())
	if !strings.Contains(sample, "15.625") || !strings.Contains(sample, "Zanzibar") {
		t.Fatalf("sample reading %s lacks the test values", sample)
	}
	for _, v := range []string{"17.375", "48.625", "15.625", "Zanzibar", "Quokka"} {
		for name, text := range map[string]string{"text": l.Text(), "markdown": l.Markdown()} {
			if strings.Contains(text, v) {
				t.Errorf("%s label shows %q", name, v)
			}
		}
		b, _ := json.Marshal(l)
		if strings.Contains(string(b), v) {
			t.Errorf("label JSON shows %q", v)
		}
	}
}

// Terms without an entry in terms.go still read as words, never as terms.
func TestUnknownTermsFallBackToWords(t *testing.T) {
	for term, want := range map[string]string{
		"candor:SmartGridBalancing": "smart grid balancing",
		"pd:GPSCoordinate":          "GPS coordinate",
		"dpv:Marketing":             "marketing",
		"pd:Age":                    "age",
		"candor:CO2Level":           "CO2 level",
	} {
		if got := TermWords(term); got != want {
			t.Errorf("TermWords(%q) = %q, want %q", term, got, want)
		}
	}
	if got := PurposeWords("candor:SmartGridBalancing"); got != "for smart grid balancing" {
		t.Errorf("PurposeWords fallback %q", got)
	}
	if got := PurposeWords("dpv:ServiceProvision"); got != "to make the device work" {
		t.Errorf("PurposeWords %q", got)
	}
	if got := PersonalDataWords("pd:PhysicalHealth"); got != "your health" {
		t.Errorf("PersonalDataWords %q", got)
	}

	doc := explainDoc(t, "smart-meter")
	explainSet(doc, "properties/energy/dpv:hasRecipient", []any{map[string]any{
		"name":                "Grid balancing service",
		"@type":               "candor:FlexibilityAggregator",
		"dpv:hasPurpose":      "candor:SmartGridBalancing",
		"candor:retention":    "P30D",
		"candor:contact":      "https://grid.example/contact",
		"candor:identifiable": "anonymous",
	}})
	l := Explain(explainParse(t, doc), labelDate)
	text := strings.Join(strings.Fields(l.Text()), " ")
	for _, w := range []string{
		"Grid balancing service gets it, with nothing that points to you, for smart grid balancing.",
		"Their role: flexibility aggregator.",
		"Ask them at https://grid.example/contact.",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("label lacks %q:\n%s", w, text)
		}
	}
	if strings.Contains(text, "candor:") {
		t.Error("a raw term reached the label")
	}
}

func TestMarkdownLinksAndEscapes(t *testing.T) {
	doc := explainDoc(t, "door-sensor")
	explainSet(doc, "title", "Door *sensor* [v2]")
	l := Explain(explainParse(t, doc), labelDate)
	md := l.Markdown()
	for _, w := range []string{`# Door \*sensor\* \[v2\]: privacy and security label`, "<security@candor.invalid>", "<https://github.com/candor-iot/candor>", "## In short", "## In detail", "## Who is responsible"} {
		if !strings.Contains(md, w) {
			t.Errorf("markdown lacks %q:\n%s", w, md)
		}
	}
}
