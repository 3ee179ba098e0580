package broker

import (
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// otherHost is a second loopback address: on a LAN, a flood and a device
// come from different addresses.
var otherHost = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

// A connection that never sends CONNECT is closed once the connect
// timeout passes; so is one that trickles a CONNECT too slowly.
func TestSilentConnectionClosedAfterDeadline(t *testing.T) {
	tb := startBrokerWith(t, func(c *Config) { c.ConnectTimeout = 150 * time.Millisecond })
	silent := mqtttest.Dial(t, tb.addr, nil)
	partial := mqtttest.Dial(t, tb.addr, nil)
	partial.Send(mqtttest.Connect{Version: 5, ClientID: devA, Username: devA, Password: secretA}.Encode()[:6])
	silent.ExpectClosed()
	partial.ExpectClosed()
	if got := counter(t, tb.reg, "candor_mqtt_preauth_closed_total", "reason", "connect_timeout"); got != 2 {
		t.Errorf("preauth_closed{reason=connect_timeout} = %v, want 2", got)
	}
	waitFor(t, "pending slots released", 5*time.Second, func() bool { return tb.guard.pendingCount("127.0.0.1") == 0 })
	// A device that sends its CONNECT in time is unaffected.
	c := mustV5(t, tb.addr, devA, devA, secretA)
	if _, err := c.Publish(testCtx(t), &paho.Publish{Topic: ReadingTopic(devA, "temperature"), QoS: 1, Payload: []byte(`{"x":1}`)}); err != nil {
		t.Fatalf("publish after login: %v", err)
	}
}

// Beyond the per-address limit of connections that have not logged in,
// new connections from that address are closed at once; devices that
// logged in do not count, and other addresses are not affected.
func TestPendingPerAddressLimit(t *testing.T) {
	const limit = 3
	tb := startBrokerWith(t, func(c *Config) {
		c.PendingPerAddress = limit
		c.ConnectTimeout = time.Minute // the limit, not the deadline, must close them
	})
	known := mustV5(t, tb.addr, devA, devA, secretA)
	if n := tb.guard.pendingCount("127.0.0.1"); n != 0 {
		t.Fatalf("a logged-in device still counts as pending (%d)", n)
	}
	var held []*mqtttest.Conn
	for range limit {
		held = append(held, mqtttest.Dial(t, tb.addr, nil))
	}
	waitFor(t, "the pending connections to be counted", 5*time.Second, func() bool {
		return tb.guard.pendingCount("127.0.0.1") == limit
	})
	for range 5 {
		mqtttest.Dial(t, tb.addr, nil).ExpectClosed()
	}
	if got := counter(t, tb.reg, "candor_mqtt_preauth_closed_total", "reason", "pending_limit"); got != 5 {
		t.Errorf("preauth_closed{reason=pending_limit} = %v, want 5", got)
	}

	// The device that logged in before keeps working.
	if resp, err := known.Publish(testCtx(t), &paho.Publish{Topic: ReadingTopic(devA, "temperature"), QoS: 1, Payload: []byte(`{"x":1}`)}); err != nil || resp.ReasonCode != 0 {
		t.Fatalf("logged-in device's publish during the flood: %+v %v", resp, err)
	}
	// A device from another address logs in.
	other := mqtttest.Dial(t, tb.addr, otherHost)
	other.Send(mqtttest.Connect{Version: 4, ClientID: devB, Username: devB, Password: secretB, KeepAlive: 30}.Encode())
	if ack := other.Expect(mqtttest.CONNACK); ack.ReasonCode(4) != 0 {
		t.Fatalf("device from another address refused: % x", ack.Raw)
	}

	// A pending connection that ends frees its slot.
	held[0].Close()
	waitFor(t, "the closed connection's slot to be freed", 5*time.Second, func() bool {
		return tb.guard.pendingCount("127.0.0.1") == limit-1
	})
	c := mqtttest.Dial(t, tb.addr, nil)
	c.Send(mqtttest.Connect{Version: 5, ClientID: devA + "-2", Username: devA, Password: secretA, KeepAlive: 30}.Encode())
	if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(5) != 0 {
		t.Fatalf("connection in a freed slot refused: % x", ack.Raw)
	}
}

func TestAddrKey(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.168.1.20"), Port: 5000}, "192.168.1.20"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.168.1.20"), Port: 5000}, "192.168.1.20"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 5000}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 1}, "2001:db8:1:2::/64"},
	}
	for _, tc := range tests {
		if got := addrKey(tc.addr); got != tc.want {
			t.Errorf("addrKey(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
