package hub

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// personDevice adds a device as a person (so its readings are sealed under
// their own keys) and returns its id and secret.
func (th *testHub) personDevice(tok, name, typ string) (string, string) {
	th.t.Helper()
	code, out, _ := call(th.t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", tok, map[string]string{"name": name, "type": typ})
	if code != http.StatusCreated {
		th.t.Fatalf("add device: %d %v", code, out)
	}
	d := out["device"].(map[string]any)
	return d["id"].(string), out["secret"].(string)
}

func (th *testHub) post(id, secret, stream, body string) {
	th.t.Helper()
	req, _ := http.NewRequest("POST", th.URL()+"/api/v1/ingest/"+stream, strings.NewReader(body))
	req.SetBasicAuth(id, secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		th.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		th.t.Fatalf("ingest: %d", resp.StatusCode)
	}
}

func (th *testHub) personReadings(tok, id string) (int, map[string]any) {
	th.t.Helper()
	code, out, _ := call(th.t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+id+"/readings", tok, nil)
	return code, out
}

// TestKeysThroughTheAPI walks a person through their key settings: the
// default (hub-assisted), user-held with a generated identity (the hub
// then cannot read history, and says so), back to hub-assisted with that
// identity (history readable again), and rotation (history kept).
func TestKeysThroughTheAPI(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	tok := th.setup("alice")
	id, secret := th.personDevice(tok, "Hall", "thermostat")
	dev := th.device(id)
	if dev["key_owner"] == dev["household_id"] || !strings.HasPrefix(fmt.Sprint(dev["key_owner"]), "acc_") {
		t.Fatalf("a person's device is keyed to %v; want their account", dev["key_owner"])
	}
	for i := range 3 {
		th.post(id, secret, "temperature", fmt.Sprintf(`{"celsius":%d,"humidity_percent":40}`, 19+i))
	}
	keysURL := th.URL() + "/api/v1/keys/me"
	code, out, _ := call(t, http.DefaultClient, "GET", keysURL, tok, nil)
	if code != 200 || out["mode"] != "hub-assisted" || out["hub_can_read"] == "" {
		t.Fatalf("GET keys: %d %v", code, out)
	}

	// Bad input changes nothing.
	for _, bad := range []map[string]any{
		{"mode": "nobody"},
		{"mode": "user-held"}, // no recipient: nobody could read the data
		{"mode": "user-held", "recipient": "AGE-SECRET-KEY-1XYZ"},
		{"mode": "user-held", "recipient": "age1abc", "generate_identity": true},
	} {
		code, out, _ := call(t, http.DefaultClient, "PUT", keysURL, tok, bad)
		if code != http.StatusUnprocessableEntity {
			t.Errorf("PUT keys %v: %d %v; want 422", bad, code, out)
		}
		if strings.Contains(fmt.Sprint(out), "AGE-SECRET-KEY") {
			t.Errorf("an error echoed a secret key: %v", out)
		}
	}

	code, out, _ = call(t, http.DefaultClient, "PUT", keysURL, tok, map[string]any{"mode": "user-held", "generate_identity": true})
	if code != 200 || out["mode"] != "user-held" {
		t.Fatalf("switch to user-held: %d %v", code, out)
	}
	ident, _ := out["identity"].(string)
	if !strings.HasPrefix(ident, "AGE-SECRET-KEY-1") {
		t.Fatalf("no generated identity in the answer: %v", out)
	}
	code, out, _ = call(t, http.DefaultClient, "GET", keysURL, tok, nil)
	if code != 200 || out["identity"] != nil {
		t.Fatalf("the identity is shown again (%v) or GET failed (%d)", out["identity"], code)
	}
	code, out = th.personReadings(tok, id)
	if code != http.StatusConflict || !strings.Contains(fmt.Sprint(out["detail"]), "user-held") {
		t.Fatalf("history in user-held mode: %d %v; want 409 saying the hub cannot read it", code, out)
	}
	// The person reads it with their identity, for one request.
	openURL := th.URL() + "/api/v1/devices/" + id + "/readings/open?limit=10"
	code, out, _ = call(t, http.DefaultClient, "POST", openURL, tok, map[string]string{"identity": ident})
	if code != 200 || len(out["readings"].([]any)) != 3 {
		t.Fatalf("reading user-held history with the identity: %d %v", code, out)
	}
	other, _ := age.GenerateX25519Identity()
	code, out, _ = call(t, http.DefaultClient, "POST", openURL, tok, map[string]string{"identity": other.String()})
	if code != http.StatusUnprocessableEntity || strings.Contains(fmt.Sprint(out), "AGE-SECRET-KEY") {
		t.Errorf("another identity: %d %v; want 422 without echoing the key", code, out)
	}
	if code, _ = th.personReadings(tok, id); code != http.StatusConflict {
		t.Errorf("after the identity request the hub still must not read it: %d", code)
	}
	// With the identity, the export job opens it (the identity lives only
	// as long as the job); with another identity, the job says why it failed.
	exportWith := func(ident string) map[string]any {
		t.Helper()
		code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/exports", tok, map[string]string{"identity": ident})
		if code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("export with an identity: %d %v", code, out)
		}
		status := th.URL() + out["status_url"].(string)
		waitFor(t, "the export to finish", 20*time.Second, func() bool {
			_, out, _ = call(t, http.DefaultClient, "GET", status, tok, nil)
			return out["state"] != "running"
		})
		return out
	}
	if out := exportWith(other.String()); out["state"] != "failed" || !strings.Contains(fmt.Sprint(out["error"]), "does not open") {
		t.Errorf("export with another identity: %v; want failed, saying the identity does not open the key", out)
	}
	if out := exportWith(ident); out["state"] != "done" || out["readings_done"].(float64) != 3 {
		t.Errorf("export with the identity: %v; want done with the 3 readings", out)
	}
	// An export would be incomplete: it is refused up front, not broken half way.
	for _, c := range []struct{ method, path string }{{"GET", "/api/v1/export"}, {"POST", "/api/v1/exports"}} {
		code, out, _ := call(t, http.DefaultClient, c.method, th.URL()+c.path, tok, nil)
		if code != http.StatusConflict || !strings.Contains(fmt.Sprint(out["detail"]), "user-held") {
			t.Errorf("%s %s in user-held mode: %d %v; want 409 saying why", c.method, c.path, code, out)
		}
	}

	code, out, _ = call(t, http.DefaultClient, "PUT", keysURL, tok, map[string]any{"mode": "hub-assisted", "identity": ident})
	if code != 200 || out["mode"] != "hub-assisted" {
		t.Fatalf("back to hub-assisted with the identity: %d %v", code, out)
	}
	code, out = th.personReadings(tok, id)
	if code != 200 || len(out["readings"].([]any)) != 3 {
		t.Fatalf("history after switching back: %d %v; want the 3 readings", code, out)
	}

	code, out, _ = call(t, http.DefaultClient, "POST", keysURL+"/rotate", tok, nil)
	if code != 200 {
		t.Fatalf("rotate: %d %v", code, out)
	}
	th.post(id, secret, "temperature", `{"celsius":22,"humidity_percent":41}`)
	code, out = th.personReadings(tok, id)
	if code != 200 || len(out["readings"].([]any)) != 4 {
		t.Fatalf("history after rotation: %d %v; want all 4 readings", code, out)
	}
	// Each change is in the person's transparency log, without any key.
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/log/entries", tok, nil)
	if code != 200 {
		t.Fatalf("log: %d %v", code, out)
	}
	seen := map[string]int{}
	for _, e := range out["entries"].([]any) {
		ev := e.(map[string]any)["event"].(map[string]any)
		seen[fmt.Sprint(ev["action"])]++
		if strings.Contains(fmt.Sprint(ev), "AGE-SECRET-KEY") {
			t.Errorf("a log entry holds a secret key: %v", ev)
		}
	}
	if seen["key.change"] < 3 || seen["key.rotate"] != 1 {
		t.Errorf("key events in the log: %v; want the switches, the rewrap and the rotation", seen)
	}
}

