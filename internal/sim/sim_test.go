package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/broker"
)

// ---- an embedded broker that behaves like the hub's ----

// message is a reading the broker received from a device.
type message struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
}

// collector gathers messages and wakes waiters when one arrives.
type collector struct {
	mu     sync.Mutex
	msgs   []message
	notify chan struct{}
}

func (c *collector) add(m message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

func (c *collector) count(topic string) int {
	n := 0
	for _, m := range c.snapshot() {
		if m.topic == topic {
			n++
		}
	}
	return n
}

// await blocks until cond holds for the messages received so far, or ctx
// ends.
func (c *collector) await(ctx context.Context, what string, cond func([]message) bool) error {
	for {
		if cond(c.snapshot()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-c.notify:
		}
	}
}

// awaitCount waits until topic has had at least n messages.
func (c *collector) awaitCount(ctx context.Context, topic string, n int) error {
	return c.await(ctx, fmt.Sprintf("%d messages on %s", n, topic), func(ms []message) bool {
		k := 0
		for _, m := range ms {
			if m.topic == topic {
				k++
			}
		}
		return k >= n
	})
}

type testBroker struct {
	srv   *mqtt.Server
	addr  string
	got   *collector
	close func()

	mu     sync.Mutex
	denied []string
}

// startBroker runs a mochi broker on addr ("127.0.0.1:0" for any free
// port) that, like the hub, lets in only the given device ids with their
// secrets and keeps each device inside candor/<id>/. An inline subscription
// records every reading published under candor/.
func startBroker(t *testing.T, addr string, creds map[string]string) *testBroker {
	t.Helper()
	b := &testBroker{got: &collector{notify: make(chan struct{}, 1)}}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(&authHook{creds: creds, b: b}, nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewNet("devices", ln) // owned here, so shutdown closes it first
	if err := srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	b.srv, b.addr = srv, tcp.Address() // the bound address, with the real port
	var once sync.Once
	b.close = func() { once.Do(func() { _ = broker.Shutdown(srv, []net.Listener{ln}, 5*time.Second, nil) }) }
	t.Cleanup(b.close)
	err = srv.Subscribe(TopicRoot+"/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		if strings.Contains(pk.TopicName, "/control/") {
			return // the test's own control messages
		}
		b.got.add(message{pk.TopicName, slices.Clone(pk.Payload), pk.FixedHeader.Qos, pk.FixedHeader.Retain})
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// control publishes a retained control message, as the hub will.
func (b *testBroker) control(t *testing.T, deviceID, stream, payload string) {
	t.Helper()
	if err := b.srv.Publish(ControlTopic(deviceID, stream), []byte(payload), true, 1); err != nil {
		t.Fatal(err)
	}
}

func (b *testBroker) denials() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.denied)
}

type authHook struct {
	mqtt.HookBase
	creds map[string]string
	b     *testBroker
}

func (h *authHook) ID() string { return "candor-test-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	want, ok := h.creds[user]
	return ok && cl.ID == user && subtle.ConstantTimeCompare(pk.Connect.Password, []byte(want)) == 1
}

// OnACLCheck keeps a device inside candor/<id>/: it may publish readings
// there (not control messages) and subscribe only to filters under it.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	ns := TopicRoot + "/" + string(cl.Properties.Username) + "/"
	ok := strings.HasPrefix(topic, ns) && !(write && strings.HasPrefix(topic, ns+"control/"))
	if !ok {
		h.b.mu.Lock()
		h.b.denied = append(h.b.denied, fmt.Sprintf("%s write=%v %s", cl.ID, write, topic))
		h.b.mu.Unlock()
	}
	return ok
}

// ---- helpers ----

func secret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *lockedBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start runs s in the background and returns a function that cancels it
// and checks that Run returned nil promptly.
func start(t *testing.T, ctx context.Context, s *Simulator) (stop func()) {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return within 5s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// awaitStats polls the simulator's counters until cond holds or ctx ends.
// Stats has no change notification, so this is the one place we poll.
func awaitStats(ctx context.Context, s *Simulator, what string, cond func(Stats) bool) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond(s.Stats()) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (stats %+v)", what, ctx.Err(), s.Stats())
		case <-tick.C:
		}
	}
	return nil
}

// ---- tests against the broker ----

