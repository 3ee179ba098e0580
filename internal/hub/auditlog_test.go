package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/auditlog/verify"
)

func getText(t *testing.T, c *http.Client, url, bearer string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

type exportLine struct {
	Kind  string          `json:"kind"`
	Index uint64          `json:"index"`
	Event json.RawMessage `json:"event"`
}

func exportEvents(t *testing.T, data []byte) []auditlog.Event {
	t.Helper()
	var out []auditlog.Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.Kind == "entry" {
			ev, err := auditlog.ParseEvent(l.Event)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		}
	}
	return out
}

// Every kind of event the hub produces today lands in the log; a person
// sees exactly the entries about their household, each provably included.
func TestTransparencyLogRecordsAndProves(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	// Alex adds, rotates and revokes a device and reads its readings.
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]string{"name": "Hall", "type": "thermostat"})
	if code != 201 {
		t.Fatal(code)
	}
	dev := out["device"].(map[string]any)["id"].(string)
	secret := out["secret"].(string)
	c, _, err := v5(t, th.MQTTAddr(), dev, dev, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + dev + "/temperature", QoS: 1, Payload: []byte(`{"celsius": 20}`)}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices/"+dev+"/readings", alex, nil); code != 200 {
		t.Fatal(code)
	}
	call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices/"+dev+"/rotate", alex, nil)
	call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices/"+dev+"/revoke", alex, nil)
	doc, _ := os.ReadFile("../manifest/templates/thermostat.json")
	if code, _, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/manifests", alex, string(doc)); code != 201 {
		t.Fatal("manifest change")
	}
	// Sam, in another household, reads nothing of Alex's.
	call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/households", alex,
		map[string]any{"name": "Flat 2", "owner": map[string]string{"username": "sam", "password": "violet-canyon-drifting-41"}})
	sam := th.token("sam", "violet-canyon-drifting-41")

	vkey := strings.TrimSpace(string(getText(t, http.DefaultClient, th.URL()+"/api/v1/log/key", "")))
	mine := getText(t, http.DefaultClient, th.URL()+"/api/v1/log/export", alex)
	rep, err := verify.Export(context.Background(), bytes.NewReader(mine), vkey, verify.ExportOptions{})
	if err != nil {
		t.Fatalf("Alex's export does not verify: %v", err)
	}
	actions := map[string]bool{}
	for _, ev := range exportEvents(t, mine) {
		actions[ev.Action] = true
		if ev.Action == auditlog.ActionReadingsRead && (ev.Subject.Device != dev || ev.Actor.ID == "" || ev.Purpose == "") {
			t.Errorf("read entry lacks who/what/why: %+v", ev)
		}
	}
	for _, want := range []string{auditlog.ActionAccountCreate, auditlog.ActionTokenCreate, auditlog.ActionCredentialCreate,
		auditlog.ActionCredentialRotate, auditlog.ActionCredentialRevoke, auditlog.ActionReadingsRead, auditlog.ActionHouseholdCreate} {
		if !actions[want] {
			t.Errorf("Alex's entries lack %s (have %v)", want, actions)
		}
	}
	if rep.Entries == 0 {
		t.Error("empty export")
	}
	for _, ev := range exportEvents(t, getText(t, http.DefaultClient, th.URL()+"/api/v1/log/export", sam)) {
		if ev.Subject.Device == dev || (ev.Action == auditlog.ActionReadingsRead) {
			t.Errorf("Sam sees an entry about Alex's device: %+v", ev)
		}
	}
	// The operator's complete export contains the manifest change too.
	all := getText(t, th.local, "http://candor/api/v1/log/export", "")
	found := false
	for _, ev := range exportEvents(t, all) {
		found = found || ev.Action == auditlog.ActionManifestChange
	}
	if !found {
		t.Error("manifest change not logged")
	}
	// An inclusion proof from the API verifies against the signed checkpoint.
	code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/log/proof/inclusion?index=1", alex, nil)
	if code != 200 {
		t.Fatalf("inclusion proof: %d %v", code, out)
	}
	cp, err := verify.ParseCheckpoint([]byte(out["checkpoint"].(string)), vkey)
	if err != nil {
		t.Fatal(err)
	}
	var proof [][]byte
	for _, p := range out["proof"].([]any) {
		b, _ := base64.StdEncoding.DecodeString(p.(string))
		proof = append(proof, b)
	}
	if err := verify.Inclusion(cp, 1, []byte(out["leaf"].(string)), proof); err != nil {
		t.Errorf("inclusion proof does not verify: %v", err)
	}
	// Sam may not fetch proofs of Alex's entries.
	if code, _, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/log/proof/inclusion?index=1", sam, nil); code != 403 {
		t.Errorf("Sam fetched a proof of Alex's entry: %d", code)
	}
}

// A hub whose stored log was altered refuses to start and says where.
func TestTamperedLogStopsTheHub(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	th := startHubIn(t, dir)
	th.setup("alex")
	th.addDevice("Hall", "thermostat")
	th.close()
	entries := filepath.Join(dir, "audit", "entries.log")
	b, err := os.ReadFile(entries)
	if err != nil {
		matches, _ := filepath.Glob(filepath.Join(dir, "audit", "*"))
		t.Fatalf("read entries file: %v (dir has %v)", err, matches)
	}
	i := bytes.Index(b, []byte("device.credential.create"))
	if i < 0 {
		t.Fatal("credential event not found in the entries file")
	}
	copy(b[i:], "device.credential.revoke") // same length, different history
	if err := os.WriteFile(entries, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), testConfig(t, dir), nil, io.Discard)
	if err == nil {
		t.Fatal("hub started on a tampered transparency log")
	}
	var te *verify.TamperError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "refusing to start") {
		t.Errorf("error does not name the tampering: %v", err)
	}
}
