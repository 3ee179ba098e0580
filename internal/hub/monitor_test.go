package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/signkey"
	"github.com/candor-iot/candor/internal/sim"
)

// logged returns the transparency-log events about a device (or, with
// device "", fleet events) whose action is action.
func (th *testHub) logged(device, action string) []auditlog.Event {
	th.t.Helper()
	var out []auditlog.Event
	for e, err := range th.alog.Entries(context.Background(), 0, th.alog.Size()) {
		if err != nil {
			th.t.Fatal(err)
		}
		if e.Event.Action == action && e.Event.Subject.Device == device {
			out = append(out, e.Event)
		}
	}
	return out
}

// Each attack, driven over real MQTT by the simulator against a real hub,
// is detected, the configured action is taken and logged within 30 s of
// its start, the device's owner is told why in plain words, and a release
// lifts the hold and is logged. Windows are one second long so that
// three windows in a row fit well inside the 30 s (and the test does
// not wait through longer ones).
func TestAttacksDetectedAndActedOn(t *testing.T) {
	th := startHub(t, func(c *configT) { c.MonitorWindow = time.Second })
	alex := th.setup("alex")
	add := func(name, typ string) sim.Device {
		code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]string{"name": name, "type": typ})
		if code != http.StatusCreated {
			t.Fatalf("add device: %d %v", code, out)
		}
		return sim.Device{ID: out["device"].(map[string]any)["id"].(string), Secret: out["secret"].(string), Kind: typ}
	}
	tests := []struct {
		attack  string
		typ     string
		devices int
		kind    monitor.Kind
		action  string // logged for the (first) device
		held    bool   // quarantined or rate-limited, so there is something to release
		before  func(devs []sim.Device)
	}{
		{"flood", "smart-meter", 1, monitor.KindDeclaredRate, auditlog.ActionDeviceQuarantine, true, nil},
		{"exfiltrate", "door-sensor", 1, monitor.KindUndeclared, monitor.ActionRateLimit, true, nil},
		{"stuffing", "motion-camera", 1, monitor.KindWrongSecrets, monitor.ActionAlarmRaise, false, nil},
		{"clone", "thermostat", 1, monitor.KindClone, auditlog.ActionDeviceQuarantine, true, nil},
		{"ignore-off", "thermostat", 1, monitor.KindIgnoresOff, auditlog.ActionDeviceQuarantine, true, func(devs []sim.Device) {
			for _, purpose := range []string{"candor:HomeAutomation", "dpv:ServiceProvision"} {
				code, out, _ := call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+devs[0].ID+"/consent/setpoint", alex,
					map[string]any{"purpose": purpose, "on": false})
				if code != 200 {
					t.Fatalf("consent off: %d %v", code, out)
				}
			}
		}},
		{"scan", "wearable", 1, monitor.KindProbe, monitor.ActionRateLimit, true, nil},
		{"wave", "motion-camera", 3, monitor.KindDeclaredRate, auditlog.ActionDeviceQuarantine, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.attack, func(t *testing.T) {
			devs := make([]sim.Device, tc.devices)
			for i := range devs {
				devs[i] = add(tc.attack, tc.typ)
			}
			if tc.before != nil {
				tc.before(devs)
			}
			id := devs[0].ID
			ctx, stop := context.WithCancel(context.Background())
			// The hub stays usable meanwhile: API latency is sampled and
			// its p99 reported (a figure, not a timed assertion).
			lat := make(chan []time.Duration, 1)
			go func() { lat <- sampleAPI(ctx, th.URL()+"/api/v1/devices/"+devs[0].ID, alex) }()
			done := make(chan sim.AttackStats, 1)
			go func() {
				st, err := sim.Attack(ctx, sim.AttackConfig{Name: tc.attack, Broker: th.MQTTAddr(), Devices: devs, Rate: 20})
				if err != nil {
					t.Error(err)
				}
				done <- st
			}()
			// The requirement itself: acted on within 30 s of the start.
			waitFor(t, tc.attack+" acted on", 30*time.Second, func() bool {
				for _, ev := range th.logged(id, tc.action) {
					if ev.Detail["kind"] == string(tc.kind) {
						return true
					}
				}
				return false
			})
			if tc.attack == "wave" {
				waitFor(t, "fleet wave", 30*time.Second, func() bool { return len(th.logged("", monitor.ActionFleetWaveRaise)) > 0 })
			}
			stop()
			st := <-done
			t.Logf("%s: sent %d, refused %d, failed %d; API p99 %v", tc.attack, st.Sent, st.Refused, st.Failed, p99(<-lat))

			// The owner sees why, with numbers, and what to do.
			code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+id+"/monitor", alex, nil)
			if code != 200 {
				t.Fatalf("monitor state: %d %v", code, out)
			}
			why := explained(out, tc.kind)
			if why == "" {
				t.Fatalf("no %s explanation in %v", tc.kind, out)
			}
			if !strings.ContainsAny(why, "0123456789") && tc.kind != monitor.KindNewAddress {
				t.Errorf("explanation %q has no numbers", why)
			}
			// The windows' counts are kept in the store and shown (they
			// are written at each window's close, so wait for one).
			waitFor(t, tc.attack+" windows stored", 30*time.Second, func() bool {
				_, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+id+"/monitor", alex, nil)
				h, _ := out["history"].([]any)
				return len(h) > 0
			})
			if !tc.held {
				if out["held"] != nil {
					t.Errorf("held for %s: %v", tc.attack, out["held"])
				}
				return
			}
			code, out, _ = call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices/"+id+"/release", alex,
				map[string]string{"reason": "I reset it to factory settings"})
			if code != 200 {
				t.Fatalf("release: %d %v", code, out)
			}
			rel := th.logged(id, monitor.ActionRelease)
			if len(rel) != 1 || rel[0].Actor.Kind != auditlog.ActorPerson || rel[0].Purpose != "I reset it to factory settings" {
				t.Fatalf("release log %+v", rel)
			}
			if v := th.mon.Admit(id); v != monitor.Allow {
				t.Errorf("after release the device is still held: %v", v)
			}
		})
	}
}

