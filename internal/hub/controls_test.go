package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/consent"
)

// A device's control messages are not published at hub start (issue #19)
// but computed when it subscribes: after a restart, a device that
// subscribes to its control topics still receives one per stream, marked
// retained.
func TestControlMessagesSetWhenDeviceConnects(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	th := startHubIn(t, dir)
	id, secret := th.addDevice("Hall", "thermostat")
	th.close()

	th2 := startHubIn(t, dir)
	got := make(chan *paho.Publish, 16)
	c, _, err := v5(t, th2.MQTTAddr(), id, id, secret, func(pr paho.PublishReceived) { got <- pr.Packet })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + id + "/control/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	want := "candor/" + id + "/control/setpoint"
	for {
		select {
		case p := <-got:
			if p.Topic != want {
				continue
			}
			var ctl struct {
				Collect *bool `json:"collect"`
			}
			if err := json.Unmarshal(p.Payload, &ctl); err != nil || !p.Retain || ctl.Collect == nil || !*ctl.Collect {
				t.Fatalf("control message %s: retain %v, payload %s", p.Topic, p.Retain, p.Payload)
			}
			return
		case <-ctx.Done():
			t.Fatalf("no retained control message on %s after the device connected", want)
		}
	}
}

// controlRecorder keeps, in arrival order, the control messages one
// device connection received.
type controlRecorder struct {
	mu   sync.Mutex
	msgs []controlMsg
	got  chan struct{}
}

type controlMsg struct {
	topic, payload string
	retain         bool
	subIDs         []int
}

func newControlRecorder() *controlRecorder { return &controlRecorder{got: make(chan struct{}, 1)} }

func (r *controlRecorder) add(m controlMsg) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.got <- struct{}{}:
	default:
	}
}

func (r *controlRecorder) v5(pr paho.PublishReceived) {
	m := controlMsg{topic: pr.Packet.Topic, payload: string(pr.Packet.Payload), retain: pr.Packet.Retain}
	if pr.Packet.Properties != nil && pr.Packet.Properties.SubscriptionIdentifier != nil {
		m.subIDs = []int{*pr.Packet.Properties.SubscriptionIdentifier}
	}
	r.add(m)
}

func (r *controlRecorder) v3(_ paho3.Client, m paho3.Message) {
	r.add(controlMsg{topic: m.Topic(), payload: string(m.Payload()), retain: m.Retained()})
}

func (r *controlRecorder) all() []controlMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// waitBarrier waits for the message the test published on barrier
// (after everything it checks) and returns the messages before it. The
// broker writes a connection's publishes in order, so nothing sent to
// the device before the barrier can arrive after it.
func (r *controlRecorder) waitBarrier(t *testing.T, barrier string) []controlMsg {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ms := r.all()
		for i, m := range ms {
			if m.topic == barrier {
				return ms[:i]
			}
		}
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("barrier %s never arrived; got %v", barrier, ms)
		}
	}
}

// last returns the payload of the last message on topic, or "".
func last(ms []controlMsg, topic string) (controlMsg, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].topic == topic {
			return ms[i], true
		}
	}
	return controlMsg{}, false
}

// setCollect turns the setpoint stream's collection on or off: its two
// purposes are both on by default, so HomeAutomation is kept off and
// ServiceProvision decides.
func setCollect(t *testing.T, th *testHub, id string, on bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := th.consent.Set(ctx, consent.Change{AccountID: "acct_test", DeviceID: id, Stream: "setpoint",
		Purpose: "dpv:ServiceProvision", Recipient: consent.RecipientHub, On: on}); err != nil {
		t.Fatal(err)
	}
}

func keepOnlyServiceProvision(t *testing.T, th *testHub, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := th.consent.Set(ctx, consent.Change{AccountID: "acct_test", DeviceID: id, Stream: "setpoint",
		Purpose: "candor:HomeAutomation", Recipient: consent.RecipientHub, On: false}); err != nil {
		t.Fatal(err)
	}
}

