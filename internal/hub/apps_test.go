package hub

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/testenv"
)

// addApp adds an app as the operator and returns its id and secret.
func (th *testHub) addApp(name string, purposes ...string) (string, string) {
	th.t.Helper()
	code, out, _ := call(th.t, th.local, "POST", "http://candor/api/v1/apps", "", map[string]any{"name": name, "purposes": purposes})
	if code != http.StatusCreated {
		th.t.Fatalf("add app: %d %v", code, out)
	}
	return out["app"].(map[string]any)["id"].(string), out["secret"].(string)
}

// allowApp switches, as the operator, whether an app receives a stream.
func (th *testHub) allowApp(app, device, stream string, on bool) {
	th.t.Helper()
	code, out, _ := call(th.t, th.local, "PUT", "http://candor/api/v1/apps/"+app+"/receives/"+device+"/"+stream, "", map[string]bool{"on": on})
	if code != http.StatusOK {
		th.t.Fatalf("switch app %s on %s/%s: %d %v", app, device, stream, code, out)
	}
}

// received collects what an app receives, as "topic payload" lines.
type received struct {
	mu  sync.Mutex
	got []string
}

func (r *received) add(s string) { r.mu.Lock(); r.got = append(r.got, s); r.mu.Unlock() }

func (r *received) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func (r *received) has(s string) bool {
	for _, g := range r.list() {
		if g == s {
			return true
		}
	}
	return false
}

// consentScenario runs the same story against any app client: readings
// it is not allowed never arrive, allowed ones do, and withdrawing
// consent stops the very next one. Each "never arrived" is proved by a
// later reading that must arrive (a barrier), not by waiting.
func consentScenario(t *testing.T, th *testHub, app, dev, devSecret, other, otherSecret string, got *received) {
	t.Helper()
	topic := func(d, s string) string { return "candor/" + d + "/" + s }
	line := func(d, s, p string) string { return topic(d, s) + " " + p }
	wait := func(want string) {
		t.Helper()
		waitFor(t, "the app to receive "+want, 10*time.Second, func() bool { return got.has(want) })
	}

	th.post(dev, devSecret, "temperature", `{"celsius":1}`) // not allowed yet: off by default
	th.allowApp(app, dev, "temperature", true)
	th.post(other, otherSecret, "temperature", `{"celsius":3}`) // another device, never allowed
	th.post(dev, devSecret, "setpoint", `{"celsius":20}`)       // another stream, not allowed
	th.post(dev, devSecret, "temperature", `{"celsius":2}`)
	wait(line(dev, "temperature", `{"celsius":2}`))

	th.allowApp(app, dev, "temperature", false)
	th.post(dev, devSecret, "temperature", `{"celsius":5}`) // withdrawn: the next one stops
	th.allowApp(app, dev, "heating", true)
	th.post(dev, devSecret, "heating", `{"on":true}`)
	wait(line(dev, "heating", `{"on":true}`))

	want := []string{line(dev, "temperature", `{"celsius":2}`), line(dev, "heating", `{"on":true}`)}
	if g := got.list(); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("the app received:\n%s\nwant exactly:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
	// Readings go to apps, not to the store only: the device's own
	// history still has all of them.
	if n := len(th.readings(dev, "stream=temperature")); n != 3 {
		t.Errorf("stored temperature readings = %d, want 3", n)
	}
}

func TestAppPahoV5ReceivesOnlyConsentedReadings(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	dev, devSecret := th.thermostat()
	other, otherSecret := th.addDevice("Attic", "thermostat")
	app, appSecret := th.addApp("Home Assistant", "candor:HomeAutomation")

	got := &received{}
	c, _, err := v5(t, th.MQTTAddr(), app, app, appSecret, func(pr paho.PublishReceived) {
		got.add(pr.Packet.Topic + " " + string(pr.Packet.Payload))
	})
	if err != nil {
		t.Fatalf("app connect: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "candor/#", QoS: 1},
		{Topic: "candor/+/temperature", QoS: 0},
		{Topic: "somewhere/else/#", QoS: 1},
		{Topic: "candor/" + dev + "/control/#", QoS: 1},
		{Topic: "candor/" + dev + "/temperature", QoS: 1}, // a single topic not yet allowed
	}})
	if err != nil && sa == nil {
		t.Fatalf("subscribe: %v", err)
	}
	wantCodes := []byte{1, 0, 0x87, 0x87, 0x87}
	if string(sa.Reasons) != string(wantCodes) {
		t.Errorf("SUBACK reason codes = %x, want %x (filters that can match nothing the app may see are refused)", sa.Reasons, wantCodes)
	}
	// Overlapping subscriptions (candor/# and candor/+/temperature):
	// mochi sends one copy per client, as MQTT 5 allows.
	consentScenario(t, th, app, dev, devSecret, other, otherSecret, got)

	// An app may not publish readings.
	pr, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + dev + "/temperature", QoS: 1, Payload: []byte(`{"celsius":9}`)})
	if err == nil && (pr == nil || pr.ReasonCode < 0x80) {
		t.Errorf("an app's publish was accepted: %+v", pr)
	}

	code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/apps/"+app, "", nil)
	if code != 200 {
		t.Fatalf("get app: %d %v", code, out)
	}
	if d := out["delivery"].(map[string]any); d["delivered"].(float64) < 2 || d["dropped"].(float64) != 0 {
		t.Errorf("delivery figures = %v, want at least 2 delivered and none dropped", d)
	}
}

