package hub

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/sim"
)

// TestRestrictUntilFixed, over real MQTT: an owner puts a thermostat an
// advisory concerns on hold; the device is told on its control topic and
// its readings are refused, while it can still report its firmware; when
// it reports the fixing version the hub lifts the hold by itself. Both
// steps are in the transparency log with the hold's own reason.
func TestRestrictUntilFixed(t *testing.T) {
	th := startHub(t)
	id, secret := th.addDevice("Hall thermostat", "thermostat")
	var (
		mu      sync.Mutex
		control []string
	)
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, func(p paho.PublishReceived) {
		mu.Lock()
		defer mu.Unlock()
		control = append(control, string(p.Packet.Payload))
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + id + "/control/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	publish := func(topic, payload string) *paho.PublishResponse {
		t.Helper()
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/" + topic, QoS: 1, Payload: []byte(payload)})
		if err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
		return resp
	}
	publish("$state", `{"firmware":"1.3.0"}`)
	doc, err := os.ReadFile("../advisories/testdata/osv-thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/advisories", "", string(doc)); code != http.StatusCreated {
		t.Fatalf("import: %d %v", code, out)
	}
	const adv = "CANDOR-DEMO-2026-0001"
	_, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices/"+id+"/advisories", "", nil)
	if fs, _ := out["findings"].([]any); len(fs) != 1 || fs[0].(map[string]any)["canRestrict"] != true ||
		!strings.Contains(fs[0].(map[string]any)["action"].(string), "put the device on hold") {
		t.Fatalf("finding before the hold: %v, want the offer to put it on hold", out)
	}
	// An advisory that does not concern the device is refused.
	if code, _, _ := call(t, th.local, "POST", "http://candor/api/v1/devices/"+id+"/restrict", "", map[string]string{"advisory": "CVE-0000-0000"}); code != http.StatusConflict {
		t.Errorf("restrict for an unrelated advisory: %d, want 409", code)
	}
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/devices/"+id+"/restrict", "", map[string]string{"advisory": adv}); code != http.StatusOK {
		t.Fatalf("restrict: %d %v", code, out)
	}
	waitFor(t, "the device told it is on hold", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(control) > 0 && strings.Contains(control[len(control)-1], `"quarantined":true`) && strings.Contains(control[len(control)-1], `"advisory"`)
	})
	// paho turns the refusal (PUBACK "not authorized") into an error.
	if resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1, Payload: []byte(`{"celsius":21.5,"humidity_percent":40}`)}); err == nil && resp.ReasonCode == 0 {
		t.Error("a reading while on hold was accepted")
	}
	if n := len(th.readings(id, "")); n != 0 {
		t.Errorf("%d readings kept while on hold", n)
	}
	if st, ok := th.mon.Status(id); !ok || !st.Quarantined || st.Alarm.Kind != monitor.KindAdvisory {
		t.Errorf("monitor status %+v, %v; want quarantined for an advisory", st, ok)
	}
	_, out, _ = call(t, th.local, "GET", "http://candor/api/v1/devices/"+id+"/advisories", "", nil)
	if fs, _ := out["findings"].([]any); len(fs) != 1 || fs[0].(map[string]any)["restricted"] != true {
		t.Errorf("finding while on hold: %v, want restricted", out)
	}
	held := th.logged(id, auditlog.ActionDeviceQuarantine)
	if len(held) != 1 || held[0].Purpose != "restricted until fixed (advisory "+adv+")" || held[0].Actor.Kind != auditlog.ActorOperator {
		t.Errorf("logged holds = %+v, want one with the reason and the operator as actor", held)
	}

	// A version that is still affected keeps the hold; the fixed one lifts it.
	publish("$state", `{"firmware":"1.4.0"}`)
	if _, ok := th.mon.RestrictedFor(id); !ok {
		t.Error("an affected version lifted the hold")
	}
	publish("$state", `{"firmware":"1.4.2"}`)
	waitFor(t, "the hold lifted", 10*time.Second, func() bool {
		_, ok := th.mon.Status(id)
		mu.Lock()
		defer mu.Unlock()
		return !ok && len(control) > 0 && strings.Contains(control[len(control)-1], `"quarantined":false`)
	})
	lifted := th.logged(id, monitor.ActionRelease)
	if len(lifted) != 1 || lifted[0].Actor.Kind != auditlog.ActorHub || !strings.Contains(lifted[0].Purpose, adv) {
		t.Errorf("logged releases = %+v, want one by the hub naming the advisory", lifted)
	}
	if resp := publish("temperature", `{"celsius":21.5,"humidity_percent":40}`); resp.ReasonCode != 0 {
		t.Errorf("a reading after the fix: reason %#x", resp.ReasonCode)
	}
	waitFor(t, "the reading kept", 10*time.Second, func() bool { return len(th.readings(id, "")) == 1 })
}

