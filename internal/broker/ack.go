package broker

import (
	"context"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/ingest"
)

// ackQueueLen bounds the readings of one connection waiting for their
// commit. A client sending faster than the disk commits is held up here
// (its read loop blocks), which is the back-pressure MQTT relies on.
const ackQueueLen = 1024

type ackItem struct {
	id     uint16
	ticket ingest.Ticket
}

// ackQueue sends one connection's QoS 1 acknowledgements in the order the
// PUBLISH packets arrived (as MQTT requires), each only after its reading
// is durably committed.
type ackQueue struct {
	cl   *mqtt.Client
	h    *hook
	ch   chan ackItem
	once sync.Once
	mu   sync.Mutex
	done bool
}

func (h *hook) queue(cl *mqtt.Client) *ackQueue {
	if q, ok := h.acks.Load(cl); ok {
		return q.(*ackQueue)
	}
	q := &ackQueue{cl: cl, h: h, ch: make(chan ackItem, ackQueueLen)}
	if actual, loaded := h.acks.LoadOrStore(cl, q); loaded {
		return actual.(*ackQueue)
	}
	go q.run()
	return q
}

func (q *ackQueue) push(it ackItem) {
	q.mu.Lock()
	if q.done {
		q.mu.Unlock()
		return // the client is gone; the reading still commits
	}
	q.mu.Unlock()
	// Only the client's own read loop pushes, and close happens after that
	// loop ended, so a send cannot race with the close.
	q.ch <- it
}

func (q *ackQueue) close() {
	q.once.Do(func() {
		q.mu.Lock()
		q.done = true
		q.mu.Unlock()
		close(q.ch)
	})
}

func (q *ackQueue) run() {
	v5 := q.cl.Properties.ProtocolVersion == 5
	for it := range q.ch {
		code := packets.CodeSuccess
		if err := it.ticket.Wait(context.Background()); err != nil {
			q.h.notStored(deviceOf(q.cl), "", err)
			if !v5 {
				// 3.1.1 has no negative acknowledgement: closing makes the
				// client resend what was not acknowledged.
				_ = q.cl.Net.Conn.Close()
				continue
			}
			code = packets.ErrImplementationSpecificError
		}
		_ = q.cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Puback},
			PacketID:    it.id,
			ReasonCode:  code.Code,
		})
	}
}
