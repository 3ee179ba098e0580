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
	// refusal, if set, is the MQTT 5 reason code (and reason string) to
	// answer with instead of success: a publish the hook refused, whose
	// PUBACK must still wait its turn behind earlier readings' (ackInOrder).
	refusal *packets.Code
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
//
// The goroutine that waits and writes runs only while readings are
// waiting: it starts with the first QoS 1 reading after a quiet spell and
// ends, releasing the queue's memory, once everything is acknowledged. A
// device that sends a reading a minute and is otherwise idle holds no
// goroutine and no buffer for it between readings (a goroutine for the
// life of the connection and a 1,024-slot channel cost about 32 KiB per
// device, more than the rest of its connection).
type ackQueue struct {
	cl    *mqtt.Client
	h     *hook
	write func([]byte) error // writes whole packets to the connection

	mu    sync.Mutex
	space sync.Cond // signalled when waiting readings are acknowledged
	items []ackItem // waiting for the run goroutine, in arrival order
	spare []ackItem // the run goroutine's last batch, reused
	// n counts the readings pushed and not yet acknowledged, including
	// those in the batch the run goroutine holds.
	n       int
	running bool // a run goroutine exists
	done    bool
	// exited, if set (tests), is called each time a run goroutine ends.
	exited func()
}

// queue returns cl's ack queue, made on its first QoS 1 reading. A
// device's queue hangs off its connection (deviceConn), so the read loop
// finds it without a map lookup per reading; h.acks keeps those of
// connections that did not come through the guard.
func (h *hook) queue(cl *mqtt.Client) *ackQueue {
	if gc := guardOf(cl); gc != nil && gc.dev != nil {
		if q := gc.dev.acks.Load(); q != nil {
			return q
		}
		// Only the connection's read loop makes its queue.
		q := newAckQueue(cl, h, func(p []byte) error { return writeRaw(cl, p) })
		gc.dev.acks.Store(q)
		return q
	}
	if q, ok := h.acks.Load(cl); ok {
		return q.(*ackQueue)
	}
	q := newAckQueue(cl, h, func(p []byte) error { return writeRaw(cl, p) })
	if actual, loaded := h.acks.LoadOrStore(cl, q); loaded {
		return actual.(*ackQueue)
	}
	return q
}

func newAckQueue(cl *mqtt.Client, h *hook, write func([]byte) error) *ackQueue {
	q := &ackQueue{cl: cl, h: h, write: write}
	q.space.L = &q.mu
	return q
}

// writeRaw writes already encoded packets to cl's connection under the
// client's lock, the lock mochi's own WritePacket holds while writing, so
// the bytes never interleave with another packet's. Packets mochi has
// buffered for cl may go out after these; MQTT orders PUBACKs only among
// themselves, which the single run goroutine per connection keeps.
func writeRaw(cl *mqtt.Client, p []byte) error {
	if cl.Closed() || cl.Net.Conn == nil {
		return mqtt.ErrConnectionClosed
	}
	cl.Lock()
	defer cl.Unlock()
	_, err := cl.Net.Conn.Write(p)
	return err
}

// push queues a reading's acknowledgement, starting the run goroutine if
// none is running. It blocks while ackQueueLen readings of the connection
// wait for their commit. Only the client's own read loop pushes.
func (q *ackQueue) push(it ackItem) {
	q.mu.Lock()
	for q.n >= ackQueueLen && !q.done {
		q.space.Wait()
	}
	if q.done {
		q.mu.Unlock()
		return // the client is gone; the reading still commits
	}
	q.items = append(q.items, it)
	q.n++
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go q.run()
	}
}

// close stops taking readings; those already pushed are still
// acknowledged (or their writes fail) by the run goroutine.
func (q *ackQueue) close() {
	q.mu.Lock()
	q.done = true
	q.mu.Unlock()
	q.space.Broadcast()
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
	var batch []ackItem
	for {
		q.mu.Lock()
		q.n -= len(batch)
		if len(batch) > 0 {
			q.spare = batch[:0]
			q.space.Broadcast()
		}
		if len(q.items) == 0 && buf.Len() > 0 {
			// Nothing more has arrived: send what is gathered first. Only
			// then may this goroutine end, so a later one never writes
			// before it.
			q.mu.Unlock()
			batch = nil
			flush()
			continue
		}
		if len(q.items) == 0 {
			q.running = false
			q.items, q.spare = nil, nil // an idle connection keeps no buffer
			exited := q.exited
			q.mu.Unlock()
			if exited != nil {
				exited()
			}
			return
		}
		batch, q.items, q.spare = q.items, q.spare, nil
		q.mu.Unlock()
		for _, it := range batch {
			if !it.ticket.Ready() {
				flush() // do not hold committed readings' PUBACKs for this one
			}
			if it.refusal != nil {
				// With its reason string, so through mochi's encoder, which
				// leaves the string out when the client asked for no
				// problem information or its packet size limit is small.
				flush()
				ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: it.id, ReasonCode: it.refusal.Code}
				if it.refusal.Code >= packets.ErrUnspecifiedError.Code {
					ack.Properties.ReasonString = it.refusal.Reason
				}
				_ = q.cl.WritePacket(ack) // a failed write ends the connection; the client resends
				continue
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
