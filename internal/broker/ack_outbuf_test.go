package broker

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// A refusal PUBACK once went through cl.WritePacket, which keeps it in
// mochi's outgoing buffer while messages to the device are queued; the
// next success PUBACK, written straight to the socket, overtook it (found
// in review: 5 of 5 rounds before appendRefusal).
func TestRefusalNotOvertakenWhileSending(t *testing.T) {
	const v = 5
	bad := 0
	for round := 0; round < 5; round++ {
		in, _, _ := storedPipeline(t, false)
		b := startStoredBroker(t, Config{}, in)
		nc, c := dialSmallRcvbuf(t, b.Addr("tcp"))
		connectA(t, c, v)
		ctl := ControlTopic(devA, "x")
		c.Send(mqtttest.Subscribe(v, 1, ctl, 0))
		c.Expect(mqtttest.SUBACK)
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, 1, false))
		expectPuback(t, c, v, 1, 0)
		q := deviceQueue(b)
		_ = q.gc.Conn.(*net.TCPConn).SetWriteBuffer(2048)
		// Fill the socket: the write loop blocks holding cl's lock, more
		// publishes wait in the outbound queue.
		big := bytes.Repeat([]byte("a"), 8192)
		for i := 0; i < 40; i++ {
			if err := b.Publish(ctl, big, false); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(200 * time.Millisecond)
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`not json`), 1, 10, false))
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":2}`), 1, 11, false))
		time.Sleep(300 * time.Millisecond) // reading 11 commits; run goroutine waits on cl.Lock
		var order []string
		for len(order) < 2 {
			p, err := c.Next()
			if err != nil {
				t.Fatal(err)
			}
			if p.Type == mqtttest.PUBACK {
				order = append(order, fmt.Sprintf("%d/%#x", uint16(p.Body[0])<<8|uint16(p.Body[1]), p.ReasonCode(v)))
			}
		}
		t.Logf("round %d: PUBACK order %v", round, order)
		if order[0] != "10/0x99" {
			bad++
		}
		nc.Close()
	}
	if bad > 0 {
		t.Errorf("PUBACK of 11 came before the refusal of 10 in %d of 5 rounds", bad)
	}
}
