package broker

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/store"
)

func TestV5PublishAcknowledgement(t *testing.T) {
	tb := startBroker(t)
	c := mustV5(t, tb.addr, devA, devA, secretA)
	ctx := testCtx(t)

	tests := []struct {
		stream     string
		wantCode   byte
		wantReason string // substring of the PUBACK reason string
	}{
		{"temperature", 0x00, ""},
		{streamNotJSON, 0x99, "JSON object"}, // payload format invalid
		{streamTooLarge, 0x95, "limit"},      // packet too large
		{streamBadStream, 0x90, "stream"},    // topic name invalid
		{streamBroken, 0x83, ""},             // implementation specific error: not stored
		{"humidity", 0x00, ""},               // the connection survives all of the above
	}
	for _, tc := range tests {
		t.Run(tc.stream, func(t *testing.T) {
			payload := `{"v":"` + secretPayload + `-` + tc.stream + `"}`
			resp, err := c.Publish(ctx, &paho.Publish{Topic: ReadingTopic(devA, tc.stream), QoS: 1, Payload: []byte(payload)})
			if resp == nil {
				t.Fatalf("no PUBACK: %v", err)
			}
			if resp.ReasonCode != tc.wantCode {
				t.Errorf("PUBACK reason %#x (err %v), want %#x", resp.ReasonCode, err, tc.wantCode)
			}
			if (err == nil) != (tc.wantCode < 0x80) {
				t.Errorf("paho error %v for reason %#x", err, resp.ReasonCode)
			}
			if tc.wantReason != "" && (resp.Properties == nil || !strings.Contains(resp.Properties.ReasonString, tc.wantReason)) {
				t.Errorf("PUBACK reason string %+v, want one mentioning %q", resp.Properties, tc.wantReason)
			}
			subs := tb.in.submissions()
			last := subs[len(subs)-1]
			if last != (submission{devA, tc.stream, payload, true}) {
				t.Errorf("ingester saw %+v, want device %s stream %s with wait=true", last, devA, tc.stream)
			}
		})
	}
	if n := len(tb.in.submissions()); n != len(tests) {
		t.Errorf("ingester saw %d submissions for %d publishes", n, len(tests))
	}
	if !tb.Connected(devA) {
		t.Error("device disconnected by refused or failed publishes")
	}
	if strings.Contains(tb.logs.String(), secretPayload) {
		t.Errorf("a payload reached the broker log:\n%s", tb.logs.String())
	}
}

func TestV5QoS0PublishIsNotWaitedFor(t *testing.T) {
	tb := startBroker(t)
	c := mustV5(t, tb.addr, devA, devA, secretA)
	ctx := testCtx(t)
	for _, stream := range []string{"temperature", streamBroken, streamNotJSON} {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: ReadingTopic(devA, stream), QoS: 0, Payload: []byte(`{"x":1}`)}); err != nil {
			t.Fatalf("QoS 0 publish on %s: %v", stream, err)
		}
	}
	waitFor(t, "3 submissions", 5*time.Second, func() bool { return len(tb.in.submissions()) == 3 })
	for _, s := range tb.in.submissions() {
		if s.wait {
			t.Errorf("QoS 0 publish on %s submitted with wait=true", s.stream)
		}
	}
	// A QoS 0 failure does not cost the connection.
	if resp, err := c.Publish(ctx, &paho.Publish{Topic: ReadingTopic(devA, "temperature"), QoS: 1, Payload: []byte(`{"x":1}`)}); err != nil || resp.ReasonCode != 0 {
		t.Errorf("QoS 1 publish after QoS 0 failures: %+v %v", resp, err)
	}
}

