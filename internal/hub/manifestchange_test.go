package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// doorSensorV2 is the shipped door-sensor manifest asking for more: its
// "door open or closed" kept for a year instead of a month, and sent to
// an insurance partner.
func doorSensorV2(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../manifest/templates/door-sensor.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	contact := m["events"].(map[string]any)["contact"].(map[string]any)
	contact["candor:retention"] = "P1Y"
	contact["dpv:hasRecipient"] = []any{map[string]any{
		"name": "Insurance partner", "@type": "dpv:ThirdParty", "dpv:hasPurpose": "candor:HomeSecurity",
		"candor:terms": "https://example.com/insurer/privacy", "candor:retention": "P1Y",
		"candor:contact": "mailto:privacy@insurer.invalid", "candor:identifiable": "linked",
	}}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestManifestChangeWaitsForAgreement reproduces an admin storing a door
// sensor manifest that keeps data longer and adds a recipient: nothing
// widens until the person who decides says yes to each part, the change
// is shown in plain words on their home page, and each answer is a
// consent record naming the new version.
func TestManifestChangeWaitsForAgreement(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	id, secret := th.personDevice(alex, "Front door", "door-sensor")
	if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/manifests", alex, doorSensorV2(t)); code != 201 {
		t.Fatalf("store version 2: %d %v", code, out)
	}

	// A reading under the new version: stored, kept for the month agreed,
	// sent to nobody.
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/contact", QoS: 1, Payload: []byte(`{"open": true}`)}); err != nil || resp.ReasonCode != 0 {
		t.Fatalf("publish: %v %+v", err, resp)
	}
	state := func() map[string]any {
		t.Helper()
		code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+id+"/consent", alex, nil)
		if code != 200 {
			t.Fatalf("consent state: %d %v", code, out)
		}
		return out
	}
	decision := func(st map[string]any) map[string]any {
		for _, s := range st["streams"].([]any) {
			if sm := s.(map[string]any); sm["stream"] == "contact" {
				return sm["decision"].(map[string]any)
			}
		}
		t.Fatal("no contact stream")
		return nil
	}
	st := state()
	dec := decision(st)
	if dec["manifest_version"].(float64) != 2 {
		t.Fatalf("decision under version %v, want 2", dec["manifest_version"])
	}
	if dec["retention"] != "P30D" || len(list(dec["recipients"])) != 0 {
		t.Errorf("before any yes: retention %v, recipients %v; want P30D and none", dec["retention"], dec["recipients"])
	}
	changes := list(st["changes"])
	if len(changes) != 1 {
		t.Fatalf("changes %v, want one about the contact stream", changes)
	}
	sentence := changes[0].(map[string]any)["sentence"].(string)
	want := `The door sensor wants to keep "door open or closed" for 1 year instead of 1 month, and send it to "Insurance partner". Nothing changes until you say yes.`
	if sentence != want {
		t.Errorf("sentence %q, want %q", sentence, want)
	}
	if rs := th.readings(id, "stream=contact"); len(rs) != 1 {
		t.Errorf("%d contact readings stored, want 1", len(rs))
	}

	// The home page says it, with a yes and a no for each part.
	pc := th.pages("alex", goodPassword)
	_, home := pc.get("/")
	for _, s := range []string{"Nothing changes until you say yes.", "1 year instead of 1 month", "Insurance partner",
		`action="/devices/` + id + `/consent/routing"`, `action="/devices/` + id + `/consent"`} {
		if !strings.Contains(strings.ReplaceAll(home, "&#34;", `"`), s) {
			t.Errorf("home page lacks %q", s)
		}
	}

	// Yes to the year (from the home page), no to the insurer (API).
	pc.get("/")
	if code, body := pc.post("/devices/"+id+"/consent/routing", url.Values{"stream": {"contact"}, "keep": {"yes"}, "retention": {"P1Y"}}); code != 200 {
		t.Fatalf("agree to a year: %d %s", code, body)
	}
	if code, out, _ := call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+id+"/consent/contact", alex,
		map[string]any{"purpose": "candor:HomeSecurity", "recipient": "Insurance partner", "on": false}); code != 200 {
		t.Fatalf("refuse the insurer: %d %v", code, out)
	}
	st = state()
	if dec := decision(st); dec["retention"] != "P1Y" || len(list(dec["recipients"])) != 0 {
		t.Errorf("after yes to the year, no to the insurer: %v", dec)
	}
	if len(list(st["changes"])) != 0 {
		t.Errorf("answered changes still pending: %v", st["changes"])
	}
	code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/consent/records?device="+id, alex, nil)
	if code != 200 {
		t.Fatalf("records: %d %v", code, out)
	}
	events := map[string]bool{}
	for _, r := range out["records"].([]any) {
		rec := r.(map[string]any)
		if v := rec["notice"].(map[string]any)["version"]; v != float64(2) {
			t.Errorf("record %v names manifest version %v, want 2", rec["record_id"], v)
		}
		events[rec["kind"].(string)+" "+rec["event"].(string)] = true
	}
	if !events["storage https://w3id.org/dpv#ConsentGiven"] || !events["consent https://w3id.org/dpv#ConsentRefused"] {
		t.Errorf("records %v; want storage given and consent refused", events)
	}
}

// list is a JSON array, or nothing for null.
func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestRetentionOfADroppedStream reproduces readings of a stream a later
// manifest version dropped: they keep the retention they were stored
// under and are deleted when it ends, like every other reading.
func TestRetentionOfADroppedStream(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	id, secret := th.personDevice(alex, "Front door", "door-sensor")
	th.post(id, secret, "battery", `{"percent": 80}`)
	th.post(id, secret, "contact", `{"open": false}`)

	b, err := os.ReadFile("../manifest/templates/door-sensor.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m["properties"].(map[string]any), "battery")
	doc, _ := json.Marshal(m)
	if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/manifests", alex, string(doc)); code != 201 {
		t.Fatalf("store a version without the battery stream: %d %v", code, out)
	}

	tests := []struct {
		after            time.Duration
		battery, contact int
	}{
		{after: 29 * 24 * time.Hour, battery: 1, contact: 1}, // within the month both were stored under
		{after: 31 * 24 * time.Hour, battery: 0, contact: 0}, // past it: the dropped stream goes too
	}
	for _, tt := range tests {
		if _, err := th.retention.SweepAt(context.Background(), time.Now().Add(tt.after)); err != nil {
			t.Fatal(err)
		}
		if n := len(th.readings(id, "stream=battery")); n != tt.battery {
			t.Errorf("after %v: %d battery readings, want %d", tt.after, n, tt.battery)
		}
		if n := len(th.readings(id, "stream=contact")); n != tt.contact {
			t.Errorf("after %v: %d contact readings, want %d", tt.after, n, tt.contact)
		}
	}
}
