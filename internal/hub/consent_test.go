package hub

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/signkey"
	"github.com/candor-iot/candor/internal/testsupport/senmldecode"
)

// Turning consent off is effective from the very next message, and the
// device is told on its retained control topic.
func TestConsentOffStopsTheNextReading(t *testing.T) {
	t.Parallel()
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
	pub2, err := signkey.ParsePublicKey(pemKey)
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
	t.Parallel()
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

// A person's export is a documented ZIP whose every file matches the
// SHA-256 in index.json; CSV and SenML parse back to what was sent.
func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]string{"name": "Meter", "type": "smart-meter"})
	if code != 201 {
		t.Fatal(code)
	}
	id := out["device"].(map[string]any)["id"].(string)
	secret := out["secret"].(string)
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 30 {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/power", QoS: 1, Payload: []byte(fmt.Sprintf(`{"watts": %d}`, 100+i))}); err != nil {
			t.Fatal(err)
		}
	}
	zb := getText(t, http.DefaultClient, th.URL()+"/api/v1/export", alex)
	files := unzipExport(t, zb)
	csvName := "readings/" + id + "/power.csv"
	rows, err := csv.NewReader(bytes.NewReader(files[csvName])).ReadAll()
	if err != nil || len(rows) != 31 {
		t.Fatalf("%s: %d rows, %v", csvName, len(rows), err)
	}
	recs, err := senmldecode.Decode(bytes.NewReader(files["readings/"+id+"/power.senml.json"]))
	if err != nil || len(recs) != 30 {
		t.Fatalf("SenML: %d records, %v", len(recs), err)
	}
	if !bytes.Contains(files["README.txt"], []byte("SenML")) {
		t.Error("README.txt does not explain the files")
	}
	found := false
	for name := range files {
		found = found || strings.HasPrefix(name, "audit/")
	}
	if !found {
		t.Error("the export lacks the person's transparency-log entries")
	}
}

func TestDeleteAndRetention(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]string{"name": "Door", "type": "door-sensor"})
	if code != 201 {
		t.Fatal(code)
	}
	id := out["device"].(map[string]any)["id"].(string)
	secret := out["secret"].(string)
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 6 {
		stream, payload := "battery", fmt.Sprintf(`{"percent": %d}`, 90-i)
		if i%2 == 1 {
			stream, payload = "contact", `{"open": true}`
		}
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/" + stream, QoS: 1, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ = call(t, http.DefaultClient, "DELETE", th.URL()+"/api/v1/devices/"+id+"/readings?stream=contact", alex, nil)
	if code != 200 || out["deleted"].(float64) != 3 {
		t.Fatalf("delete stream: %d %v", code, out)
	}
	if rs := th.readings(id, ""); len(rs) != 3 || rs[0].Stream != "battery" {
		t.Fatalf("after deleting contact: %+v", rs)
	}
	// Retention: the person keeps battery for 1 day; a sweep 2 days later
	// deletes it, and the deletion is logged.
	code, out, _ = call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+id+"/consent/battery/routing", alex,
		map[string]any{"keep_on_hub": true, "retention": "P1D"})
	if code != 200 {
		t.Fatalf("routing: %d %v", code, out)
	}
	n, err := th.retention.SweepAt(context.Background(), time.Now().Add(36*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if rs := th.readings(id, ""); len(rs) != 0 {
		t.Errorf("%d readings survived their retention", len(rs))
	}
	all := getText(t, th.local, "http://candor/api/v1/log/export", "")
	deletes := 0
	for _, ev := range exportEvents(t, all) {
		if ev.Action == "data.delete" {
			deletes++
		}
	}
	if deletes != 2 {
		t.Errorf("%d deletions in the transparency log, want 2", deletes)
	}
}
