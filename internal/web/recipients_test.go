package web

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

const supplier = "Your energy supplier"

// forwardRig is forwarding as internal/hub wires it, over the test hub's
// own SQLite store, consent and transparency log, with a real recipient
// that checks the hub's signature on every request.
type forwardRig struct {
	fw  *forward.Forwarder
	rcv *httptest.Server

	mu  sync.Mutex
	got []json.RawMessage // payloads received, signature checked
	bad int
}

func (f *forwardRig) received() []json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]json.RawMessage(nil), f.got...)
}

// withRecipients gives the hub's pages "Where your data goes". Call it
// before the first request to those pages.
func (h *testHub) withRecipients() *forwardRig {
	h.t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		h.t.Fatal(err)
	}
	rig := &forwardRig{}
	rig.fw = forward.New(forward.Options{Store: h.st, Consent: h.consent, Key: key, Log: h.alog, Linger: 10 * time.Millisecond, Backoff: time.Millisecond})
	h.t.Cleanup(rig.fw.Close) // runs before the store closes
	pub := rig.fw.PublicKey()
	rig.rcv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rig.mu.Lock()
		defer rig.mu.Unlock()
		if err := forward.Verify(pub, r.Header.Get("Candor-Timestamp"), r.Header.Get("Candor-Signature"), body, time.Now(), time.Minute); err != nil {
			rig.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var in struct {
			Readings []struct {
				Payload json.RawMessage `json:"payload"`
			} `json:"readings"`
		}
		_ = json.Unmarshal(body, &in)
		for _, rd := range in.Readings {
			rig.got = append(rig.got, rd.Payload)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	h.t.Cleanup(rig.rcv.Close)
	h.web.cfg.Recipients = forward.NewRegistry(h.st, h.cat, rig.fw, forward.RegistryOptions{})
	return rig
}

func endpoints(t *testing.T, h *testHub, householdID string) []store.RecipientEndpoint {
	t.Helper()
	eps, err := h.st.RecipientEndpoints(context.Background(), householdID)
	if err != nil {
		t.Fatal(err)
	}
	return eps
}

func TestRecipientsPageOwnerSetsAndStops(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	rig := h.withRecipients()
	alex := h.setup("alex")
	meter, _ := h.addDevice(alex.HouseholdID, "Hall meter", "smart-meter")
	h.addDevice(alex.HouseholdID, "Kitchen", "thermostat") // names no recipient
	b := h.browser()
	b.login("alex", goodPassword)

	// The menu and the device page lead here.
	mustContain(t, "the menu", b.get("/").body, `href="/recipients"`)
	mustContain(t, "the device page", b.get("/devices/"+meter.ID).body, `<a href="/recipients">where your data goes</a>`)

	p := b.get("/recipients")
	if p.status != 200 {
		t.Fatalf("GET /recipients: %d", p.status)
	}
	text := visibleText(p.body)
	mustContain(t, "the page", text, "Where your data goes", supplier, "They decide how to use it.", "They say they use it to bill you.",
		"linked to you", "They keep it for 7 years.", "Meter reading from Hall meter, to bill you. Switched off.",
		"Nothing is sent unless both of these are true", "An owner set where it goes", "switched it on for that stream",
		"Each delivery is signed by the hub. The recipient can check it with the key at /api/v1/forward/key.",
		"Nothing goes to them. No owner has set where it goes.", "Nowhere yet.")
	mustContain(t, "the page", p.body, `href="/devices/`+meter.ID+`#consent-energy"`, `href="https://example.com/energy-supplier/privacy"`,
		`href="mailto:privacy@energy-supplier.invalid"`, `href="/api/v1/forward/key"`, `action="/recipients/set"`,
		`<input type="hidden" name="name" value="Your energy supplier">`, `aria-current="page">Where your data goes`)
	mustNotContain(t, "the page before a URL is set", p.body, `action="/recipients/remove"`)
	if s := readability.Score(text); s.Ease < readability.PlainEnglish {
		t.Errorf("the page scores %.1f, want at least %.0f:\n%s", s.Ease, readability.PlainEnglish, text)
	}

	// A URL CheckURL refuses: 422, its message next to the field, the
	// typed address kept, nothing stored.
	p = b.post("/recipients/set", url.Values{"name": {supplier}, "url": {"http://supplier.example/in"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("plain http elsewhere: %d, want 422", p.status)
	}
	mustContain(t, "the refused form", p.body, `id="recipient-1-url-error"`, `aria-invalid="true"`, `value="http://supplier.example/in"`,
		`<a href="#recipient-1-url">Plain http is allowed only to this machine`)
	if s := readability.Score(visibleText(p.body)); s.Ease < readability.PlainEnglish {
		t.Errorf("the refused page scores %.1f", s.Ease)
	}
	p = b.post("/recipients/set", url.Values{"name": {supplier}, "url": {""}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "Enter the web address where it goes.") {
		t.Errorf("no URL: %d: %s", p.status, visibleText(p.body))
	}
	p = b.post("/recipients/set", url.Values{"name": {supplier}, "url": {"ftp://supplier.example/in"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, `Scheme &#34;ftp&#34; is not https.`) {
		t.Errorf("ftp: %d: %s", p.status, visibleText(p.body))
	}
	// A name no manifest of the household's devices gives: 404.
	if p := b.post("/recipients/set", url.Values{"name": {"Nobody"}, "url": {rig.rcv.URL}}); p.status != http.StatusNotFound {
		t.Errorf("an unknown recipient: %d, want 404", p.status)
	}
	b.get("/recipients")
	if p := b.post("/recipients/set", url.Values{"name": {"The maker's research team"}, "url": {rig.rcv.URL}}); p.status != http.StatusNotFound {
		t.Errorf("a recipient only another device type names: %d, want 404", p.status)
	}
	if eps := endpoints(t, h, alex.HouseholdID); len(eps) != 0 {
		t.Fatalf("refused forms stored %+v", eps)
	}

	// A good URL is stored and shown.
	b.get("/recipients")
	p = b.post("/recipients/set", url.Values{"name": {supplier}, "url": {rig.rcv.URL}})
	if p.status != 200 || p.url != "/recipients?done=changed" {
		t.Fatalf("set: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	text = visibleText(p.body)
	mustContain(t, "after setting", text, "Data for your energy supplier now goes to "+rig.rcv.URL+".", "To "+rig.rcv.URL+". An owner set this on",
		"Sent since the hub started\n\n0 readings", "Nothing goes to them. Nobody has switched it on for any stream.", "Change where it goes")
	mustContain(t, "after setting", p.body, `value="`+rig.rcv.URL+`"`, `action="/recipients/remove"`)
	eps := endpoints(t, h, alex.HouseholdID)
	if len(eps) != 1 || eps[0].Recipient != supplier || eps[0].URL != rig.rcv.URL {
		t.Fatalf("stored %+v", eps)
	}

	// The person switches it on for the stream: readings go, signed, and
	// the page counts them.
	b.get("/devices/" + meter.ID)
	p = b.post("/devices/"+meter.ID+"/consent", url.Values{"stream": {"energy"}, "purpose": {"candor:Billing"}, "recipient": {supplier}, "on": {"1"}, "confirm": {"yes"}})
	if p.status != 200 {
		t.Fatalf("consent on: %d", p.status)
	}
	dec := h.consent.Allowed(meter.ID, "energy")
	rig.fw.Forward(context.Background(), meter.ID, "energy", time.Now(), []byte(`{"kwh_total":12}`), dec.Recipients)
	deadline := time.Now().Add(10 * time.Second)
	for len(rig.received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := rig.received(); len(got) != 1 || string(got[0]) != `{"kwh_total":12}` {
		t.Fatalf("the recipient got %s", got)
	}
	rig.mu.Lock()
	if rig.bad != 0 {
		t.Errorf("%d deliveries failed the signature check", rig.bad)
	}
	rig.mu.Unlock()
	for time.Now().Before(deadline) && !strings.Contains(visibleText(b.get("/recipients").body), "Sent since the hub started\n\n1 reading\n") {
		time.Sleep(10 * time.Millisecond)
	}
	mustContain(t, "after a delivery", visibleText(b.last.body), "Data goes to them, from the streams switched on below.",
		"Meter reading from Hall meter, to bill you. Switched on.", "Sent since the hub started\n\n1 reading\n", "Dropped, not sent\n\n0 readings")

	// Stop sending: the endpoint goes, and nothing more is sent.
	p = b.post("/recipients/remove", url.Values{"name": {supplier}})
	if p.status != 200 || p.url != "/recipients?done=changed" {
		t.Fatalf("remove: %d at %s", p.status, p.url)
	}
	mustContain(t, "after stopping", visibleText(p.body), "Nothing more goes to your energy supplier.", "Nowhere yet.")
	if eps := endpoints(t, h, alex.HouseholdID); len(eps) != 0 {
		t.Fatalf("after stopping, stored %+v", eps)
	}
	rig.fw.Forward(context.Background(), meter.ID, "energy", time.Now(), []byte(`{"kwh_total":13}`), h.consent.Allowed(meter.ID, "energy").Recipients)
	time.Sleep(100 * time.Millisecond)
	if n := len(rig.received()); n != 1 {
		t.Errorf("%d readings delivered after stopping, want still 1", n)
	}
	if p := b.post("/recipients/remove", url.Values{"name": {supplier}}); p.status != http.StatusNotFound {
		t.Errorf("stopping again: %d, want 404", p.status)
	}
}

func TestRecipientsPageIsReadOnlyForMembers(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	rig := h.withRecipients()
	alex := h.setup("alex")
	h.addDevice(alex.HouseholdID, "Hall meter", "smart-meter")
	h.addMember(alex, "kim", kimPassword, store.RoleMember)
	owner := h.browser()
	owner.login("alex", goodPassword)
	owner.get("/recipients")
	if p := owner.post("/recipients/set", url.Values{"name": {supplier}, "url": {rig.rcv.URL}}); p.status != 200 {
		t.Fatalf("owner set: %d", p.status)
	}

	kim := h.browser()
	kim.login("kim", kimPassword)
	p := kim.get("/recipients")
	if p.status != 200 {
		t.Fatalf("member GET: %d", p.status)
	}
	mustContain(t, "the member's page", visibleText(p.body), supplier, "To "+rig.rcv.URL+".", "Only an owner of your household can change where it goes.")
	mustNotContain(t, "the member's page", p.body, `action="/recipients/set"`, `action="/recipients/remove"`)
	for path, form := range map[string]url.Values{
		"/recipients/set":    {"name": {supplier}, "url": {"https://elsewhere.example/in"}},
		"/recipients/remove": {"name": {supplier}},
	} {
		kim.get("/recipients")
		if p := kim.post(path, form); p.status != http.StatusForbidden {
			t.Errorf("member POST %s: %d, want 403", path, p.status)
		}
	}
	if eps := endpoints(t, h, alex.HouseholdID); len(eps) != 1 || eps[0].URL != rig.rcv.URL {
		t.Errorf("a member changed the endpoint: %+v", eps)
	}
}

func TestRecipientsFormsNeedCSRF(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	rig := h.withRecipients()
	alex := h.setup("alex")
	h.addDevice(alex.HouseholdID, "Hall meter", "smart-meter")
	if err := h.web.cfg.Recipients.Set(context.Background(), alex.HouseholdID, supplier, rig.rcv.URL); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("alex", goodPassword)
	b.get("/recipients")
	for path, form := range map[string]url.Values{
		"/recipients/set":    {"name": {supplier}, "url": {"https://elsewhere.example/in"}},
		"/recipients/remove": {"name": {supplier}},
	} {
		for _, tok := range []string{"", "forged"} {
			form.Set(csrfField, tok)
			if p := b.post(path, form); p.status != http.StatusForbidden || !strings.Contains(p.body, "This form has expired") {
				t.Errorf("POST %s with csrf %q: %d, want 403", path, tok, p.status)
			}
		}
		form.Set(csrfField, b.csrf())
		if p := b.post(path, form, "Sec-Fetch-Site", "cross-site"); p.status != http.StatusForbidden {
			t.Errorf("cross-site POST %s: %d, want 403", path, p.status)
		}
	}
	if eps := endpoints(t, h, alex.HouseholdID); len(eps) != 1 || eps[0].URL != rig.rcv.URL {
		t.Errorf("forged forms changed the endpoint: %+v", eps)
	}
}

func TestRecipientsStayInTheirHousehold(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	rig := h.withRecipients()
	alex := h.setup("alex")
	h.addDevice(alex.HouseholdID, "Hall meter", "smart-meter")
	ctx := context.Background()
	_, sam, err := h.id.CreateHousehold(ctx, "Flat 2", identity.NewAccount{Username: "sam", Password: "marble-otter-sunrise-19"})
	if err != nil {
		t.Fatal(err)
	}
	_, jo, err := h.id.CreateHousehold(ctx, "Flat 3", identity.NewAccount{Username: "jo", Password: "amber-falcon-meadow-52"})
	if err != nil {
		t.Fatal(err)
	}
	samMeter, _ := h.addDevice(sam.HouseholdID, "Sams meter", "smart-meter")
	h.addDevice(jo.HouseholdID, "Jos thermostat", "thermostat")
	a := h.browser()
	a.login("alex", goodPassword)
	a.get("/recipients")
	if p := a.post("/recipients/set", url.Values{"name": {supplier}, "url": {rig.rcv.URL}}); p.status != 200 {
		t.Fatalf("alex set: %d", p.status)
	}

	// Sam's household has a meter too: the same recipient, but none of
	// Alex's address, counts or devices.
	s := h.browser()
	s.login("sam", "marble-otter-sunrise-19")
	p := s.get("/recipients")
	mustContain(t, "sam's page", visibleText(p.body), supplier, "Meter reading from Sams meter", "Nowhere yet.")
	mustContain(t, "sam's page", p.body, `href="/devices/`+samMeter.ID+`#consent-energy"`)
	mustNotContain(t, "sam's page", p.body, rig.rcv.URL, "Hall meter", `action="/recipients/remove"`)
	// Stopping is for the household's own endpoint: Sam has none.
	if p := s.post("/recipients/remove", url.Values{"name": {supplier}}); p.status != http.StatusNotFound {
		t.Errorf("sam stops alex's endpoint: %d, want 404", p.status)
	}
	s.get("/recipients")
	if p := s.post("/recipients/set", url.Values{"name": {supplier}, "url": {"https://sams-supplier.example/in"}}); p.status != 200 {
		t.Fatalf("sam sets his own: %d", p.status)
	}
	if eps := endpoints(t, h, alex.HouseholdID); len(eps) != 1 || eps[0].URL != rig.rcv.URL {
		t.Errorf("alex's endpoint after sam's changes: %+v", eps)
	}
	mustNotContain(t, "alex's page", a.get("/recipients").body, "sams-supplier.example", "Sams meter")

	// Jo's household names no recipient at all, so the name is unknown.
	j := h.browser()
	j.login("jo", "amber-falcon-meadow-52")
	p = j.get("/recipients")
	mustContain(t, "jo's page", visibleText(p.body), "None of your devices sends data to anyone outside this hub.")
	mustNotContain(t, "jo's page", p.body, supplier, rig.rcv.URL, "sams-supplier.example")
	if p := j.post("/recipients/set", url.Values{"name": {supplier}, "url": {"https://jo.example/in"}}); p.status != http.StatusNotFound {
		t.Errorf("jo sets a recipient his devices do not name: %d, want 404", p.status)
	}
	if eps := endpoints(t, h, jo.HouseholdID); len(eps) != 0 {
		t.Errorf("jo's household has %+v", eps)
	}
}

func TestRecipientsPageWithoutForwarding(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	h.addDevice(alex.HouseholdID, "Hall meter", "smart-meter")
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/recipients")
	if p.status != 200 || !strings.Contains(visibleText(p.body), "This hub does not send data to anyone outside it.") {
		t.Errorf("without forwarding: %d: %s", p.status, visibleText(p.body))
	}
	if p := b.post("/recipients/set", url.Values{"name": {supplier}, "url": {"https://supplier.example/in"}}); p.status != http.StatusNotFound {
		t.Errorf("POST without forwarding: %d, want 404", p.status)
	}
}

// TestBrowserRecipientsPage checks the page in Chromium with axe-core: as
// it first looks, with a refused address, with an address set, and as a
// member sees it.
func TestBrowserRecipientsPage(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h := startHub(t)
	rig := h.withRecipients()
	alex := h.setup("alex")
	h.addDevice(alex.HouseholdID, "Hall meter", "smart-meter")
	h.addDevice(alex.HouseholdID, "Wrist", "wearable")
	h.addMember(alex, "kim", kimPassword, store.RoleMember)
	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	login := func(user, password string) {
		tb.open("/login")
		tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), password))
		tb.submit("log in", "main form button[type=submit]")
	}
	login("alex", goodPassword)
	tb.open("/recipients")
	tb.checkA11y("where your data goes")
	tb.checkFocusVisible("where your data goes")

	tb.step("type a refused address", chromedp.SendKeys(chromedp.ID("recipient-1-url"), "http://supplier.example/in"))
	tb.submit("save the address", "#recipient-1-save")
	if msg := eval[string](tb, `document.getElementById('recipient-1-url-error').textContent`); !strings.Contains(msg, "Plain http is allowed only to this machine") {
		t.Errorf("the refused address says %q", msg)
	}
	tb.checkA11y("where your data goes, refused address")

	tb.open("/recipients")
	tb.step("type the address", chromedp.SendKeys(chromedp.ID("recipient-1-url"), rig.rcv.URL))
	tb.submit("save the address", "#recipient-1-save")
	if p := tb.path(); p != "/recipients?done=changed" {
		t.Fatalf("saving went to %s", p)
	}
	tb.checkA11y("where your data goes, address set")

	tb.submit("log out", "nav form button[type=submit]")
	login("kim", kimPassword)
	tb.open("/recipients")
	tb.checkA11y("where your data goes, member")
	tb.checkProblems("end")
}

// TestHomeWarnsWhenDeliveriesFail shows a warning on the home page when
// readings people agreed to send did not reach a recipient.
func TestHomeWarnsWhenDeliveriesFail(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	rig := h.withRecipients()
	alex := h.setup("alex")
	meter, _ := h.addDevice(alex.HouseholdID, "Hall meter", "smart-meter")
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	b := h.browser()
	b.login("alex", goodPassword)
	mustNotContain(t, "home before any delivery", visibleText(b.get("/").body), "could not send")

	if p := b.post("/recipients/set", url.Values{"name": {supplier}, "url": {down.URL}}); p.status != 200 {
		t.Fatalf("set the endpoint: %d", p.status)
	}
	if p := b.post("/devices/"+meter.ID+"/consent", url.Values{"stream": {"energy"}, "purpose": {"candor:Billing"}, "recipient": {supplier}, "on": {"1"}, "confirm": {"yes"}}); p.status != 200 {
		t.Fatalf("consent on: %d", p.status)
	}
	rig.fw.Forward(context.Background(), meter.ID, "energy", time.Now(), []byte(`{"kwh_total":12}`), h.consent.Allowed(meter.ID, "energy").Recipients)
	deadline := time.Now().Add(10 * time.Second)
	for {
		text := visibleText(b.get("/").body)
		if strings.Contains(text, "The hub could not send everything to your energy supplier: 1 reading was not sent.") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no warning on the home page:\n%s", text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
