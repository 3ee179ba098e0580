package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/cluster/clustertest"
	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
	"github.com/candor-iot/candor/internal/vault"
)

// startNodes starts n hubs as nodes of one deployment: one PostgreSQL
// database of their own, one NATS deployment name of their own. The first
// node makes the keys every node must share (the vault key and the two
// signing keys); the others get copies before they start, as the
// deployment guide tells operators to do.
func startNodes(t *testing.T, n int, more ...func(*config.Config)) []*testHub {
	t.Helper()
	db := pgtest.NewDatabase(t)
	natsURL := clustertest.URL(t)
	dep := clustertest.Deployment(t, natsURL)
	mod := func(c *config.Config) {
		c.Store, c.NATS, c.Deployment = db, natsURL, dep
		for _, f := range more {
			f(c)
		}
	}
	first := startHubIn(t, shortTempDir(t), mod)
	nodes := []*testHub{first}
	for range n - 1 {
		dir := shortTempDir(t)
		for _, name := range SharedKeyFiles {
			copyFile(t, filepath.Join(first.dir, name), filepath.Join(dir, name))
		}
		nodes = append(nodes, startHubIn(t, dir, mod))
	}
	for _, th := range nodes {
		for len(th.node.Live()) < n {
			time.Sleep(20 * time.Millisecond) // Join waited two heartbeats; the first nodes hear the last ones soon after
		}
	}
	return nodes
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// watched is an MQTT connection that reports when the server ends it.
type watched struct {
	c     *paho.Client
	ended chan struct{}
	once  sync.Once
}

func connectWatched(t *testing.T, addr, clientID, user, pass string) *watched {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	w := &watched{ended: make(chan struct{})}
	end := func() { w.once.Do(func() { close(w.ended) }) }
	w.c = paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: clientID,
		OnServerDisconnect: func(*paho.Disconnect) { end() },
		OnClientError:      func(error) { end() }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(pass)}); err != nil {
		t.Fatalf("connect %s to %s: %v", clientID, addr, err)
	}
	t.Cleanup(func() { _ = w.c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return w
}

func (w *watched) publish(t *testing.T, topic, payload string) {
	t.Helper()
	if code := w.publishCode(t, topic, payload); code != 0 {
		t.Fatalf("publish %s: PUBACK reason code %#x", topic, code)
	}
}

// publishCode publishes at QoS 1 and returns the PUBACK's reason code.
func (w *watched) publishCode(t *testing.T, topic, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := w.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if resp != nil {
		return resp.ReasonCode // paho also returns an error for a refusal
	}
	t.Fatalf("publish %s: %v", topic, err)
	return 0
}

// waitEnded waits for the server to end the connection. The bound only
// keeps a broken test from hanging; the time taken is reported.
func (w *watched) waitEnded(t *testing.T, what string, since time.Time) {
	t.Helper()
	select {
	case <-w.ended:
		t.Logf("%s: connection ended %v after the change returned", what, time.Since(since).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the connection was not ended", what)
	}
}

// TestSeveralNodes runs three hubs on one PostgreSQL database and one NATS
// deployment and checks that they behave as one hub: a consent change
// made through node B is in force for the next reading a device sends to
// node A; a revocation through node C has cut the device's connection to
// A by the time C answers; a client id connecting to B ends its session
// on A; accounts, tokens and devices made through one node work through
// the others; an export through C holds readings stored through A and B;
// deleting the account through B leaves nothing readable on any node.
func TestSeveralNodes(t *testing.T) {
	nodes := startNodes(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]

	t.Cleanup(func() {
		if t.Failed() {
			for i, th := range nodes {
				t.Logf("node %d log:\n%s", i, th.logs.String())
			}
		}
	})
	alex := a.setup("alex")                                  // an account made through A…
	id, secret := c.personDevice(alex, "Hall", "thermostat") // …adds a device through C
	dev := connectWatched(t, a.MQTTAddr(), id, id, secret)
	topic := "candor/" + id + "/setpoint"
	dev.publish(t, topic, `{"celsius": 7}`)

	// Consent through B, next reading through A.
	for _, purpose := range []string{"candor:HomeAutomation", "dpv:ServiceProvision"} {
		code, out, _ := call(t, http.DefaultClient, "PUT", b.URL()+"/api/v1/devices/"+id+"/consent/setpoint", alex,
			map[string]any{"purpose": purpose, "on": false})
		if code != http.StatusOK {
			t.Fatalf("consent off (%s) through B: %d %v", purpose, code, out)
		}
	}
	dev.publish(t, topic, `{"celsius": 8}`)
	if rs := c.readings(id, "stream=setpoint"); len(rs) != 1 {
		t.Fatalf("%d setpoint readings stored; the one sent to A after consent was withdrawn through B must not be", len(rs))
	}

	// Session takeover: the same client id connects to B.
	start := time.Now()
	moved := connectWatched(t, b.MQTTAddr(), id, id, secret)
	dev.waitEnded(t, "takeover of the client id by node B", start)
	if !b.Broker().Connected(id) {
		t.Fatal("the device's connection to B was ended too")
	}
	moved.publish(t, "candor/"+id+"/temperature", `{"celsius": 20, "humidity_percent": 40}`)

	// Holds the monitor places: TestMonitorHoldsReachEveryNode.

	// A new manifest version put through C is in force for the next
	// reading the device sends to B: 40 °C was in range, now it is not.
	moved.publish(t, "candor/"+id+"/temperature", `{"celsius": 40, "humidity_percent": 40}`)
	raw, err := os.ReadFile("../manifest/templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	celsius := doc["properties"].(map[string]any)["temperature"].(map[string]any)["properties"].(map[string]any)["celsius"].(map[string]any)
	celsius["maximum"] = 30
	doc["version"] = map[string]any{"model": "1.1.0"}
	if code, out, _ := call(t, c.local, "POST", "http://candor/api/v1/manifests", "", doc); code != http.StatusCreated {
		t.Fatalf("new manifest version through C: %d %v", code, out)
	}
	if code := moved.publishCode(t, "candor/"+id+"/temperature", `{"celsius": 40, "humidity_percent": 40}`); code == 0 {
		t.Fatal("a reading outside the range of the manifest version put through C was accepted by B")
	}

	// Readings stored through A and through B (HTTP ingest), for the
	// export below.
	meter, meterSecret := a.personDevice(alex, "Meter", "thermostat")
	for i := range 4 {
		nodes[i%2].post(meter, meterSecret, "temperature", fmt.Sprintf(`{"celsius":%d,"humidity_percent":40}`, 18+i))
	}

	// Revocation through C of a device connected to A.
	door, doorSecret := b.personDevice(alex, "Door", "thermostat")
	doorConn := connectWatched(t, a.MQTTAddr(), door, door, doorSecret)
	start = time.Now()
	code, out, _ := call(t, c.local, "POST", "http://candor/api/v1/devices/"+door+"/revoke", "", nil)
	if code >= 300 {
		t.Fatalf("revoke through C: %d %v", code, out)
	}
	// C answered only after A confirmed, and A cut the connection
	// before confirming.
	if a.Broker().Connected(door) {
		t.Fatal("C said the device was revoked while A still had its connection")
	}
	doorConn.waitEnded(t, "revocation through node C", start)

	// An export through C holds what A and B stored.
	code, job, _ := call(t, http.DefaultClient, "POST", c.URL()+"/api/v1/exports", alex, nil)
	if code != http.StatusAccepted {
		t.Fatalf("export through C: %d %v", code, job)
	}
	statusURL := c.URL() + job["status_url"].(string)
	for deadline := time.Now().Add(60 * time.Second); job["state"] == "running" && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if code, job, _ = call(t, http.DefaultClient, "GET", statusURL, alex, nil); code != 200 {
			t.Fatalf("export status: %d %v", code, job)
		}
	}
	// 1 setpoint (A) + 2 temperature (B) of the hall, 4 of the meter (A, B).
	if job["state"] != "done" || job["readings_total"] != 7.0 || job["readings_done"] != 7.0 {
		t.Fatalf("export through C: %v; want all 7 readings stored through A and B", job)
	}
	// The job runs on C; its status and download answer through A and B
	// too (they send the requests to C).
	if code, st, _ := call(t, http.DefaultClient, "GET", a.URL()+job["status_url"].(string), alex, nil); code != 200 || st["state"] != "done" {
		t.Fatalf("export status through A: %d %v", code, st)
	}
	if zb := getText(t, http.DefaultClient, b.URL()+job["download_url"].(string), alex); float64(len(zb)) != job["bytes"].(float64) {
		t.Fatalf("export download through B: %d bytes, the job says %v", len(zb), job["bytes"])
	}

	// An app connected to B receives a reading accepted by A, once it is
	// allowed the stream (through C).
	app, appSecret := a.addApp("Home Assistant", "candor:HomeAutomation")
	c.allowApp(app, meter, "temperature", true)
	got := &received{}
	appConn, _, err := v5(t, b.MQTTAddr(), app, app, appSecret, func(pr paho.PublishReceived) {
		got.add(pr.Packet.Topic + " " + string(pr.Packet.Payload))
	})
	if err != nil {
		t.Fatalf("app connects to B: %v", err)
	}
	subCtx, subCancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, err := appConn.Subscribe(subCtx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + meter + "/temperature", QoS: 1}}}); err != nil {
		t.Fatalf("app subscribes on B: %v", err)
	}
	subCancel()
	a.post(meter, meterSecret, "temperature", `{"celsius":23,"humidity_percent":41}`)
	want := "candor/" + meter + "/temperature " + `{"celsius":23,"humidity_percent":41}`
	for deadline := time.Now().Add(10 * time.Second); !got.has(want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the app on B never received the reading accepted by A; it received %v", got.list())
		}
	}

	// Deleting the account through B: no node can read the readings.
	code, out, _ = call(t, http.DefaultClient, "DELETE", b.URL()+"/api/v1/me", alex, map[string]any{"password": goodPassword})
	if code >= 300 {
		t.Fatalf("delete account through B: %d %v", code, out)
	}
	for i, th := range nodes {
		for _, d := range []string{id, meter} {
			resp, err := th.local.Get("http://candor/api/v1/devices/" + d + "/readings")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && len(body) > 0 && string(body) != `{"readings":[]}` {
				t.Errorf("node %d still answers readings of %s after the account was deleted through B: %d %s", i, d, resp.StatusCode, body)
			}
		}
		if code, _, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/me", alex, nil); code != http.StatusUnauthorized {
			t.Errorf("node %d still accepts the deleted account's token: %d", i, code)
		}
	}

	// Wrong passwords spread over the nodes count as on one hub: after
	// five (the per-account allowance) through A, B and C, even the right
	// password is refused for a while on A. The other nodes' counts reach
	// A in the background, so this waits (bounded) for A to refuse.
	code, out, _ = call(t, c.local, "POST", "http://candor/api/v1/households", "",
		map[string]any{"name": "Next door", "owner": map[string]string{"username": "sam", "password": goodPassword}})
	if code != http.StatusCreated {
		t.Fatalf("create household through C: %d %v", code, out)
	}
	for i := range 5 {
		code, _, _ := call(t, http.DefaultClient, "POST", nodes[i%3].URL()+"/api/v1/tokens", "",
			map[string]string{"username": "sam", "password": "not the password at all", "name": "guess"})
		if code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d through node %d: %d, want 401", i, i%3, code)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, _, _ := call(t, http.DefaultClient, "POST", a.URL()+"/api/v1/tokens", "",
			map[string]string{"username": "sam", "password": goodPassword, "name": "right"})
		if code == http.StatusTooManyRequests {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 wrong passwords through A, B and C, A still answers %d to the right one; want 429", code)
		}
	}

	ctx := context.Background()
	// One transparency log: every node's copy holds the same entries (the
	// consent change made through B, the revocation through C, the
	// account deletion through B…) in the same tree, and verifies.
	var size uint64
	for _, th := range nodes {
		size = max(size, th.alog.Size())
	}
	for i, th := range nodes {
		for deadline := time.Now().Add(10 * time.Second); th.alog.Size() < size; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("node %d's log has %d entries, another node's %d", i, th.alog.Size(), size)
			}
		}
	}
	root, err := a.alog.RootHash(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for e, err := range a.alog.Entries(ctx, 0, size) {
		if err != nil {
			t.Fatal(err)
		}
		actions[e.Event.Action] = true
	}
	for _, want := range []string{"consent.change", "device.credential.revoke", "account.delete"} {
		if !actions[want] {
			t.Errorf("node A's log lacks a %q entry (made through another node); it has %v", want, actions)
		}
	}
	for i, th := range nodes {
		r, err := th.alog.RootHash(ctx, size)
		if err != nil || string(r) != string(root) {
			t.Errorf("node %d's log at size %d: root %x (%v), node A's %x", i, size, r, err, root)
		}
		if th.alog.VerifierKey() != a.alog.VerifierKey() {
			t.Errorf("node %d signs with another log key", i)
		}
		if _, err := th.alog.Verify(ctx); err != nil {
			t.Errorf("node %d's log: %v", i, err)
		}
	}
}