func TestAppMosquittoSub(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		testenv.Missing(t, "mosquitto_sub not found: install Debian package mosquitto-clients")
	}
	for _, version := range []string{"mqttv311", "mqttv5"} {
		t.Run(version, func(t *testing.T) {
			th := startHub(t)
			dev, devSecret := th.thermostat()
			other, otherSecret := th.addDevice("Attic", "thermostat")
			app, appSecret := th.addApp("Node-RED", "candor:HomeAutomation")
			host, port, err := net.SplitHostPort(th.MQTTAddr())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-V", version, "-i", app,
				"-u", app, "-P", appSecret, "-q", "1", "-t", "candor/#", "-v")
			got := startLines(t, cmd)
			subscribed(t, th, app)
			consentScenario(t, th, app, dev, devSecret, other, otherSecret, got)
		})
	}
}

// subscribed waits until the app's subscription is in place: a
// connected client may not have sent its SUBSCRIBE yet.
func subscribed(t *testing.T, th *testHub, app string) {
	t.Helper()
	waitFor(t, "the app's subscription", 10*time.Second, func() bool { return th.Broker().Subscribed(app) })
}

// startLines runs cmd and collects its standard output, line by line.
func startLines(t *testing.T, cmd *exec.Cmd) *received {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got := &received{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			got.add(sc.Text())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("%s stderr:\n%s", filepath.Base(cmd.Path), stderr.String())
		}
	})
	return got
}

// mqttJS installs the pinned mqtt.js (package-lock.json in testdata) into
// a temporary directory and returns it.
func mqttJS(t *testing.T) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		testenv.Missing(t, "npm not found, so mqtt.js cannot be installed: install Debian package npm")
	}
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Missing(t, "node not found: install Debian package nodejs")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "app.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", "mqttjs", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--silent")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		testenv.Missing(t, "npm ci (mqtt.js) failed: %v\n%s", err, out)
	}
	return dir
}

func TestAppMQTTJS(t *testing.T) {
	dir := mqttJS(t)
	for _, tc := range []struct{ name, version, transport string }{
		{"v5-tcp", "5", "tcp"},
		{"v311-ws", "4", "ws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := startHub(t, func(c *configT) {
				if tc.transport == "ws" {
					c.WSAddr = freeAddr(t)
				}
			})
			dev, devSecret := th.thermostat()
			other, otherSecret := th.addDevice("Attic", "thermostat")
			app, appSecret := th.addApp("Script", "dpv:ServiceProvision")
			url := "mqtt://" + th.MQTTAddr()
			if tc.transport == "ws" {
				url = "ws://" + th.Broker().Addr("ws") + "/"
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "app.js")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "URL="+url, "APP="+app, "SECRET="+appSecret, "VERSION="+tc.version, "FILTER=candor/+/+")
			got := startLines(t, cmd)
			subscribed(t, th, app)
			consentScenario(t, th, app, dev, devSecret, other, otherSecret, got)
		})
	}
}

