package hub

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	_ "modernc.org/sqlite"

	"github.com/candor-iot/candor/internal/testenv"
)

func TestDeviceCredentialsAreUniqueAndHashed(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id1, s1 := th.addDevice("Kitchen", "thermostat")
	id2, s2 := th.addDevice("Hall", "thermostat")
	if id1 == id2 || s1 == s2 {
		t.Fatalf("two devices share an id or secret: %s/%s", id1, id2)
	}
	if len(s1) < 32 {
		t.Errorf("generated secret has %d characters; want at least 32", len(s1))
	}
	th.close()
	db, err := sql.Open("sqlite", filepath.Join(th.dir, DBName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var hash string
	if err := db.QueryRow(`SELECT secret_hash FROM devices WHERE id = ?`, id1).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	// Generated secrets (160 random bits) are stored with the fast keyed
	// hash; chosen ones keep argon2id (issue #19).
	if !strings.HasPrefix(hash, "$candor-hmac-sha256$") || strings.Contains(hash, s1) {
		t.Errorf("device secret is not stored as a generated secret's hash: %.20s…", hash)
	}
}

func TestChosenDeviceSecretRules(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	tests := []struct {
		secret string
		want   string // substring of the reason
	}{
		{"xc3511", "default"},
		{"raspberry", "default"},
		{"short1", "12"},
		{"aaaaaaaaaaaaaaaa", "character"},
	}
	for _, tc := range tests {
		code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/devices", "",
			map[string]string{"name": "Cam", "type": "motion-camera", "secret": tc.secret})
		if code != http.StatusUnprocessableEntity {
			t.Errorf("secret %q: status %d, want 422", tc.secret, code)
			continue
		}
		if d, _ := out["detail"].(string); !strings.Contains(d, tc.want) {
			t.Errorf("secret %q: reason %q does not mention %q", tc.secret, d, tc.want)
		}
	}
	// Nothing was created by the refused attempts.
	code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices", "", nil)
	if code != 200 || len(out["devices"].([]any)) != 0 {
		t.Errorf("refused device adds left devices behind: %v", out)
	}
	// A good chosen secret works end to end.
	good := "river-lamp-cobalt-7-orchard"
	code, out, _ = call(t, th.local, "POST", "http://candor/api/v1/devices", "",
		map[string]string{"name": "Cam", "type": "motion-camera", "secret": good})
	if code != http.StatusCreated {
		t.Fatalf("good chosen secret refused: %d %v", code, out)
	}
	id := out["device"].(map[string]any)["id"].(string)
	if _, _, err := v5(t, th.MQTTAddr(), id, id, good, nil); err != nil {
		t.Errorf("connect with chosen secret: %v", err)
	}
}

func TestMQTT5PublishIsStoredBeforeAck(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Kitchen", "thermostat")
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 5 {
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1,
			Payload: []byte(fmt.Sprintf(`{"celsius": 21.%d}`, i))})
		if err != nil || resp.ReasonCode != 0 {
			t.Fatalf("publish %d: %v %+v", i, err, resp)
		}
	}
	// No waiting: a PUBACK means the reading is committed.
	rs := th.readings(id, "stream=temperature")
	if len(rs) != 5 {
		t.Fatalf("stored %d readings after 5 acknowledged publishes", len(rs))
	}
	if string(rs[4].Payload) != `{"celsius":21.4}` || rs[0].Stream != "temperature" {
		t.Errorf("stored reading differs: %+v", rs[4])
	}
}

func TestMQTT311PublishQoS0To2(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Meter", "smart-meter")
	c, err := v3(t, th.MQTTAddr(), id, id, secret)
	if err != nil {
		t.Fatalf("connect 3.1.1: %v", err)
	}
	for qos := byte(0); qos <= 2; qos++ {
		tok := c.Publish("candor/"+id+"/power", qos, false, fmt.Sprintf(`{"watts": %d}`, 100+qos))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish qos %d: %v", qos, tok.Error())
		}
	}
	waitFor(t, "3 readings stored", 5*time.Second, func() bool { return len(th.readings(id, "")) == 3 })
}

func TestAnonymousAndWrongCredentialsRefused(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Door", "door-sensor")
	tests := []struct{ name, client, user, pass string }{
		{"anonymous", "anon", "", ""},
		{"no password", id, id, ""},
		{"wrong secret", id, id, secret + "x"},
		{"unknown device", "dev_nobody", "dev_nobody", secret},
		{"username equals password", id, id, id},
		{"mirai default", "root", "root", "xc3511"},
		{"other device's client id", "dev_other", id, secret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := v5(t, th.MQTTAddr(), tc.client, tc.user, tc.pass, nil); err == nil {
				t.Errorf("MQTT 5 connection accepted")
			}
			if tc.user != "" || tc.pass != "" {
				if _, err := v3(t, th.MQTTAddr(), tc.client, tc.user, tc.pass); err == nil {
					t.Errorf("MQTT 3.1.1 connection accepted")
				}
			}
		})
	}
	waitFor(t, "auth failures counted", 10*time.Second, func() bool {
		return th.device(id)["counters"].(map[string]any)["auth_failures"].(float64) >= 2
	})
}

