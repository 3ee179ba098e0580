package broker

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store"
)

// instantStore commits readings at once, after a busy wait of a varying
// 0-4 µs, so that commits end at every point of the ack queue's run
// goroutine's loop. A real store's commit (SQLite: tens of µs and more)
// nearly always ends after the goroutine is already waiting for it, which
// hides the race TestRunGoroutineLateCommitIsNotAFailure looks for.
type instantStore struct {
	seed     atomic.Uint64
	readings atomic.Int64
}

func (s *instantStore) AppendReadings(_ context.Context, rs []store.Reading) error {
	x := s.seed.Add(0x9E3779B97F4A7C15)
	end := time.Now().Add(time.Duration(x%4000) * time.Nanosecond)
	for time.Now().Before(end) {
	}
	s.readings.Add(int64(len(rs)))
	return nil
}

func (*instantStore) AddDeviceCounters(context.Context, map[string]store.DeviceCounters) error {
	return nil
}

func (*instantStore) AddViolations(context.Context, []store.ViolationCount) error { return nil }

// closeCounter is a connection that only counts the calls to Close.
type closeCounter struct {
	net.Conn
	closes atomic.Int32
}

func (c *closeCounter) Close() error { c.closes.Add(1); return nil }

// The run goroutine never takes a reading that committed for a failed
// commit. encodeReady stops at a reading still committing; when its
// commit ends before run looks at it again, run used to find it Ready and
// take it for a failed 3.1.1 commit (the only other reason encodeReady
// stops): it logged an error with no error, closed the connection and
// dropped the PUBACK, so the client resent a reading already stored.
// One reading at a time through a queue with no socket of its own (as
// over TLS or WebSocket: every PUBACK goes through the run goroutine), each
// PUBACK waited for. Before the fix this failed in every run tried (11 of
// 11), after 347 to 41,850 readings: the window is a few instructions wide.
func TestRunGoroutineLateCommitIsNotAFailure(t *testing.T) {
	st := &instantStore{}
	in := ingest.New(st, ingest.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(in.Close)
	writes := make(chan []byte, 1)
	cl := &mqtt.Client{}
	cl.Properties.ProtocolVersion = 4
	cc := &closeCounter{}
	cl.Net.Conn = cc
	q := newAckQueue(cl, newHook(nil, in, slog.New(slog.DiscardHandler), nil), func(p []byte) error {
		writes <- bytes.Clone(p)
		return nil
	})
	t.Cleanup(q.close)
	const n = 100_000
	for i := range n {
		id := uint16(i%65000 + 1)
		tk, err := in.Enqueue(context.Background(), devA, "temperature", []byte(`{"c":21.5}`))
		if err != nil {
			t.Fatal(err)
		}
		q.push(ackItem{id: id, ticket: tk})
		var w []byte
		for hang := time.Now().Add(10 * time.Second); w == nil; {
			select {
			case w = <-writes:
			case <-time.After(time.Millisecond):
				if time.Now().After(hang) {
					t.Fatalf("reading %d: no PUBACK in 10 s (its commit ended with %v)", i, tk.Wait(context.Background()))
				}
			}
			if c := cc.closes.Load(); c != 0 {
				t.Fatalf("reading %d: connection closed %d times though every commit succeeded (this one's ended with %v); PUBACK written: %v",
					i, c, tk.Wait(context.Background()), w != nil)
			}
		}
		if !bytes.Equal(w, pubacks(id)) {
			t.Fatalf("reading %d: write % x, want % x", i, w, pubacks(id))
		}
	}
	if got := st.readings.Load(); got != n {
		t.Fatalf("%d readings stored, want %d", got, n)
	}
}
