package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/broker"
)

// testAuth is a mochi hook for the in-test broker: with no secret set it
// allows everyone; otherwise only user "dev" with that password.
type testAuth struct {
	mqtt.HookBase
	secret string
}

func (h *testAuth) ID() string { return "bench-test-auth" }

func (h *testAuth) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *testAuth) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	return h.secret == "" || (string(pk.Connect.Username) == "dev" && string(pk.Connect.Password) == h.secret)
}

func (h *testAuth) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// startMochi runs an in-test mochi broker on a real loopback port. With
// secret empty every client is allowed.
func startMochi(t *testing.T, secret string) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(&testAuth{secret: secret}, nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewNet("t", ln) // owned here, so shutdown closes it first
	if err := srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Shutdown(srv, []net.Listener{ln}, 5*time.Second, nil) })
	return tcp.Address()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestQoS1AcksCounted publishes more QoS 1 messages than the window (and
// than mochi's receive maximum) from several connections and checks that
// every one is acknowledged exactly once and timed.
func TestQoS1AcksCounted(t *testing.T) {
	addr := startMochi(t, "")
	ctx := testCtx(t)
	const (
		clients = 3
		perConn = 3000
	)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("pub-%d", i)
			c, err := Dial(ctx, addr, ConnectOptions{ClientID: id, KeepAlive: 60, Window: 16})
			if err != nil {
				errs <- err
				return
			}
			payload := AppendPayload(nil, time.Now().UnixNano(), 1, 100)
			for range perConn {
				if err := c.Publish("bench/"+id, payload, 1); err != nil {
					errs <- err
					return
				}
			}
			if err := c.WaitAcks(ctx); err != nil {
				errs <- err
				return
			}
			if err := c.Disconnect(); err != nil {
				errs <- err
				return
			}
			if got := c.Acked(); got != perConn {
				errs <- fmt.Errorf("%s: %d acks, want %d", id, got, perConn)
			}
			if got := c.AckLatency().Count(); got != perConn {
				errs <- fmt.Errorf("%s: %d latencies recorded, want %d", id, got, perConn)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSubscribeQoS1 checks the sink side: a QoS 1 subscription receives
// every message (and acknowledges it, or the broker would stop sending).
func TestSubscribeQoS1(t *testing.T) {
	addr := startMochi(t, "")
	ctx := testCtx(t)
	const n = 500
	var got atomic.Int64
	sub, err := Dial(ctx, addr, ConnectOptions{ClientID: "sink", KeepAlive: 60, OnMessage: func(topic, payload []byte) {
		if string(topic) == "bench/x" && bytes.HasPrefix(payload, []byte(`{"t":`)) {
			got.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Subscribe(ctx, "bench/#", 1); err != nil {
		t.Fatal(err)
	}
	pub, err := Dial(ctx, addr, ConnectOptions{ClientID: "pub", KeepAlive: 60})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := pub.Publish("bench/x", AppendPayload(nil, time.Now().UnixNano(), uint64(i), 100), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.WaitAcks(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Disconnect(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got.Load() != n {
		t.Fatalf("subscriber received %d messages, want %d", got.Load(), n)
	}
}

// TestConnackRefusal checks that a refused CONNECT is a clear
// *ConnackError, not a hang or a bare EOF.
func TestConnackRefusal(t *testing.T) {
	addr := startMochi(t, "right-secret")
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, ConnectOptions{ClientID: "dev", Username: "dev", Password: "right-secret", KeepAlive: 60})
	if err != nil {
		t.Fatalf("good credentials refused: %v", err)
	}
	_ = c.Disconnect()

	_, err = Dial(ctx, addr, ConnectOptions{ClientID: "dev", Username: "dev", Password: "wrong", KeepAlive: 60})
	var ce *ConnackError
	if !errors.As(err, &ce) {
		t.Fatalf("wrong password: got %v, want a *ConnackError", err)
	}
	if ce.Code != 4 && ce.Code != 5 {
		t.Errorf("return code %d, want 4 or 5", ce.Code)
	}
	if !strings.Contains(err.Error(), "refused the connection") || !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not say what was refused where", err)
	}
}

// TestAppendPublishDecodes decodes what AppendPublish writes, including a
// remaining length that needs two bytes.
func TestAppendPublishDecodes(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 300)
	for _, qos := range []byte{0, 1} {
		pk := AppendPublish(nil, "candor/dev_1/temperature", payload, qos, 0x1234)
		r := bufio.NewReader(bytes.NewReader(pk))
		hdr, _ := r.ReadByte()
		if hdr>>4 != pktPublish || (hdr>>1)&3 != qos {
			t.Fatalf("qos %d: header %#x", qos, hdr)
		}
		n, err := readRemainingLength(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r)
		if n != len(body) {
			t.Fatalf("qos %d: remaining length %d, body %d bytes", qos, n, len(body))
		}
		tl := int(binary.BigEndian.Uint16(body))
		if topic := string(body[2 : 2+tl]); topic != "candor/dev_1/temperature" {
			t.Errorf("topic %q", topic)
		}
		rest := body[2+tl:]
		if qos == 1 {
			if id := binary.BigEndian.Uint16(rest); id != 0x1234 {
				t.Errorf("packet id %#x", id)
			}
			rest = rest[2:]
		}
		if !bytes.Equal(rest, payload) {
			t.Errorf("qos %d: payload differs", qos)
		}
	}
}

func TestRemainingLengthRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455} {
		b := appendRemainingLength(nil, n)
		got, err := readRemainingLength(bytes.NewReader(b))
		if err != nil || got != n {
			t.Errorf("%d: encoded %x, decoded %d, %v", n, b, got, err)
		}
	}
	if _, err := readRemainingLength(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0x01})); err == nil {
		t.Error("a five-byte remaining length was accepted")
	}
}

func TestConnectPacket(t *testing.T) {
	pk := AppendConnect(nil, ConnectOptions{ClientID: "dev_1", Username: "dev_1", Password: "s3cret", KeepAlive: 900})
	want := []byte{0x10, 0}
	want = append(want, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0x03, 0x84)
	want = append(want, 0, 5, 'd', 'e', 'v', '_', '1', 0, 5, 'd', 'e', 'v', '_', '1', 0, 6, 's', '3', 'c', 'r', 'e', 't')
	want[1] = byte(len(want) - 2)
	if !bytes.Equal(pk, want) {
		t.Errorf("CONNECT\n got %x\nwant %x", pk, want)
	}
	anon := AppendConnect(nil, ConnectOptions{ClientID: "x"})
	if anon[9] != 0x02 {
		t.Errorf("anonymous CONNECT flags %#x, want only clean session", anon[9])
	}
}
