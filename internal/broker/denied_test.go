package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store"
)

// aclCounting is the real ingest pipeline with the ACL denials the hook
// counts against each device recorded: the pipeline's own counters go to
// the store, which drops those of a device it does not know (the test
// devices come from fakeAuth).
type aclCounting struct {
	*ingest.Pipeline
	mu     sync.Mutex
	denied map[string]int64
}

func (c *aclCounting) Count(deviceID string, delta store.DeviceCounters) {
	c.mu.Lock()
	c.denied[deviceID] += delta.ACLDenied
	c.mu.Unlock()
	c.Pipeline.Count(deviceID, delta)
}

func (c *aclCounting) deniedOf(deviceID string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.denied[deviceID]
}

// deniedMonitor records the monitor's Denied signals by device.
type deniedMonitor struct {
	noMonitor
	mu     sync.Mutex
	denied map[string]int
}

func (m *deniedMonitor) Denied(deviceID string) {
	m.mu.Lock()
	m.denied[deviceID]++
	m.mu.Unlock()
}

func (m *deniedMonitor) deniedOf(deviceID string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.denied[deviceID]
}

// ackEvent names an answer the broker sent: its type, packet id and
// reason code.
func ackEvent(p mqtttest.Packet, version byte) string {
	name := map[byte]string{mqtttest.PUBACK: "PUBACK", mqtttest.PUBREC: "PUBREC", mqtttest.PUBCOMP: "PUBCOMP",
		mqtttest.PINGRESP: "PINGRESP"}[p.Type]
	if p.Type == mqtttest.PINGRESP {
		return name
	}
	if name == "" || len(p.Body) < 2 {
		return fmt.Sprintf("unexpected % x", p.Raw)
	}
	return fmt.Sprintf("%s %d %#x", name, uint16(p.Body[0])<<8|uint16(p.Body[1]), p.ReasonCode(version))
}

// Packet ids of answersAround's readings, and of the publish sent between.
const firstID, middleID, lastID = 21, 22, 23

// answersAround sends a QoS 1 reading (packet id firstID), then what
// middle sends, then another QoS 1 reading (lastID), and a PINGREQ; the
// first reading's commit is held until that PINGREQ is answered, so an
// answer that does not wait its turn comes before the PINGRESP. It returns
// the answers (ackEvent) in the order they came, up to the PINGRESP of a
// PINGREQ sent once the last reading was acknowledged, so an answer that
// never comes is missing from them rather than waited for.
func answersAround(t *testing.T, c *mqtttest.Conn, gs *gatedStore, v byte, middle func()) []string {
	t.Helper()
	reading := ReadingTopic(devA, "temperature")
	c.Send(mqtttest.Publish(v, reading, []byte(`{"c":21.5}`), 1, firstID, false))
	<-gs.entered // the first reading's commit is held at the gate
	middle()
	c.Send(mqtttest.Publish(v, reading, []byte(`{"c":21.6}`), 1, lastID, false))
	c.Send(mqtttest.Pingreq())
	var got []string
	opened, pinged := false, false
	for {
		p, err := c.Next()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		e := ackEvent(p, v)
		got = append(got, e)
		switch {
		case e == "PINGRESP" && !opened:
			opened = true
			gs.open <- struct{}{} // the first reading commits
			gs.open <- struct{}{} // then the last, in a batch of its own
		case e == fmt.Sprintf("PUBACK %d 0x0", lastID):
			c.Send(mqtttest.Pingreq())
			pinged = true
		case e == "PINGRESP" && pinged:
			return got
		}
	}
}

