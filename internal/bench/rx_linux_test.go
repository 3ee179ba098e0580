package bench

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// ackServer is just enough of an MQTT broker on a real loopback socket:
// CONNACK to the CONNECT, then a PUBACK for each QoS 1 PUBLISH at once,
// reporting on acked after each PUBACK has been written.
func ackServer(t *testing.T, acked chan<- struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	t.Cleanup(func() {
		_ = ln.Close()
		if err := <-served; err != nil {
			t.Errorf("test server: %v", err)
		}
	})
	go func() {
		served <- func() error {
			nc, err := ln.Accept()
			if err != nil {
				return err
			}
			defer nc.Close()
			r := newRxReader(plainRx{nc}, 4096)
			var body []byte
			for {
				hdr, err := r.ReadByte()
				if err != nil {
					return err
				}
				n, err := readRemainingLength(r)
				if err != nil {
					return err
				}
				body = append(body[:0], make([]byte, n)...)
				if _, err := io.ReadFull(r, body); err != nil {
					return err
				}
				switch hdr >> 4 {
				case pktConnect:
					_, err = nc.Write([]byte{pktConnack << 4, 2, 0, 0})
				case pktPublish:
					tl := int(binary.BigEndian.Uint16(body))
					id := body[2+tl : 2+tl+2]
					if _, err = nc.Write([]byte{pktPuback << 4, 2, id[0], id[1]}); err == nil {
						acked <- struct{}{}
					}
				case pktDisconnect:
					return nil
				default:
					err = errors.New("unexpected packet")
				}
				if err != nil {
					return err
				}
			}
		}()
	}()
	return ln.Addr().String()
}

// A reader goroutine that gets to run only long after the PUBACK arrived
// (held back here by a hook for hold, as a busy machine holds it back
// waiting for a CPU) adds that delay to the client-observed latency, but
// not to the latency at the client socket, which ends at the kernel's
// receive time of the PUBACK. Before the socket figure there was only
// the client-observed one.
func TestSocketLatencyLeavesOutTheReadersDelay(t *testing.T) {
	const (
		hold = 200 * time.Millisecond
		n    = 3
	)
	acked := make(chan struct{}, n)
	stop := make(chan struct{})
	addr := ackServer(t, acked)
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, ConnectOptions{ClientID: "held", KeepAlive: 60, Window: 1, beforeRead: func() {
		select {
		case <-acked:
			// The PUBACK is on the client's socket: now hold.
			time.Sleep(hold)
		case <-stop:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(stop) }) }
	// On an early failure: free the reader and end the connection, so
	// the server's cleanup (which runs after this one) sees it end.
	t.Cleanup(func() { release(); _ = c.Close() })
	payload := AppendPayload(nil, time.Now().UnixNano(), 1, 100)
	for range n {
		if err := c.Publish("bench/held", payload, 1); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitAcks(ctx); err != nil {
			t.Fatal(err)
		}
	}
	release()
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}
	client := c.AckLatency()
	sock, unstamped, why := c.SocketAckLatency()
	if why != "" {
		t.Fatalf("no socket latency: %s", why)
	}
	if client.Count() != n || sock.Count() != n || unstamped != 0 {
		t.Fatalf("%d client-observed and %d socket latencies, %d unstamped; want %d, %d, 0", client.Count(), sock.Count(), unstamped, n, n)
	}
	// Quantile(0) is the middle of the lowest bucket, up to 1/32 below
	// the smallest value.
	if low := time.Duration(client.Quantile(0)); low < hold-hold/32 {
		t.Errorf("client-observed latency as low as %v, want ≥ the reader's hold of %v", low, hold)
	}
	if high := time.Duration(sock.Max()); high >= hold/2 {
		t.Errorf("latency at the client socket up to %v, want well below the reader's hold of %v", high, hold)
	}
	t.Logf("client-observed min ≈ %v, max %v; at the socket p50 ≈ %v, max %v",
		time.Duration(client.Quantile(0)), time.Duration(client.Max()), time.Duration(sock.Quantile(0.5)), time.Duration(sock.Max()))
}