// TestDevicesPublishDeclaredStreams runs one device of every kind and checks
// that each publishes every declared stream, and only those, to
// candor/<id>/<stream>, at QoS 1, not retained, as JSON objects with exactly
// the declared fields in range.
func TestDevicesPublishDeclaredStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	var devs []Device
	creds := map[string]string{}
	for _, k := range KindNames() {
		d := Device{ID: "dev_" + strings.ReplaceAll(k, "-", "_"), Secret: secret(t), Kind: k}
		devs = append(devs, d)
		creds[d.ID] = d.Secret
	}
	b := startBroker(t, "127.0.0.1:0", creds)
	var logs lockedBuffer
	s, err := New(Config{Broker: "tcp://" + b.addr, Devices: devs, Speed: 300, Seed: 1, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, ctx, s)

	perTopic := func(ms []message) map[string]int {
		n := map[string]int{}
		for _, m := range ms {
			n[m.topic]++
		}
		return n
	}
	err = b.got.await(ctx, "3 readings on every stream of every device", func(ms []message) bool {
		n := perTopic(ms)
		for _, d := range devs {
			for _, st := range Kinds[d.Kind].Streams() {
				if n[Topic(d.ID, st)] < 3 {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("%v; got %v", err, perTopic(b.got.snapshot()))
	}
	running := s.Stats()
	stop()

	byID := map[string]Device{}
	for _, d := range devs {
		byID[d.ID] = d
	}
	observed := map[string]uint64{}
	states := map[string]string{}
	for _, m := range b.got.snapshot() {
		if strings.HasSuffix(m.topic, "/$state") {
			states[m.topic] = string(m.payload)
			continue
		}
		parts := strings.Split(m.topic, "/")
		if len(parts) != 3 || parts[0] != TopicRoot {
			t.Errorf("unexpected topic %q", m.topic)
			continue
		}
		d, ok := byID[parts[1]]
		if !ok {
			t.Errorf("topic %q: unknown device", m.topic)
			continue
		}
		st, ok := Kinds[d.Kind].Stream(parts[2])
		if !ok {
			t.Errorf("topic %q: %s declares no stream %q", m.topic, d.Kind, parts[2])
			continue
		}
		if err := st.Check(m.payload); err != nil {
			t.Errorf("topic %q: %v: %s", m.topic, err, m.payload)
		}
		if m.qos != 1 || m.retain {
			t.Errorf("topic %q: qos %d retain %v, want qos 1 not retained", m.topic, m.qos, m.retain)
		}
		observed[d.ID]++
	}

	// Every device told the hub its firmware version on its state topic.
	for _, d := range devs {
		k := Kinds[d.Kind]
		var st struct{ Firmware, Hardware string }
		if err := json.Unmarshal([]byte(states[StateTopic(d.ID)]), &st); err != nil || st.Firmware != k.Firmware || st.Hardware != k.Hardware || k.Firmware == "" {
			t.Errorf("%s: state %q, want firmware %q hardware %q", d.ID, states[StateTopic(d.ID)], k.Firmware, k.Hardware)
		}
	}
	for _, ds := range running.Devices {
		if !ds.Connected || ds.Connects != 1 {
			t.Errorf("%s while running: connected %v after %d connects", ds.ID, ds.Connected, ds.Connects)
		}
	}
	// Every reading the broker acknowledged reached it; a reading cut off
	// by the shutdown may have reached it without being counted.
	final := s.Stats()
	for _, ds := range final.Devices {
		if ds.Errors != 0 || ds.LastError != "" {
			t.Errorf("%s: %d errors, last %q", ds.ID, ds.Errors, ds.LastError)
		}
		if ds.Published == 0 || ds.Published > observed[ds.ID] {
			t.Errorf("%s: stats say %d published, broker saw %d", ds.ID, ds.Published, observed[ds.ID])
		}
		var sum uint64
		for _, n := range ds.Streams {
			sum += n
		}
		if sum != ds.Published {
			t.Errorf("%s: per-stream counts %v do not add up to %d", ds.ID, ds.Streams, ds.Published)
		}
		if ds.Connected {
			t.Errorf("%s still connected after Run returned", ds.ID)
		}
	}
	if d := b.denials(); len(d) > 0 {
		t.Errorf("broker denied: %v", d)
	}
	out := logs.String()
	for _, d := range devs {
		if strings.Contains(out, d.Secret) {
			t.Errorf("log contains the secret of %s", d.ID)
		}
	}
	for _, field := range []string{"celsius", "humidity_percent", "watts", "kwh_total", "bpm", "confidence"} {
		if strings.Contains(out, field) {
			t.Errorf("log mentions reading field %q; logs must carry ids, topics and counts only", field)
		}
	}
	if !strings.Contains(out, "device connected") {
		t.Errorf("log lacks connection events:\n%s", out)
	}
}

// TestControlStopsAndResumesStream checks the hub's control channel: a
// retained {"collect": false} stops a stream at once and also keeps a
// restarted device from sending a single reading of it; {"collect": true}
// resumes it; malformed or unknown control messages change nothing.
func TestControlStopsAndResumesStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	dev := Device{ID: "dev_ab12cd34ef56", Secret: secret(t), Kind: "thermostat"}
	b := startBroker(t, "127.0.0.1:0", map[string]string{dev.ID: dev.Secret})
	cfg := Config{Broker: b.addr, Devices: []Device{dev}, Speed: 100, Seed: 2}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	temp, heat := Topic(dev.ID, "temperature"), Topic(dev.ID, "heating")
	paused := func(stream string) func(Stats) bool {
		return func(st Stats) bool {
			ds, _ := st.Device(dev.ID)
			return slices.Contains(ds.Paused, stream)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	stop := start(t, ctx, s)
	must(b.got.awaitCount(ctx, temp, 2))

	// Stop temperature. Heating readings (every 100 ms at this speed) keep
	// coming and mark time; temperature ones (every 50 ms) must not.
	b.control(t, dev.ID, "temperature", `{"collect": false}`)
	must(awaitStats(ctx, s, "temperature paused", paused("temperature")))
	// One device sends in order, so once a later heating reading has
	// arrived any temperature reading already on its way has too.
	must(b.got.awaitCount(ctx, heat, b.got.count(heat)+1))
	base := b.got.count(temp)
	must(b.got.awaitCount(ctx, heat, b.got.count(heat)+5))
	if n := b.got.count(temp); n != base {
		t.Fatalf("temperature kept flowing after collect=false: %d readings, then %d", base, n)
	}

	// A device that restarts gets the retained message before it sends
	// anything, even when its first reading is due at once (at this speed
	// a temperature reading is due every half millisecond).
	stop()
	base = b.got.count(temp)
	fast := cfg
	fast.Speed = 10_000
	s2, err := New(fast)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := start(t, ctx, s2)
	must(b.got.awaitCount(ctx, heat, b.got.count(heat)+5))
	if n := b.got.count(temp); n != base {
		t.Fatalf("restarted device sent %d temperature readings despite retained collect=false", n-base)
	}
	if !paused("temperature")(s2.Stats()) {
		t.Fatalf("restarted device does not report temperature paused: %+v", s2.Stats())
	}

	// Junk on the control topics changes nothing and breaks nothing.
	must(b.srv.Publish(ControlTopic(dev.ID, "heating"), []byte("not json"), false, 1))
	must(b.srv.Publish(ControlTopic(dev.ID, "heating"), []byte(`{"collect": "no"}`), false, 1))
	must(b.srv.Publish(ControlTopic(dev.ID, "no_such_stream"), []byte(`{"collect": false}`), false, 1))
	must(b.got.awaitCount(ctx, heat, b.got.count(heat)+3))
	if ds, _ := s2.Stats().Device(dev.ID); !slices.Equal(ds.Paused, []string{"temperature"}) {
		t.Fatalf("paused streams = %v, want [temperature]", ds.Paused)
	}

	// Resume.
	b.control(t, dev.ID, "temperature", `{"collect": true}`)
	must(b.got.awaitCount(ctx, temp, base+3))
	must(awaitStats(ctx, s2, "nothing paused", func(st Stats) bool {
		ds, _ := st.Device(dev.ID)
		return len(ds.Paused) == 0
	}))

	// Clearing the retained message (empty payload) also means collect.
	b.control(t, dev.ID, "setpoint", `{"collect": false}`)
	must(awaitStats(ctx, s2, "setpoint paused", paused("setpoint")))
	b.control(t, dev.ID, "setpoint", ``)
	must(awaitStats(ctx, s2, "setpoint resumed", func(st Stats) bool { return !paused("setpoint")(st) }))

	stop2()
	if d := b.denials(); len(d) > 0 {
		t.Errorf("broker denied: %v", d)
	}
	if ds, _ := s2.Stats().Device(dev.ID); ds.Errors != 0 {
		t.Errorf("%d errors, last %q", ds.Errors, ds.LastError)
	}
}

// TestWrongSecretKeepsRetrying checks that a refused device neither crashes
// nor gives up, never leaks its secret, and that Run still returns nil on
// cancel.
func TestWrongSecretKeepsRetrying(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const id = "dev_0badc0ffee00"
	b := startBroker(t, "127.0.0.1:0", map[string]string{id: secret(t)})
	wrong := secret(t)
	var logs lockedBuffer
	s, err := New(Config{
		Broker:     b.addr,
		Devices:    []Device{{ID: id, Secret: wrong, Kind: "door-sensor"}},
		Speed:      100,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 40 * time.Millisecond,
		Logger:     logs.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, ctx, s)
	if err := awaitStats(ctx, s, "five refused attempts", func(st Stats) bool { return st.Errors() >= 5 }); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second concurrent Run = %v, want already running", err)
	}
	stop()

	ds, _ := s.Stats().Device(id)
	if ds.Connects != 0 || ds.Connected || ds.Published != 0 {
		t.Errorf("refused device: %+v", ds)
	}
	if !strings.Contains(ds.LastError, "Bad User Name or Password") {
		t.Errorf("last error %q does not say why", ds.LastError)
	}
	if strings.Contains(ds.LastError, wrong) || strings.Contains(logs.String(), wrong) {
		t.Error("the secret leaked into an error or the log")
	}
	if n := len(b.got.snapshot()); n != 0 {
		t.Errorf("broker received %d readings from a refused device", n)
	}
}

// TestReconnectsAfterBrokerRestart stops the broker under a running device
// and starts a new one on the same port; the device must come back by
// itself.
func TestReconnectsAfterBrokerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	dev := Device{ID: "dev_meter", Secret: secret(t), Kind: "smart-meter"}
	creds := map[string]string{dev.ID: dev.Secret}
	b1 := startBroker(t, "127.0.0.1:0", creds)
	var logs lockedBuffer
	s, err := New(Config{
		Broker:     "mqtt://" + b1.addr,
		Logger:     logs.logger(),
		Devices:    []Device{dev},
		Speed:      200,
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, ctx, s)
	power := Topic(dev.ID, "power")
	if err := b1.got.awaitCount(ctx, power, 3); err != nil {
		t.Fatal(err)
	}

	b1.close()
	if err := awaitStats(ctx, s, "disconnect noticed", func(st Stats) bool { return !st.Devices[0].Connected }); err != nil {
		t.Fatal(err)
	}
	b2 := startBroker(t, b1.addr, creds)
	if err := b2.got.awaitCount(ctx, power, 3); err != nil {
		t.Fatal(err)
	}
	stop()
	ds := s.Stats().Devices[0]
	if ds.Connects < 2 || ds.Errors == 0 {
		t.Errorf("after a broker restart: %d connects, %d errors (want ≥2, ≥1)", ds.Connects, ds.Errors)
	}
	if out := logs.String(); !strings.Contains(out, "Server shutting down") || !strings.Contains(out, "device disconnected") {
		t.Errorf("log does not tell the story of the restart:\n%s", out)
	}
}

// TestRunReturnsWhenBrokerUnreachable checks that Run with nothing to
// connect to waits and retries, and returns nil on cancel.
func TestRunReturnsWhenBrokerUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := startBroker(t, "127.0.0.1:0", nil)
	addr := b.addr
	b.close() // nothing listens here now
	s, err := New(Config{
		Broker:     addr,
		Devices:    []Device{{ID: "dev_lonely", Secret: "x", Kind: "wearable"}},
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, ctx, s)
	if err := awaitStats(ctx, s, "three failed dials", func(st Stats) bool { return st.Errors() >= 3 }); err != nil {
		t.Fatal(err)
	}
	stop()
	if ds := s.Stats().Devices[0]; !strings.Contains(ds.LastError, "dial") {
		t.Errorf("last error %q, want a dial error", ds.LastError)
	}
}

// ---- configuration ----

func TestNewValidates(t *testing.T) {
	ok := Device{ID: "dev_1", Secret: "s", Kind: "thermostat"}
	cases := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for success
	}{
		{"fine", Config{Broker: "127.0.0.1:1883", Devices: []Device{ok}}, ""},
		{"no broker", Config{Devices: []Device{ok}}, "no broker"},
		{"bad scheme", Config{Broker: "ws://h:1", Devices: []Device{ok}}, "scheme"},
		{"no devices", Config{Broker: "h:1"}, "no devices"},
		{"bad id", Config{Broker: "h:1", Devices: []Device{{ID: "Dev-1", Secret: "s", Kind: "thermostat"}}}, "device id"},
		{"id with slash", Config{Broker: "h:1", Devices: []Device{{ID: "a/b", Secret: "s", Kind: "thermostat"}}}, "device id"},
		{"duplicate", Config{Broker: "h:1", Devices: []Device{ok, ok}}, "twice"},
		{"unknown kind", Config{Broker: "h:1", Devices: []Device{{ID: "d", Secret: "s", Kind: "toaster"}}}, "unknown kind"},
		{"no secret", Config{Broker: "h:1", Devices: []Device{{ID: "d", Kind: "thermostat"}}}, "empty secret"},
		{"negative speed", Config{Broker: "h:1", Devices: []Device{ok}, Speed: -1}, "speed"},
		{"qos 3", Config{Broker: "h:1", Devices: []Device{ok}, QoS: 3}, "QoS"},
		{"qos and at-most-once", Config{Broker: "h:1", Devices: []Device{ok}, QoS: 1, AtMostOnce: true}, "AtMostOnce"},
		{"backoff", Config{Broker: "h:1", Devices: []Device{ok}, MinBackoff: time.Minute, MaxBackoff: time.Second}, "Backoff"},
	}
	for _, c := range cases {
		_, err := New(c.cfg)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}

	s, err := New(Config{Broker: "h:1", Devices: []Device{ok}})
	if err != nil {
		t.Fatal(err)
	}
	if s.speed != 1 || s.qos != 1 || s.minBack != 500*time.Millisecond || s.maxBack != 30*time.Second {
		t.Errorf("defaults: speed %v qos %d backoff %v..%v", s.speed, s.qos, s.minBack, s.maxBack)
	}
	if s, _ := New(Config{Broker: "h:1", Devices: []Device{ok}, AtMostOnce: true}); s.qos != 0 {
		t.Errorf("AtMostOnce gave QoS %d", s.qos)
	}
}

func TestParseBroker(t *testing.T) {
	cases := []struct {
		in      string
		addr    string
		tls, ok bool
	}{
		{"127.0.0.1:1883", "127.0.0.1:1883", false, true},
		{"tcp://127.0.0.1:1884", "127.0.0.1:1884", false, true},
		{"mqtt://hub.local", "hub.local:1883", false, true},
		{"hub.local", "hub.local:1883", false, true},
		{"tls://hub.local", "hub.local:8883", true, true},
		{"mqtts://hub.local:9000", "hub.local:9000", true, true},
		{"ssl://[::1]:8883", "[::1]:8883", true, true},
		{"tcp://[::1]", "[::1]:1883", false, true},
		{"http://hub.local", "", false, false},
		{"tcp://hub.local:1883/x", "", false, false},
		{"tcp://", "", false, false},
	}
	for _, c := range cases {
		addr, tls, err := parseBroker(c.in)
		if (err == nil) != c.ok || addr != c.addr || tls != c.tls {
			t.Errorf("parseBroker(%q) = %q, %v, %v; want %q, %v, ok=%v", c.in, addr, tls, err, c.addr, c.tls, c.ok)
		}
	}
}

// The hub tells every device on subscribing whether it holds it
// (control/quarantine-status, {"quarantined": false} when not): a simulated
// device records it (Stats) and logs a change, without a warning about an
// unknown stream (which the demo printed for every device at start).
func TestQuarantineStatusRecorded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dev := Device{ID: "dev_ab12cd34ef56", Secret: secret(t), Kind: "thermostat"}
	b := startBroker(t, "127.0.0.1:0", map[string]string{dev.ID: dev.Secret})
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	s, err := New(Config{Broker: b.addr, Devices: []Device{dev}, Speed: 100, Seed: 2, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, ctx, s)
	defer stop()
	temp := Topic(dev.ID, "temperature")
	if err := b.got.awaitCount(ctx, temp, 1); err != nil {
		t.Fatal(err)
	}
	held := func(want bool) func(Stats) bool {
		return func(st Stats) bool {
			ds, _ := st.Device(dev.ID)
			return ds.Quarantined == want
		}
	}
	b.control(t, dev.ID, quarantineStream, `{"quarantined":false}`)
	b.control(t, dev.ID, quarantineStream, `{"quarantined":true,"reason":"flood"}`)
	if err := awaitStats(ctx, s, "quarantined", held(true)); err != nil {
		t.Fatal(err)
	}
	b.control(t, dev.ID, quarantineStream, `{"quarantined":false}`)
	if err := awaitStats(ctx, s, "released", held(false)); err != nil {
		t.Fatal(err)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if strings.Contains(out, "unknown stream") || !strings.Contains(out, "device quarantined by the hub") || !strings.Contains(out, "device released by the hub") {
		t.Errorf("log:\n%s\nwant the hold and release logged, and no unknown-stream warning", out)
	}
	if ds, _ := s.Stats().Device(dev.ID); ds.Errors != 0 {
		t.Errorf("%d errors, last %q", ds.Errors, ds.LastError)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
