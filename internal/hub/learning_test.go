package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/auditlog"
)

// TestLearningSwitchOverMQTT checks the machine-learning register's switch
// on a real hub with a device on real MQTT: a member is refused (403 with
// the reason); the person who decides turns learning off alone; the very
// next reading is still acknowledged and stored (collection untouched);
// the device is told on its retained control topic ("learn": false); the
// change is a consent record in the transparency log.
func TestLearningSwitchOverMQTT(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]string{"name": "Hall", "type": "thermostat"})
	if code != 201 {
		t.Fatalf("add device: %d %v", code, out)
	}
	id := out["device"].(map[string]any)["id"].(string)
	secret := out["secret"].(string)
	if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/accounts", alex,
		map[string]string{"username": "kim", "password": "marble-otter-sunrise-19", "role": "member"}); code != 201 {
		t.Fatalf("add kim: %d %v", code, out)
	}
	kim := th.token("kim", "marble-otter-sunrise-19")

	var mu sync.Mutex
	control := map[string]string{}
	got := make(chan struct{}, 16)
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, func(pr paho.PublishReceived) {
		mu.Lock()
		control[pr.Packet.Topic] = string(pr.Packet.Payload)
		mu.Unlock()
		select {
		case got <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + id + "/control/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub := func(celsius string) {
		t.Helper()
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1,
			Payload: []byte(`{"celsius": ` + celsius + `, "humidity_percent": 40}`)})
		if err != nil || resp.ReasonCode != 0 {
			t.Fatalf("publish: %v %+v", err, resp)
		}
	}
	pub("20.5")

	// The register lists the stream to the member, who may not switch it.
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/learning", kim, nil)
	if code != 200 || len(out["learning"].([]any)) == 0 {
		t.Fatalf("member's register: %d %v", code, out)
	}
	off := map[string]any{"purpose": "candor:MachineLearning", "on": false}
	code, out, _ = call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+id+"/learning/temperature", kim, off)
	if code != http.StatusForbidden || !strings.HasSuffix(out["type"].(string), "not-your-choice") || !strings.Contains(out["detail"].(string), "keys") {
		t.Fatalf("member switches learning off: %d %v, want 403 saying whose keys decide", code, out)
	}

	code, out, _ = call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+id+"/learning/temperature", alex, off)
	if code != 200 {
		t.Fatalf("key owner switches learning off: %d %v", code, out)
	}
	dec := out["decision"].(map[string]any)
	if dec["learn"] != false || dec["collect"] != true || dec["store_on_hub"] != true || dec["decide"] != true {
		t.Errorf("decision after learning off: %v, want only learning off", dec)
	}
	recordID := out["record"].(map[string]any)["record_id"].(string)

	pub("21") // immediately after the change
	if rs := th.readings(id, "stream=temperature"); len(rs) != 2 {
		t.Errorf("stored %d temperature readings, want both: turning learning off keeps collection", len(rs))
	}
	topic := "candor/" + id + "/control/temperature"
	deadline := time.After(10 * time.Second)
	for {
		mu.Lock()
		v := control[topic]
		mu.Unlock()
		if strings.Contains(v, `"learn":false`) {
			if !strings.Contains(v, `"collect":true`) || !strings.Contains(v, `"decide":true`) {
				t.Errorf("control message %s, want collection and decisions still on", v)
			}
			break
		}
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("device not told to stop learning; control messages: %v", control)
		}
	}

	// The change is in the transparency log, naming its record.
	var entries struct {
		Entries []struct {
			Event auditlog.Event `json:"event"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(getText(t, http.DefaultClient, th.URL()+"/api/v1/log/entries", alex), &entries); err != nil {
		t.Fatal(err)
	}
	logged := false
	for _, e := range entries.Entries {
		ev := e.Event
		logged = logged || ev.Action == auditlog.ActionConsentChange && ev.Subject.Device == id && ev.Subject.Stream == "temperature" && ev.Detail["record"] == recordID
	}
	if !logged {
		t.Errorf("the switch is not in the transparency log (record %s)", recordID)
	}
}
