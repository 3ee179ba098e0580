package hub

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// The Eclipse Paho interoperability suite (paho.mqtt.testing, client_test
// and client_test5) checks a broker for subscribe, unsubscribe, retained
// messages, overlapping subscriptions, offline queueing, redelivery on
// reconnect, will delivery and keepalive. TestAppInterop asks the same of
// the hub for an app credential within its household's namespace, in MQTT
// 3.1.1 and 5, packet by packet: a device of the household posts readings
// the app was allowed, and the app's side is raw packets (package
// mqtttest), so flags a client library hides (DUP, retain, granted QoS,
// subscription identifiers) are checked as sent.
//
// Nothing is proved by waiting: each "no message came" is a later reading
// the app must get first (a barrier).
func TestAppInterop(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	th.addDevice("Hall", "thermostat") // the household, before its app
	app, secret := th.addApp("Node-RED", "candor:HomeAutomation")
	cases := []struct {
		name string
		run  func(t *testing.T, s *interop)
	}{
		{"subscribe", interopSubscribe},
		{"unsubscribe", interopUnsubscribe},
		{"retained", interopRetained},
		{"overlapping subscriptions", interopOverlapping},
		{"offline queueing", interopOffline},
		{"redelivery on reconnect", interopRedelivery},
		{"will", interopWill},
		{"keepalive", interopKeepalive},
	}
	n := 0
	for _, v := range []byte{4, 5} {
		for _, c := range cases {
			n++
			t.Run(fmt.Sprintf("v%d/%s", v, c.name), func(t *testing.T) {
				dev, devSecret := th.addDevice(fmt.Sprintf("Hall %d", n), "thermostat")
				th.allowApp(app, dev, "temperature", true)
				th.allowApp(app, dev, "heating", true)
				c.run(t, &interop{th: th, v: v, app: app, secret: secret, client: fmt.Sprintf("%s-%d", app, n), dev: dev, devSecret: devSecret})
			})
		}
	}
}

// interop is one case's app (raw packets) and device (HTTP ingest).
type interop struct {
	th             *testHub
	v              byte
	app, secret    string
	client         string
	dev, devSecret string
	id             uint16
	clean          int // clean sessions so far (connect)
}

// publish is a PUBLISH as the app received it.
type publish struct {
	topic, payload string
	qos            byte
	dup, retain    bool
	id             uint16
	subIDs         []uint64
}

func (s *interop) topic(stream string) string { return "candor/" + s.dev + "/" + stream }

func (s *interop) temperature(c int) {
	s.th.post(s.dev, s.devSecret, "temperature", fmt.Sprintf(`{"celsius":%d}`, c))
}

func (s *interop) heating(on bool) {
	s.th.post(s.dev, s.devSecret, "heating", fmt.Sprintf(`{"on":%v}`, on))
}

// connect opens the app's connection; persistent keeps its session (MQTT 5:
// with a Session Expiry Interval). It returns the CONNACK's session present
// flag.
//
// A clean session gets a client id of its own each time. mochi ends a
// clean session after its connection closed by removing the
// subscriptions and the client of that id, so a client that comes back
// with the same id at that moment can lose its new subscriptions; a
// persistent session is not removed, and keeps its id.
func (s *interop) connect(t *testing.T, persistent bool, keepAlive uint16) (*mqtttest.Conn, bool) {
	t.Helper()
	id := s.client
	if !persistent {
		s.clean++
		id = fmt.Sprintf("%s-c%d", s.client, s.clean)
	}
	return s.connectAs(t, id, persistent, keepAlive)
}

func (s *interop) connectAs(t *testing.T, id string, persistent bool, keepAlive uint16) (*mqtttest.Conn, bool) {
	t.Helper()
	cn := mqtttest.Connect{Version: s.v, ClientID: id, Username: s.app, Password: s.secret, KeepAlive: keepAlive, Persistent: persistent}
	if persistent && s.v == 5 {
		cn.Props = mqtttest.PropUint32(0x11, 300)
	}
	c := mqtttest.Dial(t, s.th.MQTTAddr(), nil)
	c.Send(cn.Encode())
	ack := c.Expect(mqtttest.CONNACK)
	if code := ack.ReasonCode(s.v); code != 0 {
		t.Fatalf("app connect: CONNACK code %#x", code)
	}
	return c, ack.Body[0]&1 == 1
}