// barrier publishes a message on one of the device's control topics no
// stream has, through the broker's own queue for each subscriber.
func barrier(t *testing.T, th *testHub, id, name string) string {
	t.Helper()
	topic := "candor/" + id + "/control/" + name
	if err := th.br.Publish(topic, []byte("{}"), false); err != nil {
		t.Fatal(err)
	}
	return topic
}

// Control messages are not in mochi's retained store: a device that
// subscribes gets the current message of every control topic its filter
// matches, from the hub's state, marked retained (MQTT 5 and 3.1.1), and
// then each change as it happens. Retain Handling 2 gets none, and 1 none
// for a subscription the session already has; nothing of another device
// is ever sent.
func TestControlCurrentOnSubscribe(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Hall", "thermostat")
	other, _ := th.addDevice("Landing", "thermostat")
	keepOnlyServiceProvision(t, th, id)
	setCollect(t, th, id, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := th.mon.Restrict(ctx, id, "CANDOR-TEST-1", auditlog.Actor{Kind: "person", ID: "acct_test"}); err != nil {
		t.Fatal(err)
	}
	ctl := func(stream string) string { return "candor/" + id + "/control/" + stream }
	held := `{"quarantined":true,"reason":"advisory"}`
	// What the device must get is the hub's state: the consent decisions
	// and the hold. The setpoint stream's was just changed, so check that
	// it is the changed one.
	all := map[string]string{ctl(QuarantineStream): held}
	var streams []string
	for _, sc := range th.consent.Controls(id) {
		all[ctl(sc.Stream)] = string(sc.Payload)
		streams = append(streams, ctl(sc.Stream))
	}
	if len(streams) != 3 || all[ctl("setpoint")] != `{"collect":false,"decide":false}` {
		t.Fatalf("consent state: %v", all)
	}
	for _, tc := range []struct {
		name    string
		v3      bool
		filters []paho.SubscribeOptions
		want    []string // topics sent on subscribe
		refused bool
	}{
		{name: "v5 one topic", filters: []paho.SubscribeOptions{{Topic: ctl("setpoint"), QoS: 1}}, want: []string{ctl("setpoint")}},
		{name: "v3 one topic", v3: true, filters: []paho.SubscribeOptions{{Topic: ctl("setpoint"), QoS: 1}}, want: []string{ctl("setpoint")}},
		{name: "v5 wildcard", filters: []paho.SubscribeOptions{{Topic: ctl("#"), QoS: 1}},
			want: append(slices.Clone(streams), ctl(QuarantineStream))},
		{name: "v3 wildcard", v3: true, filters: []paho.SubscribeOptions{{Topic: "candor/" + id + "/#", QoS: 0}},
			want: append(slices.Clone(streams), ctl(QuarantineStream))},
		{name: "v5 plus", filters: []paho.SubscribeOptions{{Topic: "candor/" + id + "/+/heating", QoS: 0}}, want: []string{ctl("heating")}},
		{name: "v5 retain handling 2", filters: []paho.SubscribeOptions{{Topic: ctl("#"), QoS: 1, RetainHandling: 2}}},
		{name: "v5 not control", filters: []paho.SubscribeOptions{{Topic: "candor/" + id + "/$update/#", QoS: 1}}},
		{name: "v5 another device refused", filters: []paho.SubscribeOptions{{Topic: "candor/" + other + "/control/#", QoS: 1}}, refused: true},
		{name: "v5 everyone's refused", filters: []paho.SubscribeOptions{{Topic: "candor/+/control/#", QoS: 1}}, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newControlRecorder()
			if tc.v3 {
				c, err := v3(t, th.MQTTAddr(), id+"-"+strings.ReplaceAll(tc.name, " ", "-"), id, secret)
				if err != nil {
					t.Fatal(err)
				}
				tok := c.Subscribe(tc.filters[0].Topic, byte(tc.filters[0].QoS), rec.v3)
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("subscribe: %v", tok.Error())
				}
				// The barrier needs a subscription that matches it.
				tok = c.Subscribe(ctl("barrier"), 0, rec.v3)
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("subscribe: %v", tok.Error())
				}
			} else {
				c, _, err := v5(t, th.MQTTAddr(), id+"-"+strings.ReplaceAll(tc.name, " ", "-"), id, secret, rec.v5)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: tc.filters}); (err != nil) != tc.refused {
					t.Fatalf("subscribe: %v %+v", err, sa)
				}
				if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ctl("barrier"), QoS: 0}}}); err != nil {
					t.Fatal(err)
				}
			}
			got := rec.waitBarrier(t, barrier(t, th, id, "barrier"))
			var topics []string
			for _, m := range got {
				topics = append(topics, m.topic)
				if !m.retain || m.payload != all[m.topic] {
					t.Errorf("%s: retain %v payload %s; want retained %s", m.topic, m.retain, m.payload, all[m.topic])
				}
			}
			slices.Sort(topics)
			slices.Sort(tc.want)
			if !slices.Equal(topics, tc.want) {
				t.Errorf("sent on subscribe: %v, want %v", topics, tc.want)
			}
		})
	}
}

