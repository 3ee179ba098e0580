package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// haConsumer follows Home Assistant's documented MQTT discovery: it keeps
// the config of every entity announced under homeassistant/…/config (an
// empty message removes it) and the last state of each state topic.
type haConsumer struct {
	mu       sync.Mutex
	entities map[string]map[string]any // config topic → config
	removed  []string
	states   map[string]string // state topic → last payload
	order    []string          // config topics, in the order announced or removed
}

func (h *haConsumer) handle(pr paho.PublishReceived) {
	h.mu.Lock()
	defer h.mu.Unlock()
	topic, payload := pr.Packet.Topic, pr.Packet.Payload
	if len(topic) > 14 && topic[:14] == "homeassistant/" {
		h.order = append(h.order, topic)
		if len(payload) == 0 {
			delete(h.entities, topic)
			h.removed = append(h.removed, topic)
			return
		}
		var cfg map[string]any
		if json.Unmarshal(payload, &cfg) == nil {
			h.entities[topic] = cfg
		}
		return
	}
	h.states[topic] = string(payload)
}

func (h *haConsumer) entity(topic string) map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.entities[topic]
}

func (h *haConsumer) count() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.entities) }

// TestHomeAssistantDiscovery runs a Home Assistant-style discovery
// consumer as an app marked as Home Assistant: it is told about exactly
// the streams it may get, with units and device classes from the
// manifest, gets their readings, and the entities are removed when
// consent is withdrawn.
func TestHomeAssistantDiscovery(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	dev, devSecret := th.thermostat()
	code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/apps", "", map[string]any{
		"name": "Home Assistant", "purposes": []string{"candor:HomeAutomation"}, "kind": "home-assistant"})
	if code != http.StatusCreated {
		t.Fatalf("add app: %d %v", code, out)
	}
	app, secret := out["app"].(map[string]any)["id"].(string), out["secret"].(string)
	th.allowApp(app, dev, "temperature", true) // before Home Assistant connects: retained

	ha := &haConsumer{entities: map[string]map[string]any{}, states: map[string]string{}}
	c, _, err := v5(t, th.MQTTAddr(), app, app, secret, ha.handle)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "homeassistant/#", QoS: 1}, {Topic: "candor/#", QoS: 1}}})
	if err != nil || string(sa.Reasons) != "\x01\x01" {
		t.Fatalf("subscribe: %v %v", sa, err)
	}
	celsius := "homeassistant/sensor/" + app + "/" + dev + "_temperature_celsius/config"
	humidity := "homeassistant/sensor/" + app + "/" + dev + "_temperature_humidity_percent/config"
	heating := "homeassistant/binary_sensor/" + app + "/" + dev + "_heating_on/config"
	waitFor(t, "the retained discovery messages", 10*time.Second, func() bool { return ha.entity(celsius) != nil && ha.entity(humidity) != nil })
	cfg := ha.entity(celsius)
	for k, want := range map[string]string{"unit_of_measurement": "°C", "device_class": "temperature",
		"state_topic": "candor/" + dev + "/temperature", "value_template": "{{ value_json.celsius }}"} {
		if cfg[k] != want {
			t.Errorf("celsius entity %s = %v, want %q", k, cfg[k], want)
		}
	}
	if got := ha.entity(humidity)["device_class"]; got != "humidity" {
		t.Errorf("humidity entity device_class = %v", got)
	}

	th.post(dev, devSecret, "temperature", `{"celsius":21.5,"humidity_percent":40}`)
	waitFor(t, "the state", 10*time.Second, func() bool {
		ha.mu.Lock()
		defer ha.mu.Unlock()
		return ha.states["candor/"+dev+"/temperature"] != ""
	})

	th.allowApp(app, dev, "temperature", false)
	th.allowApp(app, dev, "heating", true) // the barrier: announced after the removal
	waitFor(t, "the heating entity", 10*time.Second, func() bool { return ha.entity(heating) != nil })
	if n := ha.count(); n != 1 {
		t.Errorf("after withdrawal Home Assistant still has %d entities, want only heating", n)
	}
	if got := ha.entity(heating)["value_template"]; got != "{{ 'ON' if value_json.on else 'OFF' }}" {
		t.Errorf("heating entity value_template = %v", got)
	}

	// An app not marked as Home Assistant gets no discovery.
	other, otherSecret := th.addApp("Node-RED", "candor:HomeAutomation")
	oc, _, err := v5(t, th.MQTTAddr(), other, other, otherSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sa, _ := oc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "homeassistant/#", QoS: 1}}}); sa == nil || sa.Reasons[0] != 0x87 {
		t.Errorf("another app subscribing to discovery: %v, want 0x87", sa)
	}
}
