package hub

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/auditlog"
)

// TestFirmwareAdvisoryAndOperator runs the whole device-lifecycle path on
// a real hub: a thermostat reports its firmware over real MQTT 5, the
// operator imports an advisory over the control socket, the finding
// appears in the API in plain words, and the named operator is served in
// security.txt.
func TestFirmwareAdvisoryAndOperator(t *testing.T) {
	th := startHub(t)
	id, secret := th.addDevice("Hall thermostat", "thermostat")
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/$state", QoS: 1, Payload: []byte(`{"firmware":"1.3.0","hardware":"rev-b"}`)})
	if err != nil || resp.ReasonCode != 0 {
		t.Fatalf("publish state: %+v %v", resp, err)
	}
	code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices/"+id+"/firmware", "", nil)
	cur, _ := out["current"].(map[string]any)
	if code != http.StatusOK || cur["firmware"] != "1.3.0" || cur["hardware"] != "rev-b" {
		t.Fatalf("firmware: %d %v", code, out)
	}
	if n := len(th.readings(id, "")); n != 0 {
		t.Errorf("the state message was stored as %d readings", n)
	}

	// A refused document stores nothing and names the JSON path.
	bad, err := os.ReadFile("../advisories/testdata/osv-bad-range.json")
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = call(t, th.local, "POST", "http://candor/api/v1/advisories?source=bad.json", "", string(bad))
	if code != http.StatusUnprocessableEntity || !strings.Contains(out["detail"].(string), "$.affected[0].ranges[0].type") {
		t.Fatalf("bad advisory: %d %v", code, out)
	}
	good, err := os.ReadFile("../advisories/testdata/osv-thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ = call(t, th.local, "POST", "http://candor/api/v1/advisories", "", string(good)); code != http.StatusCreated {
		t.Fatalf("import: %d %v", code, out)
	}
	code, out, _ = call(t, th.local, "GET", "http://candor/api/v1/advisories", "", nil)
	fs, _ := out["findings"].([]any)
	if code != http.StatusOK || out["advisories"] != float64(1) || len(fs) != 1 {
		t.Fatalf("advisories: %d %v", code, out)
	}
	f := fs[0].(map[string]any)
	if f["device"] != id || f["status"] != "affected" || f["severity"] != "high" || f["scoreSource"] != "computed" ||
		!strings.Contains(f["attackerCan"].(string), "home network") || !strings.Contains(f["action"].(string), "1.4.2") {
		t.Errorf("finding = %v", f)
	}

	// The device updates: the finding closes.
	if resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/$state", QoS: 1, Payload: []byte(`{"firmware":"1.4.2","hardware":"rev-b"}`)}); err != nil || resp.ReasonCode != 0 {
		t.Fatalf("publish state: %+v %v", resp, err)
	}
	if _, out, _ = call(t, th.local, "GET", "http://candor/api/v1/advisories", "", nil); len(out["findings"].([]any)) != 0 {
		t.Errorf("after the fix: %v", out)
	}

	// security.txt answers 404 until a contact is named, then serves it.
	get := func() (int, string) {
		r, err := http.Get("http://" + th.HTTPAddr() + "/.well-known/security.txt")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, _ := get(); code != http.StatusNotFound {
		t.Errorf("security.txt before a contact: %d", code)
	}
	code, out, _ = call(t, th.local, "PUT", "http://candor/api/v1/operator", "", map[string]string{
		"name": "Ada's home", "contact": "mailto:sec@example.org", "disclosurePolicy": "https://example.org/disclose"})
	if code != http.StatusOK {
		t.Fatalf("put operator: %d %v", code, out)
	}
	code, body := get()
	if code != http.StatusOK || !strings.Contains(body, "Contact: mailto:sec@example.org\n") || !strings.Contains(body, "Policy: https://example.org/disclose\n") || !strings.Contains(body, "Expires: ") {
		t.Errorf("security.txt: %d\n%s", code, body)
	}
	if code, out, _ := call(t, http.DefaultClient, "GET", "http://"+th.HTTPAddr()+"/api/v1/operator", "", nil); code != http.StatusOK || out["displayName"] != "Ada's home" {
		t.Errorf("operator: %d %v", code, out)
	}
}

