package broker

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestCloseWhileClientsComeAndGo shuts the broker down while devices keep
// connecting and disconnecting. mochi v2.7.9's own Close can deadlock when
// its client list changes during the shutdown (see Broker.Close); Close
// must return, every time.
func TestCloseWhileClientsComeAndGo(t *testing.T) {
	for round := range 10 {
		tb := startBroker(t)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var tries atomic.Int64
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					churn(tb.addr, fmt.Sprintf("%s-r%d-%d-%d", devA, round, i, n))
					tries.Add(1)
				}
			}()
		}
		waitFor(t, "the churn to start", 10*time.Second, func() bool { return tries.Load() >= 8 })
		closed := make(chan error, 1)
		go func() { closed <- tb.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("round %d: Close: %v", round, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Close did not return within 20 s while clients came and went", round)
		}
		close(stop)
		wg.Wait()
	}
}

// churn connects one device session and ends it at once. Failures are
// expected once the broker closes, and ignored.
func churn(addr, clientID string) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: clientID, OnClientError: func(error) {}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: devA, PasswordFlag: true, Password: []byte(secretA)}); err != nil {
		return
	}
	_ = c.Disconnect(&paho.Disconnect{})
}

// TestCloseIsIdempotentAndEndsSessions closes a broker with a device
// connected, twice: the device is cut off, and the second Close is a no-op
// (mochi's own Close panics when called twice).
func TestCloseIsIdempotentAndEndsSessions(t *testing.T) {
	tb := startBroker(t)
	c := mustV5(t, tb.addr, devA, devA, secretA)
	if err := tb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-c.server:
	case <-time.After(5 * time.Second):
		// paho may see the TCP close instead of a DISCONNECT packet.
	}
	if tb.Connected(devA) {
		t.Error("the device is still connected after Close")
	}
	if err := tb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", tb.addr, time.Second); err == nil {
		conn.Close()
		t.Error("the listener still accepts connections after Close")
	}
}
