package hub

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"
)

const goodPassword = "tangerine-harbour-quietly-88"

// setup creates the first account and returns a bearer token for it.
func (th *testHub) setup(username string) string {
	th.t.Helper()
	code, out, _ := call(th.t, http.DefaultClient, "POST", th.URL()+"/api/v1/setup", "",
		map[string]string{"setup_token": th.SetupToken(), "username": username, "password": goodPassword})
	if code != http.StatusCreated {
		th.t.Fatalf("setup: %d %v", code, out)
	}
	return th.token(username, goodPassword)
}

func (th *testHub) token(username, password string) string {
	th.t.Helper()
	code, out, _ := call(th.t, http.DefaultClient, "POST", th.URL()+"/api/v1/tokens", "",
		map[string]string{"username": username, "password": password, "name": "test"})
	if code != http.StatusCreated {
		th.t.Fatalf("token for %s: %d %v", username, code, out)
	}
	return out["token"].(string)
}

func TestSetupTokenIsSingleUse(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	url := th.URL() + "/api/v1/setup"
	code, out, _ := call(t, http.DefaultClient, "GET", url, "", nil)
	if code != 200 || out["needed"] != true {
		t.Fatalf("GET setup on a fresh hub: %d %v", code, out)
	}
	tok := th.SetupToken()
	tests := []struct {
		name string
		body map[string]string
		code int
		want string
	}{
		{"wrong token", map[string]string{"setup_token": "setup-wrong", "username": "alex", "password": goodPassword}, 401, ""},
		{"no token", map[string]string{"username": "alex", "password": goodPassword}, 400, "setup_token"},
		{"default password", map[string]string{"setup_token": tok, "username": "admin", "password": "admin"}, 422, "password"},
		{"password is username", map[string]string{"setup_token": tok, "username": "alexandria", "password": "alexandria"}, 422, "user name"},
		{"short password", map[string]string{"setup_token": tok, "username": "alex", "password": "Tr0ub4dor&3"}, 422, "12"},
		{"bad username", map[string]string{"setup_token": tok, "username": "a b", "password": goodPassword}, 422, "username"},
	}
	for _, tc := range tests {
		code, out, _ := call(t, http.DefaultClient, "POST", url, "", tc.body)
		if code != tc.code || !strings.Contains(out["detail"].(string), tc.want) {
			t.Errorf("%s: %d %v; want %d mentioning %q", tc.name, code, out["detail"], tc.code, tc.want)
		}
	}
	code, out, _ = call(t, http.DefaultClient, "POST", url, "", map[string]string{"setup_token": tok, "username": "alex", "password": goodPassword})
	if code != 201 {
		t.Fatalf("setup with a valid token: %d %v", code, out)
	}
	acc := out["account"].(map[string]any)
	if acc["role"] != "owner" || acc["admin"] != true {
		t.Errorf("first account is not owner and admin: %v", acc)
	}
	code, _, _ = call(t, http.DefaultClient, "POST", url, "", map[string]string{"setup_token": tok, "username": "sam", "password": goodPassword})
	if code != http.StatusConflict {
		t.Errorf("second use of the setup token: %d, want 409", code)
	}
	code, out, _ = call(t, http.DefaultClient, "GET", url, "", nil)
	if code != 200 || out["needed"] != false {
		t.Errorf("GET setup after setup: %d %v", code, out)
	}
}