// TestHoldUntilFixedAndAlarm, over real MQTT: a thermostat on hold until
// fixed is cloned (its credential used from two connections at once), and
// the monitor quarantines it for that too. The
// hold then has both reasons: the fixed firmware lifts the advisory's
// reason only (the device stays held, and the refusal now says its owner
// must release it), and the owner's release then frees it.
func TestHoldUntilFixedAndAlarm(t *testing.T) {
	th := startHub(t, func(c *configT) { c.MonitorWindow = time.Second })
	id, secret := th.addDevice("Hall thermostat", "thermostat")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connect := func() *paho.Client {
		t.Helper()
		c, _, err := v5(t, th.MQTTAddr(), id+"-dev", id, secret, func(paho.PublishReceived) {})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	publish := func(c *paho.Client, topic, payload string) (*paho.PublishResponse, error) {
		return c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/" + topic, QoS: 1, Payload: []byte(payload)})
	}
	refusal := func(c *paho.Client) string {
		t.Helper()
		resp, err := publish(c, "temperature", `{"celsius":21.5,"humidity_percent":40}`)
		if err == nil && resp.ReasonCode == 0 {
			t.Fatal("a reading while held was accepted")
		}
		if resp == nil || resp.Properties == nil {
			t.Fatalf("refusal without a reason: %v", err)
		}
		return resp.Properties.ReasonString
	}
	c := connect()
	if _, err := publish(c, "$state", `{"firmware":"1.3.0"}`); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../advisories/testdata/osv-thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/advisories", "", string(doc)); code != http.StatusCreated {
		t.Fatalf("import: %d %v", code, out)
	}
	const adv = "CANDOR-DEMO-2026-0001"
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/devices/"+id+"/restrict", "", map[string]string{"advisory": adv}); code != http.StatusOK {
		t.Fatalf("restrict: %d %v", code, out)
	}
	// The refusal says what ends a hold until fixed, not "its owner must release it".
	if why := refusal(c); !strings.Contains(why, "until a security flaw is fixed (advisory "+adv+")") || strings.Contains(why, "must release") {
		t.Errorf("refusal while held until fixed = %q", why)
	}
	// The audit shows the owner's protective choice in its own words.
	if found, _ := th.auditFindings(); len(found["quarantined-device"]) != 1 || found["quarantined-device"][0]["severity"] != "info" ||
		!strings.Contains(found["quarantined-device"][0]["title"].(string), "until a security flaw is fixed") ||
		!strings.Contains(found["quarantined-device"][0]["evidence"].(string), adv) {
		t.Errorf("audit findings while held until fixed: %v", found["quarantined-device"])
	}
	// (Its own connection uses another client id, so the clone's
	// connections do not take its session over.)
	_ = c.Disconnect(&paho.Disconnect{})

	// The device is cloned: the monitor quarantines it for that as well.
	// (Its readings are refused before the monitor counts them, so a
	// flood would not raise an alarm while it is held.)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := sim.Attack(fctx, sim.AttackConfig{Name: "clone", Broker: th.MQTTAddr(),
			Devices: []sim.Device{{ID: id, Secret: secret, Kind: "thermostat"}}, Rate: 20}); err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "the alarm's quarantine", 40*time.Second, func() bool {
		st, ok := th.mon.Status(id)
		return ok && st.Alarm.Kind == monitor.KindClone
	})
	stop()
	<-done
	if got, ok := th.mon.RestrictedFor(id); !ok || got != adv {
		t.Fatalf("after the alarm RestrictedFor = %q, %v; want the hold until fixed kept", got, ok)
	}
	// The monitor holds the device in memory before it stores the hold,
	// and the audit reads the store: wait for it there.
	waitFor(t, "the audit finding with both reasons", 10*time.Second, func() bool {
		found, _ := th.auditFindings()
		return len(found["quarantined-device"]) == 1 && found["quarantined-device"][0]["severity"] == "critical" &&
			strings.Contains(found["quarantined-device"][0]["evidence"].(string), "also on hold until advisory "+adv)
	})

	// The fixed firmware lifts the advisory's reason only.
	c = connect()
	if _, err := publish(c, "$state", `{"firmware":"1.4.2"}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the advisory's reason lifted", 10*time.Second, func() bool {
		_, ok := th.mon.RestrictedFor(id)
		return !ok
	})
	if st, ok := th.mon.Status(id); !ok || !st.Quarantined || st.Alarm.Kind != monitor.KindClone {
		t.Fatalf("after the fix status = %+v, %v; want still quarantined for the alarm", st, ok)
	}
	if why := refusal(c); !strings.Contains(why, "its owner must release it") {
		t.Errorf("refusal after the fix = %q, want the owner's release named", why)
	}
	lifted := th.logged(id, monitor.ActionRelease)
	if len(lifted) != 1 || lifted[0].Detail["still_held"] != string(monitor.KindClone) || lifted[0].Actor.Kind != auditlog.ActorHub {
		t.Errorf("logged releases = %+v, want the hub's lift of the advisory reason, still held for the alarm", lifted)
	}

	// The owner's release frees it.
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/devices/"+id+"/release", "", map[string]string{"reason": "the copy is unplugged"}); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("release: %d %v", code, out)
	}
	if _, ok := th.mon.Status(id); ok {
		t.Fatal("still held after the owner's release")
	}
	if resp, err := publish(c, "temperature", `{"celsius":21.5,"humidity_percent":40}`); err != nil || resp.ReasonCode != 0 {
		t.Errorf("a reading after the release: %v", err)
	}
}
