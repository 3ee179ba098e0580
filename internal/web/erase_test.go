package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/candor-iot/candor/internal/erasure"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/testsupport/readability"
	"github.com/candor-iot/candor/internal/vault"
)

// erasureRig is the erasure service and the vault as internal/hub builds
// them, over the test hub's own SQLite store and transparency log.
type erasureRig struct {
	vault   *vault.Vault
	erasure *erasure.Service
}

// withErasure gives the hub's pages erasure and keys. Call it before the
// first request to the pages that use them.
func (h *testHub) withErasure() *erasureRig {
	h.t.Helper()
	hubKey, err := age.GenerateX25519Identity()
	if err != nil {
		h.t.Fatal(err)
	}
	v, err := vault.New(context.Background(), h.st, vault.Options{Hub: hubKey})
	if err != nil {
		h.t.Fatalf("vault: %v", err)
	}
	h.t.Cleanup(func() { v.Close() }) // runs before the store closes
	er := erasure.New(erasure.Config{Store: h.st, Vault: v, Log: h.alog, Erased: h.id.DevicesErased})
	h.web.cfg.Erasure, h.web.cfg.Keys = er, v
	return &erasureRig{vault: v, erasure: er}
}

// addOwnDevice adds a device whose readings are sealed under acc's keys,
// as when acc adds it.
func (h *testHub) addOwnDevice(acc store.Account, name, typ string) store.Device {
	h.t.Helper()
	d, _, err := h.id.AddDevice(context.Background(), identity.NewDevice{HouseholdID: acc.HouseholdID, Name: name, Type: typ, KeyOwner: acc.ID})
	if err != nil {
		h.t.Fatalf("add device: %v", err)
	}
	return d
}

// appendPower stores n smart-meter readings of the given watts, a second
// apart from at.
func (h *testHub) appendPower(deviceID string, at time.Time, n int, watts int) {
	h.t.Helper()
	var rs []store.Reading
	for i := range n {
		rs = append(rs, store.Reading{DeviceID: deviceID, Stream: "power", Time: at.Add(time.Duration(i) * time.Second),
			ManifestVersion: 1, Payload: fmt.Appendf(nil, `{"watts": %d}`, watts)})
	}
	if err := h.st.AppendReadings(context.Background(), rs); err != nil {
		h.t.Fatal(err)
	}
}