// TestDeleteAccountThroughTheAPI deletes a member's account: password
// asked again, their device and history gone, the household's kept.
func TestDeleteAccountThroughTheAPI(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	owner := th.setup("alice")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/accounts", owner,
		map[string]string{"username": "bob", "password": goodPassword, "role": "member"})
	if code != http.StatusCreated {
		t.Fatalf("add bob: %d %v", code, out)
	}
	bob := th.token("bob", goodPassword)
	me := th.URL() + "/api/v1/me"
	// Alice, the only owner, cannot leave bob without one.
	code, out, _ = call(t, http.DefaultClient, "DELETE", me, owner, map[string]any{"password": goodPassword})
	if code != http.StatusConflict || !strings.Contains(fmt.Sprint(out["detail"]), "owner") {
		t.Errorf("only owner deletes herself: %d %v; want 409 explaining why", code, out)
	}
	// Members add no devices; alice makes bob an owner.
	code, out, _ = call(t, http.DefaultClient, "GET", me, bob, nil)
	if code != 200 {
		t.Fatalf("bob's /me: %d %v", code, out)
	}
	bobID := out["account"].(map[string]any)["id"].(string)
	if code, out, _ := call(t, http.DefaultClient, "PATCH", th.URL()+"/api/v1/accounts/"+bobID, bob, map[string]string{"role": "owner"}); code != http.StatusForbidden {
		t.Errorf("a member promotes himself: %d %v", code, out)
	}
	if code, out, _ := call(t, http.DefaultClient, "PATCH", th.URL()+"/api/v1/accounts/"+bobID, owner, map[string]string{"role": "owner"}); code != 200 || out["role"] != "owner" {
		t.Fatalf("alice promotes bob: %d %v", code, out)
	}
	bobDev, bobSecret := th.personDevice(bob, "Bob's band", "thermostat")
	aliceDev, aliceSecret := th.personDevice(owner, "Hall", "thermostat")
	for i := range 12 {
		th.post(bobDev, bobSecret, "temperature", fmt.Sprintf(`{"celsius":%d,"humidity_percent":40}`, 18+i%4))
		th.post(aliceDev, aliceSecret, "temperature", `{"celsius":21,"humidity_percent":40}`)
	}

	if code, out, _ := call(t, http.DefaultClient, "DELETE", me, bob, map[string]any{}); code != http.StatusUnprocessableEntity {
		t.Errorf("delete without the password: %d %v", code, out)
	}
	if code, out, _ := call(t, http.DefaultClient, "DELETE", me, bob, map[string]any{"password": "not it at all"}); code != http.StatusUnprocessableEntity {
		t.Errorf("delete with a wrong password: %d %v", code, out)
	}
	code, out, _ = call(t, http.DefaultClient, "DELETE", me, bob, map[string]any{"password": goodPassword, "unlink": true})
	if code != 200 {
		t.Fatalf("delete bob: %d %v", code, out)
	}
	if out["household_deleted"] != false || fmt.Sprint(out["devices_erased"]) != "["+bobDev+"]" {
		t.Errorf("report: %v", out)
	}
	if code, _, _ := call(t, http.DefaultClient, "GET", me, bob, nil); code != http.StatusUnauthorized {
		t.Errorf("bob's token after deletion: %d; want 401", code)
	}
	if code, _ = th.personReadings(owner, bobDev); code != http.StatusNotFound {
		t.Errorf("bob's device after deletion: %d; want 404", code)
	}
	if code, out = th.personReadings(owner, aliceDev); code != 200 || len(out["readings"].([]any)) != 12 {
		t.Errorf("alice's history after bob left: %d %v", code, out)
	}
	// Bob chose to leave anonymised aggregates: 12 readings in at most two
	// hours, so at most one cell per field survives suppression.
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/aggregates", owner, nil)
	if code != 200 {
		t.Fatalf("aggregates: %d %v", code, out)
	}
	for _, c := range out["aggregates"].([]any) {
		cell := c.(map[string]any)
		if len(cell) != 6 || cell["device_type"] != "thermostat" {
			t.Errorf("cell %v: want only device_type, stream, field, hour, count, mean", cell)
		}
	}
	// The device cannot send any more.
	req, _ := http.NewRequest("POST", th.URL()+"/api/v1/ingest/temperature", strings.NewReader(`{"celsius":20,"humidity_percent":40}`))
	req.SetBasicAuth(bobDev, bobSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("erased device's ingest: %d; want 401", resp.StatusCode)
	}
}

