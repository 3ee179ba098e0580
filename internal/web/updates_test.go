package web

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/updates"
)

// fakeUpdates is the updates service as the device page sees it.
type fakeUpdates map[string]updates.State

func (f fakeUpdates) Status(id string) (updates.State, bool) { st, ok := f[id]; return st, ok }

func TestDevicePageShowsUpdates(t *testing.T) {
	t.Parallel()
	states := fakeUpdates{}
	h := startHub(t, func(c *Config) { c.Updates = states })
	doc, err := os.ReadFile("../manifest/templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	m["candor:updates"] = map[string]any{"metadataUrl": "https://updates.example.com/tuf", "targetPrefix": "thermostat/",
		"trustedRootSha256": strings.Repeat("ab", 32)}
	doc, _ = json.Marshal(m)
	if _, err := h.cat.Put(context.Background(), doc); err != nil {
		t.Fatal(err)
	}
	acc := h.setup("alex")
	d, _ := h.addDevice(acc.HouseholdID, "Hall", "thermostat")
	states[d.ID] = updates.State{Device: d.ID, Stage: updates.StatusRefused, Reason: updates.ReasonRollback,
		Plain: updates.ReasonRollback.Plain(), Installed: "1.1.0", Automatic: true,
		Available: &updates.Release{Version: "1.2.0", Security: true, Notes: "Fixes a flaw that let people on your network change the settings.", Fixes: []string{"CVE-2026-0001"}}}

	b := h.browser()
	b.login("alex", goodPassword)
	body := visibleText(b.get("/devices/" + d.ID).body)
	mustContain(t, "device page", body, "Updates", "The hub refused an update.", updates.ReasonRollback.Plain(),
		"It runs firmware 1.1.0.", "Update 1.2.0 is a security update.", "It fixes: CVE-2026-0001.",
		"Security updates are installed without asking.")
}