func (h *testHub) addMember(acc store.Account, username, password string, role store.Role) store.Account {
	h.t.Helper()
	a, err := h.id.CreateAccount(context.Background(), identity.NewAccount{HouseholdID: acc.HouseholdID, Username: username,
		Password: password, Role: role})
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

const kimPassword = "quiet-harbour-lantern-7"

func TestErasePagesNeedCSRF(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	rig := h.withErasure()
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	h.appendPower(d.ID, time.Now().Add(-time.Hour), 3, 100)
	b := h.browser()
	b.login("alex", goodPassword)
	b.get("/my-data/keys")
	forms := map[string]url.Values{
		"/my-data/delete":                      {"device": {d.ID}, "confirm": {"yes"}},
		"/my-data/unlink":                      {"device": {d.ID}, "confirm": {"yes"}},
		"/my-data/leave":                       {"password": {goodPassword}},
		"/my-data/keys/me/rotate":              {},
		"/my-data/keys/household/rotate":       {},
		"/my-data/keys/me/user-held":           {"key": {"new"}},
		"/my-data/keys/household/hub-assisted": {},
	}
	before, err := rig.vault.Status(alex.ID)
	if err != nil {
		t.Fatal(err)
	}
	for path, form := range forms {
		for _, tok := range []string{"", "forged"} {
			form.Set(csrfField, tok)
			p := b.post(path, form)
			if p.status != http.StatusForbidden || !strings.Contains(p.body, "This form has expired") {
				t.Errorf("POST %s with csrf %q: %d, want 403", path, tok, p.status)
			}
		}
	}
	if n := countReadings(t, h, d.ID, ""); n != 3 {
		t.Errorf("%d readings left after forged posts, want 3", n)
	}
	if _, err := h.st.AccountByUsername(context.Background(), "alex"); err != nil {
		t.Errorf("the account is gone after a forged post: %v", err)
	}
	after, err := rig.vault.Status(alex.ID)
	if err != nil || after.Mode != vault.HubAssisted || len(after.Keys) != len(before.Keys) {
		t.Errorf("keys changed by forged posts: %+v, %v", after, err)
	}
}

func TestDeleteReadingsByRange(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.withErasure()
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Hall meter", "smart-meter")
	day := func(n int) time.Time { return time.Date(2026, 3, n, 12, 0, 0, 0, time.UTC) }
	for i := 1; i <= 3; i++ {
		h.appendPower(d.ID, day(i), 4, i)
	}
	b := h.browser()
	b.login("alex", goodPassword)

	p := b.get("/my-data")
	mustContain(t, "my data", p.body, `href="/my-data/delete"`, `href="/my-data/unlink"`, `href="/my-data/leave"`, `href="/my-data/keys"`)
	mustNotContain(t, "my data", visibleText(p.body), "not available yet", "not there yet", "cannot yet")

	p = b.get("/my-data/delete")
	mustContain(t, "delete, step 1", p.body, `<option value="`+d.ID+`"`, `method="get" action="/my-data/delete"`)
	p = b.get("/my-data/delete?device=" + d.ID)
	if p.status != 200 {
		t.Fatalf("delete, step 2: %d", p.status)
	}
	mustContain(t, "delete, step 2", p.body, `<option value="power">`, `id="from" name="from" type="date"`, `id="to" name="to" type="date"`, "First day (UTC)", `name="confirm"`, `value="`+d.ID+`"`)

	// Without the box ticked, or with the days the wrong way round,
	// nothing is deleted.
	p = b.post("/my-data/delete", url.Values{"device": {d.ID}, "stream": {"power"}, "from": {"2026-03-02"}, "to": {"2026-03-02"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "Tick the box") {
		t.Errorf("delete without the box: %d: %s", p.status, visibleText(p.body))
	}
	mustContain(t, "refused delete", p.body, `value="2026-03-02"`) // the dates stay filled in
	b.get("/my-data/delete?device=" + d.ID)
	p = b.post("/my-data/delete", url.Values{"device": {d.ID}, "from": {"2026-03-03"}, "to": {"2026-03-01"}, "confirm": {"yes"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "The last day is before the first day") {
		t.Errorf("delete with swapped days: %d: %s", p.status, visibleText(p.body))
	}
	p = b.post("/my-data/delete", url.Values{"device": {d.ID}, "from": {"March"}, "stream": {"nope"}, "confirm": {"yes"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "like 2026-03-01") || !strings.Contains(p.body, "Choose a kind of data") {
		t.Errorf("delete with a bad day and stream: %d: %s", p.status, visibleText(p.body))
	}
	if n := countReadings(t, h, d.ID, ""); n != 12 {
		t.Fatalf("%d readings after refused deletions, want 12", n)
	}

	// 2 March only: the 4 readings of that day go, the others stay.
	p = b.post("/my-data/delete", url.Values{"device": {d.ID}, "stream": {"power"}, "from": {"2026-03-02"}, "to": {"2026-03-02"}, "confirm": {"yes"}})
	if p.status != 200 || !strings.HasPrefix(p.url, "/my-data/delete?device="+d.ID+"&done=changed") {
		t.Fatalf("delete: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	mustContain(t, "after deleting", visibleText(p.body), "The hub deleted 4 readings of Hall meter (", ") from 2 Mar 2026 to 2 Mar 2026 (UTC). They are gone for good.")
	rs, err := h.st.Readings(context.Background(), store.ReadingQuery{DeviceID: d.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 8 {
		t.Fatalf("%d readings left, want 8", len(rs))
	}
	for _, r := range rs {
		if r.Time.Day() == 2 {
			t.Errorf("a reading of 2 March is left: %v", r.Time)
		}
	}
	// From 3 March on (written as the pages write days): the last day goes.
	b.post("/my-data/delete", url.Values{"device": {d.ID}, "from": {"3 Mar 2026"}, "confirm": {"yes"}})
	mustContain(t, "after deleting", visibleText(b.last.body), "The hub deleted 4 readings of Hall meter from 3 Mar 2026 (UTC) on.")
	if n := countReadings(t, h, d.ID, ""); n != 4 {
		t.Errorf("%d readings left, want 4", n)
	}
	// Nothing left in a range says so.
	b.post("/my-data/delete", url.Values{"device": {d.ID}, "to": {"2026-02-01"}, "confirm": {"yes"}})
	mustContain(t, "deleting nothing", visibleText(b.last.body), "so nothing was deleted")
	// The deletion is in the transparency log.
	mustContain(t, "log page", visibleText(b.get("/log").body), "Hall meter")
}

func TestMemberCannotDeleteReadings(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.withErasure()
	alex := h.setup("alex")
	h.addMember(alex, "kim", kimPassword, store.RoleMember)
	d, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	h.appendPower(d.ID, time.Now().Add(-time.Hour), 5, 100)
	// Another household's device is not even found.
	_, sam, err := h.id.CreateHousehold(context.Background(), "Flat 2", identity.NewAccount{Username: "sam", Password: "marble-otter-sunrise-19"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := h.addDevice(sam.HouseholdID, "Their meter", "smart-meter")
	h.appendPower(other.ID, time.Now().Add(-time.Hour), 5, 100)

	b := h.browser()
	b.login("kim", kimPassword)
	p := b.get("/my-data/delete")
	mustContain(t, "delete page of a member", visibleText(p.body), "Only an owner of your household can delete")
	mustNotContain(t, "delete page of a member", p.body, `name="device"`)
	if p := b.get("/my-data/delete?device=" + d.ID); p.status != http.StatusForbidden {
		t.Errorf("a member's second step: %d, want 403", p.status)
	}
	b.get("/my-data/delete")
	p = b.post("/my-data/delete", url.Values{"device": {d.ID}, "confirm": {"yes"}})
	if p.status != http.StatusForbidden {
		t.Errorf("a member deleting readings: %d, want 403", p.status)
	}
	if n := countReadings(t, h, d.ID, ""); n != 5 {
		t.Errorf("%d readings after a member's attempt, want 5", n)
	}

	a := h.browser()
	a.login("alex", goodPassword)
	if p := a.get("/my-data/delete?device=" + other.ID); p.status != http.StatusNotFound {
		t.Errorf("another household's device: %d, want 404", p.status)
	}
	a.get("/my-data/delete")
	if p := a.post("/my-data/delete", url.Values{"device": {other.ID}, "confirm": {"yes"}}); p.status != http.StatusNotFound {
		t.Errorf("deleting another household's readings: %d, want 404", p.status)
	}
	if n := countReadings(t, h, other.ID, ""); n != 5 {
		t.Errorf("%d readings of the other household left, want 5", n)
	}
}

func TestUnlinkShowsTheReport(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	rig := h.withErasure()
	alex := h.setup("alex")
	kim := h.addMember(alex, "kim", kimPassword, store.RoleMember)
	shared, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	mine := h.addOwnDevice(kim, "Kim's plug", "smart-meter")
	hour := time.Now().UTC().Add(-5 * time.Hour).Truncate(time.Hour)
	h.appendPower(mine.ID, hour, 12, 100)                    // a cell of 12: kept
	h.appendPower(mine.ID, hour.Add(2*time.Hour), 3, 50)     // a cell of 3: dropped
	h.appendPower(shared.ID, hour.Add(time.Minute), 10, 300) // the household's, not kim's

	b := h.browser()
	b.login("kim", kimPassword)
	// One household: nothing can be kept anonymously, and the page says so.
	p := b.get("/my-data/unlink")
	mustContain(t, "unlink page, one household", visibleText(p.body), "This hub has 1 household.", "nothing can be kept without pointing to you", "Delete the readings")
	mustNotContain(t, "unlink page, one household", p.body, `id="unlink-history"`)
	for i := range erasure.MinCellHouseholds - 1 {
		if _, _, err := h.id.CreateHousehold(context.Background(), fmt.Sprintf("Flat %d", i+2),
			identity.NewAccount{Username: fmt.Sprintf("owner%d", i), Password: "marble-otter-sunrise-19"}); err != nil {
			t.Fatal(err)
		}
	}
	p = b.get("/my-data/unlink")
	text := visibleText(p.body)
	mustContain(t, "unlink page", text, "how many readings there were, and their average", "no device, no home and no person",
		"fewer than 10 readings is dropped", "Text is dropped", "Your devices stay. They keep sending", "This cannot be undone.")
	mustContain(t, "unlink page", p.body, `value="`+mine.ID+`" checked`)
	mustNotContain(t, "unlink page", p.body, `value="`+shared.ID+`"`)

	// The household's device is not kim's to unlink: the hub says why.
	p = b.post("/my-data/unlink", url.Values{"device": {shared.ID}, "confirm": {"yes"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "belongs to another member of the household") {
		t.Errorf("unlinking a shared device as a member: %d: %s", p.status, visibleText(p.body))
	}
	mustNotContain(t, "refusal", p.body, "refused:")
	p = b.post("/my-data/unlink", url.Values{"confirm": {"yes"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "Choose at least one device") {
		t.Errorf("unlinking nothing: %d", p.status)
	}

	p = b.post("/my-data/unlink", url.Values{"device": {mine.ID}, "confirm": {"yes"}})
	if p.status != 200 || p.url != "/my-data/unlink?done=changed" {
		t.Fatalf("unlink: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	mustContain(t, "after unlinking", visibleText(p.body),
		"Your history is unlinked. The hub summed up 15 readings into 0 hourly summaries. It dropped 2 hours with fewer than 10 readings or 5 households.",
		"Your devices keep sending.")
	aggs, err := h.st.Aggregates(context.Background(), store.AggregateQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(aggs) != 0 {
		t.Errorf("one household's cells were kept: %+v", aggs)
	}
	if _, err := rig.erasure.PurgePass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := countReadings(t, h, mine.ID, ""); n != 0 {
		t.Errorf("%d raw readings of the unlinked device left after the purge", n)
	}
	if n := countReadings(t, h, shared.ID, ""); n != 10 {
		t.Errorf("%d readings of the household's device, want 10", n)
	}
	if _, err := h.st.Device(context.Background(), mine.ID); err != nil {
		t.Errorf("the device is gone after unlinking: %v", err)
	}
}

func TestAccountDeletion(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	rig := h.withErasure()
	ctx := context.Background()
	alex := h.setup("alex")
	kim := h.addMember(alex, "kim", kimPassword, store.RoleMember)
	plug := h.addOwnDevice(kim, "Kim's plug", "smart-meter")
	shared, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	h.appendPower(plug.ID, time.Now().Add(-time.Hour), 3, 100)
	if _, err := rig.vault.Enroll(ctx, kim.ID, vault.Settings{Mode: vault.HubAssisted}); err != nil {
		t.Fatal(err)
	}

	b := h.browser()
	b.login("kim", kimPassword)
	p := b.get("/my-data/leave")
	text := visibleText(p.body)
	mustContain(t, "leave page", text, "keys that only this hub holds for you", "not you, and not the person who runs the hub",
		"This happens at once, however much data there is", "cleared away in the background",
		"The devices you added, and all their data: Kim's plug.", "consent records", "Backups made before")
	mustContain(t, "leave page", p.body, `autocomplete="current-password"`, `name="unlink"`)
	mustNotContain(t, "leave page", text, "Meter.")

	// A wrong password changes nothing.
	p = b.post("/my-data/leave", url.Values{"password": {"not-my-password-at-all"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, `id="leave-password-error"`) || !strings.Contains(p.body, "This is not your password.") {
		t.Errorf("wrong password: %d: %s", p.status, visibleText(p.body))
	}
	mustNotContain(t, "wrong password", p.body, "not-my-password-at-all")
	p = b.post("/my-data/leave", url.Values{})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "Enter your password") {
		t.Errorf("no password: %d", p.status)
	}
	if _, err := h.st.AccountByUsername(ctx, "kim"); err != nil {
		t.Fatalf("kim is gone after a wrong password: %v", err)
	}
	if _, err := h.st.Device(ctx, plug.ID); err != nil {
		t.Fatalf("kim's device is gone after a wrong password: %v", err)
	}

	// The only owner of a household others belong to is refused, with why.
	a := h.browser()
	a.login("alex", goodPassword)
	a.get("/my-data/leave")
	p = a.post("/my-data/leave", url.Values{"password": {goodPassword}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "You are the only owner of a household other people still belong to") {
		t.Errorf("the only owner leaving: %d: %s", p.status, visibleText(p.body))
	}
	if _, err := h.st.AccountByUsername(ctx, "alex"); err != nil {
		t.Fatalf("alex is gone after a refusal: %v", err)
	}

	// The right password deletes the account and ends the session.
	cookie := b.cookie(sessionCookie)
	if cookie == nil {
		t.Fatal("no session cookie")
	}
	p = b.post("/my-data/leave", url.Values{"password": {kimPassword}})
	if p.status != 200 || p.url != "/login?done=account-deleted" {
		t.Fatalf("account deletion: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	mustContain(t, "login page after deletion", visibleText(p.body), "Your account was deleted.")
	if b.cookie(sessionCookie) != nil {
		t.Error("the browser still has a session cookie")
	}
	if _, err := h.st.AccountByUsername(ctx, "kim"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("kim's account after deletion: %v", err)
	}
	if _, err := h.st.Device(ctx, plug.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("kim's device after deletion: %v", err)
	}
	if _, err := h.st.Device(ctx, shared.ID); err != nil {
		t.Errorf("the household's device went with kim: %v", err)
	}
	if st, err := rig.vault.Status(kim.ID); err != nil || !st.Shredded {
		t.Errorf("kim's keys after deletion: %+v, %v", st, err)
	}
	// The old cookie no longer opens anything.
	req, _ := http.NewRequest("GET", h.srv.URL+"/my-data", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie.Value})
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("the old session cookie: %d to %s, want a redirect to the login page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if p := b.post("/login", url.Values{"username": {"kim"}, "password": {kimPassword}}); p.status != http.StatusUnauthorized {
		t.Errorf("logging in as the deleted account: %d", p.status)
	}
}

func TestLastMemberTakesTheHousehold(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.withErasure()
	ctx := context.Background()
	h.setup("alex") // the admin, in another household
	_, sam, err := h.id.CreateHousehold(ctx, "Flat 2", identity.NewAccount{Username: "sam", Password: "marble-otter-sunrise-19"})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := h.addDevice(sam.HouseholdID, "Door", "door-sensor")
	b := h.browser()
	b.login("sam", "marble-otter-sunrise-19")
	p := b.get("/my-data/leave")
	mustContain(t, "leave page of the last member", visibleText(p.body), "You are the last person in your household. So the whole household goes too, with its other devices and all their data: Door.")
	p = b.post("/my-data/leave", url.Values{"password": {"marble-otter-sunrise-19"}, "unlink": {"yes"}})
	if p.url != "/login?done=account-deleted" {
		t.Fatalf("deletion: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	if _, err := h.st.Household(ctx, sam.HouseholdID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the household after its last member left: %v", err)
	}
	if _, err := h.st.Device(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the household's device after its last member left: %v", err)
	}
}

var identityRe = regexp.MustCompile(`AGE-SECRET-KEY-1[0-9A-Z]+`)

func TestKeysPage(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	rig := h.withErasure()
	alex := h.setup("alex")
	h.addMember(alex, "kim", kimPassword, store.RoleMember)
	b := h.browser()
	b.login("alex", goodPassword)

	p := b.get("/my-data/keys")
	text := visibleText(p.body)
	mustContain(t, "keys page", text, "Your own devices", "Shared devices", "How it works now", "Hub-assisted: the hub keeps a copy")
	mustContain(t, "keys page", p.body, `action="/my-data/keys/me/rotate"`, `action="/my-data/keys/household/user-held"`)

	// Rotate: a new key, the old one kept.
	before, _ := rig.vault.Status(alex.ID)
	p = b.post("/my-data/keys/me/rotate", nil)
	if p.status != 200 || !strings.Contains(visibleText(p.body), "A new key is in use.") {
		t.Errorf("rotate: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	if after, _ := rig.vault.Status(alex.ID); len(after.Keys) != len(before.Keys)+1 {
		t.Errorf("rotate: %d keys, then %d", len(before.Keys), len(after.Keys))
	}

	// A secret key pasted as a recipient is refused and not shown again.
	secret, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	p = b.post("/my-data/keys/me/user-held", url.Values{"key": {"own"}, "recipient": {secret.String()}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "This is a secret key") {
		t.Errorf("secret key as recipient: %d: %s", p.status, visibleText(p.body))
	}
	mustNotContain(t, "refused recipient", p.body, secret.String(), strings.ToLower(secret.String()))
	p = b.post("/my-data/keys/me/user-held", url.Values{"key": {"own"}, "recipient": {"age1nope"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "This is not an age recipient") {
		t.Errorf("bad recipient: %d: %s", p.status, visibleText(p.body))
	}
	mustContain(t, "bad recipient", p.body, `id="me-key-own" name="key" value="own" checked`)

	// A generated identity: shown once, with a warning, never cached.
	p = b.post("/my-data/keys/me/user-held", url.Values{"key": {"new"}})
	if p.status != 200 || !strings.HasPrefix(p.url, "/my-data/keys/new?owner=me") {
		t.Fatalf("generate: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	id := identityRe.FindString(p.body)
	if id == "" {
		t.Fatalf("the new key page shows no identity: %s", visibleText(p.body))
	}
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the new key page has Cache-Control %q", cc)
	}
	mustContain(t, "new key page", visibleText(p.body), "This is the only time the hub shows it.", "Only your own key can now open")
	st, err := rig.vault.Status(alex.ID)
	if err != nil || st.Mode != vault.UserHeld {
		t.Fatalf("after generating: %+v, %v", st, err)
	}
	parsed, err := age.ParseX25519Identity(id)
	if err != nil || parsed.Recipient().String() != st.Recipient {
		t.Errorf("the identity shown does not match the recipient stored (%v)", err)
	}
	mustContain(t, "new key page", p.body, st.Recipient)
	p = b.get("/my-data/keys/new?owner=me")
	if identityRe.MatchString(p.body) || !strings.Contains(p.body, "This key was shown once") {
		t.Errorf("a second look shows the identity again: %s", visibleText(p.body))
	}
	if identityRe.MatchString(b.get("/my-data/keys").body) {
		t.Error("the keys page shows the identity")
	}
	mustContain(t, "keys page, user-held", b.last.body, `action="/my-data/keys/me/hub-assisted"`, "User-held: only the person")

	// Back to hub-assisted: a wrong identity text is refused and not
	// echoed; the right identity rewraps the keys made meanwhile.
	p = b.post("/my-data/keys/me/hub-assisted", url.Values{"identity": {"AGE-SECRET-KEY-1NOTAKEY"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "This is not an age identity") {
		t.Errorf("bad identity: %d: %s", p.status, visibleText(p.body))
	}
	mustNotContain(t, "bad identity", p.body, "AGE-SECRET-KEY-1NOTAKEY")
	if st, _ := rig.vault.Status(alex.ID); st.Mode != vault.UserHeld {
		t.Errorf("a refused switch changed the mode to %s", st.Mode)
	}
	b.post("/my-data/keys/me/rotate", nil) // a key only the identity opens
	p = b.post("/my-data/keys/me/hub-assisted", url.Values{"identity": {id}})
	if p.status != 200 || !strings.Contains(visibleText(p.body), "It can read all the readings from before too.") {
		t.Errorf("back to hub-assisted: %d: %s", p.status, visibleText(p.body))
	}
	mustNotContain(t, "after switching back", p.body, id)
	st, _ = rig.vault.Status(alex.ID)
	if st.Mode != vault.HubAssisted {
		t.Errorf("mode %s after switching back", st.Mode)
	}
	for _, k := range st.Keys {
		if !k.HubReadable {
			t.Errorf("key %s is not readable by the hub after the rewrap", k.KeyID)
		}
	}

	// A member sees the household's keys but cannot change them.
	k := h.browser()
	k.login("kim", kimPassword)
	p = k.get("/my-data/keys")
	mustContain(t, "member's keys page", visibleText(p.body), "Only an owner of your household can change these keys.")
	mustNotContain(t, "member's keys page", p.body, `action="/my-data/keys/household/`)
	hhBefore, _ := rig.vault.Status(alex.HouseholdID)
	for _, path := range []string{"/my-data/keys/household/rotate", "/my-data/keys/household/user-held"} {
		if p := k.post(path, url.Values{"key": {"new"}}); p.status != http.StatusForbidden {
			t.Errorf("a member posting %s: %d, want 403", path, p.status)
		}
	}
	if hhAfter, _ := rig.vault.Status(alex.HouseholdID); len(hhAfter.Keys) != len(hhBefore.Keys) || hhAfter.Mode != vault.HubAssisted {
		t.Errorf("a member changed the household's keys: %+v", hhAfter)
	}
	if p := k.post("/my-data/keys/nobody/rotate", nil); p.status != http.StatusNotFound {
		t.Errorf("an unknown key owner: %d", p.status)
	}
}

func TestErasePagesWithoutErasure(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.setup("alex")
	b := h.browser()
	b.login("alex", goodPassword)
	for path, want := range map[string]string{
		"/my-data/delete": "Deleting readings is not available on this hub.",
		"/my-data/unlink": "Unlinking is not available on this hub.",
		"/my-data/leave":  "Deleting an account is not available on this hub.",
		"/my-data/keys":   "Key settings are not available on this hub.",
	} {
		p := b.get(path)
		if p.status != 200 || !strings.Contains(visibleText(p.body), want) {
			t.Errorf("%s: %d: %s", path, p.status, visibleText(p.body))
		}
	}
	for _, path := range []string{"/my-data/delete", "/my-data/unlink", "/my-data/leave", "/my-data/keys/me/rotate"} {
		b.get("/my-data")
		if p := b.post(path, url.Values{"password": {goodPassword}, "confirm": {"yes"}}); p.status != http.StatusNotFound {
			t.Errorf("POST %s without erasure: %d, want 404", path, p.status)
		}
	}
}

func TestErasePagesArePlainEnglish(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.withErasure()
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Hall", "smart-meter")
	mine := h.addOwnDevice(alex, "Plug", "smart-meter")
	_ = mine
	b := h.browser()
	b.login("alex", goodPassword)
	for _, path := range []string{"/my-data", "/my-data/delete", "/my-data/delete?device=" + d.ID, "/my-data/unlink", "/my-data/leave", "/my-data/keys", "/my-data/keys/new?owner=me"} {
		p := b.get(path)
		if p.status != 200 {
			t.Errorf("%s: %d", path, p.status)
			continue
		}
		text := visibleText(p.body)
		if s := readability.Score(text); s.Ease < readability.PlainEnglish {
			t.Errorf("page %s scores %.1f, want at least %.0f:\n%s", path, s.Ease, readability.PlainEnglish, text)
		}
	}
	b.get("/my-data/keys")
	p := b.post("/my-data/keys/me/user-held", url.Values{"key": {"new"}})
	if s := readability.Score(visibleText(p.body)); s.Ease < readability.PlainEnglish {
		t.Errorf("the new key page scores %.1f:\n%s", s.Ease, visibleText(p.body))
	}
}

// TestBrowserAccountDeletion walks account deletion in Chromium with the
// keyboard alone, and audits each erasure page with axe-core.
func TestBrowserAccountDeletion(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h := startHub(t)
	h.withErasure()
	alex := h.setup("alex")
	kim := h.addMember(alex, "kim", kimPassword, store.RoleMember)
	plug := h.addOwnDevice(kim, "Kim's plug", "smart-meter")
	meter, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	h.appendPower(plug.ID, time.Now().Add(-3*time.Hour).Truncate(time.Hour), 12, 100)
	h.appendPower(meter.ID, time.Now().Add(-3*time.Hour).Truncate(time.Hour), 12, 100)
	// Enough households for unlinking to run at all.
	for i := range erasure.MinCellHouseholds - 1 {
		if _, _, err := h.id.CreateHousehold(context.Background(), fmt.Sprintf("Flat %d", i+2),
			identity.NewAccount{Username: fmt.Sprintf("owner%d", i), Password: "marble-otter-sunrise-19"}); err != nil {
			t.Fatal(err)
		}
	}
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
	enter := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
		defer cancel()
		if _, err := chromedp.RunResponse(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
			t.Fatalf("Enter on %s: %v", what, err)
		}
	}

	// The owner's pages, each audited.
	login("alex", goodPassword)
	for _, p := range []struct{ path, name string }{
		{"/my-data/delete", "delete: choose a device"},
		{"/my-data/delete?device=" + meter.ID, "delete: what to delete"},
		{"/my-data/unlink", "unlink"},
		{"/my-data/keys", "keys"},
		{"/my-data/leave", "leave"},
	} {
		tb.open(p.path)
		tb.checkA11y(p.name)
	}
	tb.open("/my-data/delete?device=" + meter.ID)
	tb.checkFocusVisible("delete: what to delete")
	tb.step("tick the box", chromedp.Click(chromedp.ID("confirm")))
	tb.submit("delete readings", "#delete-readings")
	if msg := eval[string](tb, `document.querySelector('.status-message').textContent`); !strings.Contains(msg, "The hub deleted 12 readings of Meter.") {
		t.Errorf("after deleting the page says %q", msg)
	}
	tb.checkA11y("delete: done")
	tb.open("/my-data/keys")
	tb.checkFocusVisible("keys")
	tb.step("choose a new key", chromedp.Click(chromedp.ID("household-key-new")))
	tb.submit("hold the key", "#household-user-held")
	if !eval[bool](tb, `/^AGE-SECRET-KEY-1/.test(document.getElementById('age-identity').textContent)`) {
		t.Error("the new key page shows no identity")
	}
	tb.checkA11y("new key")
	tb.open("/my-data/keys/new?owner=household")
	tb.checkA11y("new key, shown once")
	tb.open("/my-data/keys")
	tb.checkA11y("keys, user-held")
	tb.submit("log out", "nav form button[type=submit]")

	// Kim unlinks, then deletes the account by keyboard.
	login("kim", kimPassword)
	tb.open("/my-data/unlink")
	tb.checkFocusVisible("unlink")
	tb.tabTo("the unlink box", `document.activeElement.id === 'confirm'`)
	tb.step("tick", chromedp.KeyEvent(" "))
	tb.tabTo("the unlink button", `document.activeElement.id === 'unlink-history'`)
	enter("the unlink button")
	if msg := eval[string](tb, `document.querySelector('.status-message').textContent`); !strings.Contains(msg, "summed up 12 readings into 0 hourly summaries") {
		t.Errorf("after unlinking the page says %q", msg)
	}
	tb.checkA11y("unlink: done")

	tb.open("/my-data")
	tb.tabTo("the account deletion link", `document.activeElement.id === 'go-leave'`)
	enter("the account deletion link")
	if p := tb.path(); p != "/my-data/leave" {
		t.Fatalf("the link went to %s", p)
	}
	tb.checkFocusVisible("leave")
	tb.tabTo("the password", `document.activeElement.id === 'leave-password'`)
	tb.step("type a wrong password", chromedp.KeyEvent("wrong-password-here"))
	enter("the password field (wrong)")
	if msg := eval[string](tb, `document.getElementById('leave-password-error').textContent`); !strings.Contains(msg, "This is not your password.") {
		t.Errorf("a wrong password says %q", msg)
	}
	if eval[string](tb, `document.activeElement.className`) != "error-summary" {
		t.Error("focus did not move to the error summary")
	}
	tb.checkA11y("leave, wrong password")
	tb.tabTo("the password again", `document.activeElement.id === 'leave-password'`)
	tb.step("type the password", chromedp.KeyEvent(kimPassword))
	tb.tabTo("the delete button", `document.activeElement.id === 'delete-account'`)
	enter("the delete button")
	if p := tb.path(); p != "/login?done=account-deleted" {
		t.Fatalf("after deleting the account the browser is at %s", p)
	}
	if msg := eval[string](tb, `document.querySelector('.status-message').textContent`); msg != "Your account was deleted." {
		t.Errorf("the login page says %q", msg)
	}
	tb.checkA11y("login, account deleted")
	if _, err := h.st.AccountByUsername(context.Background(), "kim"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("kim after deletion: %v", err)
	}
	tb.open("/my-data")
	if p := tb.path(); !strings.HasPrefix(p, "/login") {
		t.Errorf("after deletion /my-data opens %s", p)
	}
	tb.checkProblems("end")
}
