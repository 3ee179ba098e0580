package hub

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/history"
)

// pageClient is a browser without JavaScript: a cookie jar, forms posted
// with the CSRF token of the last page.
type pageClient struct {
	t    *testing.T
	base string
	c    *http.Client
	last string
}

func (th *testHub) pages(username, password string) *pageClient {
	th.t.Helper()
	jar, _ := cookiejar.New(nil)
	pc := &pageClient{t: th.t, base: th.URL(), c: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
	pc.get("/login")
	if code, body := pc.post("/login", url.Values{"username": {username}, "password": {password}}); code != 200 {
		th.t.Fatalf("log in as %s: %d %s", username, code, body)
	}
	return pc
}

var pageCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (pc *pageClient) do(req *http.Request) (int, string) {
	pc.t.Helper()
	resp, err := pc.c.Do(req)
	if err != nil {
		pc.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pc.last = string(b)
	return resp.StatusCode, pc.last
}

func (pc *pageClient) get(path string) (int, string) {
	pc.t.Helper()
	req, _ := http.NewRequest("GET", pc.base+path, nil)
	return pc.do(req)
}

func (pc *pageClient) post(path string, form url.Values) (int, string) {
	pc.t.Helper()
	if m := pageCSRF.FindStringSubmatch(pc.last); m != nil && form.Get("csrf") == "" {
		form.Set("csrf", html.UnescapeString(m[1]))
	}
	req, _ := http.NewRequest("POST", pc.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return pc.do(req)
}

// TestUserHeldDevicePage checks the device page of a person who holds
// their key themselves: it works without the key (switches and
// credential controls, no readings), refuses a wrong key, opens the
// readings with the right one for that view only, and the log records
// the refused view as refused, not as viewed.
func TestUserHeldDevicePage(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	tok := th.setup("alice")
	id, secret := th.personDevice(tok, "Hall", "thermostat")
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1,
			Payload: fmt.Appendf(nil, `{"celsius": %d.5, "humidity_percent": 40}`, 19+i)})
		if err != nil || resp.ReasonCode != 0 {
			t.Fatalf("publish: %v %+v", err, resp)
		}
	}
	code, out, _ := call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/keys/me", tok, map[string]any{"mode": "user-held", "generate_identity": true})
	if code != 200 {
		t.Fatalf("switch to user-held: %d %v", code, out)
	}
	ident := out["identity"].(string)

	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	pc := th.pages("alice", goodPassword)
	code, body := pc.get("/devices/" + id)
	if code != 200 {
		t.Fatalf("device page in user-held mode: %d", code)
	}
	for _, want := range []string{"Your readings are locked with your own age key", `action="/devices/` + id + `/readings/open"`,
		`action="/devices/` + id + `/consent"`, "Open my readings with my key"} {
		if !strings.Contains(body, want) {
			t.Errorf("locked device page lacks %q", want)
		}
	}
	if strings.Contains(body, "20.5") {
		t.Error("the locked page shows a reading")
	}

	tests := []struct {
		name     string
		identity string
		code     int
		want     string
	}{
		{"not a key", "hello", 422, "This is not an age secret key."},
		{"another key", other.String(), 422, "This key does not open these readings."},
		{"the person's key", ident, 200, "Opened with your own key for this view only."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc.get("/devices/" + id)
			code, body := pc.post("/devices/"+id+"/readings/open", url.Values{"identity": {tt.identity}})
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Fatalf("open with %s: %d, want %d saying %q", tt.name, code, tt.code, tt.want)
			}
			if strings.Contains(body, other.String()) || strings.Contains(body, ident) {
				t.Error("the page echoes the secret key")
			}
			if tt.code == 200 && !strings.Contains(body, "20.5") {
				t.Error("the opened page does not show the readings")
			}
		})
	}

	// The locked view is a refusal in the log, never a view.
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/log/entries", tok, nil)
	if code != 200 {
		t.Fatalf("log: %d %v", code, out)
	}
	var refused, viewed int
	for _, e := range out["entries"].([]any) {
		ev := e.(map[string]any)["event"].(map[string]any)
		switch ev["action"] {
		case history.ActionReadingsRefused:
			refused++
		case auditlog.ActionReadingsRead:
			viewed++
		}
	}
	// Refused: each of the four locked pages, the page shown again with
	// the error about text that is no key, and the wrong key; viewed:
	// only the view opened with the person's key.
	if refused != 6 || viewed != 1 {
		t.Errorf("log has %d refused and %d viewed reads, want 6 and 1", refused, viewed)
	}
}