// TestMonitorActionsReachEveryNode changes what the abuse monitor does
// about alarms through one node, by each way an admin can (the API, the
// page, the CLI over the control socket), and checks that the other
// node acts the new way by the time the change is answered: the monitor
// reports its own change, and the answer waits for every node.
func TestMonitorActionsReachEveryNode(t *testing.T) {
	nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	t.Cleanup(func() {
		if t.Failed() {
			for i, th := range nodes {
				t.Logf("node %d log:\n%s", i, th.logs.String())
			}
		}
	})
	alex := a.setup("alex")
	if got, want := b.mon.Policy().String(), "info=notify,warning=rate_limit,critical=quarantine"; got != want {
		t.Fatalf("node B's actions before any change: %s, want the defaults %s", got, want)
	}

	// The API on A.
	code, out, _ := call(t, http.DefaultClient, "PUT", a.URL()+"/api/v1/monitor/actions", alex,
		map[string]string{"info": "notify", "warning": "quarantine", "critical": "revoke"})
	if code != http.StatusOK {
		t.Fatalf("change the actions through A's API: %d %v", code, out)
	}
	if got, want := b.mon.Policy().String(), "info=notify,warning=quarantine,critical=revoke"; got != want {
		t.Fatalf("node B acts by %s when A's API answered, want %s", got, want)
	}

	// The page on B (the form redirects once the change is confirmed).
	pc := b.pages("alex", goodPassword)
	if code, body := pc.get("/admin/monitoring"); code != http.StatusOK {
		t.Fatalf("the monitoring page on B: %d %s", code, body)
	}
	if code, body := pc.post("/admin/monitoring", url.Values{"info": {"notify"}, "warning": {"notify"}, "critical": {"quarantine"}}); code != http.StatusOK {
		t.Fatalf("change the actions on B's page: %d %s", code, body)
	}
	if got, want := a.mon.Policy().String(), "info=notify,warning=notify,critical=quarantine"; got != want {
		t.Fatalf("node A acts by %s when B's page answered, want %s", got, want)
	}

	// The CLI on A (candor … over the control socket).
	code, out, _ = call(t, a.local, "PUT", "http://candor/api/v1/monitor/actions", "",
		map[string]string{"info": "rate_limit", "warning": "quarantine", "critical": "quarantine"})
	if code != http.StatusOK {
		t.Fatalf("change the actions through A's control socket: %d %v", code, out)
	}
	if got, want := b.mon.Policy().String(), "info=rate_limit,warning=quarantine,critical=quarantine"; got != want {
		t.Fatalf("node B acts by %s when A's control socket answered, want %s", got, want)
	}
}

