package manifest

import (
	"testing"

	"github.com/candor-iot/candor/internal/testsupport/readability"
)

func TestInferenceRulesParseAndReadPlainly(t *testing.T) {
	rules, err := InferenceRules()
	if err != nil || len(rules) == 0 {
		t.Fatalf("rules: %d, %v", len(rules), err)
	}
	for _, r := range rules {
		text := "Together, your devices can show " + r.Reveals + "."
		if s := readability.Score(text); s.Ease < readability.PlainEnglish {
			t.Errorf("%q scores %.1f, want at least %.0f", text, s.Ease, readability.PlainEnglish)
		}
	}
}

func TestRevealedTogether(t *testing.T) {
	rules := []InferenceRule{
		{Categories: []string{"candor:Presence"}, Reveals: "when people are home"},
		{Categories: []string{"candor:Presence", "candor:EnergyUse"}, Reveals: "your routine"},
	}
	door := TypedStream{DeviceID: "d1", DeviceType: "door-sensor", Stream: "contact", Categories: []string{"candor:Presence"}}
	door2 := TypedStream{DeviceID: "d2", DeviceType: "door-sensor", Stream: "contact", Categories: []string{"candor:Presence"}}
	meter := TypedStream{DeviceID: "d3", DeviceType: "smart-meter", Stream: "energy", Categories: []string{"candor:EnergyUse"}}
	camera := TypedStream{DeviceID: "d4", DeviceType: "motion-camera", Stream: "motion", Categories: []string{"candor:Presence"}}
	tests := []struct {
		name    string
		streams []TypedStream
		want    []string
	}{
		{"one device", []TypedStream{door}, nil},
		{"two devices of one type", []TypedStream{door, door2}, nil},
		{"door and meter", []TypedStream{door, meter}, []string{"your routine"}},
		{"door and camera", []TypedStream{door, camera}, []string{"when people are home"}},
		{"all", []TypedStream{door, camera, meter}, []string{"when people are home", "your routine"}},
		{"meter alone", []TypedStream{meter}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RevealedTogether(rules, tt.streams)
			var reveals []string
			for _, f := range got {
				reveals = append(reveals, f.Reveals)
			}
			if len(reveals) != len(tt.want) {
				t.Fatalf("got %v, want %v", reveals, tt.want)
			}
			for i := range reveals {
				if reveals[i] != tt.want[i] {
					t.Errorf("got %v, want %v", reveals, tt.want)
				}
			}
		})
	}
}
