package hub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
)

// The hub's admin sees hub-level entries of the transparency log and
// their own household's, never another household's device ids and
// actions: not in the entry list, not through an inclusion proof, not in
// the export.
func TestAdminLogViewStaysInTheHousehold(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	const samPassword = "violet-canyon-drifting-41"
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/households", alex,
		map[string]any{"name": "Flat 2", "owner": map[string]string{"username": "sam", "password": samPassword}})
	if code != http.StatusCreated {
		t.Fatalf("create household: %d %v", code, out)
	}
	samHousehold := out["household"].(map[string]any)["id"].(string)
	sam := th.token("sam", samPassword)
	samDev, secret := th.personDevice(sam, "Hall", "thermostat")
	th.post(samDev, secret, "temperature", `{"celsius":19,"humidity_percent":40}`)
	if code, _ := th.personReadings(sam, samDev); code != 200 {
		t.Fatalf("sam reads his readings: %d", code)
	}
	alexDev, _ := th.personDevice(alex, "Kitchen", "thermostat")
	// A hub-level entry: a manifest change names no household.
	doc, err := os.ReadFile("../manifest/templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/manifests", alex, string(doc)); code != 201 {
		t.Fatalf("manifest change: %d %v", code, out)
	}

	// The operator's complete view, to know which entries are Sam's.
	var all struct {
		Entries []struct {
			Index uint64         `json:"index"`
			Event auditlog.Event `json:"event"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(getText(t, th.local, "http://candor/api/v1/log/entries", ""), &all); err != nil {
		t.Fatal(err)
	}
	samsEntry := func(ev auditlog.Event) bool {
		isAlex := ev.Actor.Kind == auditlog.ActorPerson && ev.Actor.ID == th.accountID(alex)
		return !isAlex && (ev.Household == samHousehold || ev.Subject.Device == samDev)
	}
	var samIdx []uint64
	for _, e := range all.Entries {
		if samsEntry(e.Event) {
			samIdx = append(samIdx, e.Index)
		}
	}
	if len(samIdx) == 0 {
		t.Fatal("the log has no entries of Sam's household: the test proves nothing")
	}

	var mine struct {
		Entries []struct {
			Index uint64         `json:"index"`
			Event auditlog.Event `json:"event"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(getText(t, http.DefaultClient, th.URL()+"/api/v1/log/entries", alex), &mine); err != nil {
		t.Fatal(err)
	}
	var hubLevel, ownDevice bool
	for _, e := range mine.Entries {
		if samsEntry(e.Event) {
			t.Errorf("the admin's entry list shows Sam's entry %d: %s %+v", e.Index, e.Event.Action, e.Event.Subject)
		}
		hubLevel = hubLevel || e.Event.Action == auditlog.ActionManifestChange
		ownDevice = ownDevice || e.Event.Subject.Device == alexDev
	}
	if !hubLevel || !ownDevice {
		t.Errorf("the admin's entry list lacks the manifest change (%v) or their own device's entries (%v)", hubLevel, ownDevice)
	}
	for _, i := range samIdx {
		url := fmt.Sprintf("%s/api/v1/log/proof/inclusion?index=%d", th.URL(), i)
		if code, _, _ := call(t, http.DefaultClient, "GET", url, alex, nil); code != http.StatusForbidden {
			t.Errorf("the admin's inclusion proof of Sam's entry %d: %d, want 403", i, code)
		}
		if code, _, _ := call(t, http.DefaultClient, "GET", url, sam, nil); code != http.StatusOK {
			t.Errorf("Sam's inclusion proof of his own entry %d: %d", i, code)
		}
	}
	for _, ev := range exportEvents(t, getText(t, http.DefaultClient, th.URL()+"/api/v1/log/export", alex)) {
		if samsEntry(ev) {
			t.Errorf("the admin's export has Sam's entry: %s %+v", ev.Action, ev.Subject)
		}
	}
}

// accountID is the account id behind a token.
func (th *testHub) accountID(tok string) string {
	th.t.Helper()
	code, out, _ := call(th.t, http.DefaultClient, "GET", th.URL()+"/api/v1/me", tok, nil)
	if code != 200 {
		th.t.Fatalf("me: %d %v", code, out)
	}
	if acc, ok := out["account"].(map[string]any); ok {
		return acc["id"].(string)
	}
	return out["id"].(string)
}