// TestAppCatchUp reads a stream an app is allowed from the stored
// history with the app's own credential, and is refused one it is not.
func TestAppCatchUp(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	dev, devSecret := th.thermostat()
	app, appSecret := th.addApp("Logger", "dpv:ServiceProvision")
	for i := 1; i <= 3; i++ {
		th.post(dev, devSecret, "temperature", fmt.Sprintf(`{"celsius":%d}`, i))
	}
	get := func(query string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", th.URL()+"/api/v1/apps/"+app+"/readings?"+query, nil)
		req.SetBasicAuth(app, appSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	if code, _ := get("device=" + dev + "&stream=temperature"); code != http.StatusNotFound {
		t.Errorf("catch-up on a stream not allowed: %d, want 404", code)
	}
	th.allowApp(app, dev, "temperature", true)
	code, out := get("device=" + dev + "&stream=temperature&since=0")
	if code != 200 {
		t.Fatalf("catch-up: %d %v", code, out)
	}
	rs := out["readings"].([]any)
	if len(rs) != 3 {
		t.Fatalf("caught up on %d readings, want 3", len(rs))
	}
	first := rs[0].(map[string]any)["seq"].(float64)
	code, out = get(fmt.Sprintf("device=%s&stream=temperature&since=%d", dev, int64(first)))
	if code != 200 || len(out["readings"].([]any)) != 2 {
		t.Errorf("catch-up after the first: %d %v, want the other 2", code, out)
	}
	req, _ := http.NewRequest("GET", th.URL()+"/api/v1/apps/"+app+"/readings?device="+dev+"&stream=temperature", nil)
	req.SetBasicAuth(app, "wrong-secret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("catch-up with a wrong secret: %v %v, want 401", resp.StatusCode, err)
	}
}

// TestAppMosquittoSubTLS subscribes as an app over MQTT over TLS,
// verifying the hub against its own authority, while the device publishes
// over TLS with mosquitto_pub: the stream not allowed never arrives before
// the allowed one that follows it.
func TestAppMosquittoSubTLS(t *testing.T) {
	sub, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		testenv.Missing(t, "mosquitto_sub not found: install Debian package mosquitto-clients")
	}
	pub, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		testenv.Missing(t, "mosquitto_pub not found: install Debian package mosquitto-clients")
	}
	th := startHub(t, func(c *configT) { c.TLSSelfSigned = true; c.MQTTTLSAddr = "127.0.0.1:0" })
	dev, devSecret := th.thermostat()
	app, appSecret := th.addApp("Home Assistant", "candor:HomeAutomation")
	th.allowApp(app, dev, "temperature", true)
	_, port, err := net.SplitHostPort(th.MQTTTLSAddr())
	if err != nil {
		t.Fatal(err)
	}
	tlsArgs := []string{"-h", "127.0.0.1", "-p", port, "--cafile", th.caFile(), "-V", "mqttv5", "-q", "1"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := startLines(t, exec.CommandContext(ctx, sub, append(tlsArgs, "-i", app, "-u", app, "-P", appSecret, "-t", "candor/#", "-v")...))
	subscribed(t, th, app)
	send := func(stream, payload string) {
		t.Helper()
		out, err := exec.CommandContext(ctx, pub, append(tlsArgs, "-i", dev, "-u", dev, "-P", devSecret,
			"-t", "candor/"+dev+"/"+stream, "-m", payload)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub over TLS: %v: %s", err, out)
		}
	}
	send("setpoint", `{"celsius":21}`)
	send("temperature", `{"celsius":19}`)
	want := "candor/" + dev + "/temperature " + `{"celsius":19}`
	waitFor(t, "the app to receive the allowed reading", 10*time.Second, func() bool { return got.has(want) })
	if g := got.list(); len(g) != 1 {
		t.Errorf("the app received %q, want only %q", g, want)
	}
}

// TestAppOfflineQueueFollowsConsent: an app with a persistent session
// gets, after reconnecting, the QoS 1 readings queued while it was
// offline, except those of a use withdrawn in the meantime.
func TestAppOfflineQueueFollowsConsent(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	dev, devSecret := th.thermostat()
	app, appSecret := th.addApp("Home Assistant", "candor:HomeAutomation")
	th.allowApp(app, dev, "temperature", true)
	th.allowApp(app, dev, "heating", true)
	got := &received{}
	expiry := uint32(300)
	connect := func(clean bool) *paho.Client {
		t.Helper()
		conn, err := netDial(th.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: app, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				got.add(pr.Packet.Topic + " " + string(pr.Packet.Payload))
				return true, nil
			}}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Connect(ctx, &paho.Connect{ClientID: app, KeepAlive: 30, CleanStart: clean, UsernameFlag: true, Username: app,
			PasswordFlag: true, Password: []byte(appSecret), Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}); err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { conn.Close() })
		return c
	}
	c := connect(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the app to be offline", 10*time.Second, func() bool { return !th.Broker().Connected(app) })

	th.post(dev, devSecret, "temperature", `{"celsius":1}`) // queued while offline
	th.post(dev, devSecret, "heating", `{"on":true}`)       // queued, then withdrawn
	th.allowApp(app, dev, "heating", false)
	// The barrier: queued after the withdrawn one, so the broker resends
	// it after that one (in packet order) if it resends that one at all.
	th.post(dev, devSecret, "temperature", `{"celsius":3}`)
	connect(false)
	last := "candor/" + dev + "/temperature " + `{"celsius":3}`
	waitFor(t, "the queued readings after reconnecting", 10*time.Second, func() bool { return got.has(last) })
	// QoS 1 is at least once: a reading may come twice, so the check is
	// on what came, not how often.
	seen := map[string]bool{}
	for _, m := range got.list() {
		seen[m] = true
	}
	want := map[string]bool{"candor/" + dev + "/temperature " + `{"celsius":1}`: true, last: true}
	if len(seen) != len(want) || !seen["candor/"+dev+"/temperature "+`{"celsius":1}`] || !seen[last] {
		t.Errorf("after reconnecting the app received:\n%s\nwant only the two temperature readings (the heating one was withdrawn)",
			strings.Join(got.list(), "\n"))
	}
}