func TestCrossNamespaceDenied(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Watch", "wearable")
	other, _ := th.addDevice("Cam", "motion-camera")
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, topic := range []string{
		"candor/" + other + "/motion", // another device's namespace
		"candor/" + id + "/control/x", // hub-only control topic
		"elsewhere/topic",             // outside candor/
		"candor/" + id + "/a/b",       // nested levels are not streams
	} {
		resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(`{"x":1}`)})
		if err == nil && resp.ReasonCode < 0x80 {
			t.Errorf("publish to %s accepted (reason %#x)", topic, resp.ReasonCode)
		}
	}
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "candor/" + other + "/#", QoS: 1},
		{Topic: "#", QoS: 1},
		{Topic: "candor/+/heart_rate", QoS: 1},
		{Topic: "candor/" + id + "/control/+", QoS: 1},
	}})
	if err != nil && sa == nil {
		t.Fatalf("subscribe: %v", err)
	}
	want := []bool{false, false, false, true}
	for i, rc := range sa.Reasons {
		if granted := rc < 0x80; granted != want[i] {
			t.Errorf("subscription %d: granted=%v (reason %#x), want %v", i, granted, rc, want[i])
		}
	}
	if n := len(th.readings(other, "")); n != 0 {
		t.Errorf("%d readings reached the other device's history", n)
	}
	waitFor(t, "denials counted for the device", 10*time.Second, func() bool {
		return th.device(id)["counters"].(map[string]any)["acl_denied"].(float64) >= 7
	})
}

func TestWillOutsideNamespaceRefused(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Watch", "wearable")
	other, _ := th.addDevice("Cam", "motion-camera")
	conn, err := netDial(th.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Connect(ctx, &paho.Connect{ClientID: id, UsernameFlag: true, Username: id, PasswordFlag: true,
		Password: []byte(secret), KeepAlive: 30, CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: "candor/" + other + "/motion", Payload: []byte(`{"detected":true}`), QoS: 1}})
	if err == nil {
		t.Fatal("connection with a will into another device's namespace was accepted")
	}
}

func TestRevokeDisconnectsAtOnce(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Door", "door-sensor")
	gone := make(chan struct{})
	conn, err := netDial(th.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: func(*paho.Disconnect) {}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, UsernameFlag: true, Username: id, PasswordFlag: true, Password: []byte(secret), KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	go func() { <-c.Done(); close(gone) }()
	if !th.Broker().Connected(id) {
		t.Fatal("device not shown as connected")
	}
	code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/devices/"+id+"/revoke", "", nil)
	if code != 200 || out["device"].(map[string]any)["revoked"] != true {
		t.Fatalf("revoke: %d %v", code, out)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("revoked device still connected after 5s")
	}
	if _, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil); err == nil {
		t.Error("revoked device could reconnect")
	}
	// HTTP ingest refuses it too.
	req, _ := http.NewRequest("POST", th.URL()+"/api/v1/ingest/contact", strings.NewReader(`{"open":true}`))
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("HTTP ingest by revoked device: %d, want 401", resp.StatusCode)
	}
}

func TestRotateCutsOldSecret(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, old := th.addDevice("Door", "door-sensor")
	if _, _, err := v5(t, th.MQTTAddr(), id, id, old, nil); err != nil {
		t.Fatal(err)
	}
	code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/devices/"+id+"/rotate", "", nil)
	if code != 200 {
		t.Fatalf("rotate: %d %v", code, out)
	}
	fresh := out["secret"].(string)
	waitFor(t, "old connection cut", 5*time.Second, func() bool { return !th.Broker().Connected(id) })
	if _, _, err := v5(t, th.MQTTAddr(), id, id, old, nil); err == nil {
		t.Error("old secret still accepted after rotation")
	}
	if _, _, err := v5(t, th.MQTTAddr(), id, id, fresh, nil); err != nil {
		t.Errorf("new secret refused: %v", err)
	}
}

