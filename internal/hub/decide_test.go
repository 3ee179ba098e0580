package hub

import (
	"net/http"
	"strings"
	"testing"
)

// TestWhoMaySwitchWhat checks the consent rule through the API of a real
// hub: the person whose keys seal a device decides for it, the owners
// decide for shared devices, and a member sees the choices, is refused
// with the reason, and may ask; the request is listed to the decider
// until they choose.
func TestWhoMaySwitchWhat(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	add := func(name, typ string, shared bool) string {
		t.Helper()
		code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]any{"name": name, "type": typ, "shared": shared})
		if code != 201 {
			t.Fatalf("add %s: %d %v", name, code, out)
		}
		return out["device"].(map[string]any)["id"].(string)
	}
	camera := add("Porch camera", "motion-camera", false)
	meter := add("Meter", "smart-meter", true)
	for _, u := range []struct{ name, role, pw string }{{"kim", "member", "marble-otter-sunrise-19"}, {"robin", "owner", "copper-lantern-meadow-52"}} {
		if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/accounts", alex,
			map[string]string{"username": u.name, "password": u.pw, "role": u.role}); code != 201 {
			t.Fatalf("add %s: %d %v", u.name, code, out)
		}
	}
	kim := th.token("kim", "marble-otter-sunrise-19")
	robin := th.token("robin", "copper-lantern-meadow-52")

	supplier := map[string]any{"purpose": "candor:Billing", "recipient": "Your energy supplier", "on": true, "confirm": true}
	tests := []struct {
		name     string
		bearer   string
		device   string
		stream   string
		body     map[string]any
		want     int
		mentions string
	}{
		{"member turns on sharing of a shared device", kim, meter, "energy", supplier, 403, "owner of the household"},
		{"member turns off the owner's camera", kim, camera, "motion", nil, 403, "keys"},
		{"co-owner turns off another person's camera", robin, camera, "motion", nil, 403, "keys"},
		{"operator decides for nobody", "", meter, "energy", supplier, 403, "operator"},
		{"the camera's key owner decides", alex, camera, "motion", nil, 200, ""},
		{"a co-owner decides for a shared device", robin, meter, "energy", supplier, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == nil {
				body = map[string]any{"purpose": firstPurpose(t, th, alex, tt.device, tt.stream), "on": false}
			}
			c := http.DefaultClient
			if tt.bearer == "" {
				c = th.local
			}
			url := th.URL()
			if tt.bearer == "" {
				url = "http://candor"
			}
			code, out, _ := call(t, c, "PUT", url+"/api/v1/devices/"+tt.device+"/consent/"+tt.stream, tt.bearer, body)
			if code != tt.want {
				t.Fatalf("PUT consent: %d %v, want %d", code, out, tt.want)
			}
			if tt.want == 403 {
				if out["type"] != "urn:candor:problem:not-your-choice" && !strings.HasSuffix(out["type"].(string), "not-your-choice") {
					t.Errorf("problem type %v, want not-your-choice", out["type"])
				}
				if d, _ := out["detail"].(string); !strings.Contains(d, tt.mentions) {
					t.Errorf("detail %q does not say %q", d, tt.mentions)
				}
			}
		})
	}

	// The member sees the state, and who decides.
	code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+meter+"/consent", kim, nil)
	if code != 200 {
		t.Fatalf("member reads consent: %d %v", code, out)
	}
	dec := out["deciders"].(map[string]any)
	if dec["you_decide"] != false || dec["owners"] != true {
		t.Errorf("deciders for the member = %v, want owners deciding, not the member", dec)
	}

	// The member asks; the owners see it until one of them chooses.
	ask := map[string]any{"stream": "power", "purpose": "dpv:ServiceOptimisation", "on": true}
	if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices/"+meter+"/consent/requests", kim, ask); code != 201 {
		t.Fatalf("member asks: %d %v", code, out)
	}
	requests := func(bearer string) int {
		t.Helper()
		code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/consent/requests", bearer, nil)
		if code != 200 {
			t.Fatalf("list requests: %d %v", code, out)
		}
		return len(out["requests"].([]any))
	}
	if n := requests(alex); n != 1 {
		t.Errorf("owner sees %d requests, want 1", n)
	}
	if n := requests(kim); n != 0 {
		t.Errorf("the member who decides nothing sees %d requests, want 0", n)
	}
	if code, out, _ := call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+meter+"/consent/power", alex,
		map[string]any{"purpose": "dpv:ServiceOptimisation", "on": true}); code != 200 {
		t.Fatalf("owner decides: %d %v", code, out)
	}
	if n := requests(alex); n != 0 {
		t.Errorf("after the owner chose, %d requests are still open, want 0", n)
	}
}

