package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
	"github.com/candor-iot/candor/internal/ingest"
)

// stallingIngester holds the read loop in Enqueue for the reading whose
// payload is stall, until the test lets it go.
type stallingIngester struct {
	*ingest.Pipeline
	stall   []byte
	entered chan struct{}
	release chan struct{}
}

func (s *stallingIngester) Enqueue(ctx context.Context, deviceID, stream string, payload []byte) (ingest.Ticket, error) {
	if bytes.Equal(payload, s.stall) {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Pipeline.Enqueue(ctx, deviceID, stream, payload)
}

// In the bounded-window mode the PUBACKs of readings read together wait in
// the read loop (ackQueue.rbuf) until it next waits for the socket. A
// connection ended from elsewhere meanwhile (a takeover by a new
// connection with the same client id, the hub shutting down) gets them
// before mochi's DISCONNECT: the readings were accepted, and a client
// never told so resends them on reconnecting, to be stored twice. An MQTT
// 5 client used to get the DISCONNECT alone (Close sends no PUBACKs after
// a DISCONNECT, which MQTT 5 lets nothing follow).
func TestHeldPubacksPrecedeDisconnect(t *testing.T) {
	for _, end := range []string{"takeover", "shutdown"} {
		for _, v := range []byte{4, 5} {
			t.Run(end+"/v"+string('0'+v), func(t *testing.T) {
				in, _, _ := storedPipeline(t, false)
				si := &stallingIngester{Pipeline: in, stall: []byte(`{"c":3}`),
					entered: make(chan struct{}, 1), release: make(chan struct{})}
				b := startStoredBroker(t, Config{AckWithin: time.Hour}, si)
				// Cleanups run last first: the stalled read loop is let go
				// before the broker closes.
				t.Cleanup(func() { close(si.release) })
				c := mqtttest.Dial(t, b.Addr("tcp"), nil)
				connectA(t, c, v)
				// One write, so the read loop reads all three before it
				// waits for the socket again, and holds the first two
				// PUBACKs while the third reading stalls.
				var burst []byte
				for id := uint16(1); id <= 3; id++ {
					burst = append(burst, mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":`+string('0'+byte(id))+`}`), 1, id, false)...)
				}
				c.Send(burst)
				select {
				case <-si.entered:
				case <-time.After(20 * time.Second):
					t.Fatal("the third reading never reached the ingester")
				}
				switch end {
				case "takeover":
					c2 := mqtttest.Dial(t, b.Addr("tcp"), nil)
					connectA(t, c2, v)
				case "shutdown":
					go b.Close()
				}
				var got []byte
				for {
					p, err := c.Next()
					if err != nil {
						var ne net.Error
						if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && errors.As(err, &ne) && ne.Timeout() {
							t.Fatalf("no end of the connection: %v", err)
						}
						break
					}
					got = append(got, p.Type)
					if p.Type == mqtttest.PUBACK {
						if id := uint16(p.Body[0])<<8 | uint16(p.Body[1]); id != uint16(len(got)) {
							t.Fatalf("PUBACK %d in place %d", id, len(got))
						}
					}
				}
				// Readings 1 and 2 were accepted: their PUBACKs come
				// first; then a v5 client gets the DISCONNECT. Reading 3
				// was not accepted before the end: no PUBACK for it.
				want := []byte{mqtttest.PUBACK, mqtttest.PUBACK}
				if v == 5 {
					want = append(want, mqtttest.DISCONNECT)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("packets of types %v after the connection was ended; want %v", got, want)
				}
			})
		}
	}
}