// subscribe sends one SUBSCRIBE and returns the granted code and the
// messages that came before the SUBACK (a last value is sent right before
// it).
func (s *interop) subscribe(t *testing.T, c *mqtttest.Conn, filter string, qos byte, subID uint32) (byte, []publish) {
	t.Helper()
	s.id++
	if subID > 0 {
		c.Send(mqtttest.SubscribeProps(s.id, filter, qos, mqtttest.PropVarInt(0x0B, subID)))
	} else {
		c.Send(mqtttest.Subscribe(s.v, s.id, filter, qos))
	}
	var before []publish
	for {
		p, err := c.Next()
		if err != nil {
			t.Fatalf("subscribe %s: %v", filter, err)
		}
		switch p.Type {
		case mqtttest.SUBACK:
			if got := binary.BigEndian.Uint16(p.Body); got != s.id {
				t.Fatalf("SUBACK for packet id %d, want %d", got, s.id)
			}
			return p.ReasonCode(s.v), before
		case mqtttest.PUBLISH:
			before = append(before, s.parse(t, c, p, true))
		default:
			t.Fatalf("subscribe %s: unexpected packet % x", filter, p.Raw)
		}
	}
}

// next reads the next PUBLISH, acknowledging it when ack is set and its
// QoS is 1.
func (s *interop) next(t *testing.T, c *mqtttest.Conn, ack bool) publish {
	t.Helper()
	return s.parse(t, c, c.Expect(mqtttest.PUBLISH), ack)
}

func (s *interop) parse(t *testing.T, c *mqtttest.Conn, p mqtttest.Packet, ack bool) publish {
	t.Helper()
	b := p.Body
	n := int(binary.BigEndian.Uint16(b))
	pub := publish{topic: string(b[2 : 2+n]), qos: p.Flags >> 1 & 3, dup: p.Flags&8 != 0, retain: p.Flags&1 != 0}
	b = b[2+n:]
	if pub.qos > 0 {
		pub.id, b = binary.BigEndian.Uint16(b), b[2:]
	}
	if s.v == 5 {
		size, k := binary.Uvarint(b)
		props := b[k : k+int(size)]
		b = b[k+int(size):]
		pub.subIDs = subscriptionIDs(t, props)
	}
	pub.payload = string(b)
	if ack && pub.qos == 1 {
		c.Send(mqtttest.Puback(pub.id))
	}
	return pub
}

// subscriptionIDs reads the Subscription Identifiers (0x0B) out of a
// PUBLISH's properties. The hub sends apps one other property: the
// Message Expiry Interval (0x02, four bytes) of a reading kept for an
// offline session.
func subscriptionIDs(t *testing.T, props []byte) []uint64 {
	t.Helper()
	var ids []uint64
	for len(props) > 0 {
		switch props[0] {
		case 0x02:
			props = props[5:]
		case 0x0B:
			id, k := binary.Uvarint(props[1:])
			ids = append(ids, id)
			props = props[1+k:]
		default:
			t.Fatalf("unexpected PUBLISH property %#x in % x", props[0], props)
		}
	}
	slices.Sort(ids)
	return ids
}

func (s *interop) refused() byte {
	if s.v == 5 {
		return 0x87
	}
	return 0x80
}

