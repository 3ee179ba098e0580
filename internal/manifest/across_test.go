package manifest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// doorWith returns the door-sensor template with its candor:revealsAcross
// replaced by across (removed when nil).
func doorWith(t testing.TB, across any) []byte {
	t.Helper()
	b, err := templateFS.ReadFile("templates/door-sensor.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if across == nil {
		delete(doc, "candor:revealsAcross")
	} else {
		doc["candor:revealsAcross"] = across
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRevealsAcrossIsValidated(t *testing.T) {
	rule := func(cats, types []string, reveals string) []any {
		r := map[string]any{"categories": cats, "reveals": reveals}
		if types != nil {
			r["deviceTypes"] = types
		}
		return []any{r}
	}
	tests := []struct {
		name   string
		across any
		path   string // "" when valid
		words  string
	}{
		{"the template's rule", rule([]string{"candor:Presence", "candor:EnergyUse"}, []string{"motion-camera", "smart-meter"}, "when people are home"), "", ""},
		{"no other types named", rule([]string{"candor:Presence"}, nil, "when people are home"), "", ""},
		{"no categories", rule([]string{}, nil, "x"), "candor:revealsAcross[0].categories", ""},
		{"not a term", rule([]string{"Presence"}, nil, "x"), "candor:revealsAcross[0].categories[0]", "not a pd:, dpv: or candor: term"},
		{"twice", rule([]string{"candor:Presence", "candor:Presence"}, nil, "x"), "candor:revealsAcross[0].categories[1]", "listed twice"},
		{"none of its own", rule([]string{"pd:PhysicalHealth"}, nil, "how you sleep"), "candor:revealsAcross[0].categories", "its own data"},
		{"own type named", rule([]string{"candor:Presence"}, []string{"door-sensor"}, "x"), "candor:revealsAcross[0].deviceTypes[0]", "own device type"},
		{"bad type", rule([]string{"candor:Presence"}, []string{"Smart Meter"}, "x"), "candor:revealsAcross[0].deviceTypes[0]", "a-z, 0-9"},
		{"no words", rule([]string{"candor:Presence"}, nil, "  "), "candor:revealsAcross[0].reveals", "plain words"},
		{"two lines", rule([]string{"candor:Presence"}, nil, "when\nhome"), "candor:revealsAcross[0].reveals", "one line"},
		{"too long", rule([]string{"candor:Presence"}, nil, strings.Repeat("a", 301)), "candor:revealsAcross[0].reveals", "300"},
		{"unknown member", []any{map[string]any{"categories": []string{"candor:Presence"}, "reveals": "x", "streams": []string{"contact"}}}, "candor:revealsAcross[0]", ""},
		{"not a list", map[string]any{"categories": []string{"candor:Presence"}}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse("door.json", doorWith(t, tc.across))
			if tc.name == "not a list" {
				// Not even decodable: refused as a whole, never half-loaded.
				if err == nil {
					t.Fatal("a non-list candor:revealsAcross is accepted")
				}
				return
			}
			if tc.path == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if len(m.RevealsAcross) != 1 || m.RevealsAcross[0].From != "door-sensor" {
					t.Errorf("rules = %+v, want one from door-sensor", m.RevealsAcross)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			found := false
			for _, p := range ve.Problems {
				if p.Path == tc.path && strings.Contains(p.Message, tc.words) {
					found = true
				}
			}
			if !found {
				t.Errorf("problems %v: want one at %s saying %q", ve.Problems, tc.path, tc.words)
			}
		})
	}
}

func TestTemplatesDeclareWhatTheyShowAcrossDevices(t *testing.T) {
	ts, err := Templates()
	if err != nil {
		t.Fatal(err)
	}
	door := ts["door-sensor"]
	if len(door.RevealsAcross) == 0 {
		t.Fatal("the door sensor declares nothing it shows with other devices")
	}
	for typ, m := range ts {
		for _, r := range m.RevealsAcross {
			for _, other := range r.DeviceTypes {
				if ts[other] == nil {
					t.Errorf("%s names device type %q, which has no template", typ, other)
				}
			}
			text := "Together, Front door, Porch camera and Meter can show " + r.Reveals + "."
			if s := readability.Score(text); s.Ease < readability.PlainEnglish {
				t.Errorf("%q scores %.1f", text, s.Ease)
			}
		}
	}
	streams := func(types ...string) []TypedStream {
		var out []TypedStream
		for i, typ := range types {
			for _, s := range ts[typ].Streams {
				out = append(out, TypedStream{DeviceID: string(rune('a' + i)), DeviceType: typ, Stream: s.Name, Categories: s.PersonalData})
			}
		}
		return out
	}
	rules, err := Rules(door, door, ts["smart-meter"])
	if err != nil {
		t.Fatal(err)
	}
	shipped, _ := InferenceRules()
	if len(rules) != len(shipped)+1 {
		t.Fatalf("%d rules, want the %d shipped and the door's once", len(rules), len(shipped))
	}
	tests := []struct {
		name  string
		types []string
		want  bool
	}{
		{"door, camera and meter", []string{"door-sensor", "motion-camera", "smart-meter"}, true},
		{"door and meter only", []string{"door-sensor", "smart-meter"}, false},
		{"camera and meter, no door", []string{"motion-camera", "smart-meter"}, false},
		{"with a thermostat too", []string{"door-sensor", "motion-camera", "smart-meter", "thermostat"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := false
			for _, f := range RevealedTogether(rules, streams(tc.types...)) {
				if f.Reveals != door.RevealsAcross[0].Reveals {
					continue
				}
				got = true
				for _, s := range f.Streams {
					if s.DeviceType == "thermostat" {
						t.Errorf("the door's rule counts a thermostat stream, which it does not name")
					}
				}
			}
			if got != tc.want {
				t.Errorf("door's rule applies = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLearningPurposesAreReserved checks that a manifest cannot declare
// the hub's own learning-switch purposes as ordinary purposes.
func TestLearningPurposesAreReserved(t *testing.T) {
	for _, term := range []string{PurposeMachineLearning, PurposeAutomatedDecisions} {
		t.Run(term, func(t *testing.T) {
			doc := thermostatDoc(t)
			set(doc, "properties/setpoint/dpv:hasPurpose", []any{map[string]any{"@id": term, "description": "learning"}})
			b, _ := json.Marshal(doc)
			_, err := Parse("thermostat.json", b)
			if err == nil || !strings.Contains(err.Error(), "properties.setpoint.dpv:hasPurpose[0].@id") || !strings.Contains(err.Error(), "reserved") {
				t.Errorf("err = %v, want the purpose refused as reserved, at its path", err)
			}
		})
	}
}