// A refused QoS 2 publish from an MQTT 5 client completes the QoS 2
// handshake (mochi cannot put a negative code in a PUBREC) without the
// reading being kept; a storage failure closes the connection unacked.
func TestV5QoS2RefusedCompletesHandshake(t *testing.T) {
	tb := startBroker(t)
	c := mustV5(t, tb.addr, devA, devA, secretA)
	ctx := testCtx(t)
	resp, err := c.Publish(ctx, &paho.Publish{Topic: ReadingTopic(devA, streamNotJSON), QoS: 2, Payload: []byte(`{"x":1}`)})
	if err != nil || resp == nil {
		t.Fatalf("refused QoS 2 publish broke the handshake: %+v %v", resp, err)
	}
	c2 := mustV5(t, tb.addr, devA+"-2", devA, secretA)
	ctx2, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if resp, err := c2.Publish(ctx2, &paho.Publish{Topic: ReadingTopic(devA, streamBroken), QoS: 2, Payload: []byte(`{"x":1}`)}); err == nil && resp.ReasonCode < 0x80 {
		t.Errorf("QoS 2 publish whose storage failed was acknowledged: %+v", resp)
	}
}

func TestV5QoS2Accepted(t *testing.T) {
	tb := startBroker(t)
	c := mustV5(t, tb.addr, devA, devA, secretA)
	resp, err := c.Publish(testCtx(t), &paho.Publish{Topic: ReadingTopic(devA, "power"), QoS: 2, Payload: []byte(`{"w":1}`)})
	if err != nil || resp.ReasonCode != 0 {
		t.Fatalf("QoS 2 publish: %+v %v", resp, err)
	}
	if subs := tb.in.submissions(); len(subs) != 1 || !subs[0].wait {
		t.Errorf("QoS 2 submission %+v: want exactly one with wait=true", subs)
	}
}

// Topic aliases are not offered (mochi would check the ACL on the empty
// topic of an alias-only publish): the CONNACK says so.
func TestV5TopicAliasesNotOffered(t *testing.T) {
	tb := startBroker(t)
	conn, err := net.DialTimeout("tcp", tb.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ack, err := c.Connect(testCtx(t), &paho.Connect{ClientID: devA, UsernameFlag: true, Username: devA, PasswordFlag: true, Password: []byte(secretA), KeepAlive: 30, CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	if ack.Properties != nil && ack.Properties.TopicAliasMaximum != nil && *ack.Properties.TopicAliasMaximum != 0 {
		t.Errorf("broker advertises %d topic aliases", *ack.Properties.TopicAliasMaximum)
	}
	_ = c.Disconnect(&paho.Disconnect{})
}

func TestV311StorageFailure(t *testing.T) {
	tb := startBroker(t)
	c, lost, err := dialV3(t, tb.addr, devA, devA, secretA)
	if err != nil {
		t.Fatal(err)
	}

	// QoS 0: dropped, nothing to acknowledge, the connection stays.
	tok := c.Publish(ReadingTopic(devA, streamBroken), 0, false, `{"x":0}`)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("QoS 0 publish: %v", tok.Error())
	}
	// A refused QoS 1 reading is acknowledged (3.1.1 has no negative
	// acknowledgement) and the connection stays.
	tok = c.Publish(ReadingTopic(devA, streamNotJSON), 1, false, `not json`)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("refused QoS 1 publish: %v", tok.Error())
	}
	tok = c.Publish(ReadingTopic(devA, "temperature"), 1, false, `{"x":1}`)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("QoS 1 publish after the QoS 0 failure: %v", tok.Error())
	}
	// The acknowledged publish above is the barrier: the broker handled
	// the earlier packets before it, so a close they caused is already
	// under way.
	select {
	case <-lost:
		t.Fatal("connection lost after a QoS 0 storage failure or a refusal")
	default:
	}

	// QoS 1: no PUBACK; the connection is closed so the client resends.
	tok = c.Publish(ReadingTopic(devA, streamBroken), 1, false, `{"x":2}`)
	if !closedWithin(lost, 5*time.Second) {
		t.Fatal("connection still open after a QoS 1 reading was not stored")
	}
	if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		t.Error("the unstored QoS 1 reading was acknowledged")
	}
	waitFor(t, "broker to drop the connection", 5*time.Second, func() bool { return !tb.Connected(devA) })

	subs := tb.in.submissions()
	want := []submission{
		{devA, streamBroken, `{"x":0}`, false},
		{devA, streamNotJSON, `not json`, true},
		{devA, "temperature", `{"x":1}`, true},
		{devA, streamBroken, `{"x":2}`, true},
	}
	if len(subs) != len(want) {
		t.Fatalf("ingester saw %+v, want %+v", subs, want)
	}
	for i := range want {
		if subs[i] != want[i] {
			t.Errorf("submission %d: %+v, want %+v", i, subs[i], want[i])
		}
	}
}