// TestLastAccountLeaves deletes the hub's only account: the household and
// the demo-style shared device go with it, nothing of theirs decrypts, and
// after a restart the hub waits for setup again with a new token.
func TestLastAccountLeaves(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	th := startHubIn(t, dir)
	tok := th.setup("alice")
	shared, sharedSecret := th.addDevice("Hall", "thermostat") // the operator's: household keys
	own, ownSecret := th.personDevice(tok, "Band", "thermostat")
	for i := range 3 {
		th.post(shared, sharedSecret, "temperature", fmt.Sprintf(`{"celsius":%d,"humidity_percent":40}`, 20+i))
		th.post(own, ownSecret, "temperature", `{"celsius":20,"humidity_percent":40}`)
	}
	code, out, _ := call(t, http.DefaultClient, "DELETE", th.URL()+"/api/v1/me", tok, map[string]any{"password": goodPassword})
	if code != 200 || out["household_deleted"] != true || len(out["devices_erased"].([]any)) != 2 || len(out["keys_shredded"].([]any)) != 2 {
		t.Fatalf("delete the last account: %d %v", code, out)
	}
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/setup", "", nil)
	if code != 200 || out["needed"] != true {
		t.Errorf("setup after the last account left: %d %v; want needed", code, out)
	}
	th.close()
	th = startHubIn(t, dir)
	if th.SetupToken() == "" {
		t.Fatal("no new setup token after a restart")
	}
	code, out, _ = call(t, th.local, "GET", "http://candor/api/v1/devices", "", nil)
	if code != 200 || len(out["devices"].([]any)) != 0 {
		t.Errorf("devices after the household left: %d %v", code, out)
	}
}