// TestDemoShowsAdvisory starts the demo: the simulated thermostat reports
// an affected firmware over MQTT, so the demo advisory concerns it; the
// demo's own signed update repository holds the fix, which the hub offers
// automatically and the simulated thermostat downloads with its own
// credential, checks and installs, reporting each stage; the advisory
// then no longer concerns it. Starting the demo again does not import
// (or log) the demo advisory again.
func TestDemoShowsAdvisory(t *testing.T) {
	th := startHub(t, func(c *configT) { c.Demo = true; c.DemoSpeed = 20 })
	var thermo string
	waitFor(t, "the demo thermostat", 20*time.Second, func() bool {
		_, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices", "", nil)
		ds, _ := out["devices"].([]any)
		for _, x := range ds {
			if m := x.(map[string]any); m["type"] == "thermostat" {
				thermo, _ = m["id"].(string)
			}
		}
		return thermo != ""
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(th.logs.String(), "\n") {
				if strings.Contains(l, "update") || strings.Contains(l, "demo") {
					t.Log(l)
				}
			}
		}
	})
	// While the device has not finished, the advisory says its fix is on
	// its way (the demo thermostat waits a simulated minute before it
	// starts, 3 s at this speed).
	waitFor(t, "the advisory saying its fix is on its way", 20*time.Second, func() bool {
		_, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices/"+thermo+"/advisories", "", nil)
		fs, _ := out["findings"].([]any)
		for _, x := range fs {
			if m := x.(map[string]any); m["advisory"] == demoFixAdvisory && m["updateInstalling"] == true &&
				strings.Contains(m["action"].(string), "on its way: version "+demoFixVersion) {
				return true
			}
		}
		return false
	})
	waitFor(t, "the signed fix installed on the demo thermostat", 30*time.Second, func() bool {
		_, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices/"+thermo+"/updates", "", nil)
		u, _ := out["update"].(map[string]any)
		// "up-to-date" once the device reports the version it installed.
		return u["stage"] == "up-to-date" && u["installed"] == demoFixVersion && len(th.logged(thermo, auditlog.ActionUpdateInstall)) > 0
	})
	_, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices/"+thermo+"/firmware", "", nil)
	b, _ := json.Marshal(out)
	if !strings.Contains(string(b), `"1.3.0"`) || !strings.Contains(string(b), `"`+demoFixVersion+`"`) {
		t.Errorf("firmware history %s, want the affected 1.3.0 and then %s", b, demoFixVersion)
	}
	for _, action := range []string{auditlog.ActionUpdateOffer, auditlog.ActionUpdateInstall} {
		if evs := th.logged(thermo, action); len(evs) != 1 || evs[0].Detail["version"] != demoFixVersion {
			t.Errorf("%s entries = %+v, want one for %s", action, evs, demoFixVersion)
		}
	}
	waitFor(t, "the demo advisory closed", 10*time.Second, func() bool {
		_, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices/"+thermo+"/advisories", "", nil)
		fs, _ := out["findings"].([]any)
		return len(fs) == 0
	})
	// As on a restart of the demo: the advisory is held, so it is not
	// imported again.
	if err := th.importDemoAdvisory(auditlog.WithActor(context.Background(), auditlog.Actor{Kind: auditlog.ActorHub, ID: "demo"})); err != nil {
		t.Fatal(err)
	}
	_, out, _ = call(t, th.local, "GET", "http://candor/api/v1/log/entries", "", nil)
	n := 0
	for _, e := range out["entries"].([]any) {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), `"advisory.import"`) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the demo advisory import is logged %d times, want 1", n)
	}
}

// TestDemoRestartShowsTheFixAgain: the demo's thermostat starts from the
// affected firmware at every start, so a restarted demo (its repository
// and the stored update stage kept) offers and installs the fix again
// rather than keeping the last run's "installed". It checks no stage in
// between, so the demo runs at speed 100: a device waits 0.6 s before it
// installs an offer instead of 3 s (at 20) at each of the two starts.
func TestDemoRestartShowsTheFixAgain(t *testing.T) {
	dir := shortTempDir(t)
	demo := func(c *configT) { c.Demo = true; c.DemoSpeed = 100 }
	installs := func(th *testHub) int {
		n := 0
		for e, err := range th.alog.Entries(context.Background(), 0, th.alog.Size()) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Event.Action == auditlog.ActionUpdateInstall {
				n++
			}
		}
		return n
	}
	th := startHubIn(t, dir, demo)
	waitFor(t, "the first install", 30*time.Second, func() bool { return installs(th) == 1 })
	th.close()
	th = startHubIn(t, dir, demo)
	waitFor(t, "the install after the restart", 30*time.Second, func() bool { return installs(th) == 2 })
}