// TestDeniedPublishAnsweredInTurn: a device's publish to a topic outside
// its namespace (here another device's command topic, retained), sent
// between two QoS 1 readings whose commit is held, is answered as MQTT
// requires: an MQTT 5 QoS 1 one with a PUBACK "not authorized" (0x87)
// after the first reading's PUBACK and before the second's (§4.6: PUBACKs
// in the order the PUBLISH packets came), not at once as mochi's ACL
// denial sent it. QoS 0 gets no answer, QoS 2 a PUBREC 0x87 at once
// (PUBRECs are ordered among themselves only); MQTT 3.1.1, without
// negative acknowledgements, gets success in turn (QoS 1) or QoS 2's
// handshake. In every case the publish is denied once (counter, monitor,
// metric, log line), never stored, delivered or retained.
func TestDeniedPublishAnsweredInTurn(t *testing.T) {
	tests := []struct {
		version, qos byte
		want         []string // answers in the order they come (answersAround)
	}{
		{5, 1, []string{"PINGRESP", "PUBACK 21 0x0", "PUBACK 22 0x87", "PUBACK 23 0x0", "PINGRESP"}},
		{5, 0, []string{"PINGRESP", "PUBACK 21 0x0", "PUBACK 23 0x0", "PINGRESP"}},
		{5, 2, []string{"PUBREC 22 0x87", "PINGRESP", "PUBACK 21 0x0", "PUBACK 23 0x0", "PINGRESP"}},
		{4, 1, []string{"PINGRESP", "PUBACK 21 0x0", "PUBACK 22 0x0", "PUBACK 23 0x0", "PINGRESP"}},
		{4, 0, []string{"PINGRESP", "PUBACK 21 0x0", "PUBACK 23 0x0", "PINGRESP"}},
		{4, 2, []string{"PUBREC 22 0x0", "PINGRESP", "PUBACK 21 0x0", "PUBACK 23 0x0", "PINGRESP"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("v%d/qos%d", tc.version, tc.qos), func(t *testing.T) {
			deniedAnswered(t, tc.version, tc.qos, ControlTopic(devB, "unlock"), []byte(`{"unlock":"payload-marker"}`), tc.want)
		})
	}
}

// deniedSetup starts a broker on a gated store (storedPipeline) for
// device devA, connects devA with protocol v, and returns what check
// needs: once devA sent readings (2, answersAround) and one publish it
// may not make, check asserts that the publish was denied exactly once
// (counter, monitor signal, metric, log line, with no payload in the
// log), and never stored, routed by mochi nor retained.
// deniedAnswered publishes payload to topic (outside the device's
// namespace) between two readings, with the first reading's commit held,
// and checks the answers come as want, that a 3.1.1 QoS 2 handshake
// completes, and deniedSetup's checks.
func deniedAnswered(t *testing.T, v, qos byte, topic string, payload []byte, want []string) {
	t.Helper()
	c, gs, check := deniedSetup(t, v)
	got := answersAround(t, c, gs, v, func() {
		c.Send(mqtttest.Publish(v, topic, payload, qos, middleID, true))
	})
	if !slices.Equal(got, want) {
		t.Fatalf("answers %q, want %q", got, want)
	}
	if v == 4 && qos == 2 {
		c.Send(mqtttest.Pubrel(middleID))
		if p := c.Expect(mqtttest.PUBCOMP); ackEvent(p, v) != "PUBCOMP 22 0x0" {
			t.Errorf("PUBCOMP % x", p.Raw)
		}
	}
	check(t)
}

func deniedSetup(t *testing.T, v byte) (*mqtttest.Conn, *gatedStore, func(*testing.T)) {
	t.Helper()
	pipe, db, gs := storedPipeline(t, true)
	in := &aclCounting{Pipeline: pipe, denied: map[string]int64{}}
	mon := &deniedMonitor{denied: map[string]int{}}
	logs := &lockedBuffer{}
	reg := prometheus.NewRegistry()
	b := startStoredBroker(t, Config{Monitor: mon, Registerer: reg, Logger: slog.New(slog.NewTextHandler(logs, nil))}, in)
	t.Cleanup(func() { close(gs.open) })

	// Whatever mochi routes reaches this subscription, whichever client's
	// ACL would let it through.
	var mu sync.Mutex
	var routed []string
	if err := b.srv.Subscribe("#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		mu.Lock()
		routed = append(routed, pk.TopicName)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}

	c := mqtttest.Dial(t, b.Addr("tcp"), nil)
	c.Send(mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
	if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
		t.Fatalf("connect refused: % x", ack.Raw)
	}
	check := func(t *testing.T) {
		t.Helper()
		// Anything routed was routed before this PINGREQ is answered.
		c.Send(mqtttest.Pingreq())
		c.Expect(mqtttest.PINGRESP)
		mu.Lock()
		if len(routed) != 0 {
			t.Errorf("mochi routed %q", routed)
		}
		mu.Unlock()
		if kept := b.srv.Topics.Messages("#"); len(kept) != 0 {
			t.Errorf("retained: %d messages, first on %s", len(kept), kept[0].TopicName)
		}
		if n, err := db.CountReadings(context.Background(), devA); err != nil || n != 2 {
			t.Errorf("%d readings stored (%v), want the 2 readings", n, err)
		}
		if n := in.deniedOf(devA); n != 1 {
			t.Errorf("ACL denials counted against %s: %d, want 1", devA, n)
		}
		if n := mon.deniedOf(devA); n != 1 {
			t.Errorf("monitor told of %d denials, want 1", n)
		}
		if n := counter(t, reg, "candor_mqtt_acl_denied_total", "action", "publish"); n != 1 {
			t.Errorf("acl_denied{action=publish} = %v, want 1", n)
		}
		if n := strings.Count(logs.String(), "mqtt publish denied"); n != 1 {
			t.Errorf("%d log lines for the denied publish, want 1:\n%s", n, logs)
		}
		if strings.Contains(logs.String(), "payload-marker") {
			t.Errorf("a log line carries the payload:\n%s", logs)
		}
		c.Send(mqtttest.Disconnect())
		c.ExpectClosed()
	}
	return c, gs, check
}

// TestUnroutablePublishAnsweredInTurn: mochi drops a publish to a topic
// name it will not route ($SYS…, a bare $share) before any hook sees it,
// with no answer at all, so a QoS 1 one was never acknowledged while the
// PUBACKs of later readings went out (MQTT requires an answer to each, in
// the order the PUBLISH packets came). It is a publish outside the
// device's namespace: answered and counted as TestDeniedPublishAnsweredInTurn's.
func TestUnroutablePublishAnsweredInTurn(t *testing.T) {
	tests := []struct {
		version, qos byte
		topic        string
		want         []string // answers in the order they come (answersAround)
	}{
		{5, 1, "$SYS/broker/uptime", []string{"PINGRESP", "PUBACK 21 0x0", "PUBACK 22 0x87", "PUBACK 23 0x0", "PINGRESP"}},
		{5, 1, "$sys", []string{"PINGRESP", "PUBACK 21 0x0", "PUBACK 22 0x87", "PUBACK 23 0x0", "PINGRESP"}},
		{5, 1, "$share", []string{"PINGRESP", "PUBACK 21 0x0", "PUBACK 22 0x87", "PUBACK 23 0x0", "PINGRESP"}},
		{5, 0, "$SYS/broker/uptime", []string{"PINGRESP", "PUBACK 21 0x0", "PUBACK 23 0x0", "PINGRESP"}},
		{5, 2, "$SYS/broker/uptime", []string{"PUBREC 22 0x87", "PINGRESP", "PUBACK 21 0x0", "PUBACK 23 0x0", "PINGRESP"}},
		{4, 1, "$SYS/broker/uptime", []string{"PINGRESP", "PUBACK 21 0x0", "PUBACK 22 0x0", "PUBACK 23 0x0", "PINGRESP"}},
		{4, 2, "$SYS/broker/uptime", []string{"PUBREC 22 0x0", "PINGRESP", "PUBACK 21 0x0", "PUBACK 23 0x0", "PINGRESP"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("v%d/qos%d/%s", tc.version, tc.qos, tc.topic), func(t *testing.T) {
			deniedAnswered(t, tc.version, tc.qos, tc.topic, []byte(`{"load":"payload-marker"}`), tc.want)
		})
	}
}

// failingState is a state reporter whose store fails.
type failingState struct{}

func (failingState) ReportState(context.Context, string, []byte) error {
	return errors.New("disk I/O error")
}

// TestStateNotStoredClosesConnection: a device's state message that could
// not be stored is not acknowledged, and where no negative answer exists
// (MQTT 3.1.1 QoS 1 and 2, MQTT 5 QoS 2: mochi cannot put a failure in a
// PUBREC it completes) the connection is closed, as for a reading whose
// commit failed, so the device resends it. Left open with no answer, the
// device would wait for that acknowledgement forever while later
// readings' PUBACKs went out, where MQTT requires them in order.
func TestStateNotStoredClosesConnection(t *testing.T) {
	for _, tc := range []struct{ version, qos byte }{{4, 1}, {4, 2}, {5, 2}} {
		t.Run(fmt.Sprintf("v%d/qos%d", tc.version, tc.qos), func(t *testing.T) {
			v := tc.version
			in, _, _ := storedPipeline(t, false)
			b := startStoredBroker(t, Config{State: failingState{}}, in)
			c := mqtttest.Dial(t, b.Addr("tcp"), nil)
			c.Send(mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
			if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
				t.Fatalf("connect refused: % x", ack.Raw)
			}
			c.Send(mqtttest.Publish(v, TopicRoot+"/"+devA+"/$state", []byte(`{"firmware":"1.0.0"}`), tc.qos, middleID, false))
			c.Send(mqtttest.Pingreq())
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				p, err := c.Next()
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("the connection is still open, the state message unanswered")
				}
				if err != nil {
					break // closed: the device resends after reconnecting
				}
				if p.Type != mqtttest.PINGRESP {
					t.Fatalf("the unstored state message was answered: % x", p.Raw)
				}
			}
		})
	}
}

