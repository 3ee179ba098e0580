package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

func TestCSRFRefused(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	acc := h.setup("alex")
	b := h.browser()
	b.login("alex", goodPassword)
	b.get("/add?type=thermostat")
	token := b.csrf()
	if token == "" {
		t.Fatal("the add form has no CSRF token")
	}
	form := url.Values{"type": {"thermostat"}, "name": {"Kitchen"}}

	cases := []struct {
		name    string
		token   string
		headers []string
	}{
		{"cross-site fetch metadata", token, []string{"Sec-Fetch-Site", "cross-site"}},
		{"other origin", token, []string{"Origin", "https://evil.example"}},
		{"no token", "", nil},
		{"wrong token", "forged", nil},
	}
	for _, tc := range cases {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		f.Set(csrfField, tc.token)
		p := b.post("/add", f, tc.headers...)
		if p.status != http.StatusForbidden {
			t.Errorf("%s: POST /add answered %d, want 403", tc.name, p.status)
		}
	}
	if list, _ := h.st.Devices(context.Background(), acc.HouseholdID); len(list) != 0 {
		t.Fatalf("a refused POST added %d devices", len(list))
	}
	// A token of another session does not work either.
	other := h.browser()
	other.login("alex", goodPassword)
	other.get("/add?type=thermostat")
	f := url.Values{"type": {"thermostat"}, "name": {"Kitchen"}, csrfField: {other.csrf()}}
	if p := b.post("/add", f); p.status != http.StatusForbidden {
		t.Errorf("another session's token: %d, want 403", p.status)
	}
	// Login and setup forms are bound to the pre-login cookie.
	anon := h.browser()
	p := anon.post("/login", url.Values{"username": {"alex"}, "password": {goodPassword}, csrfField: {"x"}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "cookies") {
		t.Errorf("login without the pre-login cookie: %d %s", p.status, visibleText(p.body))
	}
	anon.get("/login")
	p = anon.post("/login", url.Values{"username": {"alex"}, "password": {goodPassword}, csrfField: {"forged"}})
	if p.status != http.StatusForbidden {
		t.Errorf("login with a forged token: %d, want 403", p.status)
	}
	// The genuine form works.
	b.get("/add?type=thermostat")
	if p := b.post("/add", form); p.status != 200 || !strings.HasSuffix(p.url, "/credential") {
		t.Errorf("genuine POST /add: %d at %s", p.status, p.url)
	}
}

func TestSecurityHeadersAndNoInlineCode(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	acc := h.setup("alex")
	d, _ := h.addDevice(acc.HouseholdID, "Kitchen", "thermostat")
	if err := h.submit(d.ID, "temperature", `{"celsius": 20.5}`); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	if p := b.get("/login"); p.status != 200 {
		t.Fatalf("login page: %d", p.status)
	}
	checkPage := func(p page2) {
		t.Helper()
		csp := p.header.Get("Content-Security-Policy")
		if csp == "" || !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
			strings.Contains(csp, "unsafe-eval") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", p.url, csp)
		}
		if got := p.header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", p.url, got)
		}
		if got := p.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", p.url, got)
		}
		if strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
			if got := p.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", p.url, got)
			}
			for _, m := range scriptRe.FindAllStringSubmatch(p.body, -1) {
				if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
					t.Errorf("%s: inline script %q", p.url, m[0])
				}
			}
			if m := inlineRe.FindString(p.body); m != "" {
				t.Errorf("%s: inline style or handler: %q", p.url, m)
			}
			if !strings.Contains(p.body, `<html lang="en">`) {
				t.Errorf("%s: no lang=\"en\"", p.url)
			}
		}
	}
	checkPage(b.last)
	b.login("alex", goodPassword)
	for _, path := range []string{"/", "/add", "/add?type=thermostat", "/devices/" + d.ID, "/devices/" + d.ID + "/rotate",
		"/devices/" + d.ID + "/revoke", "/devices/" + d.ID + "/credential", "/security", "/learn", "/nope"} {
		checkPage(b.get(path))
	}
	for _, f := range []string{"app.css", "app.js", "icon.svg"} {
		p := b.get(h.web.assetURL(f))
		if p.status != 200 {
			t.Errorf("static %s: %d", f, p.status)
		}
		checkPage(p)
	}
}

