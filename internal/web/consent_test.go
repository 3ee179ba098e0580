package web

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// toggleForm finds the consent form of one use on a device page and
// returns its fields, as the browser would send them.
func toggleForm(t *testing.T, body, stream, purpose string) url.Values {
	t.Helper()
	return useForm(t, body, stream, purpose, "")
}

// useForm is toggleForm for the use of one recipient ("" for the first
// use of the purpose, whoever its recipient).
func useForm(t *testing.T, body, stream, purpose, recipient string) url.Values {
	t.Helper()
	re := regexp.MustCompile(`(?s)<form method="post" action="/devices/[^"]+/consent">(.*?)</form>`)
	field := regexp.MustCompile(`name="([a-z]+)" value="([^"]*)"`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		f := url.Values{}
		for _, fm := range field.FindAllStringSubmatch(m[1], -1) {
			f.Set(fm[1], html.UnescapeString(fm[2]))
		}
		if f.Get("stream") == stream && f.Get("purpose") == purpose && (recipient == "" || f.Get("recipient") == recipient) {
			return f
		}
	}
	t.Fatalf("no consent form for %s/%s on the page", stream, purpose)
	return nil
}

func countReadings(t *testing.T, h *testHub, deviceID, stream string) int {
	t.Helper()
	rs, err := h.st.Readings(context.Background(), store.ReadingQuery{DeviceID: deviceID, Stream: stream, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(rs)
}

func TestConsentToggleStopsStorage(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	// A shared device: the household's owners decide for it. kim is one.
	kim, err := h.id.CreateAccount(context.Background(), identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim",
		Password: "quiet-harbour-lantern-7", Role: store.RoleOwner})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := h.addDevice(alex.HouseholdID, "Kitchen", "thermostat")
	if err := h.submit(d.ID, "setpoint", `{"celsius": 20}`); err != nil {
		t.Fatal(err)
	}
	if n := countReadings(t, h, d.ID, "setpoint"); n != 1 {
		t.Fatalf("%d setpoint readings stored by default, want 1", n)
	}
	b := h.browser()
	b.login("kim", "quiet-harbour-lantern-7")
	p := b.get("/devices/" + d.ID)
	mustContain(t, "device page", p.body, `id="consent-setpoint"`, "Kept and used on this hub to run your home the way you set it up.",
		`<span class="state state-on">On.</span>`, "What happens now:</strong> Kept on this hub for 1 year.")

	// The set temperature has two uses on this hub; turn both off.
	for i, purpose := range []string{"candor:HomeAutomation", "dpv:ServiceProvision"} {
		f := toggleForm(t, p.body, "setpoint", purpose)
		if f.Get("on") != "0" || f.Get("recipient") != consent.RecipientHub || f.Get(csrfField) == "" {
			t.Fatalf("toggle form of %s: %v", purpose, f)
		}
		p = b.post("/devices/"+d.ID+"/consent", f)
		if p.status != 200 || !strings.HasPrefix(p.url, "/devices/"+d.ID+"?done=changed") {
			t.Fatalf("toggle %s: %d at %s: %s", purpose, p.status, p.url, visibleText(p.body))
		}
		if i == 0 {
			mustContain(t, "after the first toggle", visibleText(p.body), "From the next reading on, set temperature is no longer used for this.")
			if !h.consent.Allowed(d.ID, "setpoint").StoreOnHub {
				t.Fatal("one use off of two stopped storage")
			}
		}
	}
	mustContain(t, "after the toggles", visibleText(p.body), "From the next reading on, set temperature is not stored on this hub.",
		"Off: nothing is kept or shared", "Download signed receipt")
	if h.consent.Allowed(d.ID, "setpoint").StoreOnHub {
		t.Fatal("consent still stores the set temperature")
	}
	// A reload does not show the message again.
	if p2 := b.get("/devices/" + d.ID + "?done=changed"); strings.Contains(p2.body, "From the next reading on") {
		t.Error("the confirmation shows twice")
	}
	if err := h.submit(d.ID, "setpoint", `{"celsius": 23}`); err != nil {
		t.Fatalf("a reading of a stream turned off is refused (want acknowledged, dropped): %v", err)
	}
	if n := countReadings(t, h, d.ID, "setpoint"); n != 1 {
		t.Errorf("%d setpoint readings after turning it off, want still 1", n)
	}

	// The receipt of the person's latest record verifies with the hub's key.
	recs, err := h.consent.History(context.Background(), consent.HistoryQuery{AccountID: kim.ID, DeviceID: d.ID})
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	last := recs[len(recs)-1]
	mustContain(t, "device page", p.body, `href="/consent/receipts/`+last.RecordID+`"`)
	rp := b.get("/consent/receipts/" + last.RecordID)
	if rp.status != 200 || !strings.HasPrefix(rp.header.Get("Content-Disposition"), "attachment;") || rp.header.Get("Content-Type") != "application/json" {
		t.Fatalf("receipt: %d %v", rp.status, rp.header)
	}
	got, err := consent.VerifyReceipt([]byte(rp.body), h.consent.PublicKey())
	if err != nil {
		t.Fatalf("the receipt does not verify: %v", err)
	}
	if got.RecordID != last.RecordID || got.DataSubject.ID != kim.ID || got.On() {
		t.Errorf("receipt says %+v", got)
	}

	// Turning a use on again works the same way.
	f := toggleForm(t, p.body, "setpoint", "dpv:ServiceProvision")
	if f.Get("on") != "1" {
		t.Fatalf("the form of a use that is off does not turn it on: %v", f)
	}
	p = b.post("/devices/"+d.ID+"/consent", f)
	mustContain(t, "after turning on", visibleText(p.body), "From the next reading on, set temperature is kept on this hub for 1 year.")
	if !h.consent.Allowed(d.ID, "setpoint").StoreOnHub {
		t.Error("turning a use on again did not restore storage")
	}
}

func TestConsentRoutingForm(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/devices/" + d.ID)
	// Power is kept up to 90 days: no longer choice is offered.
	mustContain(t, "device page", p.body, `<select id="retention-power" name="retention"`, `value="P7D"`, `value="P90D" selected`)
	sel := p.body[strings.Index(p.body, `id="retention-power"`):]
	sel = sel[:strings.Index(sel, "</select>")]
	if strings.Contains(sel, "P1Y") {
		t.Error("the power stream offers a year, longer than its manifest allows")
	}
	p = b.post("/devices/"+d.ID+"/consent/routing", url.Values{"stream": {"power"}, "keep": {"yes"}, "retention": {"P7D"}})
	mustContain(t, "after saving", visibleText(p.body), "From the next reading on, power use is kept on this hub for 1 week.")
	if dec := h.consent.Allowed(d.ID, "power"); !dec.StoreOnHub || dec.Retention.Text != "P7D" {
		t.Errorf("decision %+v", dec)
	}
	// Longer than the manifest allows: refused by consent, shown on the page.
	p = b.post("/devices/"+d.ID+"/consent/routing", url.Values{"stream": {"power"}, "keep": {"yes"}, "retention": {"P1Y"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "There is a problem") {
		t.Errorf("a retention too long: %d %s", p.status, visibleText(p.body))
	}
	if dec := h.consent.Allowed(d.ID, "power"); dec.Retention.Text != "P7D" {
		t.Errorf("a refused routing changed the retention to %q", dec.Retention.Text)
	}
	p = b.post("/devices/"+d.ID+"/consent/routing", url.Values{"stream": {"power"}, "keep": {"no"}, "retention": {"P7D"}})
	mustContain(t, "after not keeping", visibleText(p.body), "From the next reading on, power use is not stored on this hub.")
	if h.consent.Allowed(d.ID, "power").StoreOnHub {
		t.Error("keep=no still stores")
	}
	if err := h.submit(d.ID, "power", `{"watts": 300}`); err != nil {
		t.Fatal(err)
	}
	if n := countReadings(t, h, d.ID, "power"); n != 0 {
		t.Errorf("%d power readings stored after keep=no", n)
	}
}

// TestMemberSeesChoicesAndAsks checks the consent rule on the pages: a
// member sees a shared device's choices with who decides, cannot switch
// them (403 with the reason, nothing changes) and can ask; the request
// is listed on the owner's home page until the owner chooses.
func TestMemberSeesChoicesAndAsks(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	ctx := context.Background()
	if _, err := h.id.CreateAccount(ctx, identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim",
		Password: "quiet-harbour-lantern-7", Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	d, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	kim := h.browser()
	kim.login("kim", "quiet-harbour-lantern-7")
	p := kim.get("/devices/" + d.ID)
	mustContain(t, "member's device page", visibleText(p.body), "The owners of your household decide for this shared device.", "Ask to turn on")
	mustNotContain(t, "member's device page", p.body, `action="/devices/`+d.ID+`/consent"`, `action="/devices/`+d.ID+`/consent/routing"`)

	share := url.Values{"stream": {"energy"}, "purpose": {"candor:Billing"}, "recipient": {"Your energy supplier"}, "on": {"1"}, csrfField: {kim.csrf()}}
	p = kim.post("/devices/"+d.ID+"/consent", share)
	if p.status != http.StatusForbidden {
		t.Fatalf("member switches sharing on: %d, want 403", p.status)
	}
	mustContain(t, "refusal", visibleText(p.body), "Only an owner of the household changes the choices of shared device "+d.ID)
	kim.get("/")
	if p := kim.post("/devices/"+d.ID+"/consent/routing", url.Values{"stream": {"energy"}, "keep": {"no"}}); p.status != http.StatusForbidden {
		t.Errorf("member changes routing: %d, want 403", p.status)
	}
	if recs, _ := h.consent.History(ctx, consent.HistoryQuery{DeviceID: d.ID}); len(recs) != 0 {
		t.Fatalf("refused member forms made %d records", len(recs))
	}
	if len(h.consent.Allowed(d.ID, "energy").Recipients) != 0 {
		t.Fatal("the member's refused form turned sharing on")
	}

	kim.get("/devices/" + d.ID)
	share.Set(csrfField, kim.csrf())
	p = kim.post("/devices/"+d.ID+"/consent/ask", share)
	if p.status != 200 {
		t.Fatalf("member asks: %d %s", p.status, visibleText(p.body))
	}
	mustContain(t, "after asking", visibleText(p.body), "Your request is sent.")

	owner := h.browser()
	owner.login("alex", goodPassword)
	home := owner.get("/")
	mustContain(t, "owner's home page", visibleText(home.body), "Asked of you", "kim asks you to turn on a use of energy by your energy supplier.")
	for _, text := range []string{
		"The owners of your household decide for this shared device. You can see the choices, and ask them to change one.",
		"Your request is sent. It is listed for whoever decides for this device, until they choose.",
		"You decide for these devices. Others in your household asked you to change a choice. Nothing changes until you do it on the device's page.",
		"kim asks you to turn on a use of energy by your energy supplier.",
	} {
		if s := readability.Score(text); s.Ease < readability.PlainEnglish {
			t.Errorf("%q scores %.1f, want at least %.0f", text, s.Ease, readability.PlainEnglish)
		}
	}
	if home := kim.get("/"); strings.Contains(home.body, "Asked of you") {
		t.Error("the member who decides nothing is shown requests")
	}
	dp := owner.get("/devices/" + d.ID)
	f := useForm(t, dp.body, "energy", "candor:Billing", "Your energy supplier")
	f.Set("confirm", "yes")
	if p := owner.post("/devices/"+d.ID+"/consent", f); p.status != 200 {
		t.Fatalf("owner decides: %d", p.status)
	}
	if home := owner.get("/"); strings.Contains(home.body, "Asked of you") {
		t.Error("the request is still listed after the owner chose")
	}
}

func TestConsentFormsAreHouseholdScopedAndCSRFChecked(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Kitchen", "thermostat")
	ctx := context.Background()
	if _, _, err := h.id.CreateHousehold(ctx, "Flat 2", identity.NewAccount{Username: "sam", Password: "marble-otter-sunrise-19"}); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/devices/" + d.ID)
	f := toggleForm(t, p.body, "setpoint", "dpv:ServiceProvision")

	// CSRF: no token, a forged one, or a cross-site request are refused.
	for name, tc := range map[string]struct {
		token   string
		headers []string
	}{
		"no token":    {"", nil},
		"wrong token": {"forged", nil},
		"cross-site":  {f.Get(csrfField), []string{"Sec-Fetch-Site", "cross-site"}},
	} {
		g := url.Values{}
		for k, v := range f {
			g[k] = v
		}
		g.Set(csrfField, tc.token)
		if p := b.post("/devices/"+d.ID+"/consent", g, tc.headers...); p.status != http.StatusForbidden {
			t.Errorf("%s: consent toggle answered %d, want 403", name, p.status)
		}
		r := url.Values{"stream": {"setpoint"}, "keep": {"no"}, csrfField: {tc.token}}
		if p := b.post("/devices/"+d.ID+"/consent/routing", r, tc.headers...); p.status != http.StatusForbidden {
			t.Errorf("%s: routing answered %d, want 403", name, p.status)
		}
	}
	if dec := h.consent.Allowed(d.ID, "setpoint"); !dec.StoreOnHub {
		t.Fatal("a refused form changed consent")
	}
	if recs, _ := h.consent.History(ctx, consent.HistoryQuery{DeviceID: d.ID}); len(recs) != 0 {
		t.Fatalf("refused forms made %d records", len(recs))
	}
	b.get("/devices/" + d.ID)
	p = b.post("/devices/"+d.ID+"/consent", f)
	if p.status != 200 {
		t.Fatalf("genuine toggle: %d", p.status)
	}
	recs, _ := h.consent.History(ctx, consent.HistoryQuery{DeviceID: d.ID})
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}

	// Another household: the device, its forms and its receipts are 404.
	sam := h.browser()
	sam.login("sam", "marble-otter-sunrise-19")
	sam.get("/")
	g := url.Values{}
	for k, v := range f {
		g[k] = v
	}
	g.Set(csrfField, sam.csrf())
	if p := sam.post("/devices/"+d.ID+"/consent", g); p.status != http.StatusNotFound {
		t.Errorf("another household's consent form: %d, want 404", p.status)
	}
	sam.get("/")
	if p := sam.post("/devices/"+d.ID+"/consent/routing", url.Values{"stream": {"setpoint"}, "keep": {"no"}}); p.status != http.StatusNotFound {
		t.Errorf("another household's routing form: %d, want 404", p.status)
	}
	if p := sam.get("/consent/receipts/" + recs[0].RecordID); p.status != http.StatusNotFound || strings.Contains(p.body, recs[0].RecordID) {
		t.Errorf("another household's receipt: %d", p.status)
	}
	if p := sam.get("/consent/receipts/nope"); p.status != http.StatusNotFound {
		t.Errorf("an unknown receipt: %d", p.status)
	}
	if n := len(must(h.consent.History(ctx, consent.HistoryQuery{DeviceID: d.ID}))); n != 1 {
		t.Errorf("another household changed consent: %d records", n)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestLogPageListsOnlyTheHouseholdsEntries(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	ctx := context.Background()
	_, samAcc, err := h.id.CreateHousehold(ctx, "Flat 2", identity.NewAccount{Username: "sam", Password: "marble-otter-sunrise-19"})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := h.addDevice(alex.HouseholdID, "Kitchen", "thermostat")
	other, _ := h.addDevice(samAcc.HouseholdID, "Sams meter", "smart-meter")
	if err := h.submit(d.ID, "temperature", `{"celsius": 21}`); err != nil {
		t.Fatal(err)
	}
	if err := h.submit(other.ID, "power", `{"watts": 300}`); err != nil {
		t.Fatal(err)
	}
	sam := h.browser()
	sam.login("sam", "marble-otter-sunrise-19")
	sam.get("/devices/" + other.ID) // a read in the other household

	b := h.browser()
	b.login("alex", goodPassword)
	b.get("/devices/" + d.ID)
	p := b.get("/log")
	if p.status != 200 {
		t.Fatalf("log page: %d", p.status)
	}
	text := visibleText(p.body)
	mustContain(t, "log page", text, `You viewed 1 reading of "Kitchen" (`+d.ID+`). Why: viewing history.`,
		"made a credential for", "candor log verify", "test.candor.local")
	mustContain(t, "log page", p.body, `href="/log/entries/`)
	mustContain(t, "log page", text, h.alog.VerifierKey(), string(h.alog.Checkpoint().Signed[:20]))
	mustNotContain(t, "log page", p.body, other.ID, "Sams meter", samAcc.ID)
	// Newest first: the read comes before the device was made.
	if strings.Index(text, "You viewed") > strings.Index(text, "made a credential for") {
		t.Error("the log is not newest first")
	}
	// The check link explains the proof; its raw proof link works with
	// the session cookie, for the household's entries.
	m := regexp.MustCompile(`href="(/log/entries/\d+/verify)"`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("no check link")
	}
	vp := b.get(m[1])
	mustContain(t, "check page", visibleText(vp.body), "This line is in the log.")
	m = regexp.MustCompile(`href="(/api/v1/log/proof/inclusion\?index=\d+)"`).FindStringSubmatch(vp.body)
	if m == nil {
		t.Fatal("no proof link")
	}
	if pr := b.get(html.UnescapeString(m[1])); pr.status != 200 || !strings.Contains(pr.body, `"proof"`) {
		t.Errorf("proof link: %d %.200s", pr.status, pr.body)
	}
	// A consent change made on the pages is in the log.
	b.get("/devices/" + d.ID)
	b.post("/devices/"+d.ID+"/consent", toggleForm(t, b.last.body, "setpoint", "dpv:ServiceProvision"))
	mustContain(t, "log page", visibleText(b.get("/log").body), `You changed a consent choice for "Kitchen" (`+d.ID+`) (setpoint).`)
}

func TestNewPagesSayWhenAFeatureIsMissing(t *testing.T) {
	t.Parallel()
	h := startHub(t, func(c *Config) { c.Consent, c.Log = nil, nil })
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Kitchen", "thermostat")
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/devices/" + d.ID)
	mustContain(t, "device page", visibleText(p.body), "Consent is not available on this hub")
	mustNotContain(t, "device page", p.body, "data-consent-toggle", "Download signed receipt")
	p = b.post("/devices/"+d.ID+"/consent", url.Values{"stream": {"setpoint"}, "purpose": {"dpv:ServiceProvision"}, "on": {"0"}})
	if p.status != http.StatusNotFound {
		t.Errorf("consent form without consent: %d", p.status)
	}
	mustContain(t, "log page", visibleText(b.get("/log").body), "The transparency log is not available on this hub")
	p = b.get("/my-data")
	mustContain(t, "my data", visibleText(p.body), "Download my data (ZIP)", "Consent is not available on this hub.",
		"The transparency log is not available on this hub.", "Delete readings")
}

func TestMyDataPage(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Kitchen", "thermostat")
	if err := h.submit(d.ID, "temperature", `{"celsius": 21}`); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/my-data")
	text := visibleText(p.body)
	mustContain(t, "my data", text, "README.txt", "CSV", "SenML", "Data manifests", "Consent records", "Log entries with proofs",
		"index.json", "SHA-256", "Delete readings", "Unlink your history", "Your keys", "Delete your account")
	mustContain(t, "my data", p.body, `href="/api/v1/export"`, `aria-current="page"`)
	mustNotContain(t, "my data", p.body[strings.Index(p.body, "<main"):], "<button") // no fake buttons
	// The link downloads the archive with the pages' session cookie.
	z := b.get("/api/v1/export")
	if z.status != 200 || z.header.Get("Content-Type") != "application/zip" || !strings.HasPrefix(z.body, "PK") {
		t.Errorf("export link: %d %s", z.status, z.header.Get("Content-Type"))
	}
}

// TestSharingIsConfirmedOnThePages checks that the switch that sends a
// stream out of the hub first shows what leaves, to whom, linked or not,
// on what terms and for how long; only the yes on that page turns it on.
func TestSharingIsConfirmedOnThePages(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/devices/" + d.ID)
	f := useForm(t, p.body, "energy", "candor:Billing", "Your energy supplier")
	p = b.post("/devices/"+d.ID+"/consent", f)
	if p.status != 200 {
		t.Fatalf("switch on: %d", p.status)
	}
	text := visibleText(p.body)
	mustContain(t, "confirmation page", text, "Send meter reading to your energy supplier?", "Nothing is sent until you say yes.",
		"It leaves linked to you.", "7 years", "So your supplier can bill what you used.", "Their terms", "Yes, send it",
		"What they get from your home now", "Nothing yet.")
	if len(h.consent.Allowed(d.ID, "energy").Recipients) != 0 {
		t.Fatal("the switch turned sharing on before the yes")
	}
	if s := readability.Score(text); s.Ease < readability.PlainEnglish {
		t.Errorf("confirmation page scores %.1f, want at least %.0f:\n%s", s.Ease, readability.PlainEnglish, text)
	}
	yes := url.Values{}
	for _, m := range regexp.MustCompile(`name="([a-z]+)" value="([^"]*)"`).FindAllStringSubmatch(p.body, -1) {
		yes.Set(m[1], html.UnescapeString(m[2]))
	}
	if yes.Get("confirm") != "yes" {
		t.Fatalf("the confirmation form has no confirm field: %v", yes)
	}
	p = b.post("/devices/"+d.ID+"/consent", yes)
	if p.status != 200 || len(h.consent.Allowed(d.ID, "energy").Recipients) != 1 {
		t.Fatalf("after yes: %d, recipients %v", p.status, h.consent.Allowed(d.ID, "energy").Recipients)
	}
}

// TestDevicesShowTogether checks the home page's "what your devices show
// together": a door sensor and a smart meter, harmless each alone, show a
// daily routine together; one device alone shows nothing more.
func TestDevicesShowTogether(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	h.addDevice(alex.HouseholdID, "Front door", "door-sensor")
	b := h.browser()
	b.login("alex", goodPassword)
	if p := b.get("/"); strings.Contains(p.body, "What your devices show together") {
		t.Error("one device is said to show something together")
	}
	h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	text := visibleText(b.get("/").body)
	mustContain(t, "home page", text, "What your devices show together",
		"Together, Front door and Meter can show your daily routine: when you get up, cook, go out and come back.")
	if strings.Contains(text, "which rooms they use") {
		t.Error("the door sensor's own rule, which needs a camera too, shows without one")
	}
	// The door sensor's manifest declares (candor:revealsAcross) what it
	// shows with a motion camera and a smart meter: that joins the
	// shipped rules once all three are in the household.
	h.addDevice(alex.HouseholdID, "Porch camera", "motion-camera")
	text = visibleText(b.get("/").body)
	mustContain(t, "home page", text,
		"Together, Front door, Meter and Porch camera can show when people are at home, which rooms they use, and when the home is empty.")
}

// TestTogetherWarnsWithDeclaredRules checks that the warning before
// sharing also uses the rules manifests declare: a recipient that gets
// the camera's and the meter's data would, with the door's, learn what
// the door sensor's manifest says the three show together.
func TestTogetherWarnsWithDeclaredRules(t *testing.T) {
	t.Parallel()
	ts, err := manifest.Templates()
	if err != nil {
		t.Fatal(err)
	}
	door := manifest.TypedStream{DeviceID: "d1", Device: "Front door", DeviceType: "door-sensor", Stream: "contact", Categories: []string{"candor:Presence"}}
	camera := manifest.TypedStream{DeviceID: "d2", Device: "Porch camera", DeviceType: "motion-camera", Stream: "motion", Categories: []string{"candor:Presence"}}
	meter := manifest.TypedStream{DeviceID: "d3", Device: "Meter", DeviceType: "smart-meter", Stream: "energy", Categories: []string{"candor:EnergyUse"}}
	ms := []*manifest.Manifest{ts["door-sensor"], ts["motion-camera"], ts["smart-meter"]}
	want := ts["door-sensor"].RevealsAcross[0].Reveals
	has := func(views []togetherView) bool {
		return slices.ContainsFunc(views, func(v togetherView) bool { return v.Reveals == want })
	}
	if got := together([]manifest.TypedStream{door, camera, meter}, ms, "d1", "contact"); !has(got) {
		t.Errorf("sharing the door with one who gets the camera and meter: %+v, want %q", got, want)
	}
	if got := together([]manifest.TypedStream{door, camera, meter}, nil, "d1", "contact"); has(got) {
		t.Errorf("without the door's manifest the declared rule still applies: %+v", got)
	}
	if got := together([]manifest.TypedStream{door, meter}, ms, "d1", "contact"); has(got) {
		t.Errorf("without the camera the declared rule applies: %+v", got)
	}
}

// TestTogetherNamesTheNewStream checks that the warning before sharing
// keeps only what needs the stream about to be shared.
func TestTogetherNamesTheNewStream(t *testing.T) {
	t.Parallel()
	door := manifest.TypedStream{DeviceID: "d1", Device: "Front door", DeviceType: "door-sensor", Stream: "contact", Categories: []string{"candor:Presence"}}
	camera := manifest.TypedStream{DeviceID: "d2", Device: "Porch camera", DeviceType: "motion-camera", Stream: "motion", Categories: []string{"candor:Presence"}}
	meter := manifest.TypedStream{DeviceID: "d3", Device: "Meter", DeviceType: "smart-meter", Stream: "energy", Categories: []string{"candor:EnergyUse"}}
	got := together([]manifest.TypedStream{door, camera, meter}, nil, "d3", "energy")
	if len(got) != 1 || got[0].Devices != "Front door, Porch camera and Meter" || !strings.HasPrefix(got[0].Reveals, "your daily routine") {
		t.Errorf("got %+v; want only the routine, which needs the meter", got)
	}
	for _, tv := range got {
		text := "With what they would get, your energy supplier could learn " + tv.Reveals + ". This comes from " + tv.Devices + " together."
		if s := readability.Score(text); s.Ease < readability.PlainEnglish {
			t.Errorf("%q scores %.1f", text, s.Ease)
		}
	}
}
