package broker

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/identity"
)

// A CONNECT refused because too many credential checks were tried is told
// to back off, not that its secret is wrong: MQTT 5 gets 0x9F "connection
// rate exceeded" (0x89 "server busy" when the hub has too many checks in
// flight), 3.1.1 gets 0x03 "server unavailable".
func TestThrottledConnectIsToldToBackOff(t *testing.T) {
	tb := startBroker(t)
	for _, tc := range []struct {
		reason string
		code   byte
	}{
		{identity.ReasonDevice, 0x9F},
		{identity.ReasonAddress, 0x9F},
		{identity.ReasonBusy, 0x89},
	} {
		tb.auth.mu.Lock()
		tb.auth.fail = &identity.ThrottledError{Reason: tc.reason, RetryAfter: time.Minute}
		tb.auth.mu.Unlock()
		_, ack, err := dialV5(t, tb.addr, devA, devA, secretA)
		if err == nil || ack == nil {
			t.Fatalf("%s: connected (%v), want a refusal", tc.reason, err)
		}
		if ack.ReasonCode != tc.code || ack.Properties == nil || ack.Properties.ReasonString == "" {
			t.Errorf("%s: CONNACK %#x %+v, want %#x with a reason string", tc.reason, ack.ReasonCode, ack.Properties, tc.code)
		}
		if got := rawV3Connack(t, tb.addr, devA, secretA); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x03}) {
			t.Errorf("%s: MQTT 3.1.1 CONNACK % x, want 20 02 00 03", tc.reason, got)
		}
	}
	if n := counterValue(t, tb.reg, "candor_mqtt_auth_failures_total", "throttled_device"); n != 2 {
		t.Errorf("throttled_device refusals counted %v, want 2", n)
	}

	// A wrong secret is still "bad user name or password", and the
	// throttle's code does not leak onto the next connection.
	tb.auth.mu.Lock()
	tb.auth.fail = nil
	tb.auth.mu.Unlock()
	if _, ack, err := dialV5(t, tb.addr, devA, devA, "wrong-secret-value"); err == nil || ack == nil || ack.ReasonCode != 0x86 {
		t.Errorf("wrong secret: %v %+v, want CONNACK 0x86", err, ack)
	}
	mustV5(t, tb.addr, devA, devA, secretA)
}

// rawV3Connack sends an MQTT 3.1.1 CONNECT and returns the 4-byte CONNACK.
func rawV3Connack(t *testing.T, addr, user, pass string) []byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append(str("MQTT"), 0x04, 0xC2, 0x00, 0x3C) // level 4; username, password, clean session; keep alive 60 s
	body = append(body, str(user)...)                   // client id
	body = append(body, str(user)...)
	body = append(body, str(pass)...)
	if _, err := conn.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	return ack
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
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
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
