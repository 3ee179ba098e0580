package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/updates"
	"github.com/candor-iot/candor/internal/updates/repo"
)

// A manifest naming a real TUF repository makes the hub check it for that
// type's devices; the device's update topics go through the real broker,
// and the update file endpoint answers only a device's own credential.
func TestUpdatesWiredThroughTheHub(t *testing.T) {
	ctx := context.Background()
	th := startHub(t)

	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	custom, err := updates.Release{DeviceType: "thermostat", Version: "1.2.0", Notes: "Fixes a flaw.", Security: true}.Custom()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add("thermostat/fw-1.2.0.bin", []byte("firmware 1.2.0"), custom); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(r.PublicDir())))
	t.Cleanup(srv.Close)
	root, err := os.ReadFile(filepath.Join(r.PublicDir(), "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}

	doc, err := os.ReadFile("../manifest/templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	m["candor:updates"] = map[string]any{"metadataUrl": srv.URL, "targetPrefix": "thermostat/", "trustedRootSha256": repo.RootSHA256(root)}
	doc, _ = json.Marshal(m)
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/manifests", "", string(doc)); code != http.StatusCreated {
		t.Fatalf("manifest with candor:updates: %d %v", code, out)
	}
	dev, secret := th.addDevice("hall", "thermostat")

	th.checkUpdates(ctx, "")
	st, ok := th.upd.Status(dev)
	if !ok || st.Stage != updates.StatusUnknown {
		t.Fatalf("update state %+v (known %v): want %q, the device has reported no firmware version", st, ok, updates.StatusUnknown)
	}

	code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices/"+dev+"/updates", "", nil)
	if code != http.StatusOK || out["update"].(map[string]any)["stage"] != updates.StatusUnknown {
		t.Fatalf("GET updates: %d %v", code, out)
	}
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/devices/"+dev+"/updates/postpone", "", map[string]int{"days": 3}); code != http.StatusConflict {
		t.Errorf("postpone with nothing waiting: %d %v, want 409", code, out)
	}
	code, out, _ = call(t, th.local, "PUT", "http://candor/api/v1/devices/"+dev+"/updates/automatic", "", map[string]bool{"automatic": false})
	if code != http.StatusOK || out["update"].(map[string]any)["automatic"] != false {
		t.Fatalf("switch automatic updates off: %d %v", code, out)
	}
	last, err := th.alog.Entry(ctx, th.alog.Size()-1)
	if err != nil || last.Event.Action != "update.policy" || last.Event.Subject.Device != dev || last.Event.Actor.Kind != "operator" {
		t.Fatalf("last log entry %+v, %v; want the operator's update.policy for %s", last.Event, err, dev)
	}

	// Someone who controls the update server but not the keys strips the
	// timestamp's signatures: asked now, the hub refuses, says why in
	// plain words and records it.
	ts := filepath.Join(r.PublicDir(), "timestamp.json")
	b, err := os.ReadFile(ts)
	if err != nil {
		t.Fatal(err)
	}
	var tsDoc map[string]any
	if err := json.Unmarshal(b, &tsDoc); err != nil {
		t.Fatal(err)
	}
	tsDoc["signatures"] = []any{}
	b, _ = json.Marshal(tsDoc)
	if err := os.WriteFile(ts, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = call(t, th.local, "POST", "http://candor/api/v1/devices/"+dev+"/updates/check", "", nil)
	upd, _ := out["update"].(map[string]any)
	if code != http.StatusOK || upd["stage"] != updates.StatusRefused || upd["reason"] != string(updates.ReasonSignature) ||
		upd["plain"] != updates.ReasonSignature.Plain() {
		t.Fatalf("check now with stripped signatures: %d %v", code, out)
	}
	last, err = th.alog.Entry(ctx, th.alog.Size()-1)
	if err != nil || last.Event.Action != "update.refuse" || last.Event.Detail["reason"] != string(updates.ReasonSignature) {
		t.Fatalf("last log entry %+v, %v; want update.refuse for a bad signature", last.Event, err)
	}

	c, _, err := v5(t, th.MQTTAddr(), dev, dev, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := func(topic, payload string) byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
		if resp == nil {
			t.Fatalf("publish to %s: %v", topic, err)
		}
		return resp.ReasonCode
	}
	if code := pub(updates.ProgressTopic(dev), `{"stage":"installed"`); code != 0x99 {
		t.Errorf("malformed progress: reason %#x, want 0x99", code)
	}
	if code := pub(updates.ProgressTopic(dev), `{"version":"1.2.0","stage":"installed"}`); code != 0x99 {
		t.Errorf("progress for an update never offered: reason %#x, want 0x99", code)
	}
	if code := pub("candor/"+dev+"/$other", `{}`); code < 0x80 {
		t.Errorf("an unregistered system topic was accepted: reason %#x", code)
	}

	get := func(user, pass string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, th.URL()+"/updates/v1/"+dev+"/"+strings.Repeat("0", 64), nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(dev, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d", code)
	}
	if code := get(dev, secret); code != http.StatusNotFound {
		t.Errorf("nothing offered: %d, want 404", code)
	}
	// Guessing the secret is throttled by identity, and told apart.
	code = 0
	for range 10 {
		if code = get(dev, "guess"); code != http.StatusUnauthorized {
			break
		}
	}
	if code != http.StatusTooManyRequests {
		t.Errorf("repeated wrong secrets: %d, want 429", code)
	}
}

// The version a device reports on its state topic is the installed version
// the updates service decides on: a device on 1.0.0 is offered the signed
// 1.2.0 security update, and the advisory it fixes says a fix is ready.
func TestReportedFirmwareGetsTheSignedUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	th := startHub(t)
	dev, _ := offeredUpdate(t, th)
	if v, ok := th.upd.FixReady(ctx, dev, "cve-2026-0001"); !ok || v != "1.2.0" {
		t.Errorf("FixReady(CVE-2026-0001) = %q, %v; want 1.2.0, true", v, ok)
	}
	if _, ok := th.upd.FixReady(ctx, dev, "CVE-2026-9999"); ok {
		t.Error("FixReady for an advisory the update does not fix")
	}
}

// offeredUpdate gives th a thermostat manifest naming a real TUF
// repository on loopback that holds the signed security update 1.2.0
// (fixing CVE-2026-0001), adds a thermostat that reports firmware 1.0.0
// on its state topic, and has the hub check it: the update is offered.
// It returns the device's id and secret.
func offeredUpdate(t *testing.T, th *testHub) (string, string) {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	custom, err := updates.Release{DeviceType: "thermostat", Version: "1.2.0", Notes: "Fixes a flaw.", Security: true,
		Fixes: []string{"CVE-2026-0001"}}.Custom()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add("thermostat/fw-1.2.0.bin", []byte("firmware 1.2.0"), custom); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(r.PublicDir())))
	t.Cleanup(srv.Close)
	root, err := os.ReadFile(filepath.Join(r.PublicDir(), "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../manifest/templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	m["candor:updates"] = map[string]any{"metadataUrl": srv.URL, "targetPrefix": "thermostat/", "trustedRootSha256": repo.RootSHA256(root)}
	doc, _ = json.Marshal(m)
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/manifests", "", string(doc)); code != http.StatusCreated {
		t.Fatalf("manifest with candor:updates: %d %v", code, out)
	}
	dev, secret := th.addDevice("hall", "thermostat")

	c, _, err := v5(t, th.MQTTAddr(), dev, dev, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Publish(pctx, &paho.Publish{Topic: "candor/" + dev + "/$state", QoS: 1, Payload: []byte(`{"firmware":"1.0.0"}`)}); err != nil {
		t.Fatalf("report firmware: %v", err)
	}

	th.checkUpdates(ctx, "")
	st, ok := th.upd.Status(dev)
	if !ok || st.Installed != "1.0.0" || st.Available == nil || st.Available.Version != "1.2.0" || st.Stage != updates.StatusOffered {
		t.Fatalf("update state %+v (known %v): want 1.0.0 installed and 1.2.0 offered", st, ok)
	}
	return dev, secret
}

// An update offer is a control message like the others: not kept in
// mochi's retained store, but sent from the updates service's state, marked
// retained, to a device that subscribes while the offer stands (Retain
// Handling honoured), and its end published as it happens (an empty
// message, not retained); a device that subscribes after the end gets
// nothing on the offer topic.
func TestUpdateOfferSentOnSubscribe(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	th := startHub(t)
	dev, secret := offeredUpdate(t, th)
	topic := updates.OfferTopic(dev)
	offer := th.upd.Offer(dev)
	if len(offer) == 0 {
		t.Fatal("no offer in the updates service's state")
	}
	if th.br.Retained(topic) {
		t.Fatal("the offer is kept in mochi's retained store")
	}
	all := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + dev + "/control/#", QoS: 1}}}
	subscribe := func(name string, sub *paho.Subscribe) (*paho.Client, *controlRecorder, []controlMsg) {
		t.Helper()
		rec := newControlRecorder()
		c, _, err := v5(t, th.MQTTAddr(), dev+"-"+name, dev, secret, rec.v5)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Subscribe(ctx, sub); err != nil {
			t.Fatal(err)
		}
		// The barrier needs a subscription that matches it.
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + dev + "/control/" + name, QoS: 0}}}); err != nil {
			t.Fatal(err)
		}
		return c, rec, rec.waitBarrier(t, barrier(t, th, dev, name))
	}

	// Subscribing after the offer: it comes, once, retained.
	c, rec, got := subscribe("after", all)
	if m, ok := last(got, topic); !ok || m.payload != string(offer) || !m.retain {
		t.Fatalf("on subscribe: %+v (%v); want the offer, retained", m, ok)
	}
	// Retain Handling 2: nothing on subscribe.
	_, _, got = subscribe("rh2", &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + dev + "/control/#", QoS: 1, RetainHandling: 2}}})
	if m, ok := last(got, topic); ok {
		t.Fatalf("Retain Handling 2 got %+v", m)
	}

	// The device reports the update installed: the offer ends, and the
	// subscribed device is told so as it happens.
	n := len(rec.all())
	if _, err := c.Publish(ctx, &paho.Publish{Topic: updates.ProgressTopic(dev), QoS: 1,
		Payload: []byte(`{"version":"1.2.0","stage":"installed"}`)}); err != nil {
		t.Fatalf("report installed: %v", err)
	}
	got = rec.waitBarrier(t, barrier(t, th, dev, "end"))
	if m, ok := last(got[n:], topic); !ok || m.payload != "" || m.retain {
		t.Fatalf("after the update: %+v (%v); want an empty message, not retained", m, ok)
	}
	if th.upd.Offer(dev) != nil || th.br.Retained(topic) {
		t.Fatal("the offer outlived the update")
	}
	// Subscribing after the end: nothing on the offer topic.
	_, _, got = subscribe("later", all)
	if m, ok := last(got, topic); ok {
		t.Fatalf("after the end, on subscribe: %+v", m)
	}
}