// Subscribe: QoS 0, 1 and 2 are granted as asked (as Mosquitto does), and
// each message comes at the lower of its QoS and the subscription's: the
// hub forwards readings at QoS 1, once committed, so a QoS 2 subscription
// gets them at QoS 1 [MQTT-3.8.4-8].
func interopSubscribe(t *testing.T, s *interop) {
	c, _ := s.connect(t, false, 30)
	for _, sub := range []struct {
		filter    string
		qos, want byte
	}{
		{"candor/+/temperature", 0, 0},
		{"candor/" + s.dev + "/heating", 1, 1},
		{"candor/" + s.dev + "/#", 2, 2},
		{"candor/" + s.dev + "/control/#", 1, s.refused()},
	} {
		if got, _ := s.subscribe(t, c, sub.filter, sub.qos, 0); got != sub.want {
			t.Errorf("subscribe %s at QoS %d: granted %#x, want %#x", sub.filter, sub.qos, got, sub.want)
		}
	}
	// candor/<dev>/# (QoS 2) overlaps both others: messages come at the
	// highest QoS of the matching subscriptions [MQTT-3.3.5-1].
	s.temperature(20)
	if p := s.next(t, c, true); p.topic != s.topic("temperature") || p.payload != `{"celsius":20}` || p.qos != 1 || p.retain || p.dup {
		t.Errorf("got %+v, want the temperature reading at QoS 1, not retained", p)
	}
	c.Send(mqtttest.Disconnect())
	c.ExpectClosed()

	c, _ = s.connect(t, false, 30)
	if got, _ := s.subscribe(t, c, "candor/+/temperature", 0, 0); got != 0 {
		t.Fatalf("subscribe at QoS 0: granted %#x", got)
	}
	s.temperature(21)
	if p := s.next(t, c, true); p.payload != `{"celsius":21}` || p.qos != 0 || p.id != 0 {
		t.Errorf("got %+v, want the reading at QoS 0", p)
	}
}

// Unsubscribe: an UNSUBACK (MQTT 5: code 0 for a filter held, 0x11 for
// one that was not), then no message on that filter.
func interopUnsubscribe(t *testing.T, s *interop) {
	c, _ := s.connect(t, false, 30)
	for _, f := range []string{"candor/+/temperature", "candor/+/heating"} {
		if got, _ := s.subscribe(t, c, f, 1, 0); got != 1 {
			t.Fatalf("subscribe %s: granted %#x", f, got)
		}
	}
	for _, u := range []struct {
		filter string
		v5     byte
	}{{"candor/+/temperature", 0}, {"candor/+/setpoint", 0x11}} {
		s.id++
		c.Send(mqtttest.Unsubscribe(s.v, s.id, u.filter))
		ack := c.Expect(mqtttest.UNSUBACK)
		if got := binary.BigEndian.Uint16(ack.Body); got != s.id {
			t.Errorf("UNSUBACK for packet id %d, want %d", got, s.id)
		}
		if s.v == 5 {
			if n := len(ack.Body); n != 4 || ack.Body[3] != u.v5 {
				t.Errorf("unsubscribe %s: UNSUBACK % x, want reason code %#x", u.filter, ack.Raw, u.v5)
			}
		} else if len(ack.Body) != 2 {
			t.Errorf("v3 UNSUBACK % x, want only the packet id", ack.Raw)
		}
	}
	s.temperature(20)
	s.heating(true) // the barrier: still subscribed
	if p := s.next(t, c, true); p.topic != s.topic("heating") {
		t.Errorf("after unsubscribing got %s %s first, want the heating reading", p.topic, p.payload)
	}
}

