package broker

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
	"github.com/candor-iot/candor/internal/tlscert"
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

// freeAddr returns a loopback address with a port free a moment ago (the
// WebSocket listener does not report the port it bound for port 0).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The connect deadline also holds for TLS (a client that never starts or
// never finishes the handshake, or sends no CONNECT after it) and for
// WebSocket (a client that upgrades and then sends nothing).
func TestDeadlineOnTLSAndWebSocket(t *testing.T) {
	cert, roots := testCert(t)
	tlsConfig := tlscert.ServerConfig(cert)
	tb := startBrokerWith(t, func(c *Config) {
		c.ConnectTimeout = 150 * time.Millisecond
		c.TLSAddr, c.TLSConfig = "127.0.0.1:0", tlsConfig
	})
	tlsAddr := tb.Addr("tls")

	// No handshake at all.
	mqtttest.Dial(t, tlsAddr, nil).ExpectClosed()

	// A handshake, then nothing.
	raw := mqtttest.Dial(t, tlsAddr, nil)
	tc := tls.Client(raw.Conn, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	if _, err := tc.Read(make([]byte, 1)); err == nil {
		t.Fatal("TLS connection without CONNECT sent data instead of closing")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("TLS connection without CONNECT still open")
	}

	if got := counter(t, tb.reg, "candor_mqtt_preauth_closed_total", "reason", "connect_timeout"); got != 2 {
		t.Errorf("TLS: preauth_closed{reason=connect_timeout} = %v, want 2", got)
	}

	// A WebSocket upgrade, then nothing. (The WebSocket listener serves
	// TLS when the broker has a certificate, so it gets its own broker.)
	wsAddr := freeAddr(t)
	tb = startBrokerWith(t, func(c *Config) {
		c.ConnectTimeout = 150 * time.Millisecond
		c.WSAddr = wsAddr
	})
	var ws *mqtttest.Conn
	waitFor(t, "the WebSocket listener", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", wsAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	ws = mqtttest.Dial(t, wsAddr, nil)
	ws.Send([]byte("GET / HTTP/1.1\r\nHost: " + wsAddr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(ws.Conn), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket upgrade: %v %v", resp, err)
	}
	if _, err := ws.Conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("WebSocket connection without CONNECT sent data instead of closing")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("WebSocket connection without CONNECT still open")
	}
	if got := counter(t, tb.reg, "candor_mqtt_preauth_closed_total", "reason", "connect_timeout"); got != 1 {
		t.Errorf("WebSocket: preauth_closed{reason=connect_timeout} = %v, want 1", got)
	}
}

// Shutting down hands no connection to mochi any more: a connection that
// was accepted but had not sent its CONNECT when Close began is closed,
// not established on a server that is closing (under the race detector,
// that handover raced mochi's Close). Close waits for the guard, so it
// returns only once those connections are closed.
func TestCloseHandsOverNoStartingConnection(t *testing.T) {
	tb := startBrokerWith(t, nil)
	var starting []*mqtttest.Conn
	for range 8 {
		starting = append(starting, mqtttest.Dial(t, tb.addr, nil))
	}
	waitFor(t, "the connections reach the guard", 5*time.Second, func() bool {
		return tb.guard.pendingCount("127.0.0.1") == len(starting)
	})
	if err := tb.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, c := range starting {
		// A complete CONNECT after Close: the guard must not pass it on.
		// (The write may fail: the connection is already closed.)
		_, _ = c.Write(mqtttest.Connect{Version: 5, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
		c.ExpectClosed()
	}
	if n := tb.guard.pendingCount("127.0.0.1"); n != 0 {
		t.Errorf("%d connections still pending after Close", n)
	}
}