// explained finds the why of an alarm of kind k in a monitor answer, from
// the hold or from the alarms that are up.
func explained(out map[string]any, k monitor.Kind) string {
	var as []any
	if h, ok := out["held"].(map[string]any); ok {
		as = append(as, h["alarm"])
	}
	if l, ok := out["alarms"].([]any); ok {
		as = append(as, l...)
	}
	for _, a := range as {
		m, _ := a.(map[string]any)
		if m["kind"] == string(k) {
			return m["why"].(string)
		}
	}
	return ""
}

// sampleAPI reads url as the person with token until ctx ends and returns
// each request's latency (of a failed request too).
func sampleAPI(ctx context.Context, url, token string) []time.Duration {
	var out []time.Duration
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil && ctx.Err() != nil {
			break // cut off by the end of the run, not by the hub
		}
		// A failed request counts with the time it took to fail: the
		// person waited that long for nothing.
		if err == nil {
			resp.Body.Close()
		}
		out = append(out, time.Since(start))
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return out
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[(len(ds)*99)/100]
}

// An admin's webhook gets each alarm, signed so that the public key the
// hub leaves in its data directory verifies it.
func TestAlarmWebhookSigned(t *testing.T) {
	got := make(chan webhookCall, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- webhookCall{r.Header.Get(monitor.HeaderTimestamp), r.Header.Get(monitor.HeaderSignature), b}
	}))
	defer srv.Close()
	th := startHub(t, func(c *configT) { c.MonitorWindow = time.Second; c.AlertWebhook = srv.URL })
	dev, secret := th.addDevice("Meter", "smart-meter")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		_, _ = sim.Attack(ctx, sim.AttackConfig{Name: "flood", Broker: th.MQTTAddr(),
			Devices: []sim.Device{{ID: dev, Secret: secret, Kind: "smart-meter"}}, Rate: 20})
	}()
	var call webhookCall
	select {
	case call = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook within 30 s of the flood's start")
	}
	stop()
	pemBytes, err := os.ReadFile(filepath.Join(th.dir, "alerts", signkey.PublicKeyFile(alertKeyName)))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatal("public key file is not PEM")
	}
	pk, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !monitor.VerifyWebhook(pk.(ed25519.PublicKey), call.ts, call.sig, call.body, time.Now(), time.Minute) {
		t.Fatalf("webhook does not verify: %s", call.body)
	}
	var body map[string]any
	if err := json.Unmarshal(call.body, &body); err != nil {
		t.Fatal(err)
	}
	if body["device"] != dev || body["kind"] != string(monitor.KindDeclaredRate) || body["why"] == "" {
		t.Errorf("webhook body %v", body)
	}
}

type webhookCall struct {
	ts, sig string
	body    []byte
}

// The admin reads and sets the action per alarm level over the API; a
// set that leaves a level out is refused, and the change is logged (the
// monitor's own test shows it outlasts a restart).
func TestMonitorActionsAPI(t *testing.T) {
	th := startHub(t)
	alex := th.setup("alex")
	url := th.URL() + "/api/v1/monitor/actions"
	tests := []struct {
		name string
		body map[string]string
		code int
		want string // the policy in force after, as --monitor-actions writes it
	}{
		{"a level left out", map[string]string{"info": "notify", "warning": "quarantine"}, http.StatusBadRequest,
			"info=notify,warning=rate_limit,critical=quarantine"},
		{"unknown action", map[string]string{"info": "notify", "warning": "quarantine", "critical": "explode"}, http.StatusBadRequest,
			"info=notify,warning=rate_limit,critical=quarantine"},
		{"all three", map[string]string{"info": "notify", "warning": "quarantine", "critical": "revoke"}, http.StatusOK,
			"info=notify,warning=quarantine,critical=revoke"},
	}
	for _, tc := range tests {
		code, out, _ := call(t, http.DefaultClient, "PUT", url, alex, tc.body)
		if code != tc.code {
			t.Errorf("%s: %d %v; want %d", tc.name, code, out, tc.code)
		}
		if got := th.mon.Policy().String(); got != tc.want {
			t.Errorf("%s: policy %s; want %s", tc.name, got, tc.want)
		}
	}
	code, out, _ := call(t, http.DefaultClient, "GET", url, alex, nil)
	if code != http.StatusOK || out["critical"] != "revoke" {
		t.Errorf("GET: %d %v", code, out)
	}
	if n := len(th.logged("", monitor.ActionPolicyChange)); n != 1 {
		t.Errorf("%d policy changes logged; want 1", n)
	}
}