func TestHTTPIngest(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Meter", "smart-meter")
	post := func(stream, body, user, pass, ctype string) (int, string) {
		req, _ := http.NewRequest("POST", th.URL()+"/api/v1/ingest/"+stream, strings.NewReader(body))
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("error without problem+json: %d %s", resp.StatusCode, b)
		}
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, stream, body, user, pass, ctype string
		want                                  int
		detail                                string
	}{
		{"good", "power", `{"watts": 412}`, id, secret, "application/json", 201, ""},
		{"not json", "power", `watts=412`, id, secret, "application/json", 422, "JSON object"},
		{"json array", "power", `[1,2]`, id, secret, "", 422, "JSON object"},
		{"truncated", "power", `{"watts": `, id, secret, "", 422, "JSON object"},
		{"bad stream", "Power!", `{"watts": 1}`, id, secret, "", 422, "stream"},
		{"control stream", "control", `{"watts": 1}`, id, secret, "", 422, "stream"},
		{"wrong content type", "power", `{"watts": 1}`, id, secret, "text/plain", 415, ""},
		{"no credentials", "power", `{"watts": 1}`, "", "", "", 401, ""},
		{"wrong secret", "power", `{"watts": 1}`, id, "nope-nope-nope-nope", "", 401, ""},
		{"too large", "power", `{"x":"` + strings.Repeat("a", 70<<10) + `"}`, id, secret, "", 422, "limit"},
	}
	for _, tc := range tests {
		code, body := post(tc.stream, tc.body, tc.user, tc.pass, tc.ctype)
		if code != tc.want || !strings.Contains(body, tc.detail) {
			t.Errorf("%s: %d %s; want %d mentioning %q", tc.name, code, body, tc.want, tc.detail)
		}
		if strings.Contains(body, "412") && code >= 400 {
			t.Errorf("%s: error echoes the payload: %s", tc.name, body)
		}
	}
	rs := th.readings(id, "")
	if len(rs) != 1 || string(rs[0].Payload) != `{"watts":412}` {
		t.Fatalf("want exactly the one good reading stored, got %+v", rs)
	}
	waitFor(t, "refusals counted", 10*time.Second, func() bool {
		return th.device(id)["counters"].(map[string]any)["refused"].(float64) == 6
	})
}

func TestMQTTRefusedReadingIsNotStored(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Kitchen", "thermostat")
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1, Payload: []byte(`not json`)})
	// paho returns the PUBACK together with an error for reason codes >= 0x80.
	if resp == nil || resp.ReasonCode != 0x99 {
		t.Errorf("malformed reading: response %+v (err %v), want reason 0x99 (payload format invalid)", resp, err)
	}
	if n := len(th.readings(id, "")); n != 0 {
		t.Errorf("%d readings stored from a refused publish", n)
	}
	if strings.Contains(th.logs.String(), "not json") {
		t.Error("the refused payload appears in the hub's log")
	}
}

func TestMosquittoPubWithDeviceCredential(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		testenv.Missing(t, "mosquitto_pub not installed (Debian package mosquitto-clients); skipping the real-client check")
	}
	th := startHub(t)
	id, secret := th.addDevice("Kitchen", "thermostat")
	host, port, _ := strings.Cut(th.MQTTAddr(), ":")
	for _, v := range []string{"mqttv311", "mqttv5"} {
		out, err := exec.Command(bin, "-h", host, "-p", port, "-V", v, "-q", "1", "-i", id, "-u", id, "-P", secret,
			"-t", "candor/"+id+"/temperature", "-m", `{"celsius": 20.5}`).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub %s: %v: %s", v, err, out)
		}
	}
	if n := len(th.readings(id, "")); n != 2 {
		t.Errorf("stored %d readings from 2 mosquitto_pub runs", n)
	}
	// The Mirai default pair is refused whatever the client.
	out, err := exec.Command(bin, "-h", host, "-p", port, "-q", "1", "-u", "root", "-P", "xc3511",
		"-t", "candor/root/temperature", "-m", `{"celsius": 1}`).CombinedOutput()
	if err == nil {
		t.Errorf("mosquitto_pub with root/xc3511 succeeded: %s", out)
	}
}

func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	th := startHubIn(t, dir)
	if th.SetupToken() == "" {
		t.Fatal("fresh hub printed no setup token")
	}
	id, secret := th.addDevice("Kitchen", "thermostat")
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 50 {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1, Payload: []byte(fmt.Sprintf(`{"celsius": %d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	code, _, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/setup", "",
		map[string]string{"setup_token": th.SetupToken(), "username": "alex", "password": "tangerine-harbour-quietly-88"})
	if code != 201 {
		t.Fatalf("setup: %d", code)
	}
	th.close()

	th2 := startHubIn(t, dir)
	if th2.SetupToken() != "" {
		t.Error("a set-up hub printed a new setup token after restart")
	}
	if n := len(th2.readings(id, "limit=1000")); n != 50 {
		t.Errorf("after restart %d of 50 readings remain", n)
	}
	if _, _, err := v5(t, th2.MQTTAddr(), id, id, secret, nil); err != nil {
		t.Errorf("device credential lost across restart: %v", err)
	}
}
