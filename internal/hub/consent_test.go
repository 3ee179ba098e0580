package hub

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/consent"
)

// Turning consent off is effective from the very next message, and the
// device is told on its retained control topic.
func TestConsentOffStopsTheNextReading(t *testing.T) {
	th := startHub(t)
	alex := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]string{"name": "Hall", "type": "thermostat"})
	if code != 201 {
		t.Fatal(code)
	}
	id := out["device"].(map[string]any)["id"].(string)
	secret := out["secret"].(string)

	var mu sync.Mutex
	control := map[string]string{}
	got := make(chan struct{}, 16)
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, func(pr paho.PublishReceived) {
		mu.Lock()
		control[pr.Packet.Topic] = string(pr.Packet.Payload)
		mu.Unlock()
		got <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + id + "/control/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub := func(v int) {
		t.Helper()
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/setpoint", QoS: 1, Payload: []byte(`{"celsius": ` + string(rune('0'+v)) + `}`)})
		if err != nil || resp.ReasonCode != 0 {
			t.Fatalf("publish: %v %+v", err, resp)
		}
	}
	pub(7)
	// The setpoint stream's purposes are both essential (on by default).
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+id+"/consent", alex, nil)
	if code != 200 {
		t.Fatalf("consent state: %d %v", code, out)
	}
	for _, purpose := range []string{"candor:HomeAutomation", "dpv:ServiceProvision"} {
		code, out, _ = call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+id+"/consent/setpoint", alex,
			map[string]any{"purpose": purpose, "on": false})
		if code != 200 {
			t.Fatalf("consent off (%s): %d %v", purpose, code, out)
		}
	}
	recordID := out["record"].(map[string]any)["record_id"].(string)
	pub(8) // immediately after the change
	rs := th.readings(id, "stream=setpoint")
	if len(rs) != 1 {
		t.Fatalf("stored %d setpoint readings; the one after consent was withdrawn must not be stored", len(rs))
	}
	deadline := time.After(5 * time.Second)
	for {
		mu.Lock()
		v := control["candor/"+id+"/control/setpoint"]
		mu.Unlock()
		if strings.Contains(v, `"collect":false`) {
			break
		}
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("device not told to stop collecting; control messages: %v", control)
		}
	}
	// Unknown purpose: clear error, nothing changed.
	code, out, _ = call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+id+"/consent/setpoint", alex,
		map[string]any{"purpose": "dpv:Marketing", "on": true})
	if code != 422 || !strings.Contains(out["detail"].(string), "Marketing") {
		t.Errorf("unknown purpose: %d %v", code, out)
	}
	// The receipt verifies with the hub's public key.
	req, _ := http.NewRequest("GET", th.URL()+"/api/v1/consent/records/"+recordID+"/receipt", nil)
	req.Header.Set("Authorization", "Bearer "+alex)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	receipt, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pemKey := getText(t, http.DefaultClient, th.URL()+"/api/v1/consent/key", "")
	pub2, err := consent.ParsePublicKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := consent.VerifyReceipt(receipt, pub2); err != nil {
		t.Errorf("receipt does not verify: %v", err)
	}
	tampered := strings.Replace(string(receipt), "ConsentWithdrawn", "ConsentGiven", 1)
	if _, err := consent.VerifyReceipt([]byte(tampered), pub2); err == nil {
		t.Error("a tampered receipt verifies")
	}
}

// Stored readings are ciphertext on disk; the API returns them decrypted.
func TestReadingsAreEncryptedAtRest(t *testing.T) {
	th := startHub(t)
	id, secret := th.addDevice("Watch", "wearable")
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const marker = `{"bpm":173}`
	for range 20 {
		if resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/heart_rate", QoS: 1, Payload: []byte(marker)}); err != nil || resp.ReasonCode != 0 {
			t.Fatalf("publish: %v %+v", err, resp)
		}
	}
	rs := th.readings(id, "")
	if len(rs) != 20 || string(rs[0].Payload) != marker {
		t.Fatalf("API readings: %d, first %s", len(rs), rs[0].Payload)
	}
	th.close()
	for _, name := range []string{DBName, DBName + "-wal"} {
		b, err := os.ReadFile(filepath.Join(th.dir, name))
		if err != nil {
			continue
		}
		if !bytes.Contains(b, []byte(`"bpm"`)) && name == DBName {
			t.Errorf("%s: the scan would not find plain text (the manifest names bpm)", name)
		}
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s contains a reading in plain text", name)
		}
	}
}