func TestV311QoS2StorageFailureDisconnects(t *testing.T) {
	tb := startBroker(t)
	c, lost, err := dialV3(t, tb.addr, devA+"-q2", devA, secretA)
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Publish(ReadingTopic(devA, streamBroken), 2, false, `{"x":2}`)
	if !closedWithin(lost, 5*time.Second) {
		t.Fatal("connection still open after a QoS 2 reading was not stored")
	}
	if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		t.Error("the unstored QoS 2 reading was acknowledged")
	}
}

func TestConnectedAndDisconnect(t *testing.T) {
	tb := startBroker(t)
	if tb.Connected(devA) {
		t.Fatal("device shown as connected before it connected")
	}
	a1 := mustV5(t, tb.addr, devA, devA, secretA)
	a2 := mustV5(t, tb.addr, devA+"-2", devA, secretA)
	ab := mustV5(t, tb.addr, devAB, devAB, secretA+"b")
	b := mustV5(t, tb.addr, "", devB, secretB)
	_, lost3, err := dialV3(t, tb.addr, devA+"-v3", devA, secretA)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{devA, devAB, devB} {
		if !tb.Connected(id) {
			t.Errorf("Connected(%s) = false", id)
		}
	}
	for _, id := range []string{"dev_c", "", "dev_", "inline"} {
		if tb.Connected(id) {
			t.Errorf("Connected(%q) = true", id)
		}
	}
	if g := gauge(t, tb.reg, "candor_mqtt_connected_clients"); g != 5 {
		t.Errorf("candor_mqtt_connected_clients = %v, want 5", g)
	}

	tb.Disconnect(devA)
	for name, done := range map[string]<-chan struct{}{"v5": a1.Done(), "v5 second": a2.Done(), "v3": lost3} {
		if !closedWithin(done, 5*time.Second) {
			t.Errorf("%s connection of %s still open after Disconnect", name, devA)
		}
	}
	select {
	case d := <-a1.server:
		if d.ReasonCode != 0x87 {
			t.Errorf("DISCONNECT reason %#x, want 0x87 (not authorized)", d.ReasonCode)
		}
	case <-time.After(time.Second):
		t.Error("no DISCONNECT packet sent to the MQTT 5 client")
	}
	waitFor(t, "device shown as disconnected", 5*time.Second, func() bool { return !tb.Connected(devA) })

	// Other devices, including one whose id extends the disconnected one,
	// keep their connections.
	ctx := testCtx(t)
	for id, c := range map[string]*v5Client{devAB: ab, devB: b} {
		if !tb.Connected(id) {
			t.Errorf("%s disconnected along with %s", id, devA)
		}
		if resp, err := c.Publish(ctx, &paho.Publish{Topic: ReadingTopic(id, "temperature"), QoS: 1, Payload: []byte(`{"x":1}`)}); err != nil || resp.ReasonCode != 0 {
			t.Errorf("%s publish after another device's disconnect: %+v %v", id, resp, err)
		}
	}
	if g := gauge(t, tb.reg, "candor_mqtt_connected_clients"); g != 2 {
		t.Errorf("candor_mqtt_connected_clients = %v after disconnect, want 2", g)
	}
	// Disconnecting an unknown or already gone device is harmless.
	tb.Disconnect(devA)
	tb.Disconnect("dev_nobody")

	// The device may come back (the caller decides whether its credential
	// is still good).
	mustV5(t, tb.addr, devA, devA, secretA)
	if !tb.Connected(devA) {
		t.Error("reconnected device not shown as connected")
	}
}