func TestLoginSessionsAndTokens(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	bearer := th.setup("alex")

	// Wrong password and unknown user look the same.
	for _, u := range []string{"alex", "nobody"} {
		code, _, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/login", "", map[string]string{"username": u, "password": "wrong-wrong-wrong-wrong"})
		if code != 401 {
			t.Errorf("login as %s with a wrong password: %d", u, code)
		}
	}
	// A browser login sets a hardened cookie and works for the API.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	code, _, hdr := call(t, browser, "POST", th.URL()+"/api/v1/login", "", map[string]string{"username": "alex", "password": goodPassword})
	if code != 200 {
		t.Fatalf("login: %d", code)
	}
	ck := hdr.Get("Set-Cookie")
	for _, attr := range []string{"candor_session=", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(ck, attr) {
			t.Errorf("session cookie lacks %s: %s", attr, ck)
		}
	}
	code, out, _ := call(t, browser, "GET", th.URL()+"/api/v1/me", "", nil)
	if code != 200 || out["account"].(map[string]any)["username"] != "alex" {
		t.Fatalf("me with cookie: %d %v", code, out)
	}
	// A cross-site form post with the cookie is refused (CSRF).
	req, _ := http.NewRequest("POST", th.URL()+"/api/v1/devices", strings.NewReader(`{"name":"x","type":"thermostat"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST with cookie: %d, want 403", resp.StatusCode)
	}

	// Sessions are listed and revocable; a revoked session stops working.
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/sessions", bearer, nil)
	if code != 200 {
		t.Fatalf("sessions: %d %v", code, out)
	}
	list := out["sessions"].([]any)
	if len(list) != 2 {
		t.Fatalf("want 2 sessions (token + browser), got %d", len(list))
	}
	var browserID string
	for _, s := range list {
		m := s.(map[string]any)
		if m["kind"] == "browser" {
			browserID = m["id"].(string)
		}
		if _, leaked := m["token_hash"]; leaked {
			t.Error("session list exposes token hashes")
		}
	}
	code, _, _ = call(t, http.DefaultClient, "DELETE", th.URL()+"/api/v1/sessions/"+browserID, bearer, nil)
	if code != http.StatusNoContent {
		t.Fatalf("revoke session: %d", code)
	}
	code, _, _ = call(t, browser, "GET", th.URL()+"/api/v1/me", "", nil)
	if code != 401 {
		t.Errorf("revoked browser session still works: %d", code)
	}
	// Garbage bearer tokens are refused.
	code, _, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/me", "cndt_notarealtoken", nil)
	if code != 401 {
		t.Errorf("made-up token: %d", code)
	}
}

func TestHouseholdsAreIsolated(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	admin := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", admin, map[string]string{"name": "Kitchen", "type": "thermostat"})
	if code != 201 {
		t.Fatalf("owner adds device: %d %v", code, out)
	}
	alexDevice := out["device"].(map[string]any)["id"].(string)

	// The admin creates a second household with its own owner.
	code, out, _ = call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/households", admin,
		map[string]any{"name": "Flat 2", "owner": map[string]string{"username": "sam", "password": "violet-canyon-drifting-41"}})
	if code != 201 {
		t.Fatalf("create household: %d %v", code, out)
	}
	sam := th.token("sam", "violet-canyon-drifting-41")
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices", sam, nil)
	if code != 200 || len(out["devices"].([]any)) != 0 {
		t.Errorf("sam sees devices of another household: %v", out)
	}
	for _, path := range []string{"/api/v1/devices/" + alexDevice, "/api/v1/devices/" + alexDevice + "/readings"} {
		if code, _, _ := call(t, http.DefaultClient, "GET", th.URL()+path, sam, nil); code != 404 {
			t.Errorf("sam GET %s: %d, want 404", path, code)
		}
	}
	if code, _, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices/"+alexDevice+"/revoke", sam, nil); code != 404 {
		t.Errorf("sam revokes alex's device: %d, want 404", code)
	}
	if code, _, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/households", sam,
		map[string]any{"name": "x", "owner": map[string]string{"username": "y", "password": goodPassword}}); code != 403 {
		t.Errorf("non-admin creates a household: %d, want 403", code)
	}

	// A member sees the household's devices but cannot change them.
	code, out, _ = call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/accounts", admin,
		map[string]string{"username": "kim", "password": "marble-otter-sunrise-19", "role": "member"})
	if code != 201 {
		t.Fatalf("add member: %d %v", code, out)
	}
	kim := th.token("kim", "marble-otter-sunrise-19")
	if code, _, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+alexDevice, kim, nil); code != 200 {
		t.Errorf("member reads household device: %d", code)
	}
	if code, _, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices/"+alexDevice+"/rotate", kim, nil); code != 403 {
		t.Errorf("member rotates a device: %d, want 403", code)
	}
	if code, _, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", kim, map[string]string{"name": "x", "type": "thermostat"}); code != 403 {
		t.Errorf("member adds a device: %d, want 403", code)
	}
}

func TestMalformedAPIInputIsProblemJSON(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	admin := th.setup("alex")
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"syntax", "POST", "/api/v1/devices", `{"name": "x",`, 400, "body"},
		{"unknown field", "POST", "/api/v1/devices", `{"name":"x","type":"thermostat","colour":"red"}`, 400, "colour"},
		{"wrong type", "POST", "/api/v1/devices", `{"name":1,"type":"thermostat"}`, 400, "name"},
		{"trailing data", "POST", "/api/v1/devices", `{"name":"x","type":"thermostat"} {}`, 400, "after"},
		{"empty", "POST", "/api/v1/devices", ``, 400, "empty"},
		{"bad type", "POST", "/api/v1/devices", `{"name":"x","type":"Thermo Stat"}`, 422, "type"},
		{"empty name", "POST", "/api/v1/devices", `{"name":"  ","type":"thermostat"}`, 422, "name"},
		{"bad time", "GET", "/api/v1/devices/dev_x/readings?since=yesterday", ``, 404, ""},
		{"unknown route", "GET", "/api/v1/nope", ``, 404, "endpoint"},
	}
	for _, tc := range tests {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		code, out, _ := call(t, http.DefaultClient, tc.method, th.URL()+tc.path, admin, body)
		detail, _ := out["detail"].(string)
		if code != tc.code || !strings.Contains(detail, tc.want) {
			t.Errorf("%s: %d %q; want %d mentioning %q", tc.name, code, detail, tc.code, tc.want)
		}
		if out["type"] == nil || out["status"] == nil {
			t.Errorf("%s: not a problem document: %v", tc.name, out)
		}
	}
	code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices", admin, nil)
	if code != 200 || len(out["devices"].([]any)) != 0 {
		t.Errorf("bad requests left devices behind: %v", out)
	}
	id, _ := th.addDevice("Kitchen", "thermostat")
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+id+"/readings?since=yesterday", admin, nil)
	if code != 400 || !strings.Contains(out["detail"].(string), "since") {
		t.Errorf("bad since: %d %v", code, out)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Meter", "smart-meter")
	req, _ := http.NewRequest("POST", th.URL()+"/api/v1/ingest/power", strings.NewReader(`{"watts": 9876}`))
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, p := range []string{"/livez", "/readyz"} {
		if code, _, _ := call(t, http.DefaultClient, "GET", th.URL()+p, "", nil); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	resp, err = th.local.Get("http://candor/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	// The SQLite store registers its merge metrics with the hub.
	for _, name := range []string{"candor_readings_accepted_total 1", "candor_store_batch_seconds", "candor_mqtt_connected_clients",
		"candor_store_merge_step_seconds", "candor_store_merged_readings_total", "candor_store_staged_readings"} {
		if !strings.Contains(m, name) {
			t.Errorf("metrics lack %q", name)
		}
	}
	// A series' name and labels must not carry the payload or the device
	// id, nor a value be the payload's number (any value may contain its
	// digits: a byte count, a sum of seconds).
	for _, line := range strings.Split(m, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		series, value := line, ""
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			series, value = line[:i], line[i+1:]
		}
		if strings.Contains(series, "9876") || strings.Contains(series, id) || value == "9876" {
			t.Errorf("metrics carry payload contents or device ids: %s", line)
		}
	}
	resp, err = http.Get(th.URL() + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"openapi"`) {
		t.Errorf("openapi.json: %d %.80s", resp.StatusCode, b)
	}
}

func TestDemoDevicesPublish(t *testing.T) {
	th := startHub(t, func(c *configT) { c.Demo = true; c.DemoSpeed = 20 })
	code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices", "", nil)
	if code != 200 {
		t.Fatalf("devices: %d", code)
	}
	devs := out["devices"].([]any)
	if len(devs) < 5 {
		t.Fatalf("demo created %d devices, want at least 5", len(devs))
	}
	for _, d := range devs {
		id := d.(map[string]any)["id"].(string)
		waitFor(t, "readings from demo device "+id, 20*time.Second, func() bool { return len(th.readings(id, "limit=1")) > 0 })
	}
	// The demo survives a restart with the same devices (rotated secrets).
	th.close()
	th2 := startHubIn(t, th.dir, func(c *configT) { c.Demo = true; c.DemoSpeed = 20 })
	_, out2, _ := call(t, th2.local, "GET", "http://candor/api/v1/devices", "", nil)
	if n := len(out2["devices"].([]any)); n != len(devs) {
		t.Errorf("after restart the demo has %d devices, before %d", n, len(devs))
	}
	first := devs[0].(map[string]any)["id"].(string)
	before := len(th2.readings(first, "limit=10000"))
	waitFor(t, "demo publishing again after restart", 20*time.Second, func() bool {
		return len(th2.readings(first, "limit=10000")) > before
	})
}
