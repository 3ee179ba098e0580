package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/tlscert"
)

// Streams the fake ingester treats specially.
const (
	streamNotJSON   = "not_json"
	streamTooLarge  = "too_large"
	streamBadStream = "bad_name"
	streamBroken    = "broken" // storage failure
)

// fakeAuth knows a fixed set of device secrets.
type fakeAuth struct {
	mu      sync.Mutex
	secrets map[string]string
	fail    error // returned for every call when set
}

func (a *fakeAuth) AuthenticateDevice(_ context.Context, _ identity.Origin, id, secret string) (store.Device, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return store.Device{}, a.fail
	}
	if s, ok := a.secrets[id]; ok && s == secret {
		return store.Device{ID: id, HouseholdID: "hh_1"}, nil
	}
	return store.Device{}, identity.ErrUnauthenticated
}

type submission struct {
	device, stream, payload string
	wait                    bool
}

// fakeIngester records what the broker hands it and answers by stream.
type fakeIngester struct {
	mu      sync.Mutex
	subs    []submission
	counts  map[string]store.DeviceCounters
	refused int
}

func (f *fakeIngester) Submit(_ context.Context, deviceID, stream string, payload []byte, wait bool) error {
	f.mu.Lock()
	f.subs = append(f.subs, submission{deviceID, stream, string(payload), wait})
	f.mu.Unlock()
	refuse := func(reason, detail string) error {
		return &ingest.RefusedError{DeviceID: deviceID, Stream: stream, Reason: reason, Detail: detail}
	}
	switch stream {
	case streamNotJSON:
		return refuse(ingest.ReasonNotJSON, "payload must be a JSON object")
	case streamTooLarge:
		return refuse(ingest.ReasonTooLarge, "payload is over the 64-byte limit")
	case streamBadStream:
		return refuse(ingest.ReasonBadStream, "bad stream name")
	case streamBroken:
		return fmt.Errorf("commit reading from device %s: %w", deviceID, errors.New("disk I/O error"))
	}
	return nil
}

// Enqueue behaves like Submit with wait=true, except that a storage
// failure surfaces when the ticket is waited on, as in the real pipeline.
func (f *fakeIngester) Enqueue(ctx context.Context, deviceID, stream string, payload []byte) (ingest.Ticket, error) {
	err := f.Submit(ctx, deviceID, stream, payload, true)
	var re *ingest.RefusedError
	if err != nil && !errors.As(err, &re) {
		return ingest.Completed(err), nil
	}
	return ingest.Completed(nil), err
}

// Vet refuses by stream as Submit does, without recording a submission.
func (f *fakeIngester) Vet(_ context.Context, deviceID, stream string, payload []byte) error {
	switch stream {
	case streamNotJSON:
		return &ingest.RefusedError{DeviceID: deviceID, Stream: stream, Reason: ingest.ReasonNotJSON, Detail: "payload must be a JSON object"}
	case streamTooLarge:
		return &ingest.RefusedError{DeviceID: deviceID, Stream: stream, Reason: ingest.ReasonTooLarge, Detail: "too large"}
	case streamBadStream:
		return &ingest.RefusedError{DeviceID: deviceID, Stream: stream, Reason: ingest.ReasonBadStream, Detail: "bad stream name"}
	case streamBroken:
		return errors.New("manifest store unavailable")
	}
	return nil
}

func (f *fakeIngester) Refuse(deviceID string, err error) {
	f.mu.Lock()
	f.refused++
	f.mu.Unlock()
}

func (f *fakeIngester) Count(deviceID string, delta store.DeviceCounters) {
	f.mu.Lock()
	if f.counts == nil {
		f.counts = map[string]store.DeviceCounters{}
	}
	f.counts[deviceID] = f.counts[deviceID].Add(delta)
	f.mu.Unlock()
}

func (f *fakeIngester) submissions() []submission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]submission(nil), f.subs...)
}

func (f *fakeIngester) counters(id string) store.DeviceCounters {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[id]
}

// lockedBuffer lets the test read logs while the broker writes them.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testBroker struct {
	*Broker
	auth *fakeAuth
	in   *fakeIngester
	logs *lockedBuffer
	reg  *prometheus.Registry
	addr string
}

// Device credentials known to every test broker.
const (
	devA    = "dev_a"
	devAB   = "dev_ab"
	devB    = "dev_b"
	secretA = "secret-of-device-a-1234"
	secretB = "secret-of-device-b-5678"
)