func TestPublishRetainedControlReachesDevice(t *testing.T) {
	tb := startBroker(t)
	ctx := testCtx(t)
	// Published before the device connects: retained.
	if err := tb.Publish(ControlTopic(devA, "temperature"), []byte(`{"accepted":true}`), true); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := tb.Publish(ControlTopic(devB, "temperature"), []byte(`{"accepted":false}`), true); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	a := mustV5(t, tb.addr, devA, devA, secretA)
	sa, err := a.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ControlTopic(devA, "+"), QoS: 1}}})
	if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] >= 0x80 {
		t.Fatalf("subscribe to own control topics: %+v %v", sa, err)
	}
	select {
	case <-a.gotMsg:
	case <-time.After(5 * time.Second):
		t.Fatal("retained control message not delivered")
	}
	msgs := a.messages()
	if len(msgs) != 1 || msgs[0].Topic != ControlTopic(devA, "temperature") ||
		string(msgs[0].Payload) != `{"accepted":true}` || !msgs[0].Retain {
		t.Fatalf("device received %+v, want its own retained control message", msgs)
	}

	// Published while subscribed: delivered live.
	if err := tb.Publish(ControlTopic(devA, "humidity"), []byte(`{"accepted":false}`), true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.gotMsg:
	case <-time.After(5 * time.Second):
		t.Fatal("live control message not delivered")
	}
	msgs = a.messages()
	if len(msgs) != 2 || msgs[1].Topic != ControlTopic(devA, "humidity") {
		t.Errorf("device received %+v", msgs)
	}
	// Hub messages never go through the ingester.
	if n := len(tb.in.submissions()); n != 0 {
		t.Errorf("hub control messages were submitted as readings: %d", n)
	}

	// A device subscribed with a wildcard over its namespace gets only its
	// own retained control message, never another device's.
	a2 := mustV5(t, tb.addr, devA+"-all", devA, secretA)
	if _, err := a2.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + devA + "/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "2 retained messages", 5*time.Second, func() bool { return len(a2.messages()) == 2 })
	// Barrier: a message published now arrives after anything the
	// subscription delivered before it.
	if err := tb.Publish(ControlTopic(devA, "barrier"), []byte(`{}`), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the barrier message", 5*time.Second, func() bool { return len(a2.messages()) >= 3 })
	for _, m := range a2.messages() {
		if !strings.HasPrefix(m.Topic, "candor/"+devA+"/") {
			t.Errorf("device received %s", m.Topic)
		}
	}
}

func TestConnectPolicy(t *testing.T) {
	tb := startBroker(t)
	tests := []struct {
		name, client, user, pass string
		reason                   string // auth failure label
	}{
		{"anonymous", "anon", "", "", "anonymous"},
		{"no password", devA, devA, "", "anonymous"},
		{"username equals password", devA, devA, devA, "username_equals_password"},
		{"wrong secret", devA, devA, secretA + "x", "bad_credentials"},
		{"unknown device", "dev_zz", "dev_zz", secretA, "bad_credentials"},
		{"other device's client id", devB, devA, secretA, "client_id_outside_namespace"},
		{"longer id's client id", devAB, devA, secretA, "client_id_outside_namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := counter(t, tb.reg, "candor_mqtt_auth_failures_total", "reason", tc.reason)
			_, ack, err := dialV5(t, tb.addr, tc.client, tc.user, tc.pass)
			if err == nil {
				t.Fatal("connection accepted")
			}
			if ack != nil && ack.ReasonCode < 0x80 {
				t.Errorf("CONNACK reason %#x", ack.ReasonCode)
			}
			if got := counter(t, tb.reg, "candor_mqtt_auth_failures_total", "reason", tc.reason); got != before+1 {
				t.Errorf("auth failures{reason=%q} went from %v to %v", tc.reason, before, got)
			}
		})
	}
	// Wrong secrets are counted against the device id that was tried.
	if got := tb.in.counters(devA).AuthFailures; got != 1 {
		t.Errorf("device %s auth failures = %d, want 1", devA, got)
	}
	if got := tb.in.counters("dev_zz").AuthFailures; got != 1 {
		t.Errorf("unknown id auth failures = %d, want 1 (the store ignores unknown ids)", got)
	}
	for _, id := range []string{"", devA, devA + "-kitchen"} {
		if _, _, err := dialV5(t, tb.addr, id, devA, secretA); err != nil {
			t.Errorf("client id %q refused: %v", id, err)
		}
	}

	// A will outside the namespace is refused at CONNECT.
	_, _, err := dialV5With(t, tb.addr, &paho.Connect{ClientID: devA, KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: devA, PasswordFlag: true, Password: []byte(secretA),
		WillMessage: &paho.WillMessage{Topic: ReadingTopic(devB, "motion"), Payload: []byte(`{}`), QoS: 1}})
	if err == nil {
		t.Error("will into another device's namespace accepted")
	}
	if got := tb.in.counters(devA).ACLDenied; got != 1 {
		t.Errorf("will denial counted %d times, want 1", got)
	}
	// A will on the device's own reading topic is fine.
	if _, _, err := dialV5With(t, tb.addr, &paho.Connect{ClientID: devA, KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: devA, PasswordFlag: true, Password: []byte(secretA),
		WillMessage: &paho.WillMessage{Topic: ReadingTopic(devA, "status"), Payload: []byte(`{"online":false}`), QoS: 1}}); err != nil {
		t.Errorf("will on own reading topic refused: %v", err)
	}
}

