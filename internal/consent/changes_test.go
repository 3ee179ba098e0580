package consent

import (
	"testing"

	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// TestPendingSentence checks the plain words a manifest change is shown
// in, and that each scores at least 60 on Flesch Reading Ease.
func TestPendingSentence(t *testing.T) {
	m := &manifest.Manifest{Title: "Door sensor"}
	month, _ := manifest.ParseDuration("P30D")
	year, _ := manifest.ParseDuration("P1Y")
	insurer := UseState{Recipient: "Insurance partner", PurposeText: "to tell you when a door opens"}
	alerts := UseState{Recipient: RecipientHub, PurposeText: "To learn when you are usually home"}
	tests := []struct {
		name string
		pc   PendingChange
		want string
	}{
		{"longer and a recipient", PendingChange{Title: "Door open or closed", Retention: &year, Agreed: month, Uses: []UseState{insurer}},
			`The door sensor wants to keep "door open or closed" for 1 year instead of 1 month, and send it to "Insurance partner". Nothing changes until you say yes.`},
		{"a recipient only", PendingChange{Title: "Door open or closed", Agreed: month, Uses: []UseState{insurer}},
			`The door sensor wants to send "door open or closed" to "Insurance partner". Nothing changes until you say yes.`},
		{"a new use on the hub", PendingChange{Title: "Door open or closed", Agreed: month, Uses: []UseState{alerts}},
			`The door sensor wants to use "door open or closed" to learn when you are usually home. Nothing changes until you say yes.`},
		{"longer only", PendingChange{Title: "Battery level", Retention: &year, Agreed: month},
			`The door sensor wants to keep "battery level" for 1 year instead of 1 month. Nothing changes until you say yes.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pendingSentence(m, tt.pc)
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if s := readability.Score(got); s.Ease < readability.PlainEnglish {
				t.Errorf("%q scores %.1f, want at least %.0f", got, s.Ease, readability.PlainEnglish)
			}
		})
	}
}
