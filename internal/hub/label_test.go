package hub

import (
	"html"
	"net/http"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// TestLabelFollowsConsent reproduces the smart meter's label claiming
// data leaves the hub while nothing does: the label says what leaves now,
// given the device's choices, and what could leave if turned on.
func TestLabelFollowsConsent(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	id, _ := th.personDevice(alex, "Meter", "smart-meter")
	pc := th.pages("alex", goodPassword)

	tests := []struct {
		name         string
		share        *bool // turn sharing with the supplier on or off first
		device, home string
		notOnDevice  string
	}{
		{name: "by default", device: "Now nothing leaves this hub. If you turn it on, some could go to your energy supplier, maybe linked to you.",
			home: "Now data stays on this hub. More could leave if you turn it on.", notOnDevice: "Some of it leaves this hub, linked to you."},
		{name: "after sharing is turned on", share: new(true), device: "Now some of it leaves this hub, linked to you. It goes to your energy supplier.",
			home: "Some data leaves this hub, linked to you."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.share != nil {
				code, out, _ := call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+id+"/consent/energy", alex,
					map[string]any{"purpose": "candor:Billing", "recipient": "Your energy supplier", "on": *tt.share, "confirm": true})
				if code != 200 {
					t.Fatalf("share: %d %v", code, out)
				}
			}
			_, dev := pc.get("/devices/" + id)
			dev = html.UnescapeString(dev)
			if !strings.Contains(dev, tt.device) {
				t.Errorf("device page lacks %q", tt.device)
			}
			if tt.notOnDevice != "" && strings.Contains(dev, tt.notOnDevice) {
				t.Errorf("device page still claims %q", tt.notOnDevice)
			}
			_, home := pc.get("/")
			if !strings.Contains(html.UnescapeString(home), tt.home) {
				t.Errorf("home page lacks %q", tt.home)
			}
			for _, text := range []string{tt.device, tt.home} {
				if s := readability.Score(text); s.Ease < readability.PlainEnglish {
					t.Errorf("%q scores %.1f, want at least %.0f", text, s.Ease, readability.PlainEnglish)
				}
			}
		})
	}
}