// TestRecipientsAndKeySettingsReachEveryNode changes where a household's
// data goes through one node and how a person's keys are held through
// the other, and checks that the other node has the change when it is
// answered: the recipients registry and the key settings service report
// their own changes.
func TestRecipientsAndKeySettingsReachEveryNode(t *testing.T) {
	nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	alex := a.setup("alex")
	a.personDevice(alex, "Meter", "smart-meter") // its manifest names the supplier
	code, me, _ := call(t, http.DefaultClient, "GET", a.URL()+"/api/v1/me", alex, nil)
	if code != http.StatusOK {
		t.Fatalf("me: %d %v", code, me)
	}
	acc := me["account"].(map[string]any)
	accountID, household := acc["id"].(string), acc["household_id"].(string)

	// Where the supplier receives, set through A: B forwards there too.
	rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer rcv.Close()
	const supplier = "Your energy supplier"
	if code, out, _ := call(t, http.DefaultClient, "PUT", a.URL()+"/api/v1/recipients/"+url.PathEscape(supplier), alex,
		map[string]string{"url": rcv.URL}); code != http.StatusOK {
		t.Fatalf("set the supplier's endpoint through A: %d %v", code, out)
	}
	if _, ok := b.forward.Stats(household)[supplier]; !ok {
		t.Fatalf("node B has no endpoint for %q when A answered: %v", supplier, b.forward.Stats(household))
	}
	// Removed through B: A stops.
	if code, out, _ := call(t, http.DefaultClient, "DELETE", b.URL()+"/api/v1/recipients/"+url.PathEscape(supplier), alex, nil); code >= 300 {
		t.Fatalf("remove the supplier's endpoint through B: %d %v", code, out)
	}
	if st := a.forward.Stats(household); len(st) != 0 {
		t.Fatalf("node A still forwards to %v when B answered the removal", st)
	}

	// The person's keys held by themselves, chosen through B: A seals
	// for them only from then on.
	if code, out, _ := call(t, http.DefaultClient, "PUT", b.URL()+"/api/v1/keys/me", alex,
		map[string]any{"mode": "user-held", "generate_identity": true}); code != http.StatusOK {
		t.Fatalf("user-held keys through B: %d %v", code, out)
	}
	if st, err := a.vault.Status(accountID); err != nil || st.Mode != vault.UserHeld {
		t.Fatalf("node A's vault when B answered: %+v, %v; want user-held", st, err)
	}
}