// A change reaches a subscribed device as it happens; Retain Handling 1
// gets the current messages for a new subscription only; MQTT 5
// subscription identifiers are carried as mochi does.
func TestControlChangeWhileSubscribed(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Hall", "thermostat")
	keepOnlyServiceProvision(t, th, id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newControlRecorder()
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, rec.v5)
	if err != nil {
		t.Fatal(err)
	}
	setpoint := "candor/" + id + "/control/setpoint"
	sub := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + id + "/control/+", QoS: 1, RetainHandling: 1}},
		Properties: &paho.SubscribeProperties{SubscriptionIdentifier: ptr(7)}}
	if _, err := c.Subscribe(ctx, sub); err != nil {
		t.Fatal(err)
	}
	got := rec.waitBarrier(t, barrier(t, th, id, "b1"))
	if m, ok := last(got, setpoint); !ok || m.payload != setpointControl(true) || !m.retain || !slices.Equal(m.subIDs, []int{7}) {
		t.Fatalf("on subscribe: %+v (%v)", m, ok)
	}
	setCollect(t, th, id, false)
	got = rec.waitBarrier(t, barrier(t, th, id, "b2"))
	if m, _ := last(got, setpoint); m.payload != setpointControl(false) {
		t.Fatalf("after the change: %+v", got)
	}
	// The same subscription again, Retain Handling 1: not new, so nothing.
	n := len(rec.all())
	if _, err := c.Subscribe(ctx, sub); err != nil {
		t.Fatal(err)
	}
	got = rec.waitBarrier(t, barrier(t, th, id, "b3"))
	if len(got) != n {
		t.Fatalf("resubscribing with Retain Handling 1 sent %v", got[n:])
	}
}

// setpointControl is the thermostat's setpoint control message: its
// automated decisions are allowed while it is collected.
func setpointControl(collect bool) string {
	return fmt.Sprintf(`{"collect":%t,"decide":%t}`, collect, collect)
}

func ptr[T any](v T) *T { return &v }