// firstPurpose returns the first hub purpose of a device's stream.
func firstPurpose(t *testing.T, th *testHub, bearer, device, stream string) string {
	t.Helper()
	code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+device+"/consent", bearer, nil)
	if code != 200 {
		t.Fatalf("consent state: %d %v", code, out)
	}
	for _, s := range out["streams"].([]any) {
		sm := s.(map[string]any)
		if sm["stream"] == stream {
			return sm["uses"].([]any)[0].(map[string]any)["purpose"].(string)
		}
	}
	t.Fatalf("no stream %s", stream)
	return ""
}

// TestSharingIsConfirmed checks that turning on a use that sends data
// out answers first with what would leave, to whom, linked or not, on
// what terms and for how long, and changes nothing until the request is
// sent again with "confirm": true.
func TestSharingIsConfirmed(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	meter, _ := th.personDevice(alex, "Meter", "smart-meter")
	url := th.URL() + "/api/v1/devices/" + meter + "/consent/energy"
	share := map[string]any{"purpose": "candor:Billing", "recipient": "Your energy supplier", "on": true}
	code, out, _ := call(t, http.DefaultClient, "PUT", url, alex, share)
	if code != http.StatusConflict || !strings.HasSuffix(out["type"].(string), "confirm-sharing") {
		t.Fatalf("unconfirmed sharing: %d %v, want 409 confirm-sharing", code, out)
	}
	sh := out["sharing"].(map[string]any)
	for key, want := range map[string]any{"recipient": "Your energy supplier", "linked": "linked", "keeps": "P7Y",
		"terms": "https://example.com/energy-supplier/privacy", "why": "so your supplier can bill what you used"} {
		if sh[key] != want {
			t.Errorf("sharing %s = %v, want %v", key, sh[key], want)
		}
	}
	if what := list(sh["what"]); len(what) == 0 {
		t.Error("sharing does not say what leaves")
	}
	if code, out, _ := call(t, http.DefaultClient, "GET", url[:strings.LastIndex(url, "/")], alex, nil); code != 200 || countRecipients(out, "energy") != 0 {
		t.Fatalf("an unconfirmed request turned sharing on: %d %v", code, out)
	}
	share["confirm"] = true
	if code, out, _ := call(t, http.DefaultClient, "PUT", url, alex, share); code != 200 {
		t.Fatalf("confirmed sharing: %d %v", code, out)
	}
	// A second meter: the summary says what the supplier already gets.
	second, _ := th.personDevice(alex, "Garage meter", "smart-meter")
	delete(share, "confirm")
	share["on"] = true
	code, out, _ = call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+second+"/consent/energy", alex, share)
	if code != http.StatusConflict {
		t.Fatalf("unconfirmed sharing of the second meter: %d %v", code, out)
	}
	if got := list(out["sharing"].(map[string]any)["already_gets"]); len(got) != 1 || got[0] != "Meter: meter reading" {
		t.Errorf("already_gets %v, want what the first meter sends", got)
	}
	// Turning it off needs no confirmation.
	share["on"], share["confirm"] = false, false
	if code, out, _ := call(t, http.DefaultClient, "PUT", url, alex, share); code != 200 {
		t.Fatalf("sharing off: %d %v", code, out)
	}
}

func countRecipients(state map[string]any, stream string) int {
	for _, s := range list(state["streams"]) {
		if sm := s.(map[string]any); sm["stream"] == stream {
			return len(list(sm["decision"].(map[string]any)["recipients"]))
		}
	}
	return -1
}
