package hub

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestMemberRefusedOnThePages reproduces the report through the
// pages of a real hub: a household member tries to turn the owner's
// camera recording off, to turn sharing of the shared meter with "Your
// energy supplier" on, and to turn the camera's learning off. Each is
// refused with 403 and the reason, and nothing changes.
func TestMemberRefusedOnThePages(t *testing.T) {
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
	if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/accounts", alex,
		map[string]string{"username": "kim", "password": "marble-otter-sunrise-19", "role": "member"}); code != 201 {
		t.Fatalf("add kim: %d %v", code, out)
	}
	pc := th.pages("kim", "marble-otter-sunrise-19")

	tests := []struct {
		name     string
		page     string
		action   string
		form     url.Values
		mentions string
	}{
		{"camera recording off", "/devices/" + camera, "/devices/" + camera + "/consent",
			url.Values{"stream": {"motion"}, "purpose": {"candor:HomeSecurity"}, "recipient": {"hub"}, "on": {"0"}}, "keys"},
		{"sharing on", "/devices/" + meter, "/devices/" + meter + "/consent",
			url.Values{"stream": {"energy"}, "purpose": {"candor:Billing"}, "recipient": {"Your energy supplier"}, "on": {"1"}, "confirm": {"yes"}}, "owner of the household"},
		{"camera routing", "/devices/" + camera, "/devices/" + camera + "/consent/routing",
			url.Values{"stream": {"motion"}, "keep": {"no"}}, "keys"},
		{"camera learning off", "/machine-learning", "/machine-learning/switch",
			url.Values{"device": {camera}, "stream": {"motion"}, "purpose": {"candor:MachineLearning"}, "on": {"0"}}, "keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _ := pc.get(tt.page); code != 200 {
				t.Fatalf("member reads %s: %d", tt.page, code)
			}
			code, body := pc.post(tt.action, tt.form)
			if code != http.StatusForbidden || !strings.Contains(body, tt.mentions) {
				t.Errorf("member posts %s: %d, want 403 saying %q", tt.action, code, tt.mentions)
			}
		})
	}
	code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/consent/records?device="+camera, alex, nil)
	if code != 200 || len(out["records"].([]any)) != 0 {
		t.Errorf("records about the camera after refused forms: %d %v, want none", code, out)
	}
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/consent/records?device="+meter, alex, nil)
	if code != 200 || len(out["records"].([]any)) != 0 {
		t.Errorf("records about the meter after refused forms: %d %v, want none", code, out)
	}
}