// TestTopicAliasEndsConnection: topic aliases are not offered
// (topicAliasMaximum), and a publish that uses one anyway is a protocol
// error mochi answers with a DISCONNECT "topic alias invalid" (0x94)
// before any hook sees it: no PUBACK can come out of turn for it.
func TestTopicAliasEndsConnection(t *testing.T) {
	in, _, _ := storedPipeline(t, false)
	b := startStoredBroker(t, Config{}, in)
	c := mqtttest.Dial(t, b.Addr("tcp"), nil)
	c.Send(mqtttest.Connect{Version: 5, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
	if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(5) != 0 {
		t.Fatalf("connect refused: % x", ack.Raw)
	}
	// PUBLISH QoS 1 with properties: Topic Alias (0x23) 1.
	topic := ReadingTopic(devA, "temperature")
	body := append([]byte{0, byte(len(topic))}, topic...)
	body = append(body, 0, middleID, 3, 0x23, 0, 1)
	body = append(body, `{"c":21.5}`...)
	c.Send(append([]byte{mqtttest.PUBLISH<<4 | 1<<1, byte(len(body))}, body...))
	if d := c.Expect(mqtttest.DISCONNECT); d.ReasonCode(5) != packets.ErrTopicAliasInvalid.Code {
		t.Fatalf("DISCONNECT % x, want reason %#x", d.Raw, packets.ErrTopicAliasInvalid.Code)
	}
	c.ExpectClosed()
}
