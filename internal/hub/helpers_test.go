package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

func TestMain(m *testing.M) {
	credential.DefaultParams = cheapHash
	os.Exit(m.Run())
}

// cheapHash is argon2id at its smallest cost for these tests' passwords
// and chosen device secrets: the hub behaves the same whatever the cost
// (the throttling tests count attempts, not time), and at the real 19 MiB
// and 2 passes each hash took 0.13 s under -race (0.33 s at load 12).
// Package credential tests the real parameters; Verify reads them from
// each stored hash, so both work.
var cheapHash = credential.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Tests that call t.Parallel run two at a time (GOMAXPROCS on CI's
// 2-core machine) after the sequential ones; most of a hub test's time is
// spent waiting (MQTT round trips, fsync), so two overlap well. Each has
// its own hub (startHub: own temp directory, ports the kernel picks) and
// the package keeps no state between tests. A test stays sequential if it
// uses a port it picked before binding (freeAddr), fixed or default ports
// (the demo, Mosquitto), NATS (several nodes), external programs, or the
// monitor's and throttles' time windows, or sleeps for a set time.
//
// testConfig is a hub on ephemeral loopback ports with its data in a temp
// directory (Mosquitto may already hold 1883 on this machine).
func testConfig(t *testing.T, dir string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.MQTTAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.BatchMaxWait = 2 * time.Millisecond
	return cfg
}

type testHub struct {
	*Hub
	t     *testing.T
	dir   string
	local *http.Client
	logs  *lockedWriter
}

// shortTempDir keeps the control socket path under the 108-byte limit of
// unix socket addresses.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "candor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startHub(t *testing.T, mod ...func(*config.Config)) *testHub {
	t.Helper()
	return startHubIn(t, shortTempDir(t), mod...)
}

func startHubIn(t *testing.T, dir string, mod ...func(*config.Config)) *testHub {
	t.Helper()
	cfg := testConfig(t, dir)
	for _, m := range mod {
		m(&cfg)
	}
	// A new SQLite store starts as a migrated copy, made once per test
	// binary; a restart in the same directory opens what is there.
	if db := filepath.Join(dir, DBName); cfg.Store == "" {
		if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
			sqlitetest.Write(t, db)
		}
	}
	logs := &lockedWriter{}
	// No timestamps: tests search the log for values that must not be in
	// it, and a time such as 14:13:52.180 would contain "52.1".
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := Start(ctx, cfg, log, io.Discard)
	if err != nil {
		t.Fatalf("start hub: %v", err)
	}
	th := &testHub{Hub: h, t: t, dir: dir, logs: logs}
	sock := filepath.Join(dir, SocketName)
	th.local = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	t.Cleanup(func() { th.close() })
	return th
}

func (th *testHub) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := th.Close(ctx); err != nil {
		th.t.Errorf("close hub: %v", err)
	}
}

// call sends a JSON request. Use th.local for the operator socket or
// http.DefaultClient with a bearer token for a person.
func call(t testing.TB, c *http.Client, method, url, bearer string, in any) (int, map[string]any, http.Header) {
	t.Helper()
	var body io.Reader
	if in != nil {
		switch v := in.(type) {
		case string:
			body = strings.NewReader(v)
		default:
			b, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			body = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %q", method, url, b)
		}
	}
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: error answered with Content-Type %q, want application/problem+json", method, url, ct)
		}
	}
	return resp.StatusCode, out, resp.Header
}

// addDevice adds a device as the operator and returns its id and secret.
func (th *testHub) addDevice(name, typ string) (string, string) {
	th.t.Helper()
	code, out, _ := call(th.t, th.local, "POST", "http://candor/api/v1/devices", "", map[string]string{"name": name, "type": typ})
	if code != http.StatusCreated {
		th.t.Fatalf("add device: %d %v", code, out)
	}
	return out["device"].(map[string]any)["id"].(string), out["secret"].(string)
}

type reading struct {
	Seq     int64           `json:"seq"`
	Stream  string          `json:"stream"`
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
}

func (th *testHub) readings(deviceID, query string) []reading {
	th.t.Helper()
	resp, err := th.local.Get("http://candor/api/v1/devices/" + deviceID + "/readings?" + query)
	if err != nil {
		th.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		th.t.Fatalf("readings: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Readings []reading `json:"readings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		th.t.Fatal(err)
	}
	return out.Readings
}

func (th *testHub) device(id string) map[string]any {
	th.t.Helper()
	code, out, _ := call(th.t, th.local, "GET", "http://candor/api/v1/devices/"+id, "", nil)
	if code != 200 {
		th.t.Fatalf("get device: %d %v", code, out)
	}
	return out["device"].(map[string]any)
}

// v5 connects an MQTT 5 client (paho.golang) and returns it with the
// CONNACK, or the connect error.
func v5(t *testing.T, addr, clientID, user, pass string, onPub func(paho.PublishReceived)) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{Conn: conn, ClientID: clientID}
	if onPub != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { onPub(pr); return true, nil },
		}
	}
	c := paho.NewClient(cfg)
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true}
	if user != "" {
		cp.UsernameFlag, cp.Username = true, user
	}
	if pass != "" {
		cp.PasswordFlag, cp.Password = true, []byte(pass)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ack, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return c, ack, nil
}

// v3 connects an MQTT 3.1.1 client (paho.mqtt.golang).
func v3(t *testing.T, addr, clientID, user, pass string) (paho3.Client, error) {
	t.Helper()
	opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetUsername(user).SetPassword(pass).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second)
	c := paho3.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatal("v3 connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// lockedWriter lets the test read logs while the hub writes them.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

type configT = config.Config