func TestConnectAuthenticatorError(t *testing.T) {
	tb := startBroker(t)
	tb.auth.mu.Lock()
	tb.auth.fail = errors.New("store unavailable")
	tb.auth.mu.Unlock()
	if _, _, err := dialV5(t, tb.addr, devA, devA, secretA); err == nil {
		t.Fatal("connection accepted while the authenticator fails")
	}
	if got := counter(t, tb.reg, "candor_mqtt_auth_failures_total", "reason", "error"); got != 1 {
		t.Errorf("auth failures{reason=error} = %v, want 1", got)
	}
	// An internal error is not the device's fault.
	if got := tb.in.counters(devA); got != (store.DeviceCounters{}) {
		t.Errorf("internal authentication error counted against the device: %+v", got)
	}
}

func TestACLDenialsAreCountedNotSubmitted(t *testing.T) {
	tb := startBroker(t)
	a := mustV5(t, tb.addr, devA, devA, secretA)
	ctx := testCtx(t)
	for _, topic := range []string{
		ReadingTopic(devB, "motion"),
		ReadingTopic(devAB, "motion"),
		ControlTopic(devA, "temperature"),
		"candor/" + devA + "/a/b",
	} {
		resp, err := a.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(`{"x":1}`)})
		if resp == nil || resp.ReasonCode != 0x87 {
			t.Errorf("publish to %s: %+v %v, want reason 0x87", topic, resp, err)
		}
	}
	sa, err := a.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "candor/" + devAB + "/#", QoS: 1},
		{Topic: "$share/g/candor/" + devA + "/x", QoS: 1},
		{Topic: "candor/" + devA + "/#", QoS: 1},
	}})
	if sa == nil {
		t.Fatalf("subscribe: %v", err)
	}
	want := []bool{false, false, true}
	for i, rc := range sa.Reasons {
		if granted := rc < 0x80; granted != want[i] {
			t.Errorf("subscription %d: reason %#x, want granted=%v", i, rc, want[i])
		}
	}
	if n := len(tb.in.submissions()); n != 0 {
		t.Errorf("%d denied publishes reached the ingester", n)
	}
	if got := tb.in.counters(devA).ACLDenied; got != 6 {
		t.Errorf("ACL denials counted for %s: %d, want 6", devA, got)
	}
	if got := counter(t, tb.reg, "candor_mqtt_acl_denied_total", "action", "publish"); got != 4 {
		t.Errorf("acl_denied{action=publish} = %v, want 4", got)
	}

	// Another device's readings never reach a device subscribed to its own
	// namespace only.
	b := mustV5(t, tb.addr, devAB, devAB, secretA+"b")
	if resp, err := b.Publish(ctx, &paho.Publish{Topic: ReadingTopic(devAB, "motion"), QoS: 1, Payload: []byte(`{"m":1}`)}); err != nil || resp.ReasonCode != 0 {
		t.Fatalf("publish by %s: %+v %v", devAB, resp, err)
	}
	// Barrier: a message published to a now arrives after anything
	// delivered to it before.
	if err := tb.Publish(ControlTopic(devA, "barrier"), []byte(`{}`), false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.gotMsg:
	case <-ctx.Done():
		t.Fatal("barrier message not delivered")
	}
	if msgs := a.messages(); len(msgs) != 1 || msgs[0].Topic != ControlTopic(devA, "barrier") {
		t.Errorf("%s received another device's readings: %+v", devA, msgs)
	}
}
