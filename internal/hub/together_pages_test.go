package hub

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTogetherAndSharingOnThePages reproduces two of the reports
// on the pages of a real hub. The home page says what the household's
// devices show together, by the shipped rules and by the door sensor's
// own candor:revealsAcross (door, motion and meter: when people are
// home). Turning on sharing is no longer one click: the first post shows
// what would leave, and nothing leaves until the person says yes.
func TestTogetherAndSharingOnThePages(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	ids := map[string]string{}
	for _, d := range []struct{ name, typ string }{{"Front door", "door-sensor"}, {"Meter", "smart-meter"}, {"Porch camera", "motion-camera"}} {
		code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]any{"name": d.name, "type": d.typ})
		if code != 201 {
			t.Fatalf("add %s: %d %v", d.name, code, out)
		}
		ids[d.typ] = out["device"].(map[string]any)["id"].(string)
	}
	pc := th.pages("alex", goodPassword)
	_, home := pc.get("/")
	home = html.UnescapeString(home)
	for _, want := range []string{"What your devices show together",
		"when people are at home, which rooms they use, and when the home is empty"} {
		if !strings.Contains(home, want) {
			t.Errorf("home page lacks %q", want)
		}
	}

	meter := ids["smart-meter"]
	recipients := func() []any {
		t.Helper()
		code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+meter+"/consent", alex, nil)
		if code != 200 {
			t.Fatalf("consent state: %d %v", code, out)
		}
		for _, s := range out["streams"].([]any) {
			sm := s.(map[string]any)
			if sm["stream"] == "energy" {
				r, _ := sm["decision"].(map[string]any)["recipients"].([]any)
				return r
			}
		}
		t.Fatal("no energy stream")
		return nil
	}
	pc.get("/devices/" + meter)
	share := url.Values{"stream": {"energy"}, "purpose": {"candor:Billing"}, "recipient": {"Your energy supplier"}, "on": {"1"}}
	code, body := pc.post("/devices/"+meter+"/consent", share)
	body = html.UnescapeString(body)
	if code != 200 || !strings.Contains(body, "Send meter reading to your energy supplier?") || !strings.Contains(body, "Nothing is sent until you say yes.") {
		i := strings.Index(body, "<h1")
		t.Fatalf("one click on sharing: %d; want the confirmation first:\n%.600s", code, body[max(i, 0):])
	}
	if r := recipients(); len(r) != 0 {
		t.Fatalf("sharing is on before the person said yes: %v", r)
	}
	share.Set("confirm", "yes")
	share.Del("csrf")
	if code, _ := pc.post("/devices/"+meter+"/consent", share); code != 200 {
		t.Fatalf("yes, send it: %d", code)
	}
	if r := recipients(); len(r) != 1 || r[0] != "Your energy supplier" {
		t.Errorf("after yes: recipients %v", r)
	}
}
