package broker

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/candor-iot/candor/internal/ingest"
)

// Pushes with gaps that let the run goroutine end and restart: every
// PUBACK is written once, in push order.
func TestAckQueueOrderAcrossRestarts(t *testing.T) {
	in, _, _ := storedPipeline(t, false)
	var mu sync.Mutex
	var out bytes.Buffer
	cl := &mqtt.Client{}
	cl.Properties.ProtocolVersion = 4
	q := newAckQueue(cl, newHook(nil, in, slog.New(slog.DiscardHandler), nil), func(p []byte) error {
		mu.Lock()
		out.Write(p)
		mu.Unlock()
		return nil
	})
	const n = 1500
	var want []byte
	for id := uint16(1); id <= n; id++ {
		tk := ingest.Completed(nil)
		if rand.IntN(3) == 0 {
			var err error
			if tk, err = in.Enqueue(context.Background(), devA, "temperature", []byte(`{"c":1}`)); err != nil {
				t.Fatal(err)
			}
		}
		q.push(ackItem{id: id, ticket: tk})
		want = appendPuback(want, 4, id, 0)
		if rand.IntN(10) == 0 {
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := bytes.Clone(out.Bytes())
		mu.Unlock()
		if bytes.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) || len(got) > len(want) {
			t.Fatalf("got %d bytes of PUBACKs, want %d (equal prefix: %v)", len(got), len(want), bytes.HasPrefix(want, got))
		}
		time.Sleep(10 * time.Millisecond)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.state.Load() != ackIdle && time.Now().Before(deadline) {
		q.mu.Unlock()
		time.Sleep(time.Millisecond)
		q.mu.Lock()
	}
	if q.state.Load() != ackIdle || q.n != 0 {
		t.Fatalf("after all acks: state %d, n %d", q.state.Load(), q.n)
	}
}
