package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
)

var importDay = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func TestMain(m *testing.M) {
	now = func() time.Time { return importDay }
	os.Exit(m.Run())
}

// wantField is what a declared field must look like. Zero values are not
// checked, except that min and max are checked whenever hasRange is set.
type wantField struct {
	typ      string
	unit     string
	hasRange bool
	min, max float64
	enum     []string
	maxLen   int
}

func num(unit string, min, max float64) wantField {
	return wantField{typ: "number", unit: unit, hasRange: true, min: min, max: max}
}

var boolean = wantField{typ: "boolean"}

func enum(values ...string) wantField { return wantField{typ: "string", enum: values} }

type wantStream struct {
	fields   map[string]wantField
	personal []string // exactly, in order
	purposes []string // exactly, in order
	reveals  string   // substring of candor:reveals ("" = not checked)
	with     []string // candor:revealsWith streams, if any
}

// checkDraft parses a draft and asserts everything every draft must be.
func checkDraft(t *testing.T, out []byte) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse("draft", out)
	if err != nil {
		t.Fatalf("draft does not parse: %v\n%s", err, out)
	}
	if !m.Draft {
		t.Error("candor:draft is not true")
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if string(doc["candor:draft"]) != "true" {
		t.Errorf("candor:draft = %s", doc["candor:draft"])
	}
	if m.Maker.Contact != PlaceholderContact || m.Support.Contact != PlaceholderContact || m.Support.VulnerabilityDisclosure != PlaceholderContact {
		t.Errorf("contacts are not the obvious placeholder: %+v %+v", m.Maker, m.Support)
	}
	// The source says nothing about support, so the draft names no date
	// and its label says "unknown" instead of a made-up one.
	if !m.Support.SecurityUpdatesUntil.IsZero() {
		t.Errorf("securityUpdatesUntil %s, want none (unknown)", m.Support.SecurityUpdatesUntil.Format(time.DateOnly))
	}
	if _, ok := doc["candor:support"]; ok && strings.Contains(string(doc["candor:support"]), "securityUpdatesUntil") {
		t.Errorf("candor:support names a date: %s", doc["candor:support"])
	}
	if !strings.HasPrefix(m.Support.UpdateMechanism, "unknown") {
		t.Errorf("updateMechanism %q does not say unknown", m.Support.UpdateMechanism)
	}
	if !strings.Contains(m.Description, "Draft imported") || !strings.Contains(m.Description, "suggestion") {
		t.Errorf("description does not say it is an imported draft of suggestions: %q", m.Description)
	}
	for _, s := range m.Streams {
		if s.Topic != manifest.TopicTemplate+s.Name {
			t.Errorf("%s: topic %q", s.Name, s.Topic)
		}
		if s.Retention.Text != "P30D" || !s.SamplingInterval.IsZero() || s.MaxPerMinute <= 0 || s.MaxPayloadBytes < 256 {
			t.Errorf("%s: retention %q sampling %q rate %v bytes %d", s.Name, s.Retention.Text, s.SamplingInterval.Text, s.MaxPerMinute, s.MaxPayloadBytes)
		}
		if !strings.Contains(s.Description, "check before confirming") || !strings.HasPrefix(s.Description, "Suggested from") &&
			!strings.HasPrefix(s.Description, "Nothing about its privacy") {
			t.Errorf("%s: description does not mark the suggestions: %q", s.Name, s.Description)
		}
		if !strings.Contains(s.Use, "Suggested") {
			t.Errorf("%s: use %q not marked as suggested", s.Name, s.Use)
		}
		for _, p := range s.Purposes {
			if !strings.Contains(p.Description, "suggested from") || !strings.Contains(p.Description, "check before confirming") {
				t.Errorf("%s: purpose %s not marked as suggested: %q", s.Name, p.ID, p.Description)
			}
			if s.Personal() && p.Essential {
				t.Errorf("%s: purpose %s of a personal stream is essential (consent would start on)", s.Name, p.ID)
			}
		}
		if s.Reveals != "" && !strings.Contains(s.Reveals, "check before confirming") {
			t.Errorf("%s: reveals not marked as suggested: %q", s.Name, s.Reveals)
		}
	}
	return m
}

