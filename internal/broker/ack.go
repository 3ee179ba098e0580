package broker

import (
	"bytes"
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

// ackWriteMax bounds the PUBACKs gathered into one write (4 bytes each in
// 3.1.1, 4–5 in 5), so a long run of committed readings still goes out in
// steady pieces.
const ackWriteMax = 16 << 10

// acceptedTicket is the ticket of a reading acknowledged without waiting
// for its commit (the bounded-window mode).
var acceptedTicket = ingest.Completed(nil)

type ackItem struct {
	id     uint16
	ticket ingest.Ticket
}

// ackQueue sends one connection's QoS 1 acknowledgements in the order the
// PUBLISH packets arrived (as MQTT requires), each only after its reading
// is durably committed.
//
// The PUBACKs of every reading already committed are written together:
// one write(2) per connection per committed batch instead of one per
// message. Per-message writes were 22% of the hub's CPU at full speed
// (issue #19). A PUBACK is never held back for a later commit: the
// gathered ones are written before waiting on a reading that is not yet
// committed.
type ackQueue struct {
	cl    *mqtt.Client
	h     *hook
	write func([]byte) error // writes whole packets to the connection
	ch    chan ackItem
	once  sync.Once
	mu    sync.Mutex
	done  bool
}

func (h *hook) queue(cl *mqtt.Client) *ackQueue {
	if q, ok := h.acks.Load(cl); ok {
		return q.(*ackQueue)
	}
	q := newAckQueue(cl, h, func(p []byte) error { return writeRaw(cl, p) })
	if actual, loaded := h.acks.LoadOrStore(cl, q); loaded {
		return actual.(*ackQueue)
	}
	go q.run()
	return q
}

func newAckQueue(cl *mqtt.Client, h *hook, write func([]byte) error) *ackQueue {
	return &ackQueue{cl: cl, h: h, write: write, ch: make(chan ackItem, ackQueueLen)}
}

// writeRaw writes already encoded packets to cl's connection under the
// client's lock, the lock mochi's own WritePacket holds while writing, so
// the bytes never interleave with another packet's. Packets mochi has
// buffered for cl may go out after these; MQTT orders PUBACKs only among
// themselves, which the single ack goroutine per connection keeps.
func writeRaw(cl *mqtt.Client, p []byte) error {
	if cl.Closed() || cl.Net.Conn == nil {
		return mqtt.ErrConnectionClosed
	}
	cl.Lock()
	defer cl.Unlock()
	_, err := cl.Net.Conn.Write(p)
	return err
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
	var buf bytes.Buffer
	flush := func() {
		if buf.Len() > 0 {
			_ = q.write(buf.Bytes()) // a failed write ends the connection; the client resends
			buf.Reset()
		}
	}
	for {
		var it ackItem
		var ok bool
		select {
		case it, ok = <-q.ch:
		default:
			// Nothing more has arrived: send what is gathered, then wait.
			flush()
			it, ok = <-q.ch
		}
		if !ok {
			flush()
			return
		}
		if !it.ticket.Ready() {
			flush() // do not hold committed readings' PUBACKs for this one
		}
		code := packets.CodeSuccess
		if err := it.ticket.Wait(context.Background()); err != nil {
			q.h.notStored(deviceOf(q.cl), "", err)
			if !v5 {
				// 3.1.1 has no negative acknowledgement: closing makes the
				// client resend what was not acknowledged.
				flush()
				_ = q.cl.Net.Conn.Close()
				continue
			}
			code = packets.ErrImplementationSpecificError
		}
		appendPuback(&buf, q.cl.Properties.ProtocolVersion, it.id, code.Code)
		if buf.Len() >= ackWriteMax {
			flush()
		}
	}
}

// appendPuback encodes a PUBACK without properties (MQTT 3.1.1 §3.4,
// MQTT 5 §3.4): the fixed header, the packet id and, in version 5 and only
// when it is not success, the reason code (§3.4.2.1 lets success be
// implied by a remaining length of 2).
func appendPuback(buf *bytes.Buffer, version byte, id uint16, code byte) {
	if version == 5 && code != packets.CodeSuccess.Code {
		buf.Write([]byte{packets.Puback << 4, 3, byte(id >> 8), byte(id), code})
		return
	}
	buf.Write([]byte{packets.Puback << 4, 2, byte(id >> 8), byte(id)})
}