func TestHouseholdsSeeOnlyTheirOwn(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	ctx := context.Background()
	alex := h.setup("alex")
	kitchen, _ := h.addDevice(alex.HouseholdID, "Kitchen thermostat", "thermostat")
	_, sam, err := h.id.CreateHousehold(ctx, "Flat 2", identity.NewAccount{Username: "sam", Password: "marble-otter-sunrise-19"})
	if err != nil {
		t.Fatal(err)
	}
	door, _ := h.addDevice(sam.HouseholdID, "Front door", "door-sensor")
	if err := h.submit(door.ID, "contact", `{"open": true}`); err != nil {
		t.Fatal(err)
	}

	ba, bs := h.browser(), h.browser()
	ba.login("alex", goodPassword)
	bs.login("sam", "marble-otter-sunrise-19")

	pa, ps := ba.get("/"), bs.get("/")
	mustContain(t, "alex's home", pa.body, "Kitchen thermostat", kitchen.ID)
	mustNotContain(t, "alex's home", pa.body, "Front door", door.ID)
	mustContain(t, "sam's home", ps.body, "Front door", door.ID)
	mustNotContain(t, "sam's home", ps.body, "Kitchen thermostat", kitchen.ID)

	// A direct URL to another household's device is a plain 404, for
	// every page and action, and changes nothing.
	for _, path := range []string{"", "/credential", "/rotate", "/revoke"} {
		if p := ba.get("/devices/" + door.ID + path); p.status != http.StatusNotFound {
			t.Errorf("alex GET sam's device%s: %d, want 404", path, p.status)
		}
		if p := bs.get("/devices/" + kitchen.ID + path); p.status != http.StatusNotFound {
			t.Errorf("sam GET alex's device%s: %d, want 404", path, p.status)
		}
	}
	ba.get("/")
	for _, action := range []string{"/rotate", "/revoke"} {
		if p := ba.post("/devices/"+door.ID+action, nil); p.status != http.StatusNotFound {
			t.Errorf("alex POST sam's device%s: %d, want 404", action, p.status)
		}
	}
	if d, _ := h.st.Device(ctx, door.ID); d.Revoked() || !d.CredentialSetAt.Equal(door.CredentialSetAt) {
		t.Error("another household changed sam's device")
	}
	notFound := ba.get("/devices/" + door.ID)
	unknown := ba.get("/devices/dev_doesnotexist")
	if visibleText(notFound.body) != visibleText(unknown.body) {
		t.Error("another household's device and a missing one answer differently, so ids can be probed")
	}

	// A member reads the household's devices but changes nothing.
	if _, err := h.id.CreateAccount(ctx, identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim", Password: "quiet-harbour-lantern-7", Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	bk := h.browser()
	bk.login("kim", "quiet-harbour-lantern-7")
	p := bk.get("/")
	mustContain(t, "member's home", p.body, "Kitchen thermostat")
	mustNotContain(t, "member's home", p.body, `id="add-device"`, `href="/add"`)
	p = bk.get("/devices/" + kitchen.ID)
	if p.status != 200 {
		t.Fatalf("member reads a household device: %d", p.status)
	}
	mustContain(t, "member's device page", p.body, "Only an")
	mustNotContain(t, "member's device page", p.body, "/rotate", "/revoke")
	for _, path := range []string{"/add", "/devices/" + kitchen.ID + "/rotate", "/devices/" + kitchen.ID + "/revoke"} {
		if p := bk.get(path); p.status != http.StatusForbidden {
			t.Errorf("member GET %s: %d, want 403", path, p.status)
		}
	}
	bk.get("/")
	for _, path := range []string{"/devices/" + kitchen.ID + "/rotate", "/devices/" + kitchen.ID + "/revoke"} {
		if p := bk.post(path, nil); p.status != http.StatusForbidden {
			t.Errorf("member POST %s: %d, want 403", path, p.status)
		}
	}
	if p := bk.post("/add", url.Values{"type": {"thermostat"}, "name": {"x"}}); p.status != http.StatusForbidden {
		t.Errorf("member adds a device: %d, want 403", p.status)
	}
	if list, _ := h.st.Devices(ctx, alex.HouseholdID); len(list) != 1 {
		t.Errorf("household has %d devices after a member's attempts", len(list))
	}
}

var (
	scriptRe = regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`)
	inlineRe = regexp.MustCompile(`(?i)\sstyle=|<style|\son[a-z]+=|javascript:`)
)

var secretRe = regexp.MustCompile(`<code id="secret" class="secret">([^<]+)</code>`)

func TestAddDeviceShowsCredentialOnce(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.setup("alex")
	b := h.browser()
	b.login("alex", goodPassword)

	p := b.get("/")
	mustContain(t, "empty home", p.body, "There are no devices yet.")
	p = b.get("/add")
	for _, typ := range h.cat.Types() {
		mustContain(t, "type choice", p.body, `value="`+typ+`"`)
	}
	mustContain(t, "type choice", p.body, "<fieldset>", "<legend>What kind of device is it?</legend>")

	// The label comes before anything is added.
	p = b.get("/add?type=thermostat")
	mustContain(t, "thermostat label", p.body,
		"Add a device: Room thermostat", "What it senses", "Room temperature and humidity", "Where your data goes",
		"It stays on this hub.", "Up to 1 year on this hub.", "Can it snoop on you?", "Until 31 December 2031.", `name="name"`)
	if p := b.get("/add?type=no-such-type"); p.status != 200 || !strings.Contains(p.body, "Choose one of the types below.") {
		t.Errorf("unknown type: %d %s", p.status, visibleText(p.body))
	}

	b.get("/add?type=thermostat")
	p = b.post("/add", url.Values{"type": {"thermostat"}, "name": {"   "}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "The name must not be empty.") {
		t.Errorf("empty name: %d %s", p.status, visibleText(p.body))
	}
	p = b.post("/add", url.Values{"type": {"thermostat"}, "name": {"Living room <b>"}})
	if p.status != 200 || !strings.HasSuffix(p.url, "/credential") {
		t.Fatalf("add: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	deviceID := strings.TrimSuffix(strings.TrimPrefix(p.url, "/devices/"), "/credential")
	m := secretRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("credential page shows no secret: %s", visibleText(p.body))
	}
	secret := m[1]
	mustContain(t, "credential page", p.body, deviceID, "only time", "mosquitto_pub -h 127.0.0.1 -p 1883 -V mqttv5 -q 1 -i "+deviceID,
		"-t candor/"+deviceID+"/", `data-copy="secret"`, "Living room &lt;b&gt;")
	mustNotContain(t, "credential page", p.body, "Living room <b>")
	if _, err := h.id.AuthenticateDevice(context.Background(), identity.Origin{}, deviceID, secret); err != nil {
		t.Errorf("the secret shown does not authenticate the device: %v", err)
	}

	// Reloading does not show it again, nor does any other page.
	p = b.get("/devices/" + deviceID + "/credential")
	if strings.Contains(p.body, secret) || !strings.Contains(p.body, "This credential was shown once") {
		t.Errorf("reload shows the secret again or says nothing: %s", visibleText(p.body))
	}
	for _, path := range []string{"/", "/devices/" + deviceID} {
		if strings.Contains(b.get(path).body, secret) {
			t.Errorf("%s shows the secret", path)
		}
	}

	// Rotating makes a new one, shown once too; the old one dies.
	b.get("/devices/" + deviceID + "/rotate")
	p = b.post("/devices/"+deviceID+"/rotate", nil)
	m = secretRe.FindStringSubmatch(p.body)
	if m == nil || m[1] == secret {
		t.Fatalf("rotate shows no new secret: %s", visibleText(p.body))
	}
	if _, err := h.id.AuthenticateDevice(context.Background(), identity.Origin{}, deviceID, secret); err == nil {
		t.Error("the old secret still works after rotation")
	}
	// Revoking: confirmation page, then the device page says so.
	b.get("/devices/" + deviceID + "/revoke")
	p = b.post("/devices/"+deviceID+"/revoke", nil)
	mustContain(t, "device after revoke", p.body, "The device&#39;s credential is revoked.", "Revoked on")
	if d, _ := h.st.Device(context.Background(), deviceID); !d.Revoked() {
		t.Error("device not revoked")
	}
}

func TestDevicePageShowsLabelReadingsAndViolations(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	acc := h.setup("alex")
	quiet, _ := h.addDevice(acc.HouseholdID, "Attic", "thermostat")
	d, _ := h.addDevice(acc.HouseholdID, "Zed room", "thermostat")
	for _, c := range []string{"19.5", "20.25", "21.5"} {
		if err := h.submit(d.ID, "temperature", `{"celsius": `+c+`, "humidity_percent": 40}`); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.submit(d.ID, "heating", `{"on": true}`); err != nil {
		t.Fatal(err)
	}
	// Data the label does not allow is refused and listed, never shown.
	if err := h.submit(d.ID, "temperature", `{"celsius": 20, "gps_position": 52.123456}`); err == nil {
		t.Fatal("an undeclared field was accepted")
	}
	if err := h.submit(d.ID, "microphone", `{"level": 77.777}`); err == nil {
		t.Fatal("an undeclared stream was accepted")
	}

	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/devices/" + d.ID)
	if p.status != 200 {
		t.Fatalf("device page: %d", p.status)
	}
	// The sections come in the order of Mozilla's Privacy Not Included.
	order := []string{"Can it snoop on me?", "What does it know?", "Who gets it?", "Can I control it?",
		"Its label", "In short", "In detail", "See my data", "Refused data", "Who is responsible"}
	at := -1
	start := strings.Index(p.body, `id="snoop-title"`) - 10 // after the in-page menu
	for _, s := range order {
		i := strings.Index(p.body[max(start, 0):], ">"+s+"<")
		if i < 0 {
			t.Errorf("device page lacks the section %q", s)
			continue
		}
		if i < at {
			t.Errorf("section %q comes too early", s)
		}
		at = i
	}
	mustContain(t, "device page", p.body,
		"Can tell when someone is home.", // snoop risk
		"Room temperature and humidity",  // streams
		"No", "recipient",                // who gets it: nobody
		"Your choices for each stream", "Turn off", "What happens now:", // consent switches
		"Make a new credential", "Revoke the credential",
		"21.5", "20.25", "<td>yes</td>", // readings in the table
		"<svg", "<polyline", `role="img"`, "3 readings from", // chart
		"gps_position", "A field its label does not list", // violation
		"microphone", "A kind of data its label does not list",
		"security@candor.invalid", `href="mailto:security@candor.invalid"`, // who is responsible
	)
	mustNotContain(t, "device page", p.body, "52.123456", "77.777", `type="checkbox"`)

	// Home: the device with warnings comes first, whatever its name.
	p = b.get("/")
	zed, attic := strings.Index(p.body, "Zed room"), strings.Index(p.body, "Attic")
	if zed < 0 || attic < 0 || zed > attic {
		t.Errorf("the device with warnings is not listed first (Zed at %d, Attic at %d)", zed, attic)
	}
	mustContain(t, "home", p.body, "1 device needs your attention", "The hub refused it twice.",
		"Senses heating state, set temperature and room temperature and humidity. Data stays on this hub. Kept up to 1 year. Security updates until 31 December 2031.")
	_ = quiet
}

func TestLearnPageExplainsEveryLinkedTerm(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	acc := h.setup("alex")
	d, _ := h.addDevice(acc.HouseholdID, "Kitchen", "smart-meter")
	b := h.browser()
	learn := b.get("/learn")
	if learn.status != 200 {
		t.Fatalf("learn page (open to all): %d", learn.status)
	}
	for _, term := range []string{"data-manifest", "stream", "purpose", "recipient", "de-identified", "kept-for",
		"security-updates", "credential", "hub", "consent", "crypto-shredding", "transparency-log",
		"receipt", "checkpoint", "export", "proof", "verifier-key"} {
		mustContain(t, "learn page", learn.body, `id="`+term+`"`)
	}
	b.login("alex", goodPassword)
	linkRe := regexp.MustCompile(`href="/learn#([a-z-]+)"`)
	seen := map[string]bool{}
	for _, path := range []string{"/", "/add", "/add?type=smart-meter", "/devices/" + d.ID, "/devices/" + d.ID + "/credential", "/security", "/my-data", "/log"} {
		p := b.get(path)
		for _, m := range linkRe.FindAllStringSubmatch(p.body, -1) {
			seen[m[1]] = true
			if !strings.Contains(learn.body, `id="`+m[1]+`"`) {
				t.Errorf("%s links to the glossary entry %q, which the learn page lacks", path, m[1])
			}
		}
	}
	if len(seen) < 10 {
		t.Errorf("pages link only %d glossary terms: %v", len(seen), seen)
	}
}