func checkStreams(t *testing.T, m *manifest.Manifest, want map[string]wantStream) {
	t.Helper()
	if got, exp := strings.Join(m.StreamNames(), ","), strings.Join(sortedKeys(want), ","); got != exp {
		t.Fatalf("streams %s, want %s", got, exp)
	}
	for name, ws := range want {
		s := m.Stream(name)
		var fields []string
		for _, f := range s.Fields {
			fields = append(fields, f.Name)
		}
		if got, exp := strings.Join(fields, ","), strings.Join(sortedKeys(ws.fields), ","); got != exp {
			t.Errorf("%s: fields %s, want %s", name, got, exp)
			continue
		}
		for fname, wf := range ws.fields {
			f := s.Field(fname)
			if f.Type != wf.typ {
				t.Errorf("%s.%s: type %s, want %s", name, fname, f.Type, wf.typ)
			}
			if wf.unit != "" && f.Unit != wf.unit {
				t.Errorf("%s.%s: unit %q, want %q", name, fname, f.Unit, wf.unit)
			}
			if wf.hasRange && (f.Min == nil || f.Max == nil || *f.Min != wf.min || *f.Max != wf.max) {
				t.Errorf("%s.%s: range %v..%v, want %v..%v", name, fname, deref(f.Min), deref(f.Max), wf.min, wf.max)
			}
			if wf.enum != nil && strings.Join(f.Enum, ",") != strings.Join(wf.enum, ",") {
				t.Errorf("%s.%s: enum %v, want %v", name, fname, f.Enum, wf.enum)
			}
			if wf.maxLen != 0 && f.MaxLength != wf.maxLen {
				t.Errorf("%s.%s: maxLength %d, want %d", name, fname, f.MaxLength, wf.maxLen)
			}
		}
		if got, exp := strings.Join(s.PersonalData, ","), strings.Join(ws.personal, ","); got != exp {
			t.Errorf("%s: personal data [%s], want [%s]", name, got, exp)
		}
		var purposes []string
		for _, p := range s.Purposes {
			purposes = append(purposes, p.ID)
		}
		if got, exp := strings.Join(purposes, ","), strings.Join(ws.purposes, ","); got != exp {
			t.Errorf("%s: purposes [%s], want [%s]", name, got, exp)
		}
		if ws.reveals != "" && !strings.Contains(s.Reveals, ws.reveals) {
			t.Errorf("%s: reveals %q does not mention %q", name, s.Reveals, ws.reveals)
		}
		var with []string
		for _, c := range s.RevealsWith {
			with = append(with, c.Streams...)
		}
		if strings.Join(with, ",") != strings.Join(ws.with, ",") {
			t.Errorf("%s: revealsWith %v, want %v", name, with, ws.with)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// checkConfirm confirms a draft and checks that only the flag changed.
func checkConfirm(t *testing.T, draft []byte) {
	t.Helper()
	out, err := Confirm(draft)
	if err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	m, err := manifest.Parse("confirmed", out)
	if err != nil {
		t.Fatalf("confirmed document does not parse: %v", err)
	}
	if m.Draft {
		t.Error("still a draft after Confirm")
	}
	if want := bytes.Replace(draft, []byte(`"candor:draft": true`), []byte(`"candor:draft": false`), 1); !bytes.Equal(out, want) {
		t.Errorf("Confirm changed more than the draft flag:\n%s", out)
	}
	if _, err := Confirm(out); !errors.Is(err, ErrNotDraft) {
		t.Errorf("confirming twice: %v, want ErrNotDraft", err)
	}
}

// readHA reads a testdata device: one file per discovery message, named
// after its topic with "/" written as "__".
func readHA(t *testing.T, dir string) []Discovery {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "homeassistant", dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata for %s: %v", dir, err)
	}
	sort.Strings(files)
	var msgs []Discovery
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		topic := strings.ReplaceAll(strings.TrimSuffix(filepath.Base(f), ".json"), "__", "/")
		msgs = append(msgs, Discovery{Topic: topic, Payload: b})
	}
	return msgs
}

func readZ2M(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "zigbee2mqtt", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func errContains(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v is not an *InputError", err)
	}
}

func TestConfirmRejectsInvalidAndNonDrafts(t *testing.T) {
	if _, err := Confirm([]byte(`{"title":`)); err == nil {
		t.Error("invalid JSON confirmed")
	}
	tmpl, err := manifest.Templates()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Confirm(tmpl["door-sensor"].Raw); !errors.Is(err, ErrNotDraft) {
		t.Errorf("a shipped (non-draft) template: %v, want ErrNotDraft", err)
	}
	// A draft written by hand, with unusual spacing and a duplicate key,
	// keeps every other byte.
	var doc map[string]any
	if err := json.Unmarshal(tmpl["door-sensor"].Raw, &doc); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(doc)
	draft := bytes.Replace(b, []byte(`{"@context"`), []byte("{\"candor:draft\" :\n\t true , \"@context\""), 1)
	out, err := Confirm(draft)
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Replace(draft, []byte("\t true"), []byte("\t false"), 1); !bytes.Equal(out, want) {
		t.Errorf("Confirm rewrote the document:\n%s", out)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"Temperature":                  "temperature",
		"sensorBedroomT":               "sensor_bedroom_t",
		"3DPrinter ENERGY Total":       "s_3dprinter_energy_total",
		"Umidità":                      "umidita",
		"Größe / Gewicht":              "grosse_gewicht",
		"pm2.5":                        "pm2_5",
		"  --  ":                       "",
		"°C":                           "c",
		"温度":                           "",
		strings.Repeat("a", 100):       strings.Repeat("a", 64),
		"a" + strings.Repeat("_b", 40): "a" + strings.Repeat("_b", 31),
	} {
		if got := sanitize(in, "s_"); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	taken := names{"control": true}
	if got := taken.take("control"); got != "control_2" {
		t.Errorf("take(control) = %q", got)
	}
	long := strings.Repeat("x", 64)
	taken.take(long)
	if got := taken.take(long); len(got) > 64 || got != strings.Repeat("x", 62)+"_2" {
		t.Errorf("take(long) = %q", got)
	}
}

func TestUnitsAndRanges(t *testing.T) {
	for symbol, words := range map[string]string{
		"°C": "degree Celsius", "%": "percent", "W": "watt", "kWh": "kilowatt hour", "lx": "lux",
		"ppm": "parts per million", "hPa": "hectopascal", "µg/m³": "microgram per cubic metre", "mV": "millivolt",
		"lqi": "link quality indicator", "dBm": "decibel-milliwatt", "bpm": "beats per minute", "m³": "cubic metre",
	} {
		if u, ok := unitFor(symbol); !ok || u.words != words {
			t.Errorf("unit %q = %q, want %q", symbol, u.words, words)
		}
	}
	tests := []struct {
		kind, unit string
		words      string
		min, max   float64
		known      bool
	}{
		{"temperature", "°C", "degree Celsius", -40, 125, true},
		{"temperature", "°F", "degree Fahrenheit", -40, 257, true},
		{"temperature", "K", "kelvin", 233.15, 398.15, true},
		{"pressure", "kPa", "kilopascal", 30, 110, true},
		{"pressure", "hPa", "hectopascal", 300, 1100, true},
		{"energy", "Wh", "watt hour", 0, 1e12, true},
		{"power", "kW", "kilowatt", 0, 100, true},
		{"carbon_dioxide", "ppm", "parts per million", 0, 10000, true},
		{"illuminance", "lx", "lux", 0, 200000, true},
		{"battery", "%", "percent", 0, 100, true},
		{"voltage", "V", "volt", 0, 1000, true},
		{"temperature", "%", "percent", -wide, wide, false}, // unit does not fit the class
		{"", "furlongs", "furlongs", -wide, wide, false},    // unknown unit kept as given
		{"aqi", "", "index", 0, 500, true},                  // unitless by nature
		{"illuminance", "", "unitless", -wide, wide, false}, // raw reading without unit
	}
	for _, tc := range tests {
		k := numericKinds[tc.kind]
		words, lo, hi, known := rangeFor(k, tc.unit)
		if words != tc.words || lo != tc.min || hi != tc.max || known != tc.known {
			t.Errorf("rangeFor(%s, %q) = %q %v..%v %v, want %q %v..%v %v", tc.kind, tc.unit, words, lo, hi, known, tc.words, tc.min, tc.max, tc.known)
		}
	}
}

func TestDeviceType(t *testing.T) {
	for _, tc := range []struct {
		explicit   string
		candidates []string
		want       string
		err        bool
	}{
		{"door-sensor", nil, "door-sensor", false},
		{"", []string{"E1525/E1745"}, "e1525-e1745", false},
		{"", []string{"9290012607"}, "9290012607", false},
		{"", []string{"", "Sonoff Pow R2"}, "sonoff-pow-r2", false},
		{"Door Sensor", nil, "", true},
		{"-x", nil, "", true},
		{strings.Repeat("a", 41), nil, "", true},
		{"", []string{"温度"}, "", true},
	} {
		got, err := deviceTypeFrom(tc.explicit, tc.candidates...)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("deviceTypeFrom(%q, %q) = %q, %v", tc.explicit, tc.candidates, got, err)
		}
	}
}
