package broker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// willConnect is a CONNECT from devA with a will on stream.
func willConnect(version byte, clientID, stream string, payload []byte, retain bool) []byte {
	return mqtttest.Connect{Version: version, ClientID: clientID, Username: devA, Password: secretA, KeepAlive: 30,
		Will: &mqtttest.Will{Topic: ReadingTopic(devA, stream), Payload: payload, QoS: 1, Retain: retain}}.Encode()
}

// gone waits until mochi has finished with a client (its OnDisconnect
// hooks have run and its session is deleted).
func (tb *testBroker) gone(t *testing.T, clientID string) {
	t.Helper()
	waitFor(t, "session "+clientID+" to end", 10*time.Second, func() bool {
		_, ok := tb.srv.Clients.Get(clientID)
		return !ok
	})
}

// Reconnecting over and over with a retained will must not leave anything
// in broker memory: every will goes to ingest like a reading, and none is
// retained.
func TestWillsNeverRetained(t *testing.T) {
	tb := startBroker(t)
	const n = 500
	for i := range n {
		v := byte(4 + i%2)
		c := mqtttest.Dial(t, tb.addr, nil)
		c.Send(willConnect(v, fmt.Sprintf("%s-%d", devA, i), "status", []byte(`{"online":false}`), true))
		if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
			t.Fatalf("connect %d refused: % x", i, ack.Raw)
		}
		c.Close() // no DISCONNECT: the will is due
	}
	waitFor(t, "every will handed to ingest", 20*time.Second, func() bool { return len(tb.in.submissions()) == n })
	for _, s := range tb.in.submissions() {
		if s != (submission{devA, "status", `{"online":false}`, false}) {
			t.Fatalf("will submitted as %+v", s)
		}
	}
	// mochi retains its own $SYS status topics at start; nothing else may
	// be retained.
	for topic := range tb.srv.Topics.Retained.GetAll() {
		if !strings.HasPrefix(topic, "$SYS/") {
			t.Errorf("retained in broker memory after %d wills: %s", n, topic)
		}
	}
}

// A will is handed to ingest when the connection drops, never delivered
// over MQTT, and not sent at all after a DISCONNECT.
func TestWillGoesToIngestNotSubscribers(t *testing.T) {
	tb := startBroker(t)
	sub := mustV5(t, tb.addr, devA+"-sub", devA, secretA)
	ctx := testCtx(t)
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + devA + "/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	clean := mqtttest.Dial(t, tb.addr, nil)
	clean.Send(willConnect(5, devA+"-clean", "status", []byte(`{"online":false,"n":1}`), false))
	clean.Expect(mqtttest.CONNACK)
	clean.Send(mqtttest.Disconnect())
	clean.ExpectClosed()
	tb.gone(t, devA+"-clean")

	dropped := mqtttest.Dial(t, tb.addr, nil)
	dropped.Send(willConnect(5, devA+"-drop", "status", []byte(`{"online":false,"n":2}`), true))
	dropped.Expect(mqtttest.CONNACK)
	dropped.Close()
	tb.gone(t, devA+"-drop")

	subs := tb.in.submissions()
	if len(subs) != 1 || subs[0] != (submission{devA, "status", `{"online":false,"n":2}`, false}) {
		t.Fatalf("ingester saw %+v, want only the dropped connection's will", subs)
	}
	// Barrier: a message published now reaches the subscriber after
	// anything published before it.
	if err := tb.Publish(ControlTopic(devA, "status"), []byte(`{"accepted":true}`), false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.gotMsg:
	case <-ctx.Done():
		t.Fatal("control message not delivered")
	}
	if msgs := sub.messages(); len(msgs) != 1 || msgs[0].Topic != ControlTopic(devA, "status") {
		for _, m := range msgs {
			t.Errorf("subscriber received %s", m.Topic)
		}
	}
}

// An empty will payload, which MQTT allows, is accepted and dropped: it
// carries no reading.
func TestEmptyWillAccepted(t *testing.T) {
	tb := startBroker(t)
	for _, v := range []byte{4, 5} {
		id := fmt.Sprintf("%s-empty%d", devA, v)
		c := mqtttest.Dial(t, tb.addr, nil)
		c.Send(willConnect(v, id, "status", nil, false))
		if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
			t.Fatalf("v%d: connection with an empty will refused: % x", v, ack.Raw)
		}
		c.Close()
		tb.gone(t, id)
	}
	if subs := tb.in.submissions(); len(subs) != 0 {
		t.Errorf("empty wills handed to ingest: %+v", subs)
	}
}

// Wills the policy path refuses are refused at CONNECT, with the reason
// code a refused reading gets (MQTT 5) or "not authorized" (3.1.1).
func TestWillRefusedAtConnect(t *testing.T) {
	tb := startBroker(t)
	tests := []struct {
		stream string
		v5, v3 byte
	}{
		{streamNotJSON, 0x99, 0x05},
		{streamTooLarge, 0x95, 0x05},
		{streamBadStream, 0x90, 0x05},
	}
	for _, tc := range tests {
		for _, v := range []byte{4, 5} {
			c := mqtttest.Dial(t, tb.addr, nil)
			c.Send(willConnect(v, devA, tc.stream, []byte(`{"x":1}`), false))
			ack := c.Expect(mqtttest.CONNACK)
			want := tc.v3
			if v == 5 {
				want = tc.v5
			}
			if ack.ReasonCode(v) != want {
				t.Errorf("v%d will on %s: CONNACK % x, want code %#x", v, tc.stream, ack.Raw, want)
			}
			c.ExpectClosed()
		}
	}
	if got := counter(t, tb.reg, "candor_mqtt_auth_failures_total", "reason", "will_refused"); got != 6 {
		t.Errorf("auth_failures{reason=will_refused} = %v, want 6", got)
	}
}

// A device cut off by the hub (its credential revoked) sends no will.
func TestNoWillAfterRevocation(t *testing.T) {
	tb := startBroker(t)
	c := mqtttest.Dial(t, tb.addr, nil)
	c.Send(willConnect(5, devA+"-w", "status", []byte(`{"online":false}`), false))
	c.Expect(mqtttest.CONNACK)
	tb.Disconnect(devA)
	if d := c.Expect(mqtttest.DISCONNECT); d.ReasonCode(5) != 0x87 {
		t.Errorf("DISCONNECT % x, want not authorized (0x87)", d.Raw)
	}
	c.ExpectClosed()
	tb.gone(t, devA+"-w")
	if subs := tb.in.submissions(); len(subs) != 0 {
		t.Errorf("will of a revoked device handed to ingest: %+v", subs)
	}
}