func startBroker(t *testing.T) *testBroker {
	t.Helper()
	return startBrokerWith(t, nil)
}

// startBrokerWith starts a test broker with its Config changed by mod.
func startBrokerWith(t *testing.T, mod func(*Config)) *testBroker {
	t.Helper()
	tb := &testBroker{
		auth: &fakeAuth{secrets: map[string]string{devA: secretA, devAB: secretA + "b", devB: secretB}},
		in:   &fakeIngester{},
		logs: &lockedBuffer{},
		reg:  prometheus.NewRegistry(),
	}
	log := slog.New(slog.NewTextHandler(tb.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{TCPAddr: "127.0.0.1:0", Logger: log, Registerer: tb.reg}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg, tb.auth, tb.in)
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	tb.Broker = b
	tb.addr = b.Addr("tcp")
	if tb.addr == "" || tb.addr == "127.0.0.1:0" {
		t.Fatalf("Addr(tcp) = %q, want the bound address", tb.addr)
	}
	return tb
}

// v5 connects an MQTT 5 client (paho.golang).
type v5Client struct {
	*paho.Client
	conn     net.Conn
	mu       sync.Mutex
	received []*paho.Publish
	gotMsg   chan struct{}
	server   chan *paho.Disconnect
}

func (c *v5Client) messages() []*paho.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*paho.Publish(nil), c.received...)
}

func dialV5(t *testing.T, addr, clientID, user, pass string) (*v5Client, *paho.Connack, error) {
	return dialV5With(t, addr, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true,
		UsernameFlag: user != "", Username: user, PasswordFlag: pass != "", Password: []byte(pass)})
}

func dialV5With(t *testing.T, addr string, cp *paho.Connect) (*v5Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	vc := &v5Client{conn: conn, gotMsg: make(chan struct{}, 100), server: make(chan *paho.Disconnect, 1)}
	vc.Client = paho.NewClient(paho.ClientConfig{
		Conn:     conn,
		ClientID: cp.ClientID,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				vc.mu.Lock()
				vc.received = append(vc.received, pr.Packet)
				vc.mu.Unlock()
				vc.gotMsg <- struct{}{}
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case vc.server <- d:
			default:
			}
		},
		OnClientError: func(error) {},
	})
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := vc.Connect(c, cp)
	if err != nil {
		conn.Close()
		return nil, ack, err
	}
	t.Cleanup(func() {
		_ = vc.Disconnect(&paho.Disconnect{})
		conn.Close()
	})
	return vc, ack, nil
}

func mustV5(t *testing.T, addr, clientID, user, pass string) *v5Client {
	t.Helper()
	c, _, err := dialV5(t, addr, clientID, user, pass)
	if err != nil {
		t.Fatalf("connect %s as %s: %v", clientID, user, err)
	}
	return c
}

// v3 connects an MQTT 3.1.1 client (paho.mqtt.golang). lost is closed
// when the client notices the connection is gone.
func dialV3(t *testing.T, addr, clientID, user, pass string) (paho3.Client, chan struct{}, error) {
	t.Helper()
	lost := make(chan struct{})
	var once sync.Once
	opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetUsername(user).SetPassword(pass).SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).
		SetConnectionLostHandler(func(paho3.Client, error) { once.Do(func() { close(lost) }) })
	c := paho3.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatal("v3 connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, lost, err
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, lost, nil
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// gauge reads a gauge's value from the registry.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// counter reads one labelled counter from the registry (0 if absent).
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// smallRcvbuf is a dialer's Control that gives the client's socket a small
// receive buffer, so a client that stops reading soon leaves the broker's
// writes nowhere to go.
func smallRcvbuf(_, _ string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		_ = setReceiveBuffer(fd, 2048)
	})
}

// dialSmallRcvbuf connects to addr with a small receive buffer (smallRcvbuf).
func dialSmallRcvbuf(t *testing.T, addr string) (net.Conn, *mqtttest.Conn) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: smallRcvbuf}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return nc, mqtttest.Wrap(t, nc)
}

// testCert makes a CA and a server certificate for localhost in a
// temporary directory, and returns the certificate and the CA's pool.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlscert.LoadOrCreateCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), "broker test")
	if err != nil {
		t.Fatal(err)
	}
	var hosts tlscert.Hosts
	if err := hosts.Add("localhost"); err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.ServerCert(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), hosts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return cert, ca.Pool()
}