// Retained: readings are never retained by the broker, so a new
// subscription gets nothing old; with a person's "last value" switch, it
// gets the stream's last reading with the retain flag, as from a retained
// message. A device's own retain flag keeps nothing either.
func interopRetained(t *testing.T, s *interop) {
	s.temperature(20)
	c, _ := s.connect(t, false, 30)
	if _, before := s.subscribe(t, c, s.topic("temperature"), 1, 0); len(before) != 0 {
		t.Errorf("without the last-value switch the app got %+v on subscribing", before)
	}
	code, out, _ := call(t, s.th.local, "PUT", "http://candor/api/v1/apps/"+s.app+"/retain/"+s.dev+"/temperature", "", map[string]bool{"on": true})
	if code != http.StatusOK {
		t.Fatalf("switch last value: %d %v", code, out)
	}
	s.temperature(21)
	if p := s.next(t, c, true); p.payload != `{"celsius":21}` || p.retain {
		t.Errorf("live: got %+v, want the reading without the retain flag [MQTT-3.3.1-9]", p)
	}
	c.Send(mqtttest.Disconnect())
	c.ExpectClosed()

	c, _ = s.connect(t, false, 30)
	_, before := s.subscribe(t, c, s.topic("temperature"), 1, 0)
	if len(before) != 1 || before[0].payload != `{"celsius":21}` || !before[0].retain || before[0].qos != 0 {
		t.Errorf("with the last-value switch the app got %+v on subscribing, want the last reading, retained, QoS 0", before)
	}
	// Unsubscribed, the app gets nothing while the device publishes a
	// heating reading with the retain flag; subscribing again to the
	// device's streams sends the temperature's last value again, as a
	// retained message would be, and nothing of heating: a device's
	// retain flag keeps nothing in the broker.
	s.id++
	c.Send(mqtttest.Unsubscribe(s.v, s.id, s.topic("temperature")))
	c.Expect(mqtttest.UNSUBACK)
	dc := mqtttest.Dial(t, s.th.MQTTAddr(), nil)
	dc.Send(mqtttest.Connect{Version: s.v, ClientID: s.dev, Username: s.dev, Password: s.devSecret, KeepAlive: 30}.Encode())
	dc.Expect(mqtttest.CONNACK)
	dc.Send(mqtttest.Publish(s.v, s.topic("heating"), []byte(`{"on":true}`), 1, 1, true))
	dc.Expect(mqtttest.PUBACK)
	if _, before := s.subscribe(t, c, "candor/"+s.dev+"/+", 1, 0); len(before) != 1 || before[0].topic != s.topic("temperature") || !before[0].retain {
		t.Errorf("subscribing again: got %+v, want the temperature's last value alone", before)
	}
	s.heating(false)
	if p := s.next(t, c, true); p.payload != `{"on":false}` || p.retain {
		t.Errorf("got %+v, want the live heating reading", p)
	}
}

// Overlapping subscriptions: MQTT 3.1.1 (3.3.5) lets a server send one
// copy at the highest QoS, or one per matching subscription; MQTT 5
// (3.3.4) the same, a single copy then carrying every matching
// Subscription Identifier. Candor sends one copy, at the highest QoS, with
// all identifiers (Mosquitto 2 sends one copy per subscription).
func interopOverlapping(t *testing.T, s *interop) {
	c, _ := s.connect(t, false, 30)
	var subID uint32
	for i, sub := range []struct {
		filter string
		qos    byte
	}{{"candor/#", 1}, {"candor/+/temperature", 0}} {
		if s.v == 5 {
			subID = uint32(i + 1)
		}
		if got, _ := s.subscribe(t, c, sub.filter, sub.qos, subID); got != sub.qos {
			t.Fatalf("subscribe %s: granted %#x", sub.filter, got)
		}
	}
	s.temperature(20)
	s.heating(true) // the barrier: matches candor/# only
	var got []publish
	for {
		p := s.next(t, c, true)
		if p.topic == s.topic("heating") {
			break
		}
		got = append(got, p)
	}
	if len(got) != 1 || got[0].qos != 1 {
		t.Fatalf("the temperature reading came as %+v, want one copy at QoS 1", got)
	}
	if want := []uint64{1, 2}; s.v == 5 && !slices.Equal(got[0].subIDs, want) {
		t.Errorf("subscription identifiers %v, want %v", got[0].subIDs, want)
	}
}

// Offline queueing: with a persistent session (3.1.1 clean session 0, MQTT
// 5 a Session Expiry Interval), QoS 1 readings posted while the app is
// away arrive when it comes back, the CONNACK saying the session is
// present; QoS 0 ones are not queued.
func interopOffline(t *testing.T, s *interop) {
	c, present := s.connect(t, true, 30)
	if present {
		t.Fatal("a new session reported present")
	}
	s.subscribe(t, c, "candor/+/temperature", 1, 0)
	s.subscribe(t, c, "candor/+/heating", 0, 0)
	c.Send(mqtttest.Disconnect())
	c.ExpectClosed()
	waitFor(t, "the app to be offline", safetyWait, func() bool { return !s.th.Broker().Connected(s.client) })

	// Several readings in the same second: they must come back in the
	// order they were published (MQTT 4.6, ordered topics).
	var want []string
	for i := range 6 {
		s.temperature(i)
		want = append(want, fmt.Sprintf(`{"celsius":%d}`, i))
		if i == 2 {
			s.heating(true) // QoS 0: not queued
		}
	}
	c, present = s.connect(t, true, 30)
	if !present {
		t.Error("the resumed session was not reported present")
	}
	var got []string
	for range want {
		p := s.next(t, c, true)
		if p.qos != 1 {
			t.Errorf("queued: got %+v, want QoS 1", p)
		}
		got = append(got, p.payload)
	}
	if !slices.Equal(got, want) {
		t.Errorf("queued readings came as %v, want %v in order", got, want)
	}
	s.heating(false) // the barrier: the QoS 0 reading of the offline time never comes
	if p := s.next(t, c, true); p.payload != `{"on":false}` {
		t.Errorf("got %+v, want the live heating reading", p)
	}
	// A clean start forgets the session.
	c.Send(mqtttest.Disconnect())
	c.ExpectClosed()
	waitFor(t, "the app to be offline", safetyWait, func() bool { return !s.th.Broker().Connected(s.client) })
	if _, present = s.connectAs(t, s.client, false, 30); present {
		t.Error("a clean session reported present")
	}
}

