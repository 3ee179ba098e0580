package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/logtest"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// TestLearningRegister checks the machine-learning register through the
// pages and the API: every member sees what learns, from what and what it
// changes; the owner switches one learning use alone (a consent record,
// logged once, in force for the next reading, collection untouched); a
// member is refused with the reason through both front ends and may ask.
func TestLearningRegister(t *testing.T) {
	t.Parallel()
	services := logtest.Open(t)
	h := startHubRecording(t, services)
	alex := h.setup("alex")
	ctx := context.Background()
	if _, err := h.id.CreateAccount(ctx, identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim", Password: kimPassword, Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	thermo, _ := h.addDevice(alex.HouseholdID, "Hall heating", "thermostat")
	h.addDevice(alex.HouseholdID, "Meter", "smart-meter") // learns nothing
	owner := h.browser()
	owner.login("alex", goodPassword)
	kim := h.browser()
	kim.login("kim", kimPassword)

	// Every signed-in person has the page in the navigation.
	for name, b := range map[string]*browser{"owner": owner, "member": kim} {
		mustContain(t, name+"'s home page", b.get("/").body, `href="/machine-learning"`)
	}
	p := owner.get("/machine-learning")
	if p.status != http.StatusOK {
		t.Fatalf("register: %d", p.status)
	}
	text := visibleText(p.body)
	mustContain(t, "register", text, "What learns from your data", "Hall heating", "It learns from room temperature and humidity.",
		"It makes choices on its own from heating state.", "From what", "What it changes", "You decide for this device.")
	mustNotContain(t, "register", text, "Meter")
	// The page's own text, without the navigation, reads plainly.
	main := text[strings.Index(text, "Some devices learn"):]
	if s := readability.Score(main); s.Ease < readability.PlainEnglish {
		t.Errorf("register text scores %.1f, want at least %.0f:\n%s", s.Ease, readability.PlainEnglish, main)
	}

	// The member sees it read-only, with who decides, and is refused a
	// switch (403 with the reason) through the pages and the API.
	kp := kim.get("/machine-learning")
	mustContain(t, "member's register", visibleText(kp.body), "The owners of your household decide for this shared device.", "Ask to turn off")
	mustNotContain(t, "member's register", kp.body, `action="/machine-learning/switch"`)
	off := url.Values{"device": {thermo.ID}, "stream": {"temperature"}, "purpose": {consent.PurposeMachineLearning}, "on": {"0"}, csrfField: {kim.csrf()}}
	if r := kim.post("/machine-learning/switch", off); r.status != http.StatusForbidden ||
		!strings.Contains(visibleText(r.body), "Only an owner of the household changes the choices of shared device "+thermo.ID) {
		t.Errorf("member switches through the page: %d %s", r.status, visibleText(r.body))
	}
	put := func(b *browser, body string) page2 {
		req, _ := http.NewRequest(http.MethodPut, h.srv.URL+"/api/v1/devices/"+thermo.ID+"/learning/temperature", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return b.do(req)
	}
	r := put(kim, `{"purpose": "candor:MachineLearning", "on": false}`)
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "not-your-choice") || !strings.Contains(r.body, "only an owner of the household") {
		t.Errorf("member switches through the API: %d %s", r.status, r.body)
	}
	if !h.consent.Allowed(thermo.ID, "temperature").Learn {
		t.Fatal("a refused member turned learning off")
	}
	// The member may ask; the owner's home page lists it.
	kim.get("/machine-learning")
	off.Set(csrfField, kim.csrf())
	if r := kim.post("/machine-learning/ask", off); r.status != http.StatusOK || !strings.Contains(visibleText(r.body), "Your request is sent.") {
		t.Errorf("member asks: %d %s", r.status, visibleText(r.body))
	}
	mustContain(t, "owner's home page", visibleText(owner.get("/").body), "kim asks you to turn off a use of temperature.")

	// The API lists the same register to the member, read-only.
	lr := kim.get("/api/v1/learning")
	var list struct {
		Learning []struct {
			DeviceID string   `json:"device_id"`
			Stream   string   `json:"stream"`
			Purpose  string   `json:"purpose"`
			From     []string `json:"from"`
			Changes  string   `json:"changes"`
			On       bool     `json:"on"`
			InForce  bool     `json:"in_force"`
			Deciders struct {
				YouDecide bool `json:"you_decide"`
			} `json:"deciders"`
		} `json:"learning"`
	}
	if err := json.Unmarshal([]byte(lr.body), &list); err != nil || lr.status != 200 {
		t.Fatalf("GET /api/v1/learning: %d %v %s", lr.status, err, lr.body)
	}
	if len(list.Learning) != 4 {
		t.Errorf("the register lists %d uses, want the thermostat's 4", len(list.Learning))
	}
	for _, u := range list.Learning {
		if u.DeviceID != thermo.ID || u.Deciders.YouDecide || !u.On || !u.InForce || u.Changes == "" || len(u.From) == 0 {
			t.Errorf("member's register entry: %+v", u)
		}
	}

	// The owner turns learning off through the page, then automated
	// decisions through the API: each alone, each logged once.
	events := func() int { return len(logtest.Events(t, services, auditlog.ActionConsentChange)) }
	before := events()
	owner.get("/machine-learning")
	off.Set(csrfField, owner.csrf())
	done := owner.post("/machine-learning/switch", off)
	if done.status != http.StatusOK {
		t.Fatalf("owner switches learning off: %d %s", done.status, visibleText(done.body))
	}
	mustContain(t, "after the switch", visibleText(done.body), "From the next reading of Hall heating on, learning from it is off.")
	d := h.consent.Allowed(thermo.ID, "temperature")
	if d.Learn || !d.Decide || !d.Collect || !d.StoreOnHub {
		t.Errorf("after learning off: %+v, want only learning off", d)
	}
	if r := put(owner, `{"purpose": "candor:AutomatedDecisions", "on": false}`); r.status != http.StatusOK {
		t.Fatalf("owner switches decisions off through the API: %d %s", r.status, r.body)
	}
	if d := h.consent.Allowed(thermo.ID, "temperature"); d.Decide || !d.StoreOnHub {
		t.Errorf("after decisions off: %+v", d)
	}
	if got := events() - before; got != 2 {
		t.Errorf("%d consent events logged for two switches, want 2", got)
	}
	recs, _ := h.consent.History(ctx, consent.HistoryQuery{DeviceID: thermo.ID})
	if len(recs) != 2 || recs[0].Purposes[0].Term != consent.PurposeMachineLearning || recs[1].Purposes[0].Term != consent.PurposeAutomatedDecisions {
		t.Errorf("records: %+v", recs)
	}
	// The next reading is stored (collection is untouched) and not
	// learned from.
	if err := h.submit(thermo.ID, "temperature", `{"celsius": 20.5}`); err != nil {
		t.Fatalf("next reading: %v", err)
	}
	if n, _ := h.st.CountReadings(ctx, thermo.ID); n != 1 {
		t.Errorf("%d readings stored after learning off, want the next one kept", n)
	}
	mustContain(t, "register after", visibleText(owner.get("/machine-learning").body), "Turn on: Room temperature and humidity, learning")
	// The device page points to the register, and its record list says
	// the change plainly.
	dp := owner.get("/devices/" + thermo.ID)
	mustContain(t, "device page", visibleText(dp.body), "What is kept and shared did not change.", "You can turn that off alone on the page What learns.")
	mustContain(t, "device page", dp.body, `href="/machine-learning#device-`+thermo.ID+`"`)
	if s := readability.Score("Some of what this device sends is used to learn, or to make choices on their own. You can turn that off alone on the page What learns."); s.Ease < readability.PlainEnglish {
		t.Errorf("the device page's pointer scores %.1f", s.Ease)
	}

	// Other purposes and unmarked streams are refused with a reason.
	if r := put(owner, `{"purpose": "dpv:ServiceProvision", "on": false}`); r.status != http.StatusBadRequest {
		t.Errorf("another purpose through the learning API: %d", r.status)
	}
	req, _ := http.NewRequest(http.MethodPut, h.srv.URL+"/api/v1/devices/"+thermo.ID+"/learning/setpoint", strings.NewReader(`{"purpose": "candor:MachineLearning", "on": true}`))
	req.Header.Set("Content-Type", "application/json")
	if r := owner.do(req); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "not marked") {
		t.Errorf("learning on a stream not marked for it: %d %s", r.status, r.body)
	}
}