// A consent change racing a device's subscribe never leaves the device
// with the older value last: the state changes before the change's
// publish, and a subscribe that sent while a change came in between sends
// again (controls.settle).
func TestControlChangeRacingSubscribe(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Hall", "thermostat")
	keepOnlyServiceProvision(t, th, id)
	setpoint := "candor/" + id + "/control/setpoint"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	on := true
	for i := range 40 {
		rec := newControlRecorder()
		c, _, err := v5(t, th.MQTTAddr(), id+"-"+strconv.Itoa(i), id, secret, rec.v5)
		if err != nil {
			t.Fatal(err)
		}
		on = !on
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			setCollect(t, th, id, on)
		}()
		close(start)
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + id + "/control/+", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		got := rec.waitBarrier(t, barrier(t, th, id, "b"))
		want := setpointControl(on)
		if m, ok := last(got, setpoint); !ok || m.payload != want {
			t.Fatalf("round %d: last %s is %q, want %q (all: %v)", i, setpoint, m.payload, want, got)
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
}

// A device with a persistent session that reconnects without subscribing
// again gets what it got when mochi kept the messages retained: no
// current message (those come with a SUBSCRIBE), and the changes made
// while it was away, queued at QoS 1 in its session.
func TestControlPersistentSessionReconnect(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Hall", "thermostat")
	keepOnlyServiceProvision(t, th, id)
	setpoint := "candor/" + id + "/control/setpoint"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(rec *controlRecorder) (*paho.Client, net.Conn) {
		conn, err := net.DialTimeout("tcp", th.MQTTAddr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) { rec.v5(pr); return true, nil }}})
		expiry := uint32(600)
		if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: false, UsernameFlag: true, Username: id,
			PasswordFlag: true, Password: []byte(secret), Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}); err != nil {
			t.Fatal(err)
		}
		return c, conn
	}
	rec := newControlRecorder()
	c, conn := connect(rec)
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + id + "/control/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if m, _ := last(rec.waitBarrier(t, barrier(t, th, id, "b1")), setpoint); m.payload != setpointControl(true) {
		t.Fatalf("on subscribe: %+v", m)
	}
	_ = c.Disconnect(&paho.Disconnect{})
	conn.Close()
	waitFor(t, "the device to go offline", 10*time.Second, func() bool { return !th.br.Connected(id) })
	setCollect(t, th, id, false)

	rec2 := newControlRecorder()
	c2, conn2 := connect(rec2)
	defer func() { _ = c2.Disconnect(&paho.Disconnect{}); conn2.Close() }()
	// mochi resends the session's queued messages once the CONNACK is
	// out, so wait for that before the barrier (which could overtake it).
	waitFor(t, "the queued change", 10*time.Second, func() bool { return len(rec2.all()) > 0 })
	got := rec2.waitBarrier(t, barrier(t, th, id, "b2"))
	if len(got) != 1 || got[0].topic != setpoint || got[0].payload != setpointControl(false) {
		t.Fatalf("after reconnecting: %+v, want only the change made while away", got)
	}
}

// The quarantine topic always says where the device stands: a device that
// was held and released while it was away (or never held) is told
// {"quarantined":false} when it subscribes, so one that remembered a hold
// learns it is lifted.
func TestControlReleasedWhileAwayToldOnSubscribe(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Hall", "thermostat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	actor := auditlog.Actor{Kind: "person", ID: "acct_test"}
	ctl := "candor/" + id + "/control/" + QuarantineStream
	subscribe := func(name string) string {
		t.Helper()
		rec := newControlRecorder()
		c, _, err := v5(t, th.MQTTAddr(), id+"-"+name, id, secret, rec.v5)
		if err != nil {
			t.Fatal(err)
		}
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		if _, err := c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ctl, QoS: 1}, {Topic: "candor/" + id + "/control/barrier", QoS: 0}}}); err != nil {
			t.Fatal(err)
		}
		got := rec.waitBarrier(t, barrier(t, th, id, "barrier"))
		_ = c.Disconnect(&paho.Disconnect{})
		if len(got) != 1 || got[0].topic != ctl || !got[0].retain {
			t.Fatalf("%s: sent on subscribe %+v, want one retained message on %s", name, got, ctl)
		}
		return got[0].payload
	}
	if p := subscribe("never-held"); p != `{"quarantined":false}` {
		t.Errorf("never held: %s", p)
	}
	if err := th.mon.Restrict(ctx, id, "CANDOR-TEST-1", actor); err != nil {
		t.Fatal(err)
	}
	if p := subscribe("held"); p != `{"quarantined":true,"reason":"advisory"}` {
		t.Errorf("held: %s", p)
	}
	if err := th.mon.Release(ctx, id, actor, "fixed by hand"); err != nil {
		t.Fatal(err)
	}
	if p := subscribe("released"); p != `{"quarantined":false}` {
		t.Errorf("released while away: %s", p)
	}
}