// Redelivery on reconnect: a QoS 1 reading the app did not acknowledge is
// sent again, with DUP set and the same packet id, when its session
// resumes; once acknowledged it is not sent again.
func interopRedelivery(t *testing.T, s *interop) {
	c, _ := s.connect(t, true, 30)
	s.subscribe(t, c, "candor/+/temperature", 1, 0)
	s.temperature(7)
	first := s.next(t, c, false) // not acknowledged
	if first.dup {
		t.Errorf("first delivery has DUP set: %+v", first)
	}
	c.Close() // the network drops, no DISCONNECT
	waitFor(t, "the app to be offline", safetyWait, func() bool { return !s.th.Broker().Connected(s.client) })

	c, _ = s.connect(t, true, 30)
	again := s.next(t, c, true)
	if !again.dup || again.id != first.id || again.payload != `{"celsius":7}` || again.qos != 1 {
		t.Errorf("redelivered %+v, want %+v with DUP set", again, first)
	}
	c.Send(mqtttest.Disconnect())
	c.ExpectClosed()
	waitFor(t, "the app to be offline", safetyWait, func() bool { return !s.th.Broker().Connected(s.client) })
	c, _ = s.connect(t, true, 30)
	s.temperature(8) // the barrier: the acknowledged one is not sent again
	if p := s.next(t, c, true); p.payload != `{"celsius":8}` || p.dup {
		t.Errorf("after acknowledging got %+v, want the live reading", p)
	}
}

// Will: an app may not set one. A will is a publish on the app's behalf,
// and apps publish nothing but allowed commands: the CONNECT is refused
// (MQTT 5 0x87, 3.1.1 0x05), whatever the will's topic.
func interopWill(t *testing.T, s *interop) {
	for _, topic := range []string{s.topic("temperature"), "candor/" + s.app + "/status", "candor/" + s.dev + "/command/boost"} {
		c := mqtttest.Dial(t, s.th.MQTTAddr(), nil)
		c.Send(mqtttest.Connect{Version: s.v, ClientID: s.client, Username: s.app, Password: s.secret, KeepAlive: 30,
			Will: &mqtttest.Will{Topic: topic, Payload: []byte("gone"), QoS: 1}}.Encode())
		want := byte(0x87)
		if s.v == 4 {
			want = 0x05
		}
		if got := c.Expect(mqtttest.CONNACK).ReasonCode(s.v); got != want {
			t.Errorf("app with a will on %s: CONNACK code %#x, want %#x", topic, got, want)
		}
		c.ExpectClosed()
	}
}

// Keepalive: PINGREQ gets a PINGRESP, and a connection silent for one
// and a half keepalive periods is closed [MQTT-3.1.2-24].
func interopKeepalive(t *testing.T, s *interop) {
	c, _ := s.connect(t, false, 30)
	c.Send(mqtttest.Pingreq())
	c.Expect(mqtttest.PINGRESP)
	c.Close()

	c, _ = s.connect(t, false, 1)
	c.Send(mqtttest.Pingreq())
	c.Expect(mqtttest.PINGRESP)
	c.ExpectClosed() // silent from now on
}

// safetyWait bounds a wait for the broker to notice a disconnection; it is
// never what a case asserts on.
const safetyWait = 20 * time.Second
